"""Helpers of the spectroscopy procedure tests: headless runs on the simulated bench.

:class:`RecordedRun` captures what a procedure emits and offers the part of the loaded-run
interface the analysis uses (``data``, ``frames(stream)``, ``procedure``), so
``perovlab_daq.figures`` is tested on exactly what the procedure recorded.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import numpy as np
import pandas as pd

from perovlab_daq.bench import Bench, sim_bench
from perovlab_daq.storage.results import FrameSet

log = logging.getLogger(__name__)


class RecordedRun:
    """Records of one headless run, readable like a loaded run file."""

    def __init__(self, procedure: Any) -> None:
        self.procedure = procedure
        self.rows: list[dict[str, float]] = []
        self.frame_records: dict[str, list[dict[str, Any]]] = {}
        self.events: list[dict[str, str]] = []
        self.progress: list[float] = []

    def __call__(self, topic: str, record: Any) -> None:
        if topic == "results":
            unknown = set(record) - set(self.procedure.COLUMNS)
            assert not unknown, f"columns not declared in COLUMNS: {unknown}"
            self.rows.append(dict(record))
        elif topic == "frame":
            assert set(record) >= {"stream", "wavelength", "intensity", "context"}
            self.frame_records.setdefault(record["stream"], []).append(record)
        elif topic == "event":
            self.events.append(dict(record))
        elif topic == "progress":
            self.progress.append(float(record))

    @property
    def data(self) -> pd.DataFrame:
        columns = list(self.procedure.COLUMNS)
        return pd.DataFrame([{c: row.get(c, np.nan) for c in columns} for row in self.rows])

    def frames(self, stream: str = "spectra") -> FrameSet:
        records = self.frame_records.get(stream)
        if not records:
            raise KeyError(stream)
        return FrameSet(
            wavelength=np.asarray(records[0]["wavelength"], dtype=float),
            intensity=np.array([np.asarray(r["intensity"], dtype=float) for r in records]),
            context=pd.DataFrame([r["context"] for r in records]),
            units={"intensity": records[0].get("intensity_units", "counts")},
        )


@contextlib.contextmanager
def sim_bench_open(preset: str, procedure_name: str, *, seed: int | None = None) -> Iterator[Bench]:
    """Open the simulated bench with a preset, for a procedure (its ageing acceleration)."""
    with Bench(sim_bench(preset, seed=seed), procedure=procedure_name) as bench:
        yield bench


def run_procedure(
    cls: type,
    bench: Bench,
    parameters: Mapping[str, Any] | None = None,
    *,
    should_stop: Callable[[], bool] | None = None,
) -> RecordedRun:
    """Run startup/execute/shutdown headless; return the records (re-raises execute errors)."""
    values = cls.checked_parameters(dict(parameters or {}))
    procedure = cls(**values)
    procedure.bench = bench
    run = RecordedRun(procedure)
    procedure.emit = run
    procedure.should_stop = should_stop or (lambda: False)
    try:
        procedure.startup()
        procedure.execute()
    finally:
        procedure.shutdown()
    return run


def laser_emitting(bench: Bench) -> bool:
    """Return whether the simulated laser emits, asked through its driver and the world."""
    driver_says = bool(bench["laser"].emission_enabled)
    return driver_says or bench.world.laser_output_w() > 0
