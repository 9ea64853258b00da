"""What a run's progress line says besides its percentage: ETA and the live figure.

Shared by the console (:class:`perovlab_daq.cli._common.Progress`, fed by
:func:`perovlab_daq.runner.execute_run`) and the operator window's safety strip, so the
two say the same thing in the same words:

* :class:`EtaClock`: time left, from the time since the run started and its percentage
  (linear; a lifetime run's percentage is its share of the stress time or of the decay
  to the stop level, whichever is further);
* :class:`LiveFigures`: for a lifetime run, L/L0 now, the device time reached, and the
  device time at which L/L0 first fell below 0.95, 0.90 and 0.50 (``T95 0.8 h``);
* :class:`TrackingWorker`: the runner's storage worker, which also shows each stored row
  to a :class:`LiveFigures` (no file read, nothing added to the run's thread).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Mapping
from typing import Any

from perovlab_daq.storage.worker import DaqWorker

log = logging.getLogger(__name__)

#: L/L0 levels whose first crossing a lifetime run reports (level, name).
LIFETIME_LEVELS = ((0.95, "T95"), (0.90, "T90"), (0.50, "T50"))


def format_duration(seconds: float) -> str:
    """Format a duration for a progress line: ``0:04:05``, ``2 d 03:00:00``, ``?``."""
    if not math.isfinite(seconds) or seconds < 0:
        return "?"
    whole = int(round(seconds))
    days, rest = divmod(whole, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    clock = f"{hours:d}:{minutes:02d}:{secs:02d}"
    return f"{days} d {clock}" if days else clock


def format_hours(hours: float) -> str:
    """Format a device time in hours (``0.82 h``, ``45 min``, ``?``)."""
    if not math.isfinite(hours):
        return "?"
    if hours < 1:
        return f"{hours * 60:.3g} min"
    return f"{hours:.3g} h"


class EtaClock:
    """Time left of a run from its percentage (started when created)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self.started = clock()

    def remaining_s(self, percent: float) -> float:
        """Return the estimated seconds left (NaN before any progress)."""
        if not math.isfinite(percent) or percent <= 0:
            return math.nan
        if percent >= 100:
            return 0.0
        elapsed = self._clock() - self.started
        return elapsed * (100.0 - percent) / percent

    def text(self, percent: float) -> str:
        """Return ``ETA 0:04:05`` (``ETA ?`` before any progress)."""
        return f"ETA {format_duration(self.remaining_s(percent))}"


def lifetime_text(relative: float, device_time_h: float, crossings_h: Mapping[str, float]) -> str:
    """Return the live figure of a lifetime run: ``L/L0 0.931 at 1.2 h, T95 0.8 h``."""
    if not math.isfinite(relative):
        return "L/L0 not yet (L0 being measured)"
    parts = [f"L/L0 {relative:.3f} at {format_hours(device_time_h)}"]
    for _, name in LIFETIME_LEVELS:
        if name in crossings_h:
            parts.append(f"{name} {format_hours(crossings_h[name])}")
    return ", ".join(parts)


class LiveFigures:
    """The live figure of a run, updated row by row (lifetime: L/L0 and T_x reached)."""

    def __init__(self, procedure: str) -> None:
        self.procedure = procedure
        self.relative = math.nan
        self.device_time_h = math.nan
        self.crossings_h: dict[str, float] = {}
        self._next_level = max(level for level, _name in LIFETIME_LEVELS)

    def add_row(self, row: Mapping[str, Any]) -> None:
        """Take one stored row into account (rows of the short J-L-V sweeps are skipped)."""
        if self.procedure != "lifetime" or row.get("jlv_sweep", 0):
            return
        try:
            relative = float(row.get("relative_luminance", math.nan))
            hours = float(row.get("device_time", math.nan)) / 3600.0
        except (TypeError, ValueError):
            return
        if not math.isfinite(relative):
            return
        self.relative, self.device_time_h = relative, hours
        if relative >= self._next_level:
            return  # the usual case: no level newly crossed
        for level, name in LIFETIME_LEVELS:
            if name not in self.crossings_h and relative < level:
                self.crossings_h[name] = hours
        self._next_level = max(
            (level for level, name in LIFETIME_LEVELS if name not in self.crossings_h),
            default=-math.inf,
        )

    def text(self) -> str:
        """Return the live figure (empty for procedures that have none)."""
        if self.procedure != "lifetime":
            return ""
        return lifetime_text(self.relative, self.device_time_h, self.crossings_h)


class TrackingWorker(DaqWorker):
    """A :class:`~perovlab_daq.storage.worker.DaqWorker` that shows stored rows to ``live``."""

    def __init__(self, results: Any, live: LiveFigures, **kwargs: Any) -> None:
        super().__init__(results, **kwargs)
        self.live = live

    def emit(self, topic: str, record: Any) -> None:
        """Store the record, then update the live figure from a data row."""
        super().emit(topic, record)
        if topic == "results" and (type(record) is dict or isinstance(record, Mapping)):
            self.live.add_row(record)
        elif topic == "batch results" and isinstance(record, Mapping):
            count = min((len(v) for v in record.values()), default=0)
            for index in range(count):
                self.live.add_row({key: values[index] for key, values in record.items()})
