"""A lifetime rack: many channels ageing in parallel in one process, each its own run.

A bench file's ``channels:`` (``docs/rack.md``) gives each channel its own instruments
(source meter, photodetector, optionally a thermometer). :func:`run_parallel` starts one
thread per channel; each thread opens its channel's :class:`ChannelBench` and runs its
plan through :func:`perovlab_daq.runner.execute_run`, so every channel has the guarantees
of a single run (own file, journal and durability, safe state on every ending, resume).
A channel's fault or stop criterion ends that channel only: the others go on.

:class:`LiveChannel` is the live state of one channel (state, drive, L/L0 against device
time, temperature, thresholds reached, time to the next T_x), fed from the worker thread
through ``execute_run(on_record=...)`` and read by the rack view
(:mod:`perovlab_daq.gui.rack`) and by the alerts (:mod:`perovlab_daq.alerts`). No Qt.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from perovlab_daq.alerts import Alert, Notifier
from perovlab_daq.bench import Bench, BenchError, SimConfig
from perovlab_daq.runner import RunOutcome, RunPlan, execute_run

log = logging.getLogger(__name__)

#: Thresholds a tile shows the time to (percent of L0), highest first.
DISPLAY_THRESHOLDS: tuple[float, ...] = (95.0, 90.0, 80.0, 70.0, 50.0)
#: Points kept per channel for the live curve (older ones thinned, never the latest).
LIVE_POINTS = 2000
#: Rows of the running median that decides a threshold is crossed (noise, brief dips).
CROSSING_ROWS = 5


# --------------------------------------------------------------------------- bench
class ChannelBench(Bench):
    """The open instruments of one channel (``BenchConfig.channel_config``).

    On a simulated bench the channel is its own device: its own :class:`World` (its own
    seed and device spread, :func:`perovlab_daq.sim.substrate.channel_device_preset`) and
    its own simulated VISA library serving exactly the resources the bench file gives the
    channel, so channel 2's source meter is another instrument than channel 3's.
    """

    def _build_simulator(self) -> None:
        from perovlab_daq.sim.presets import get_preset, with_ageing
        from perovlab_daq.sim.substrate import channel_device_preset
        from perovlab_daq.sim.visalib import SimBenchLibrary
        from perovlab_daq.sim.world import World

        sim = self.config.sim or SimConfig()
        number = int(self.config.channel or 1)
        device, _truth = channel_device_preset(
            with_ageing(get_preset(sim.preset), sim.sample), sim.seed, number
        )
        self.world = World(
            device,
            seed=channel_seed(sim.seed, number),
            ageing_acceleration=sim.acceleration_for(self.procedure),
            setup=dict(self.config.setup),
        )
        roles = [self.config.roles[r] for r in self.role_names]
        self.visa_library = SimBenchLibrary(
            self.world,
            instruments={rc.resource: rc.driver for rc in roles},
            faults={rc.resource: {"seed": sim.seed, **rc.faults} for rc in roles if rc.faults},
        )

    def metadata(self) -> dict[str, Any]:
        """Return the bench metadata plus the channel number (``channel``)."""
        meta = super().metadata()
        meta["channel"] = self.config.channel
        return meta


def channel_seed(seed: int, channel: int) -> int:
    """Return the noise seed of a simulated channel's device (distinct per channel)."""
    return int(seed) * 1000 + int(channel)


# --------------------------------------------------------------------------- live state
def time_to_threshold_h(
    time_h: np.ndarray, relative: np.ndarray, fraction: float, window: int = 30
) -> float:
    """Estimate the device hours until L/L0 reaches ``fraction`` from the recent decay.

    A straight line through ln(L/L0) against time over the last ``window`` points is
    extended to ln(fraction). NaN when the output does not fall (or too few points).
    """
    t = np.asarray(time_h, dtype=float)[-window:]
    y = np.asarray(relative, dtype=float)[-window:]
    keep = np.isfinite(t) & np.isfinite(y) & (y > 0)
    if keep.sum() < 3 or np.ptp(t[keep]) <= 0:
        return math.nan
    slope, intercept = np.polyfit(t[keep], np.log(y[keep]), 1)
    if not slope < 0:
        return math.nan
    reach = (math.log(fraction) - intercept) / slope
    return max(0.0, float(reach - t[keep][-1]))


