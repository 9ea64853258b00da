"""``perovlab-daq run lifetime --resume FILE``: continue an interrupted lifetime run in its file.

A resumed run is recorded as *segments*: column ``segment`` is 0 for the original run and
k for the k-th continuation. The continuation runs through the ordinary runner
(:func:`perovlab_daq.runner.execute_run`) into a temporary segment file beside the run
file (``<stem>.segment<k>.h5``) and is then appended to the run file (rows, frames,
events, final status), so the continuation has every guarantee of a normal run
(journal, recover) and the result is one file. Where the run stopped is read by
:func:`procedures._lifetime_state.read_resume_state` (the procedure reads it too).

A runner-level module: it imports the runner, the storage and the figures; nothing below
it imports it.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import shutil
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from perovlab_daq.figures import _run
from perovlab_daq.figures.lifetime import key_figures
from perovlab_daq.procedures._lifetime_state import (
    ResumeError,
    epoch_of,
    read_resume_state,
    read_text,
)

log = logging.getLogger(__name__)

PROCEDURE_NAME = "lifetime"

__all__ = [
    "ResumeError",
    "ResumePlan",
    "append_leftover",
    "append_segment",
    "execute_resume",
    "plan_resume",
    "simulated_bench_of",
]


@dataclass
class ResumePlan:
    """A validated continuation of an interrupted lifetime run; nothing touched yet.

    Attributes
    ----------
    path
        The run file to continue.
    segment_path
        Temporary file the continuation runs into before it is appended to ``path``.
    run_plan
        The :class:`perovlab_daq.runner.RunPlan` of the continuation.
    segment
        Index of the new segment.
    """

    path: Path
    segment_path: Path
    run_plan: Any
    segment: int


def _segment_path(path: Path, segment: int) -> Path:
    return path.with_name(f"{path.stem}.segment{segment}{path.suffix}")


def _leftover_segments(path: Path) -> list[Path]:
    return sorted(path.parent.glob(f"{path.stem}.segment*{path.suffix}"))


def plan_resume(
    path: str | Path,
    bench_config: Any,
    *,
    durability_interval_s: float = 1.0,
    power_loss_safe: bool = False,
) -> ResumePlan:
    """Check that a run file can be continued on this bench and plan the continuation.

    Parameters
    ----------
    path
        A lifetime run file with status ``interrupted`` (run ``perovlab-daq recover`` on a
        file a killed run left behind first).
    bench_config
        The bench to continue on; a simulated file needs the simulated bench with the
        same preset, a real one a real bench.

    Raises
    ------
    perovlab_daq.runner.RunInputError
        For a missing file, another procedure, a status other than ``interrupted``, or a
        bench that does not match; nothing is opened or created.
    """
    import h5py

    from perovlab_daq.runner import RunInputError, plan_run

    file_path = Path(path)
    if not file_path.exists():
        raise RunInputError(f"--resume {file_path}: no such file")
    try:
        with h5py.File(file_path, "r", locking=False) as file:
            entry = file["entry"]
            procedure = read_text(entry.attrs.get("procedure", ""))
            status = read_text(entry.attrs.get("status", ""))
            meta = _run.file_metadata(file)
            parameters = {
                name: _run.plain(ds[()]) if ds.shape is not None else None
                for name, ds in entry["parameters"].items()
            }
    except OSError as exc:
        raise RunInputError(
            f"--resume {file_path}: cannot read it ({exc}); if the run was killed, run "
            f"'perovlab-daq recover {file_path}' first"
        ) from None
    except KeyError as exc:
        raise RunInputError(f"--resume {file_path}: not a run file ({exc})") from None
    if procedure != PROCEDURE_NAME:
        raise RunInputError(f"--resume {file_path}: a {procedure!r} run; only lifetime runs resume")
    if status != "interrupted":
        hint = (
            f"; run 'perovlab-daq recover {file_path}' first"
            if status == "running"
            else " (only an interrupted run can be continued)"
        )
        raise RunInputError(f"--resume {file_path}: status is {status!r}{hint}")
    simulated = bool(meta.get("simulated", False))
    if simulated != bool(bench_config.simulated):
        raise RunInputError(
            f"--resume {file_path}: the run was on a {'simulated' if simulated else 'real'} "
            f"bench; continue it on the same kind of bench"
        )
    if simulated and bench_config.sim is not None:
        preset = str(meta.get("sim_preset", ""))
        if preset and preset != bench_config.sim.preset:
            raise RunInputError(
                f"--resume {file_path}: simulated preset {preset!r}, the bench has "
                f"{bench_config.sim.preset!r} (use --sim {preset})"
            )
    if not _leftover_segments(file_path):
        try:
            read_resume_state(file_path)
        except (ResumeError, KeyError) as exc:
            raise RunInputError(f"--resume {file_path}: {exc}") from None
    for leftover in _leftover_segments(file_path):
        log.info("a previous continuation %s will be appended first", leftover)
    segment = _next_segment(file_path)
    segment_path = _segment_path(file_path, segment)
    from perovlab_daq.procedures.lifetime import LifetimeProcedure

    known = LifetimeProcedure.parameter_objects_of_class()
    values = {k: read_text(v) if isinstance(v, bytes) else v for k, v in parameters.items()}
    values = {k: v for k, v in values.items() if k in known and v is not None}
    values["resume_file"] = str(file_path.resolve())
    run_plan = plan_run(
        PROCEDURE_NAME,
        bench_config=bench_config,
        parameters=values,
        output=segment_path,
        sample=_file_sample(file_path),
        durability_interval_s=durability_interval_s,
        power_loss_safe=power_loss_safe,
    )
    return ResumePlan(file_path, segment_path, run_plan, segment)


def simulated_bench_of(path: str | Path) -> Any:
    """Return the shipped simulated bench with the preset and seed a run file was taken with.

    For ``run lifetime --resume FILE --sim`` without a preset: the continuation must run on
    the same simulated sample.

    Raises
    ------
    perovlab_daq.runner.RunInputError
        If the file was not taken on the simulated bench or cannot be read.
    """
    import h5py

    from perovlab_daq.bench import BenchError, load_bench, sim_bench
    from perovlab_daq.runner import RunInputError

    try:
        with h5py.File(Path(path), "r", locking=False) as file:
            meta = _run.file_metadata(file)
    except OSError as exc:
        raise RunInputError(f"--resume {path}: cannot read it ({exc})") from None
    if not meta.get("simulated"):
        raise RunInputError(f"--resume {path}: the run was on real instruments; give --bench")
    seed = meta.get("sim_seed")
    config = sim_bench(
        str(meta.get("sim_preset")) or None, seed=None if seed is None else int(seed)
    )
    # The same simulated bench file (its ageing acceleration) when it is still there, and
    # the same device: the run's sim.sample overrides (metadata sim_sample_<key>).
    bench_file = Path(str(meta.get("bench_file") or ""))
    sim = config.sim
    if str(bench_file) not in ("", ".") and bench_file.is_file():
        try:
            own = load_bench(bench_file)
        except BenchError as exc:
            raise RunInputError(f"--resume {path}: its bench file {bench_file}: {exc}") from None
        if own.sim is not None:
            sim = dataclasses.replace(own.sim, preset=sim.preset, seed=sim.seed)
            config = dataclasses.replace(config, roles=own.roles, setup=own.setup)
    prefix = "sim_sample_"
    sample = {k[len(prefix) :]: float(v) for k, v in meta.items() if k.startswith(prefix)}
    return dataclasses.replace(config, sim=dataclasses.replace(sim, sample=sample))


def _next_segment(path: Path) -> int:
    import h5py

    with h5py.File(path, "r", locking=False) as file:
        data = file["entry/data"]
        seg = np.asarray(data["segment"][()], dtype=float) if "segment" in data else np.zeros(1)
    done = int(np.nanmax(seg)) if seg.size and np.isfinite(seg).any() else 0
    leftovers = [_segment_index(p) for p in _leftover_segments(path)]
    return max([done, *leftovers]) + 1


def _segment_index(path: Path) -> int:
    text = path.stem.rsplit(".segment", 1)[-1]
    return int(text) if text.isdigit() else 0


def _file_sample(path: Path) -> dict[str, str]:
    import h5py

    sample: dict[str, str] = {}
    with h5py.File(path, "r", locking=False) as file:
        group = file.get("entry/sample")
        if group is None:
            return sample
        for key in ("sample", "device", "pixel", "operator", "notes"):
            if key in group:
                sample[key] = read_text(group[key][()])
    return sample


def execute_resume(
    plan: ResumePlan,
    *,
    stop_event: threading.Event | None = None,
    on_progress: Callable[[float, str], None] | None = None,
    bench: Any = None,
) -> Any:
    """Continue an interrupted lifetime run and append the continuation to its file.

    Steps: append any earlier continuation left behind by a killed resume (recovering
    it first); run the procedure with ``resume_file`` set through
    :func:`perovlab_daq.runner.execute_run` into ``plan.segment_path`` (so it has the
    journal, safe stop and status handling of every run); append its rows, frames and
    events to the run file; set the run's final status; recompute and store the
    analysis; delete the segment file (its log is appended to the run's log).

    A continuation that failed before it recorded any row (e.g. an instrument missing)
    only adds its events; the run file stays ``interrupted`` and can be resumed again.

    Returns
    -------
    perovlab_daq.runner.RunOutcome
        With ``path`` the run file and the figures of the whole run.
    """
    from perovlab_daq.catalog import register_run_end, register_run_resuming
    from perovlab_daq.runner import RunOutcome, execute_run

    registration = register_run_resuming(plan.run_plan.bench_config, plan.path)
    for leftover in _leftover_segments(plan.path):
        if leftover != plan.segment_path:
            append_leftover(plan.path, leftover)
    outcome = execute_run(
        plan.run_plan, stop_event=stop_event, on_progress=on_progress, bench=bench
    )
    rows = append_segment(plan.path, plan.segment_path, outcome.status, outcome.reason)
    _discard_segment(plan.path, plan.segment_path)
    figures: dict[str, Any] = {}
    if rows:
        figures = _store_figures(plan.path)
    resumed = RunOutcome(
        path=plan.path,
        status=outcome.status if rows else "interrupted",
        reason=outcome.reason,
        figures=figures,
        interrupted_by=outcome.interrupted_by,
        elapsed_s=outcome.elapsed_s,
        safe_state=outcome.safe_state,
        outputs=outcome.outputs,
        file_readable=outcome.file_readable,
        file_problem=outcome.file_problem,
    )
    register_run_end(registration, resumed)  # the run's row, from the whole file
    return resumed


def append_leftover(path: Path, leftover: Path) -> None:
    """Append a continuation a killed resume left (recovered first if needed), then delete it.

    Also used by :mod:`perovlab_daq.supervisor` once it closed a killed continuation.
    """
    import h5py

    from perovlab_daq.storage import recover

    with h5py.File(leftover, "r", locking=False, swmr=True) as file:
        status = read_text(file["entry"].attrs.get("status", ""))
    if status in {"running", "queued"}:
        recover(leftover)
        with h5py.File(leftover, "r", locking=False) as file:
            status = read_text(file["entry"].attrs.get("status", ""))
    append_segment(path, leftover, "interrupted" if status == "finished" else status, "")
    _discard_segment(path, leftover)


def _store_figures(path: Path) -> dict[str, Any]:
    from perovlab_daq.storage import HDF5Results

    run = HDF5Results.load(path)
    try:
        figures = key_figures(run)
    except ValueError as exc:
        log.error("analysis of %s failed: %s", path, exc)
        return {}
    finally:
        _run.close(run)
    try:
        HDF5Results.load(path).write_analysis(figures)
    except Exception as exc:  # noqa: BLE001 - the figures are returned anyway
        log.error("could not store the analysis in %s: %s", path, exc)
    return figures


def _discard_segment(path: Path, segment_path: Path) -> None:
    log_src = segment_path.with_suffix(segment_path.suffix + ".log")
    if log_src.exists():
        log_dst = path.with_suffix(path.suffix + ".log")
        with open(log_dst, "a", encoding="utf-8") as out, open(log_src, encoding="utf-8") as src:
            out.write(f"\n--- continuation {segment_path.name} ---\n")
            shutil.copyfileobj(src, out)
        log_src.unlink()
    for leftover in (segment_path, segment_path.with_suffix(segment_path.suffix + ".journal")):
        if leftover.exists():
            leftover.unlink()


def _append_dataset(target: Any, values: np.ndarray) -> None:
    start = target.shape[0]
    target.resize((start + values.shape[0], *target.shape[1:]))
    target[start:] = values


def append_segment(path: Path, segment_path: Path, status: str, reason: str) -> int:
    """Append a continuation's rows, frames and events to the run file; set its status.

    Event times are moved onto the run file's clock (seconds since its start). Frame
    streams are extended (``dark_index``/``frame_index`` contexts offset so they still
    point at the right frames); a stream new in the continuation is copied whole.

    Returns
    -------
    int
        Number of rows appended (0: only the events were appended and the status kept).
    """
    import h5py

    from perovlab_daq.storage.files import updating_closed_file

    if not segment_path.exists():
        return 0
    with (
        updating_closed_file(path) as dst,  # copy, append, fsync, atomic rename
        h5py.File(segment_path, "r", locking=False) as src,
    ):
        target, source = dst["entry"], src["entry"]
        shift = epoch_of(read_text(source.attrs.get("start_time", ""))) - epoch_of(
            read_text(target.attrs.get("start_time", ""))
        )
        shift = 0.0 if not math.isfinite(shift) else shift
        rows = min(
            (len(d) for d in source["data"].values() if isinstance(d, h5py.Dataset)), default=0
        )
        if rows:
            for name, dataset in target["data"].items():
                if not isinstance(dataset, h5py.Dataset):
                    continue
                if name in source["data"]:
                    values = np.asarray(source["data"][name][:rows], dtype=float)
                else:
                    values = np.full(rows, np.nan)
                _append_dataset(dataset, values)
        if "events" in source and "events" in target:
            count = len(source["events/time"])
            for name, dataset in source["events"].items():
                values = dataset[:count]
                if name == "time":
                    values = np.asarray(values, dtype=float) + shift
                if name in target["events"]:
                    _append_dataset(target["events"][name], np.asarray(values))
        offsets = {
            "frame_index": _frame_count(target, "spectra"),
            "dark_index": _frame_count(target, "spectra_dark"),
        }
        for stream, group in source.items():
            if not (isinstance(group, h5py.Group) and "intensity" in group):
                continue
            _append_stream(target, stream, group, source, offsets)
        if rows:
            target.attrs["status"] = status
            target.attrs["status_reason"] = reason or ""
            target.attrs["end_time"] = read_text(source.attrs.get("end_time", ""))
        segments = target.require_group("segments")
        segments.attrs["NX_class"] = "NXcollection"
        record = segments.create_group(segment_path.stem.rsplit(".", 1)[-1] + f"_{len(segments)}")
        for key in ("start_time", "end_time", "status", "status_reason"):
            record.attrs[key] = read_text(source.attrs.get(key, ""))
        record.attrs["rows"] = rows
    return rows


def _frame_count(entry: Any, stream: str) -> int:
    return entry[f"{stream}/intensity"].shape[0] if stream in entry else 0


def _append_stream(
    target: Any, stream: str, group: Any, source: Any, offsets: Mapping[str, int]
) -> None:
    import h5py

    if stream not in target:
        source.copy(group, target, name=stream)
        return
    existing = target[stream]
    if existing["intensity"].shape[1] != group["intensity"].shape[1]:
        name = f"{stream}_segment"
        log.warning("stream %s changed its pixel count; appended as %s", stream, name)
        if name not in target:
            source.copy(group, target, name=name)
        return
    before = existing["intensity"].shape[0]
    count = group["intensity"].shape[0]
    _append_dataset(existing["intensity"], group["intensity"][:count])
    names = [n for n, d in group.items() if isinstance(d, h5py.Dataset) and d.ndim == 1]
    for name in names:
        if name in ("wavelength",):
            continue
        values = np.asarray(group[name][:count], dtype=float)
        if name in offsets and not (stream == "spectra_dark" and name == "frame_index"):
            values = values + offsets[name]
        if name not in existing:
            dataset = existing.create_dataset(
                name,
                shape=(before,),
                maxshape=(None,),
                chunks=(1024,),
                dtype="f8",
                fillvalue=np.nan,
            )
            dataset.attrs["units"] = group[name].attrs.get("units", "")
        _append_dataset(existing[name], values)
    for name, dataset in existing.items():
        if (
            isinstance(dataset, h5py.Dataset)
            and dataset.ndim == 1
            and name not in names
            and name != "wavelength"
        ):
            _append_dataset(dataset, np.full(count, np.nan))
    existing.attrs["context"] = [
        n
        for n in existing
        if n not in ("wavelength", "intensity") and isinstance(existing[n], h5py.Dataset)
    ]
