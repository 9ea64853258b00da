"""The lifetime procedure's sampling schedule and where an interrupted run stopped.

Kept apart from :mod:`procedures.lifetime` (the acquisition) so that the continuation
code (:mod:`perovlab_daq.resume`) can read a run's resume state without the procedure
class, and the procedure reads it without importing anything above the procedures.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import math
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from perovlab_daq.procedures.base import ParameterError

log = logging.getLogger(__name__)

#: Drive modes of the lifetime procedure.
DRIVE_MODES: tuple[str, ...] = ("current_density", "current", "voltage")
#: Samples whose median is the provisional live L0 until the decay fit gives one.
L0_SAMPLES = 5
#: Event recording time zero (stress switched on), wall and device time.
EVENT_SWITCH_ON = "switch_on"
#: Consecutive in-compliance readings that end a constant-current run.
COMPLIANCE_STOP_SAMPLES = 5

S_PER_H = 3600.0
#: Most periodic J-L-V sweeps in ``jlv_times``.
MAX_JLV_SWEEPS = 100
#: Event kinds written by the procedure that other code relies on: the simulated
#: device's saved ageing state (read back on resume), stop, schedule gap, resume.
EVENT_DEVICE_STATE = "device_state"
EVENT_STOP = "stop"
EVENT_GAP = "gap"
EVENT_RESUME = "resume"
#: Event messages are stored in at most 1024 bytes (docs/hdf5-layout.md).
_EVENT_MESSAGE_LIMIT = 1000


# --------------------------------------------------------------------------- schedule
def median_of_few(values: list[float]) -> float:
    """Return the median of a short list (numpy's median costs ~10 us per call on 5 values)."""
    ordered = sorted(values)
    middle = len(ordered) // 2
    if len(ordered) % 2:
        return float(ordered[middle])
    return 0.5 * (ordered[middle - 1] + ordered[middle])


def sampling_interval_s(
    stress_time_s: float, first_interval_s: float, interval_s: float, points_per_decade: int
) -> float:
    """Return the wait (s) before the next luminance sample at a given stress time.

    Log-spaced early, linear later: successive sample times grow by the factor
    10^(1/points_per_decade), i.e. the wait is stress_time x (10^(1/ppd) - 1), never
    shorter than ``first_interval_s`` nor longer than ``interval_s``. The rule depends on
    the stress time only, so a resumed run continues the same schedule.

    Parameters
    ----------
    stress_time_s : float
        Wall time under stress so far (s), >= 0.
    first_interval_s : float
        Shortest wait (s), used at the start.
    interval_s : float
        Longest wait (s), the linear sampling interval of the long tail.
    points_per_decade : int
        Samples per decade of time in the log-spaced part, >= 1.

    Returns
    -------
    float
        The wait in s.

    Examples
    --------
    >>> round(sampling_interval_s(0.0, 1.0, 60.0, 20), 3)
    1.0
    >>> round(sampling_interval_s(100.0, 1.0, 60.0, 20), 3)
    12.202
    >>> sampling_interval_s(1e5, 1.0, 60.0, 20)
    60.0
    """
    return SamplingSchedule(first_interval_s, interval_s, points_per_decade)(stress_time_s)


@dataclass(frozen=True)
class SamplingSchedule:
    """:func:`sampling_interval_s` with its parameters fixed (asked at every reading).

    Parameters
    ----------
    first_interval_s, interval_s : float
        Shortest and longest wait (s).
    points_per_decade : int
        Samples per decade of time in the log-spaced part.
    """

    first_interval_s: float
    interval_s: float
    points_per_decade: int
    growth: float = field(init=False)

    def __post_init__(self) -> None:
        growth = 10.0 ** (1.0 / max(1, int(self.points_per_decade))) - 1.0
        object.__setattr__(self, "growth", growth)

    def __call__(self, stress_time_s: float) -> float:
        """Return the wait (s) before the next sample at ``stress_time_s`` (s under stress)."""
        wait = max(0.0, stress_time_s) * self.growth
        return float(min(self.interval_s, max(self.first_interval_s, wait)))


def parse_time_list(text: str, name: str = "jlv_times") -> tuple[float, ...]:
    """Parse a list of times in s such as ``"600, 3600 7200s"`` (commas, semicolons, spaces).

    Parameters
    ----------
    text : str
        The list; empty for none. Items are plain numbers, optionally followed by ``s``.
    name : str
        Parameter name for the error message.

    Returns
    -------
    tuple of float
        The times (s), sorted.

    Raises
    ------
    ParameterError
        Naming ``name`` for an item that is not a number >= 0, or too many items.
    """
    items = [item for item in re.split(r"[,;\s]+", str(text or "").strip()) if item]
    values = []
    for item in items:
        token = item[:-1] if item[-1:] in {"s", "S"} else item
        try:
            value = float(token)
        except ValueError:
            raise ParameterError(
                name, text, "times in s separated by commas, e.g. 600, 3600"
            ) from None
        if not math.isfinite(value) or value < 0:
            raise ParameterError(name, text, "times in s, each a finite number >= 0")
        values.append(value)
    if len(values) > MAX_JLV_SWEEPS:
        raise ParameterError(name, text, f"at most {MAX_JLV_SWEEPS} times")
    return tuple(sorted(values))


def check_schedule(values: Mapping[str, Any]) -> tuple[float, ...]:
    """Check the sampling intervals and J-L-V times against each other and the duration.

    The checks are in the order a bad value shows up first (``first_interval``,
    ``interval``, ``jlv_times``); each value on its own is already in range.

    Returns
    -------
    tuple of float
        The parsed ``jlv_times`` (s).

    Raises
    ------
    ParameterError
        Naming the parameter to change.
    """
    first = float(values.get("first_interval", 1.0))
    interval = float(values.get("interval", 60.0))
    if first > interval:
        raise ParameterError(
            "first_interval", first, f"at most the linear interval ({interval:g} s)"
        )
    maximum = float(values.get("max_duration", 604800.0))
    if interval > maximum:
        raise ParameterError("interval", interval, f"at most max_duration ({maximum:g} s)")
    times = parse_time_list(values.get("jlv_times", "") or "")
    if any(t >= maximum for t in times):
        raise ParameterError(
            "jlv_times", values.get("jlv_times"), f"times below max_duration ({maximum:g} s)"
        )
    return times


# --------------------------------------------------------------------------- resume
@dataclass
class ResumeState:
    """Where an interrupted run stopped: what its continuation needs to carry on.

    Built by :func:`read_resume_state` from the run file.

    Attributes
    ----------
    segment : int
        Index of the new segment (1 for the first resume).
    time_offset_s : float
        Wall time (s since the original run started) at which the new segment starts.
    device_time_s : float
        Device time (s) at which the stress resumes.
    l0_cd_m2 : float
        Initial luminance of the original run (relative luminance stays against it).
    last_time_s : float
        Wall time of the last row kept in the file.
    last_device_time_s : float
        Device time of the last row kept in the file.
    world_state : dict or None
        Saved ``World.state_dict()`` of the simulated device (None on real hardware).
    jlv_done : int
        Periodic J-L-V sweeps already done.
    spectra_done : int
        EL spectra already taken.
    notes : list of str
        Remarks for the resume event.
    samples : tuple of arrays or None
        Device time (s) and luminance of the stress rows so far (fed to the live
        estimator so the continuation stops on the same L0).
    """

    segment: int
    time_offset_s: float
    device_time_s: float
    l0_cd_m2: float
    last_time_s: float
    last_device_time_s: float
    world_state: dict[str, Any] | None = None
    jlv_done: int = 0
    spectra_done: int = 0
    notes: list[str] = field(default_factory=list)
    #: (device time s, luminance) of the stress rows so far: the live estimator's history.
    samples: tuple[np.ndarray, np.ndarray] | None = None

    def gap_message(self, segment: int, device_offset_s: float) -> str:
        """Return the text of the ``gap`` event that opens the resumed segment."""
        gap_s = max(0.0, self.time_offset_s - self.last_time_s)
        return (
            f"resumed (segment {segment}) after {gap_s:.4g} s without data, from wall "
            f"time {self.last_time_s:.6g} s; device time carries on at "
            f"{device_offset_s / S_PER_H:.6g} h (last row "
            f"{self.last_device_time_s / S_PER_H:.6g} h); " + "; ".join(self.notes)
        )


# --------------------------------------------------------------------------- reading the file
class ResumeError(ValueError):
    """A run file cannot be resumed (wrong status, procedure, bench); nothing was touched."""


def epoch_of(iso: str) -> float:
    try:
        return _dt.datetime.fromisoformat(str(iso)).timestamp()
    except ValueError:
        return math.nan


def read_text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def read_resume_state(path: str | Path) -> Any:
    """Read where an interrupted lifetime run stopped (for its continuation).

    On the simulated bench the state comes from the last ``device_state`` event (the
    simulated device's ageing state and the device time it was saved at); on real
    hardware the device time carries on from the last row.

    Returns
    -------
    ResumeState

    Raises
    ------
    ResumeError
        If the file holds no usable stress row.
    """
    import h5py

    file_path = Path(path)
    with h5py.File(file_path, "r", locking=False) as file:
        entry = file["entry"]
        start_epoch = epoch_of(read_text(entry.attrs.get("start_time", "")))
        data = entry["data"]
        columns = {name: np.asarray(ds[()], dtype=float) for name, ds in data.items()}
        kinds = [read_text(v) for v in entry["events/kind"][()]] if "events" in entry else []
        messages = [read_text(v) for v in entry["events/message"][()]] if "events" in entry else []
        spectra = len(entry["spectra/intensity"]) if "spectra" in entry else 0
        # Check sweeps are stored apart from the stress rows (docs/hdf5-layout.md).
        checked = entry.get("check_sweeps/jlv_sweep")
        swept = np.asarray(checked[()], dtype=float) if checked is not None else np.zeros(0)
    luminance = columns.get("luminance")
    relative = columns.get("relative_luminance")
    device = columns.get("device_time")
    wall = columns.get("time")
    if luminance is None or relative is None or device is None or wall is None:
        raise ResumeError(f"{file_path}: not a lifetime run file (columns missing)")
    sweep = columns.get("jlv_sweep", np.zeros(luminance.size))
    segment = columns.get("segment", np.zeros(luminance.size))
    stress = np.isfinite(luminance) & np.isfinite(relative) & (relative > 0) & ~(sweep > 0)
    if not stress.any():
        raise ResumeError(f"{file_path}: no stress row with a luminance: nothing to resume from")
    l0 = float(np.median(luminance[stress] / relative[stress]))
    last = int(np.flatnonzero(np.isfinite(device))[-1])
    checkpoint = None
    for kind, message in zip(reversed(kinds), reversed(messages), strict=True):
        if kind == EVENT_DEVICE_STATE:
            try:
                checkpoint = json.loads(message)
            except json.JSONDecodeError:
                continue
            break
    now_offset = time.time() - start_epoch if math.isfinite(start_epoch) else float(wall[last])
    state = ResumeState(
        segment=int(np.nanmax(segment)) + 1 if segment.size else 1,
        time_offset_s=max(now_offset, float(wall[last])),
        device_time_s=float(device[last]),
        l0_cd_m2=l0,
        last_time_s=float(wall[last]),
        last_device_time_s=float(device[last]),
        jlv_done=_sweeps_done(np.concatenate([sweep, swept])),
        spectra_done=int(spectra),
    )
    order = np.argsort(device[stress], kind="stable")
    state.samples = (device[stress][order], luminance[stress][order])
    if checkpoint is not None and isinstance(checkpoint.get("world"), Mapping):
        state.world_state = dict(checkpoint["world"])
        state.device_time_s = float(checkpoint.get("device_time_s", state.device_time_s))
        state.notes.append(
            f"device state saved at device time {state.device_time_s / S_PER_H:.4g} h"
        )
    return state


# --------------------------------------------------------------------------- device state
def device_state_message(
    time_s: float, device_time_s: float, segment: int, state: Mapping[str, Any]
) -> str:
    """Return the message of a ``device_state`` event (read back by :func:`read_resume_state`).

    Parameters
    ----------
    time_s
        Wall time since the run started (s).
    device_time_s
        Device time at which the state was saved (s).
    segment
        The run's segment.
    state
        The simulated device's ``World.state_dict()``; its random-generator state is
        dropped when the message would not fit an event (1024 bytes).
    """
    state = dict(state)
    record = {
        "time_s": round(time_s, 6),
        "device_time_s": device_time_s,
        "segment": segment,
        "world": state,
    }
    text = json.dumps(record, separators=(",", ":"))
    if len(text) > _EVENT_MESSAGE_LIMIT:
        record["world"] = {k: v for k, v in state.items() if k != "rng_state"}
        text = json.dumps(record, separators=(",", ":"))
    return text


def restore_world(bench: Any, resume: ResumeState) -> tuple[str, str]:
    """Load a resumed run's saved device state into a simulated bench.

    Returns
    -------
    tuple
        (level, message) of the ``resume`` event that says what was done; a bench that
        is not simulated ignores the state (a warning).
    """
    world = getattr(bench, "world", None)
    if world is None:
        return (
            "warning",
            "the file holds a simulated device state but this bench is not simulated: ignored",
        )
    world.load_state_dict(dict(resume.world_state or {}))
    return (
        "info",
        "simulated device restored from its last saved ageing state "
        f"(device time {resume.device_time_s / S_PER_H:.4g} h)",
    )


def _sweeps_done(sweep: np.ndarray) -> int:
    """Return the number of the last check sweep stored (0 for none)."""
    finite = sweep[np.isfinite(sweep)]
    return int(finite.max()) if finite.size else 0


def drive_text(procedure: Any) -> str:
    """Describe a lifetime procedure's drive and compliance for events and the log."""
    if procedure.drive_mode == "current_density":
        return (
            f"{procedure.current_density:g} mA/cm^2 ({procedure.drive_level:.4g} A on "
            f"{procedure.area_cm2:g} cm^2), compliance {procedure.compliance_voltage:g} V"
        )
    if procedure.drive_mode == "current":
        return f"{procedure.current:g} A, compliance {procedure.compliance_voltage:g} V"
    return f"{procedure.voltage:g} V, compliance {procedure.compliance_current:g} A"
