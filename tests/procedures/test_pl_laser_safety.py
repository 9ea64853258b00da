"""Laser safety of the PL procedures: emission is off after an abort or an exception.

The state is asked of the simulated laser through its driver (``SOUR:AM:STAT?``) and of the
world (actual output), after ``execute`` returns or raises and BEFORE ``shutdown`` runs, so
the procedures' own ``finally`` blocks are what is tested; then again after shutdown.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import pytest
from perovlab_daq.procedures.pl_fluence import PlFluenceProcedure
from perovlab_daq.procedures.pl_spectrum import PlSpectrumProcedure
from perovlab_daq.procedures.pl_stability import PlStabilityProcedure
from perovlab_daq.procedures.plqy import PlqyProcedure

from perovlab_daq.bench import Bench, sim_bench
from perovlab_daq.figures import plqy as plqy_figures

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pl_helpers import RecordedRun, laser_emitting, sim_bench_open  # noqa: E402

CASES = [
    (PlSpectrumProcedure, {"repeats": 3}),
    (PlFluenceProcedure, {"power_min": 1e-3, "power_max": 0.05, "steps": 4}),
    (PlStabilityProcedure, {"duration": 5.0, "interval": 0.2}),
    (PlqyProcedure, {"max_integration_time": 0.5}),
]


def make(cls: type, bench: Bench, parameters: dict[str, Any]) -> tuple[Any, RecordedRun]:
    procedure = cls(**cls.checked_parameters(parameters))
    procedure.bench = bench
    run = RecordedRun(procedure)
    procedure.emit = run
    procedure.should_stop = lambda: False
    return procedure, run


class Boom(RuntimeError):
    """The injected failure."""


@pytest.mark.parametrize(("cls", "parameters"), CASES, ids=[c.NAME for c, _ in CASES])
def test_exception_while_emitting_leaves_emission_off(
    cls: type, parameters: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    with sim_bench_open("nc-hexane", cls.NAME) as bench:
        spectrometer = bench["spectrometer"]
        original = spectrometer.intensities

        def failing(*args: Any, **kwargs: Any) -> Any:
            if bench.world.laser_output_w() > 0:
                raise Boom("spectrometer died while the laser was on")
            return original(*args, **kwargs)

        monkeypatch.setattr(spectrometer, "intensities", failing)
        procedure, _run = make(cls, bench, parameters)
        procedure.startup()
        with pytest.raises(Boom):
            procedure.execute()
        assert bench["laser"].emission_enabled is False
        assert bench.world.laser_output_w() == 0.0
        procedure.shutdown()
        assert not laser_emitting(bench)


@pytest.mark.parametrize(("cls", "parameters"), CASES, ids=[c.NAME for c, _ in CASES])
def test_abort_leaves_emission_off(cls: type, parameters: dict[str, Any]) -> None:
    with sim_bench_open("nc-hexane", cls.NAME) as bench:
        procedure, run = make(cls, bench, parameters)
        procedure.startup()
        # Abort once the first spectrum is recorded (pl-stability: mid-exposure, laser on).
        procedure.should_stop = lambda: len(run.rows) >= 1
        procedure.execute()
        assert 1 <= len(run.rows) < 3
        assert bench["laser"].emission_enabled is False
        assert bench.world.laser_output_w() == 0.0
        procedure.shutdown()
        assert not laser_emitting(bench)


def test_open_interlock_stops_before_emission() -> None:
    with sim_bench_open("nc-hexane", "pl-spectrum") as bench:
        bench.world.set_interlock(False)
        procedure, _run = make(PlSpectrumProcedure, bench, {})
        with pytest.raises(RuntimeError, match="interlock"):
            procedure.startup()
        procedure.shutdown()
        assert bench["laser"].emission_enabled is False


def test_plqy_headless_without_stage_fails_clearly_before_any_light() -> None:
    roles = ["laser", "spectrometer", "power_meter", "filter_wheel"]
    with Bench(sim_bench("nc-hexane"), procedure="plqy", roles=roles) as bench:
        procedure, _run = make(PlqyProcedure, bench, {})
        with pytest.raises(RuntimeError, match="sample_stage .* operator prompt"):
            procedure.startup()
        assert bench["laser"].emission_enabled is False


def test_plqy_with_operator_prompt_instead_of_stage() -> None:
    roles = ["laser", "spectrometer", "power_meter", "filter_wheel"]
    with Bench(sim_bench("nc-acetone"), procedure="plqy", roles=roles) as bench:
        procedure, run = make(PlqyProcedure, bench, {"max_integration_time": 1.0})
        asked: list[str] = []

        def operator(message: str) -> bool:
            # The "operator" moves the sample (here: the simulated world) and confirms.
            asked.append(message)
            bench.world.set_sample_position(message.split("configuration ")[1][0])
            return True

        procedure.prompt = operator
        procedure.startup()
        procedure.execute()
        procedure.shutdown()
        cycles = PlqyProcedure.repeats.default  # the whole A-B-C cycle is repeated
        assert [m.split("configuration ")[1][0] for m in asked] == ["A", "B", "C"] * cycles
        figures = plqy_figures.key_figures(run)
        assert figures["plqy_pct"] == pytest.approx(32.1, abs=3.0)
        assert not laser_emitting(bench)


def test_plqy_operator_cancel_ends_with_emission_off() -> None:
    roles = ["laser", "spectrometer", "power_meter", "filter_wheel"]
    with Bench(sim_bench("nc-acetone"), procedure="plqy", roles=roles) as bench:
        procedure, run = make(PlqyProcedure, bench, {"max_integration_time": 0.2})
        answers = iter([True, False])
        procedure.prompt = lambda _message: next(answers)
        procedure.startup()
        started = time.monotonic()
        procedure.execute()
        assert time.monotonic() - started < 10
        assert len(run.rows) == 1
        assert any(e["kind"] == "abort" for e in run.events)
        assert bench["laser"].emission_enabled is False
        procedure.shutdown()