@dataclass
class LiveChannel:
    """Live state of one channel of a rack (thread-safe; the worker writes, the GUI reads).

    Attributes
    ----------
    channel, label
        Channel number and run label.
    thresholds
        T_x (percent) watched for alerts, highest first.
    """

    channel: str
    label: str = ""
    thresholds: tuple[float, ...] = ()
    notifier: Notifier | None = None
    state: str = "waiting"
    reason: str = ""
    file: str = ""
    drive: str = ""
    temperature_c: float = math.nan
    current_density_ma_cm2: float = math.nan
    reached_h: dict[float, float] = field(default_factory=dict)
    rows: int = 0
    version: int = 0

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._time_h: list[float] = []
        self._relative: list[float] = []
        self._temperature: list[float] = []
        self._recent: list[float] = []
        self._stride = 1
        self.stop = threading.Event()

    # -- written by the worker thread ------------------------------------------------
    def record(self, topic: str, record: Any) -> None:
        """Take one record of the channel's run (``execute_run(on_record=...)``); never raises."""
        try:
            if topic == "results" and isinstance(record, Mapping):
                self._row(record)
        except Exception:  # noqa: BLE001 - the live view must never stop a measurement
            log.exception("channel %s: live copy of a row failed", self.channel)

    def _row(self, row: Mapping[str, Any]) -> None:
        if float(row.get("jlv_sweep", 0) or 0) != 0:
            return
        hours = float(row.get("device_time", math.nan)) / 3600.0
        relative = float(row.get("relative_luminance", math.nan))
        crossed: list[float] = []
        with self._lock:
            self.rows += 1
            self.temperature_c = float(row.get("temperature", math.nan))
            self.current_density_ma_cm2 = float(row.get("current_density", math.nan))
            if self.rows % self._stride == 0:
                self._time_h.append(hours)
                self._relative.append(relative)
                self._temperature.append(self.temperature_c)
                if len(self._time_h) > LIVE_POINTS:
                    del self._time_h[1::2], self._relative[1::2], self._temperature[1::2]
                    self._stride *= 2
            if math.isfinite(relative):
                self._recent = [*self._recent[-(CROSSING_ROWS - 1) :], relative]
                median = float(np.median(self._recent))
                for percent in (*self.thresholds, *DISPLAY_THRESHOLDS):
                    if percent not in self.reached_h and len(self._recent) == CROSSING_ROWS:
                        if median < percent / 100.0:
                            self.reached_h[percent] = hours
                            crossed.append(percent)
            self.version += 1
        for percent in crossed:
            if percent in self.thresholds:
                self._alert(f"T{percent:g}", f"L/L0 fell below {percent:g} % at {hours:.4g} h")

    def _alert(self, event: str, message: str) -> None:
        if self.notifier is not None:
            self.notifier.notify(Alert(event, self.channel, self.file, message))

    def set_state(self, state: str, reason: str = "") -> None:
        """Set the channel's state (``running``, ``finished``, ``failed``...) and its reason."""
        with self._lock:
            self.state, self.reason = state, reason
            self.version += 1

    # -- read by the GUI and the tests --------------------------------------------------
    def curve(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Return copies of (device hours, L/L0, temperature C) of the live curve."""
        with self._lock:
            return (
                np.array(self._time_h),
                np.array(self._relative),
                np.array(self._temperature),
            )

    def next_threshold(self) -> tuple[float, float]:
        """Return (x, device hours to T_x) for the highest T_x not reached yet (NaN, NaN)."""
        time_h, relative, _ = self.curve()
        with self._lock:
            pending = [p for p in DISPLAY_THRESHOLDS if p not in self.reached_h]
        if not pending:
            return (math.nan, math.nan)
        percent = pending[0]
        return (percent, time_to_threshold_h(time_h, relative, percent / 100.0))


# --------------------------------------------------------------------------- running
@dataclass
class ChannelRun:
    """One channel of a parallel group: its label and validated plan."""

    channel: str
    label: str
    plan: RunPlan


@dataclass
class ChannelResult:
    """How one channel ended: its outcome, or the error that kept it from starting."""

    channel: str
    label: str
    procedure: str
    outcome: RunOutcome | None
    error: str = ""


def run_parallel(
    runs: Sequence[ChannelRun],
    *,
    stop_event: threading.Event | None = None,
    notifier: Notifier | None = None,
    live: Mapping[str, LiveChannel] | None = None,
    on_start: Callable[[Mapping[str, LiveChannel]], None] | None = None,
) -> list[ChannelResult]:
    """Run the channels together, one thread each, and wait until every one has ended.

    Parameters
    ----------
    runs
        One plan per channel (each on ``bench_config.channel_config(channel)``).
    stop_event
        Set it (Ctrl-C, SIGTERM, the GUI) to stop every channel safely.
    notifier
        Alerts: ``finished``/``failed`` per channel, ``T<x>`` when L/L0 falls below x %.
    live
        Channel -> :class:`LiveChannel` to fill (created when not given).
    on_start
        Called once with the live channels before the threads start (the rack view).

    Returns
    -------
    list of ChannelResult
        In the order of ``runs``.
    """
    channels = [r.channel for r in runs]
    if len(set(channels)) != len(channels):
        raise ValueError(f"a channel runs twice in one parallel group: {channels}")
    watched = notifier.thresholds() if notifier is not None else ()
    states = dict(live or {})
    for run in runs:
        states.setdefault(run.channel, LiveChannel(run.channel, run.label))
        states[run.channel].thresholds = watched
        states[run.channel].notifier = notifier
    if on_start is not None:
        on_start(states)
    results: dict[str, ChannelResult] = {}
    threads = [
        threading.Thread(
            target=_run_channel,
            args=(run, states[run.channel], results),
            name=f"channel-{run.channel}",
            daemon=True,
        )
        for run in runs
    ]
    for thread in threads:
        thread.start()
    while any(t.is_alive() for t in threads):
        if stop_event is not None and stop_event.is_set():
            reason = getattr(stop_event, "reason", "") or "stop requested"
            for state in states.values():
                if not state.stop.is_set():
                    state.stop.reason = reason  # type: ignore[attr-defined]
                    state.stop.set()
        for thread in threads:
            thread.join(0.1)
    lost = "the channel's thread ended without a result (see the log)"
    return [
        results.get(r.channel)
        or ChannelResult(r.channel, r.label, r.plan.procedure_cls.NAME, None, lost)
        for r in runs
    ]


def _run_channel(run: ChannelRun, live: LiveChannel, results: dict[str, ChannelResult]) -> None:
    """Open one channel's bench, run its plan, record how it ended; never raises."""
    name = run.plan.procedure_cls.NAME
    live.file = str(run.plan.path)
    live.drive = _drive_text(run.plan)
    live.set_state("opening")
    try:
        bench = ChannelBench(run.plan.bench_config, procedure=name).open()
    except BenchError as exc:
        _ended(run, live, results, None, f"could not open the channel's instruments: {exc}")
        return
    except Exception as exc:  # noqa: BLE001 - one channel's failure must not end the rack
        _ended(run, live, results, None, f"{type(exc).__name__}: {exc}")
        return
    live.set_state("running")
    try:
        outcome = execute_run(run.plan, stop_event=live.stop, bench=bench, on_record=live.record)
    except Exception as exc:  # noqa: BLE001
        log.exception("channel %s: run failed", run.channel)
        _ended(run, live, results, None, f"{type(exc).__name__}: {exc}")
        return
    finally:
        bench.close()
    _ended(run, live, results, outcome, "")


def _ended(
    run: ChannelRun,
    live: LiveChannel,
    results: dict[str, ChannelResult],
    outcome: RunOutcome | None,
    error: str,
) -> None:
    name = run.plan.procedure_cls.NAME
    results[run.channel] = ChannelResult(run.channel, run.label, name, outcome, error)
    if outcome is not None:
        live.file = str(outcome.path)
        live.set_state(outcome.status, outcome.reason)
        event = "finished" if outcome.status == "finished" else "failed"
        message = f"{outcome.status}: {outcome.reason}".strip(": ")
    else:
        live.set_state("error", error)
        event, message = "failed", error
    log.info("channel %s ended: %s", run.channel, message)
    live._alert(event, message)


def _drive_text(plan: RunPlan) -> str:
    values = plan.parameters
    mode = values.get("drive_mode", "current_density")
    if mode == "current_density" and "current_density" in values:
        return f"{values['current_density']:g} mA/cm^2"
    if mode == "current" and "current" in values:
        return f"{values['current'] * 1e3:g} mA"
    if "voltage" in values:
        return f"{values['voltage']:g} V"
    return plan.procedure_cls.NAME


def channel_of(path: str | Path) -> str:
    """Return the channel a run file was taken on (metadata ``channel``), "" for a single run."""
    import h5py

    try:
        with h5py.File(Path(path), "r", locking=False) as file:
            group = file.get("entry/metadata")
            value = group.attrs.get("channel", "") if group is not None else ""
    except (OSError, KeyError):  # unreadable: the resume's own checks say why
        return ""
    return value.decode() if isinstance(value, bytes) else str(value)


def resume_channel(
    path: str | Path,
    bench_config: Any,
    *,
    stop_event: threading.Event | None = None,
    on_progress: Callable[[float, str], None] | None = None,
) -> RunOutcome:
    """Continue an interrupted lifetime run of a rack channel on that channel's device.

    The same as ``run lifetime --resume`` (:mod:`perovlab_daq.resume`), with the
    channel's own bench (its instruments, and on a simulated bench its own device, whose
    ageing state the file checkpointed).

    Raises
    ------
    perovlab_daq.runner.RunInputError
        When the file is not an interrupted channel run of this bench.
    perovlab_daq.bench.BenchError
        When the channel's instruments cannot be opened.
    """
    from perovlab_daq.resume import execute_resume, plan_resume
    from perovlab_daq.runner import RunInputError

    channel = channel_of(path)
    if not channel:
        raise RunInputError(f"--resume {path}: not a rack channel's run (no channel metadata)")
    try:
        config = bench_config.channel_config(channel)
    except BenchError as exc:
        raise RunInputError(f"--resume {path}: {exc}") from None
    plan = plan_resume(path, config)
    bench = ChannelBench(config, procedure=plan.run_plan.procedure_cls.NAME).open()
    try:
        return execute_resume(plan, stop_event=stop_event, on_progress=on_progress, bench=bench)
    finally:
        bench.close()


__all__ = [
    "ChannelBench",
    "ChannelResult",
    "ChannelRun",
    "LiveChannel",
    "channel_of",
    "channel_seed",
    "resume_channel",
    "run_parallel",
    "time_to_threshold_h",
]
