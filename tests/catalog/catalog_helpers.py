"""Run files for the catalogue tests, written by the project's own storage writer.

Each file is a real run file of a real procedure class (written through
:class:`~perovlab_daq.storage.HDF5Results`: journal, SWMR, close), with a station,
sample, pixel, final status and key figures chosen by the test, and its start time
moved to a chosen day afterwards, so filters have a known truth. Many files are made
cheaply by copying one written file per procedure and giving each copy its own run id,
station, sample, pixel, status, times and figures (what the writer would have written).
"""

from __future__ import annotations

import random
import shutil
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import h5py
from perovlab_daq.procedures.registry import procedure_class

from perovlab_daq.storage import HDF5Results

#: Procedures, their figure names and value ranges used by the generated runs.
FIGURES = {
    "jlv": {"peak_eqe_pct": (0.5, 25.0), "max_luminance_cd_m2": (10.0, 50_000.0)},
    "lifetime": {"t50_h": (0.1, 500.0), "l0_cd_m2": (100.0, 5000.0)},
    "pl-spectrum": {"peak_wavelength_nm": (500.0, 700.0), "fwhm_nm": (15.0, 60.0)},
}
STATUSES = ("finished", "finished", "finished", "aborted", "failed")
DAY0 = datetime(2026, 11, 1, 8, 0, tzinfo=UTC)


@dataclass
class RunTruth:
    """What a generated run file holds (the truth the filters are checked against)."""

    path: Path
    run_id: str
    procedure: str
    sample: str
    pixel: str
    station: str
    status: str
    started: datetime
    figures: dict[str, Any] = field(default_factory=dict)


def write_run(
    path: Path,
    *,
    procedure: str,
    sample: str,
    pixel: str,
    station: str,
    status: str,
    figures: dict[str, Any],
    started: datetime | None = None,
) -> RunTruth:
    """Write one small run file with the storage writer; return its truth."""
    cls = procedure_class(procedure)
    run = cls()
    run.bench = SimpleNamespace(config=SimpleNamespace(station=station))
    results = HDF5Results(
        run,
        path,
        durability_interval_s=0.05,
        metadata={"simulated": True},
        sample={"sample": sample, "pixel": pixel, "operator": "ci"},
        new_run=True,
    )
    results.start()
    first = results.columns and next(iter(results.columns))
    if first:
        results.append_rows({first: [0.0, 1.0, 2.0]})
    results.write_analysis(figures)
    results.close(status, "made by the catalogue tests" if status != "finished" else None)
    if started is not None:
        with h5py.File(results.path, "r+") as file:
            entry = file["entry"]
            entry.attrs["start_time"] = started.isoformat(timespec="milliseconds")
            entry.attrs["end_time"] = (started + timedelta(minutes=5)).isoformat(
                timespec="milliseconds"
            )
    return RunTruth(
        path=Path(results.path),
        run_id=results.run_id,
        procedure=procedure,
        sample=sample,
        pixel=pixel,
        station=station,
        status=status,
        started=started or datetime.now(UTC),
        figures=dict(figures),
    )


def _restamp(path: Path, truth: RunTruth) -> None:
    """Give a copied run file the identity and results of ``truth``."""
    with h5py.File(path, "r+") as file:
        entry = file["entry"]
        for group, name, value in (
            ("provenance", "run_id", truth.run_id),
            ("provenance", "station", truth.station),
            ("sample", "sample", truth.sample),
            ("sample", "name", truth.sample),
            ("sample", "pixel", truth.pixel),
        ):
            del entry[group][name]
            entry[group].create_dataset(name, data=value)
        entry.attrs["status"] = truth.status
        entry.attrs["start_time"] = truth.started.isoformat(timespec="milliseconds")
        ended = truth.started + timedelta(minutes=5)
        entry.attrs["end_time"] = ended.isoformat(timespec="milliseconds")
        for name, value in truth.figures.items():
            del entry["analysis"][name]
            entry["analysis"].create_dataset(name, data=value)


def write_runs(folder: Path, count: int, seed: int = 21) -> list[RunTruth]:
    """Write ``count`` runs (3 procedures, 5 samples, 3 stations, 4 pixels, 30 days).

    One file per procedure is written by the storage writer; the others are copies of it
    with their own identity and results.
    """
    rng = random.Random(seed)
    templates: dict[str, Path] = {}
    for procedure, ranges in FIGURES.items():
        template = folder / ".templates" / f"{procedure}.h5"
        template.parent.mkdir(parents=True, exist_ok=True)
        figures = {name: low for name, (low, _high) in ranges.items()}
        templates[procedure] = write_run(
            template,
            procedure=procedure,
            sample="template",
            pixel="1",
            station="template",
            status="finished",
            figures=figures,
        ).path
    truths = []
    for i in range(count):
        procedure = list(FIGURES)[i % len(FIGURES)]
        station = f"station-{i % 3 + 1}"
        sub = folder / station
        sub.mkdir(parents=True, exist_ok=True)
        truth = RunTruth(
            path=sub / f"run{i:03d}_{procedure}.h5",
            run_id=uuid.uuid4().hex,
            procedure=procedure,
            sample=f"S{rng.randrange(5)}",
            pixel=str(rng.randrange(1, 5)),
            station=station,
            status=rng.choice(STATUSES),
            started=DAY0 + timedelta(days=rng.randrange(30), minutes=rng.randrange(600)),
            figures={
                name: round(rng.uniform(low, high), 3)
                for name, (low, high) in FIGURES[procedure].items()
            },
        )
        shutil.copyfile(templates[procedure], truth.path)
        _restamp(truth.path, truth)
        truths.append(truth)
    return truths
