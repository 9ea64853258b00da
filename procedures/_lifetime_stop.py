"""The lifetime run's live stop: the analysis's own estimator fed while the run logs.

:class:`LiveStop` wraps :class:`perovlab_daq.analysis.DecayTracker` (one estimator for the
live stop and the end-of-run analysis, docs/procedures/lifetime.md "Estimator"): it feeds
it the stress readings (in batches far from the stop level, one by one near it), gives the
current L0 for the live L/L0 column, and says when the run has fallen to the stop fraction
and logged the few samples after it that let the analysis count the crossing as measured.
"""

from __future__ import annotations

import math
import time

import numpy as np

from perovlab_daq.analysis import DecayTracker

#: Samples logged after the live stop fired: the analysis counts a crossing as measured
#: when >= 3 samples follow it; more would carry the run past the target ratio.
STOP_TAIL_SAMPLES = 3
#: Far above the stop level, samples reach the estimator in batches this often (wall s):
#: on an accelerated simulated bench a refit every few samples costs device minutes.
TRACK_BATCH_WALL_S = 1.0
#: ...and one by one once L/L0 is within this margin of the stop fraction.
TRACK_MARGIN = 0.25


class LiveStop:
    """Feed the lifetime estimator live and decide the stop.

    Parameters
    ----------
    stop_fraction : float
        Stop at or below this L/L0.
    history : tuple of arrays, optional
        Device time (s) and luminance of earlier rows (a resumed run), fed first.
    """

    def __init__(
        self, stop_fraction: float, history: tuple[np.ndarray, np.ndarray] | None = None
    ) -> None:
        self.stop_fraction = float(stop_fraction)
        self.tracker = DecayTracker(switch_on_s=0.0)  # time zero = switch-on (device 0)
        if history is not None and history[0].size:
            self.tracker.add(*history)
        self._buffer: list[tuple[float, float]] = []
        self._next_flush = time.monotonic() + TRACK_BATCH_WALL_S
        self.reason = ""
        self._tail = 0

    @property
    def l0(self) -> float:
        """The estimator's current L0 (cd/m^2), NaN before its first fit."""
        l0 = self.tracker.l0
        return l0 if math.isfinite(l0) and l0 > 0 else math.nan

    def add(self, device_time_s: float, luminance: float, l0: float) -> None:
        """Add one stress reading; ``l0`` is the live L0 in use (for the batching margin)."""
        if not math.isfinite(luminance):
            return
        self._buffer.append((device_time_s, luminance))
        near = luminance < (self.stop_fraction + TRACK_MARGIN) * l0
        if near or time.monotonic() >= self._next_flush:
            times, values = np.array(self._buffer).T
            self.tracker.add(times, values)
            self._buffer.clear()
            self._next_flush = time.monotonic() + TRACK_BATCH_WALL_S

    def done(self, device_time_s: float) -> bool:
        """Return True when the run should end (fallen to the fraction, tail logged)."""
        if not self.reason and self.tracker.fallen_to(self.stop_fraction):
            self.reason = (
                f"L/L0 fell to {self.tracker.relative():.4f} (stop below "
                f"{self.stop_fraction:g}; L0 {self.tracker.l0:.6g} cd/m^2 from the decay "
                f"fit) at device time {device_time_s / 3600.0:.6g} h"
            )
        if self.reason:
            self._tail += 1
        return self._tail > STOP_TAIL_SAMPLES
