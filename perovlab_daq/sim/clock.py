"""Elapsed time on an injectable monotonic clock, for the simulated bench's timed behaviour.

The simulated instruments stamp readings with the seconds since the library started or
was reset, and fault injectors open their outage windows at seconds since they started;
both measure with `Stopwatch`, so a test can drive either with a fake clock.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

log = logging.getLogger(__name__)


class Stopwatch:
    """Mixin: seconds since the last `start_stopwatch` on the instance's ``_clock``.

    The class using it sets ``self._clock`` (a monotonic clock in s) before starting it.
    """

    _clock: Callable[[], float]
    _t0: float

    def start_stopwatch(self) -> None:
        """Mark now as time zero of `elapsed_s`."""
        self._t0 = self._clock()

    def elapsed_s(self) -> float:
        """Return the seconds since the stopwatch was last started (creation, restart, reset).

        Returns
        -------
        float
            Elapsed time in s.
        """
        return self._clock() - self._t0
