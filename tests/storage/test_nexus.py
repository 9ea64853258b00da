"""Every procedure's run file is NeXus the ecosystem reads (docs/hdf5-layout.md).

One short run per shipped procedure on the simulated bench, through the real run path
(:func:`perovlab_daq.runner.execute_run`); each file must load with nexusformat (every
field read), pass its base-class checker with no errors (and punx, when installed), and
open on the procedure's default plot: root ``@default`` -> entry, entry ``@default`` ->
an NXdata group whose ``@signal``/``@axes`` are the expected datasets.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest

nexus = pytest.importorskip("nexusformat.nexus")

from perovlab_daq.procedures import registry  # noqa: E402

#: The installed procedures, taken before the storage tests' fixture swaps in test ones.
INSTALLED = dict(registry.PROCEDURES)

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "reliability"))
from reliability_helpers import FAST_PARAMETERS, PRESETS  # noqa: E402

#: Short parameters (about a second each); the lifetime run takes one check sweep.
FAST: dict[str, dict[str, Any]] = {
    **FAST_PARAMETERS,
    "lifetime": {
        **FAST_PARAMETERS["lifetime"],
        "jlv_times": "0.5",
        "jlv_stop_voltage": 3.0,
        "jlv_step": 0.5,
    },
}

#: procedure -> (default group, signal, axes, auxiliary signals)
EXPECTED_PLOT = {
    "jlv": ("data", "current_density", "voltage", ["luminance"]),
    "lifetime": ("data", "relative_luminance", "device_time", []),
    "pl-stability": ("data", "relative_intensity", "device_time", []),
    "pl-fluence": ("data", "integrated_pl", "power_density", []),
    "el-spectra": ("spectra", "intensity", ["time", "wavelength"], []),
    "pl-spectrum": ("spectra", "intensity", ["time", "wavelength"], []),
    "plqy": ("spectra", "intensity", ["time", "wavelength"], []),
}


@pytest.fixture(scope="module")
def run_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One finished run file per shipped procedure, on the shipped simulated bench."""
    from perovlab_daq.bench import sim_bench
    from perovlab_daq.runner import execute_run, plan_run

    out = tmp_path_factory.mktemp("nexus")
    files = {}
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(registry, "PROCEDURES", INSTALLED)
        for name, parameters in FAST.items():
            plan = plan_run(
                name,
                bench_config=sim_bench(PRESETS[name]),
                parameters=parameters,
                output=out / name,
            )
            outcome = execute_run(plan)
            assert outcome.status == "finished", (name, outcome.reason)
            files[name] = outcome.path
    return files


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


@pytest.mark.parametrize("name", list(FAST))
def test_nexusformat_loads_and_checks_every_procedure(name: str, run_files: dict) -> None:
    from nexusformat.nexus.validate import validate_file

    path = run_files[name]
    root = nexus.nxload(str(path))
    assert "NXentry" in root.tree  # .tree reads every field: an unreadable one raises
    result = validate_file(str(path))
    assert result is not None, "the checker stopped on an error"
    _warnings, errors = result
    assert errors == 0


@pytest.mark.parametrize("name", list(FAST))
def test_default_plot_is_the_expected_figure(name: str, run_files: dict) -> None:
    group_name, signal, axes, auxiliary = EXPECTED_PLOT[name]
    root = nexus.nxload(str(run_files[name]))
    assert root.attrs["default"] == "entry"
    entry = root["entry"]
    assert entry.attrs["default"] == group_name
    group = entry[group_name]
    assert group.nxclass == "NXdata"
    assert group.attrs["signal"] == signal
    stored_axes = group.attrs["axes"]
    stored_axes = [stored_axes] if isinstance(stored_axes, str) else list(stored_axes)
    wanted_axes = [axes] if isinstance(axes, str) else axes
    assert stored_axes == wanted_axes
    for index, axis in enumerate(wanted_axes):
        assert int(group.attrs[f"{axis}_indices"]) == index
        assert axis in group
    assert signal in group
    stored_auxiliary = group.attrs.get("auxiliary_signals", [])
    if isinstance(stored_auxiliary, str):  # nexusformat gives a 1-element array as its item
        stored_auxiliary = [stored_auxiliary]
    assert list(stored_auxiliary) == auxiliary
    # nexusformat itself resolves the same signal and axes (what its plot would show)
    assert group.nxsignal.nxname == signal
    assert [a.nxname for a in group.nxaxes] == wanted_axes


