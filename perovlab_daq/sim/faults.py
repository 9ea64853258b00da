"""Fault injection for the simulated bench: what can go wrong on one VISA resource, and when.

A :class:`FaultSpec` is the declarative part (read from the bench file ``faults:`` section,
one per role/resource); a :class:`FaultInjector` is its running state (seeded RNG, clock)
that :class:`perovlab_daq.sim.visalib.SimBenchLibrary` consults on every read and write.
Both are pure Python so they can be unit-tested without PyVISA.
"""

from __future__ import annotations

import logging
import random
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from perovlab_daq.sim.clock import Stopwatch

log = logging.getLogger(__name__)

#: Bytes a garbled reply may be corrupted with (never the termination characters).
_GARBAGE = b"#@~?!$%&*^"


@dataclass(frozen=True)
class FaultSpec:
    """Faults to inject on one simulated resource.

    Parameters
    ----------
    timeout_rate : float
        Probability (0 to 1) that a reply is lost and the read raises VI_ERROR_TMO.
    garble_rate : float
        Probability (0 to 1) that a reply has some of its bytes corrupted.
    disconnect_after_s : float or None
        Seconds after the library starts (or is reset) at which the device drops off
        the bus; None means never.
    disconnect_for_s : float or None
        Length of the outage in s; None means the device never comes back.
    error_after_write : mapping of str to str
        Command prefix -> SCPI error entry (e.g. ``'-222,"Data out of range"'``) pushed
        onto the device's error queue after every write starting with that prefix.
    seed : int
        Seed of this resource's random generator (reproducible fault sequences).
    """

    timeout_rate: float = 0.0
    garble_rate: float = 0.0
    disconnect_after_s: float | None = None
    disconnect_for_s: float | None = None
    error_after_write: Mapping[str, str] = field(default_factory=dict)
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("timeout_rate", "garble_rate"):
            value = getattr(self, name)
            if not 0.0 <= float(value) <= 1.0:
                raise ValueError(f"{name} must be within [0, 1], got {value!r}")
        if self.disconnect_after_s is not None and self.disconnect_after_s < 0:
            raise ValueError("disconnect_after_s must be >= 0 or None")
        if self.disconnect_for_s is not None and self.disconnect_for_s < 0:
            raise ValueError("disconnect_for_s must be >= 0 or None")
        if self.disconnect_for_s is not None and self.disconnect_after_s is None:
            raise ValueError("disconnect_for_s needs disconnect_after_s")
        for prefix, message in dict(self.error_after_write).items():
            if not isinstance(prefix, str) or not prefix or not isinstance(message, str):
                raise ValueError(f"error_after_write entries must be str -> str, got {prefix!r}")
        object.__setattr__(self, "error_after_write", dict(self.error_after_write))

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any] | None) -> FaultSpec:
        """Build a spec from a bench-file mapping, rejecting unknown keys.

        Parameters
        ----------
        data : mapping or None
            Keys among the field names; None gives a spec with no faults.

        Returns
        -------
        FaultSpec
            The validated spec.
        """
        data = dict(data or {})
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown fault option(s) {sorted(unknown)}; known: {sorted(known)}")
        return cls(**data)

    @property
    def active(self) -> bool:
        """Get whether this spec injects anything at all (bool)."""
        return bool(
            self.timeout_rate
            or self.garble_rate
            or self.disconnect_after_s is not None
            or self.error_after_write
        )


class FaultInjector(Stopwatch):
    """Running state of a :class:`FaultSpec`: seeded decisions and the outage window.

    `elapsed_s` counts from construction or the last `restart`.

    Parameters
    ----------
    spec : FaultSpec
        What to inject.
    clock : callable
        Monotonic clock in s; the outage window is measured from construction/restart.
    """

    def __init__(self, spec: FaultSpec, clock: Callable[[], float] = time.monotonic):
        self.spec = spec
        self._clock = clock
        self.restart()

    def restart(self) -> None:
        """Reset the random generator, the start of the outage clock and the counts."""
        self._rng = random.Random(self.spec.seed)
        self.start_stopwatch()
        #: Faults injected since the last restart, by kind: ``timeout`` (reply lost),
        #: ``garble``, ``disconnected_read``, ``disconnected_write``, ``error_queued``.
        self.counts: Counter[str] = Counter()

    def count(self, kind: str, n: int = 1) -> None:
        """Record that ``n`` faults of ``kind`` were injected (see :attr:`counts`)."""
        self.counts[kind] += n

    def disconnected(self) -> bool:
        """Return whether the device is off the bus right now.

        Returns
        -------
        bool
            True inside the outage window.
        """
        after = self.spec.disconnect_after_s
        if after is None:
            return False
        elapsed = self.elapsed_s()
        if elapsed < after:
            return False
        duration = self.spec.disconnect_for_s
        return duration is None or elapsed < after + duration

    def lose_reply(self) -> bool:
        """Draw whether the next reply is lost (a timeout).

        Returns
        -------
        bool
            True with probability ``timeout_rate``.
        """
        lost = self.spec.timeout_rate > 0 and self._rng.random() < self.spec.timeout_rate
        if lost:
            self.counts["timeout"] += 1
        return lost

    def garble(self, message: bytes, keep_suffix: bytes = b"") -> bytes:
        """Corrupt a reply with probability ``garble_rate``, keeping its termination.

        Parameters
        ----------
        message : bytes
            The reply as the device would send it.
        keep_suffix : bytes
            Termination to leave intact so the read still completes.

        Returns
        -------
        bytes
            The reply, possibly with one to three bytes replaced by garbage.
        """
        if not (self.spec.garble_rate > 0 and self._rng.random() < self.spec.garble_rate):
            return message
        self.counts["garble"] += 1
        body_len = (
            len(message) - len(keep_suffix) if message.endswith(keep_suffix) else len(message)
        )
        if body_len <= 0:
            return _GARBAGE[:1] + message
        data = bytearray(message)
        for _ in range(self._rng.randint(1, min(3, body_len))):
            data[self._rng.randrange(body_len)] = self._rng.choice(_GARBAGE)
        return bytes(data)

    def errors_after_write(self, command: str) -> list[str]:
        """Return the SCPI error entries a write of ``command`` should queue.

        Parameters
        ----------
        command : str
            The command as written (without termination).

        Returns
        -------
        list of str
            One entry per matching prefix.
        """
        stripped = command.strip()
        return [
            msg
            for prefix, msg in self.spec.error_after_write.items()
            if stripped.startswith(prefix)
        ]
