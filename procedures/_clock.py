"""Device time of a run: the clock slow processes (ageing, bleaching, segregation) follow.

On real hardware a device ages in wall time. On the simulated bench, ageing,
photobleaching and halide segregation run ``ageing_acceleration`` times faster than the
wall clock (architecture section 1; the factor is in every run's metadata,
``Bench.metadata()["ageing_acceleration"]``, 1 on real hardware). Schedules of such
processes (spectrum intervals, exposure durations, stress times) therefore live in device
time, ``device_time = offset + wall time x ageing_acceleration``, and files record both.

:class:`DeviceClock` is that one mechanism; procedures read the factor with
:func:`ageing_acceleration` and never compute device time another way.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)


def ageing_acceleration(bench: Any) -> float:
    """Return the bench's device seconds per wall second (1 when it does not say).

    Parameters
    ----------
    bench
        The run's bench; its ``metadata()`` (when it has one) holds
        ``ageing_acceleration``.
    """
    meta = bench.metadata() if hasattr(bench, "metadata") else {}
    factor = float(meta.get("ageing_acceleration", 1.0) or 1.0)
    if not (math.isfinite(factor) and factor > 0):
        raise ValueError(f"ageing_acceleration must be a finite number > 0; got {factor!r}")
    return factor


@dataclass
class DeviceClock:
    """Wall and device time since a start, with an optional device-time offset.

    Attributes
    ----------
    acceleration : float
        Device seconds per wall second (:func:`ageing_acceleration`).
    offset_s : float
        Device time (s) at the start (e.g. a resumed run's elapsed device time).
    wall : callable
        Monotonic wall clock (s); ``time.monotonic`` unless a test injects one.
    """

    acceleration: float = 1.0
    offset_s: float = 0.0
    wall: Callable[[], float] = time.monotonic
    start_wall_s: float = field(default=math.nan)
    paused_wall_s: float = 0.0

    def __post_init__(self) -> None:
        if not (math.isfinite(self.acceleration) and self.acceleration > 0):
            raise ValueError(f"acceleration must be > 0; got {self.acceleration!r}")
        if math.isnan(self.start_wall_s):
            self.start_wall_s = self.wall()

    @classmethod
    def for_bench(cls, bench: Any, offset_s: float = 0.0) -> DeviceClock:
        """Start a clock now with the bench's ageing acceleration."""
        return cls(acceleration=ageing_acceleration(bench), offset_s=offset_s)

    def wall_s(self) -> float:
        """Wall seconds since the start."""
        return self.wall() - self.start_wall_s

    def device_s(self) -> float:
        """Device seconds since the start, plus the offset (pauses excluded)."""
        # wall_s() written out: read at every sample of a lifetime run.
        wall_s = self.wall() - self.start_wall_s
        return self.offset_s + (wall_s - self.paused_wall_s) * self.acceleration

    def pause(self, wall_s: float) -> None:
        """Exclude ``wall_s`` wall seconds (stress off: the device did not age) from device time."""
        self.paused_wall_s += max(0.0, float(wall_s))

    def wall_until(self, device_s: float) -> float:
        """Wall seconds to wait until the device clock reads ``device_s`` (>= 0)."""
        return max(0.0, (device_s - self.device_s()) / self.acceleration)