@pytest.mark.parametrize("name", list(FAST))
def test_title_and_times_are_fields_and_nothing_is_empty(name: str, run_files: dict) -> None:
    with h5py.File(run_files[name], "r") as file:
        entry = file["entry"]
        for field in ("title", "start_time", "end_time"):
            assert isinstance(entry[field], h5py.Dataset), field
        start, end = _text(entry["start_time"][()]), _text(entry["end_time"][()])
        assert start[10] == "T" and end[10] == "T" and start <= end
        assert _text(entry["title"][()])
        empty: list[str] = []

        def visit(path: str, item: Any) -> None:
            if isinstance(item, h5py.Dataset) and item.shape is None:
                empty.append(path)

        file.visititems(visit)
        assert not empty, f"empty datasets (None stored as h5py.Empty): {empty}"


def test_unset_settings_are_nan_marked_unset_and_read_back_as_none(run_files: dict) -> None:
    from perovlab_daq.storage import layout

    with h5py.File(run_files["jlv"], "r") as file:
        unset = []
        file.visititems(
            lambda path, item: (
                unset.append(item)
                if isinstance(item, h5py.Dataset) and item.attrs.get(layout.UNSET_ATTR)
                else None
            )
        )
        assert unset, "the simulated spectrometer has a setting that is None"
        for dataset in unset:
            assert np.isnan(dataset[()])
            assert layout.read_value(dataset) is None


def test_lifetime_check_sweeps_have_their_own_group(run_files: dict) -> None:
    with h5py.File(run_files["lifetime"], "r") as file:
        entry = file["entry"]
        stress = entry["data/jlv_sweep"][()]
        sweeps = entry["check_sweeps/jlv_sweep"][()]
        assert len(stress) > 0 and np.all(stress == 0), "check-sweep rows left in entry/data"
        assert len(sweeps) > 0 and np.all(sweeps == 1)
        group = entry["check_sweeps"]
        assert group.attrs["NX_class"] == "NXdata"
        assert group.attrs["signal"] == "current_density" and group.attrs["axes"] == "voltage"
        voltage = group["voltage"][()]
        assert np.all(np.diff(voltage) > 0)  # one sweep up, 0 V to the top voltage
        assert {len(group[n]) for n in group} == {len(sweeps)}


@pytest.mark.skipif(shutil.which("punx") is None, reason="punx not installed")
@pytest.mark.parametrize("name", list(FAST))
def test_punx_finds_no_errors(name: str, run_files: dict) -> None:
    done = subprocess.run(
        ["punx", "validate", str(run_files[name])],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    summary = [line for line in done.stdout.splitlines() if line.startswith("ERROR ")]
    assert summary, done.stdout[-2000:] + done.stderr[-2000:]
    assert summary[-1].split()[1] == "0", summary


def test_a_run_through_the_runner_records_the_calibration_files(run_files: dict) -> None:
    import hashlib

    from perovlab_daq.bench import sim_bench

    for key, path in sim_bench().calibration_files().items():
        digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()
        for name, run_file in run_files.items():
            with h5py.File(run_file, "r") as file:
                note = file[f"entry/provenance/calibration_files/{key}"]
                assert _text(note["sha256"][()]) == digest, name


def test_efficiencies_below_turn_on_are_nan_not_negative(run_files: dict) -> None:
    with h5py.File(run_files["jlv"], "r") as file:
        data = file["entry/data"]
        for name in ("eqe", "current_efficiency", "luminous_efficacy"):
            values = data[name][()]
            assert np.all(np.isnan(values) | (values > 0)), (name, values)
            assert np.isnan(values).any() and (values > 0).any(), (name, values)
