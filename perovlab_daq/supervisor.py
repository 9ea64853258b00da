"""Supervised runs: the acquisition in a process of its own, watched by the one the user started.

What a process cannot catch (``SIGKILL``, the kernel's OOM killer, a crash of the
interpreter) leaves whatever was on. So ``perovlab-daq run`` (also ``--resume``),
``sequence`` and ``demo`` start the acquisition in a child process
(``python -m perovlab_daq.supervisor --child FD``) and watch it over a socket pair; the
child watches back:

* the child dies without sending its outcome -> the supervisor (the process the user
  started) opens the hazardous roles (source meter, laser) of the same bench again,
  switches them off, reads them back, rebuilds the run file from its journal
  (:func:`perovlab_daq.storage.recover`) and records a ``killed`` and a ``safe_state``
  event: the run ends ``killed`` (the file's status is ``interrupted``, which
  ``run lifetime --resume`` continues);
* the supervisor dies -> the child reads end-of-file on the socket at once and stops
  the run through its own safe path (status ``aborted``, reason "supervisor gone").

A killed continuation (``run lifetime --resume``) is closed the same way in its segment
file, which is then appended to the run file: the run file says ``killed`` and stays
``interrupted`` (it can be resumed again).

Only plain data crosses the socket (one JSON object per line): the plan as procedure
name, parameter values, bench file or preset, file path (for a continuation: the run
file to continue); progress; the outcome. Nothing
is pickled or evaluated. The pids are written beside the run file (``<file>.pids``,
JSON) while the run lasts, for the operator and the tests.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import selectors
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from perovlab_daq.resume import (
    ResumePlan,
    append_leftover,
    execute_resume,
    plan_resume,
    simulated_bench_of,
)
from perovlab_daq.runner import (
    RunInputError,
    RunOutcome,
    RunPlan,
    check_file_readable,
    execute_run,
    plan_run,
)
from perovlab_daq.stop_signals import STOP_SIGNALS, StopFlag, stop_on_signals

log = logging.getLogger(__name__)

#: Roles whose output is a hazard: what the supervisor switches off after a death.
HAZARD_ROLES: tuple[str, ...] = ("source_meter", "laser")
#: Longest wait for the acquisition to stop after a stop request before it is killed and
#: switched off from here (a procedure stuck in an instrument call).
STOP_GRACE_S = 30.0
#: Exit code of a child that refused its plan (bad input or bench): the parent re-raises.
_CHILD_BAD_INPUT = 2


# --------------------------------------------------------------------------- bench spec
def bench_spec(config: Any) -> dict[str, Any] | None:
    """Return how a child process can build the same bench, or None if it cannot.

    ``{"file": path}`` for a bench file read unchanged, ``{"sim": preset, "seed": n}`` for
    the shipped simulated bench. A bench built another way is not supervised.
    """
    from perovlab_daq.bench import BenchError, load_bench, sim_bench

    if config.sim is not None and config.simulated:
        with contextlib.suppress(BenchError):
            if sim_bench(config.sim.preset, seed=config.sim.seed) == config:
                return {"sim": config.sim.preset, "seed": config.sim.seed}
    if config.path is not None:
        with contextlib.suppress(BenchError):
            if load_bench(config.path) == config:
                return {"file": str(Path(config.path).resolve())}
    return None


def bench_from_spec(spec: dict[str, Any]) -> Any:
    """Build the bench a :func:`bench_spec` describes (in another process)."""
    from perovlab_daq.bench import load_bench, sim_bench
    from perovlab_daq.resume import simulated_bench_of

    if "file" in spec:
        return load_bench(spec["file"])
    if "simulated_bench_of" in spec:  # run lifetime --resume FILE without --sim/--bench
        return simulated_bench_of(spec["simulated_bench_of"])
    return sim_bench(str(spec["sim"]), seed=int(spec["seed"]))


def _plan_message(plan: RunPlan, spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "procedure": plan.procedure_cls.NAME,
        "parameters": dict(plan.parameters),
        "bench": spec,
        "output": str(plan.path),
        "sample": dict(plan.sample),
        "durability": plan.durability_interval_s,
        "power_loss_safe": plan.power_loss_safe,
    }


def pid_file(run_path: Path) -> Path:
    """Return the file beside a run that names its supervisor and acquisition pids."""
    return run_path.with_name(run_path.name + ".pids")


# --------------------------------------------------------------------------- parent
def execute_supervised(
    plan: RunPlan,
    *,
    stop_event: StopFlag | None = None,
    on_progress: Callable[[float, str], None] | None = None,
    verbosity: int = 0,
) -> RunOutcome:
    """Run ``plan`` in a child process; switch the outputs off if the child dies.

    Same contract as :func:`perovlab_daq.runner.execute_run`. A bench that a child cannot
    rebuild (see :func:`bench_spec`) runs in this process, unsupervised (logged).

    Raises
    ------
    perovlab_daq.bench.BenchError, RunInputError
        When the child refused the plan or could not open the bench (nothing written).
    """
    spec = bench_spec(plan.bench_config)
    if spec is None:
        log.warning("this bench cannot be rebuilt in a child process: running unsupervised")
        return execute_run(plan, stop_event=stop_event, on_progress=on_progress)
    request = {"plan": _plan_message(plan, spec)}
    return _supervise(request, plan, plan.path, stop_event, on_progress, verbosity)


def execute_supervised_resume(
    plan: ResumePlan,
    *,
    stop_event: StopFlag | None = None,
    on_progress: Callable[[float, str], None] | None = None,
    verbosity: int = 0,
) -> RunOutcome:
    """Continue an interrupted lifetime run in a child process (``run lifetime --resume``).

    Same contract as :func:`perovlab_daq.resume.execute_resume`. If the child dies, the
    outputs are switched off and read back, the continuation's segment file is rebuilt
    and closed ``killed`` (:func:`end_after_death`) and appended to the run file, which
    stays ``interrupted`` with the ``killed`` event: it can be resumed again.
    """
    config = plan.run_plan.bench_config
    spec = bench_spec(config)
    if spec is None and config.simulated:
        with contextlib.suppress(RunInputError):
            if config == simulated_bench_of(plan.path):
                spec = {"simulated_bench_of": str(plan.path.resolve())}
    if spec is None:
        log.warning("this bench cannot be rebuilt in a child process: running unsupervised")
        return execute_resume(plan, stop_event=stop_event, on_progress=on_progress)
    request = {
        "resume": {
            "file": str(plan.path),
            "segment": str(plan.segment_path),
            "bench": spec,
            "durability": plan.run_plan.durability_interval_s,
            "power_loss_safe": plan.run_plan.power_loss_safe,
        }
    }
    outcome = _supervise(request, plan.run_plan, plan.path, stop_event, on_progress, verbosity)
    if outcome.status != "killed" or outcome.path != plan.segment_path:
        return outcome  # the child ended the continuation itself
    if plan.segment_path.exists():
        try:
            append_leftover(plan.path, plan.segment_path)
        except Exception as exc:  # noqa: BLE001 - the segment stays for the next --resume
            log.error("the killed continuation %s was not appended: %s", plan.segment_path, exc)
            outcome.file_readable, outcome.file_problem = False, f"not appended: {exc}"
            return outcome
    outcome.path = plan.path
    if outcome.file_readable:
        outcome.file_readable, outcome.file_problem = check_file_readable(plan.path)
    return outcome


def _supervise(
    request: dict[str, Any],
    plan: RunPlan,
    pids_beside: Path,
    stop_event: StopFlag | None,
    on_progress: Callable[[float, str], None] | None,
    verbosity: int,
) -> RunOutcome:
    """Start the child, send it ``request``, watch it; after a death, :func:`end_after_death`."""
    preload_drivers(plan.bench_config)
    stop_event = stop_event or StopFlag()
    parent_end, child_end = socket.socketpair()
    # -P: the working directory is not put on the child's sys.path. Started from a source
    # checkout, `-m` would otherwise import ./perovlab_daq (without the installed
    # perovlab_daq.procedures and .instruments) instead of the installed package.
    command = [
        sys.executable,
        "-P",
        "-m",
        "perovlab_daq.supervisor",
        "--child",
        str(child_end.fileno()),
        "--verbose",
        str(verbosity),
    ]
    # The child starts with the stop signals blocked (the mask is inherited): a Ctrl-C or
    # hang-up that the terminal sends to the whole process group while the child is still
    # importing (1-2 s, before its handlers exist) stays pending until _child_main has
    # installed them, instead of killing it (a run reported "killed", exit 1). This
    # process gets the same signal and passes the stop on over the socket anyway.
    blocked = _block_stop_signals()
    try:
        proc = subprocess.Popen(command, pass_fds=(child_end.fileno(),), close_fds=True)  # noqa: S603
    finally:
        _set_signal_mask(blocked)
    child_end.close()
    started = time.monotonic()
    pids = pid_file(pids_beside)
    try:
        _write_pids(pids, proc.pid)
        _send(parent_end, request)
        outcome, error = _watch_child(parent_end, proc, stop_event, on_progress)
    finally:
        parent_end.close()
    returncode = _reap(proc)
    with contextlib.suppress(FileNotFoundError):
        pids.unlink()
    if outcome is not None:
        return outcome
    if error is not None and error.get("kind") in {"input", "bench"}:
        from perovlab_daq.bench import BenchError

        raise (BenchError if error["kind"] == "bench" else RunInputError)(error["message"])
    return end_after_death(plan, returncode, error, elapsed_s=time.monotonic() - started)


def _block_stop_signals() -> set[signal.Signals] | None:
    """Block :data:`STOP_SIGNALS` in this thread; return the previous mask (None: no masks)."""
    if not hasattr(signal, "pthread_sigmask"):
        return None
    return signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)


def _set_signal_mask(mask: set[signal.Signals] | None) -> None:
    if mask is not None:
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)


def preload_drivers(config: Any) -> None:
    """Import what switching off needs now, so that a death is answered within 2 s."""
    import perovlab_daq.storage  # noqa: F401 - recovery after a death
    from perovlab_daq.bench import Bench  # noqa: F401
    from perovlab_daq.instruments import load_driver

    for role in HAZARD_ROLES:
        if role in config.roles:
            load_driver(config.roles[role].driver)


def _write_pids(path: Path, child_pid: int) -> None:
    with contextlib.suppress(OSError):
        path.write_text(json.dumps({"supervisor": os.getpid(), "acquisition": child_pid}))


def _watch_child(
    sock: socket.socket,
    proc: subprocess.Popen[bytes],
    stop: StopFlag,
    on_progress: Callable[[float, str], None] | None,
) -> tuple[RunOutcome | None, dict[str, Any] | None]:
    """Relay progress and stop requests until the child sends its outcome or dies."""
    selector = selectors.DefaultSelector()
    selector.register(sock, selectors.EVENT_READ)
    buffer = b""
    stop_sent = 0.0
    error: dict[str, Any] | None = None
    while True:
        if stop.is_set() and not stop_sent:
            stop_sent = time.monotonic()
            with contextlib.suppress(OSError):
                _send(sock, {"stop": stop.reason or "stop requested"})
        if stop_sent and time.monotonic() - stop_sent > STOP_GRACE_S and proc.poll() is None:
            log.error("the acquisition did not stop within %g s: killing it", STOP_GRACE_S)
            error = {"kind": "internal", "message": f"no stop within {STOP_GRACE_S:g} s"}
            proc.kill()
        if not selector.select(timeout=0.1):
            if proc.poll() is not None:
                return None, error
            continue
        try:
            chunk = sock.recv(65536)
        except InterruptedError:
            continue
        except OSError:
            chunk = b""
        if not chunk:  # the child is gone (its end closed by the kernel)
            return None, error
        buffer += chunk
        while b"\n" in buffer:
            line, buffer = buffer.split(b"\n", 1)
            message = json.loads(line)
            if "progress" in message and on_progress is not None:
                on_progress(float(message["progress"]), str(message.get("message", "")))
            elif "outcome" in message:
                return _outcome_from(message["outcome"]), None
            elif "error" in message:
                error = message["error"]


def _reap(proc: subprocess.Popen[bytes]) -> int:
    try:
        return proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        log.error("acquisition process %d does not end; killing it", proc.pid)
        proc.kill()
        return proc.wait()


def end_after_death(
    plan: RunPlan, returncode: int, error: dict[str, Any] | None, *, elapsed_s: float = 0.0
) -> RunOutcome:
    """Switch the hazards off after the acquisition died, read them back, close the file.

    Parameters
    ----------
    plan
        The run the dead process was executing.
    returncode
        Its exit status (negative: the signal that ended it).
    error
        What it reported before dying, if anything.
    """
    how = (
        f"ended by {signal.Signals(-returncode).name}"
        if returncode < 0 and -returncode in signal.valid_signals()
        else f"exited with {returncode}"
    )
    detail = f" after: {error['message']}" if error else ""
    reason = (
        f"killed: the acquisition process {how}{detail} without its safe path; "
        "the supervisor switched the outputs off and rebuilt the file"
    )
    return close_after_death(
        plan.bench_config, plan.procedure_cls.NAME, plan.path, reason, elapsed_s=elapsed_s
    )


def close_after_death(
    config: Any,
    procedure: str,
    path: Path,
    reason: str,
    *,
    elapsed_s: float = 0.0,
    switched: tuple[dict[str, str], dict[str, str]] | None = None,
) -> RunOutcome:
    """Switch the hazards of ``config`` off, read them back, close the run file ``killed``.

    Parameters
    ----------
    config
        The bench the dead process was using.
    procedure
        Its procedure's name (ageing acceleration of a simulated bench).
    path
        Its run file: rebuilt from the journal, with a ``killed`` and a ``safe_state`` event.
    reason
        Why, for the log, the event and the outcome.
    switched
        What :func:`switch_off` returned if the caller switched off already.
    """
    log.error("%s", reason)
    begun = time.monotonic()
    safe, outputs = switched or switch_off(config, procedure)
    log.warning(
        "switched off and read back in %.2f s: %s",
        time.monotonic() - begun,
        ", ".join(f"{k} {v}" for k, v in outputs.items()) or "no hazardous output",
    )
    outcome = RunOutcome(
        path=path,
        status="killed",
        reason=reason,
        elapsed_s=elapsed_s,
        safe_state=safe,
        outputs=outputs,
    )
    _close_file_after_death(path, outcome)
    return outcome


def switch_off(config: Any, procedure: str | None = None) -> tuple[dict[str, str], dict[str, str]]:
    """Open the hazardous roles of ``config``, switch them off and read them back. Never raises.

    Returns
    -------
    tuple of dict
        The switch-off results per role and the output states read back; a role that
        cannot be opened reads ``unreadable: ...``.
    """
    from perovlab_daq.bench import Bench

    safe: dict[str, str] = {}
    outputs: dict[str, str] = {}
    for role in HAZARD_ROLES:
        if role not in config.roles:
            continue
        try:
            bench = Bench(config, procedure=procedure, roles=[role]).open()
        except Exception as exc:  # noqa: BLE001 - one role's failure must not skip the other
            safe[role] = f"failed: {exc}"
            outputs[f"{role} output"] = f"unreadable: cannot open it: {exc}"
            continue
        try:
            safe.update(bench.safe_state())
            outputs.update(bench.output_states())
        finally:
            bench.close()
    return safe, outputs


def _close_file_after_death(path: Path, outcome: RunOutcome) -> None:
    from perovlab_daq.storage import HDF5Results, StorageError, recover

    try:
        report = recover(path)
    except StorageError as exc:
        if not path.exists():  # died before its file existed: nothing to close
            outcome.file_readable, outcome.file_problem = True, f"no run file ({exc})"
            return
        outcome.file_readable, outcome.file_problem = False, f"recovery failed: {exc}"
        return
    try:
        log.warning("%s", report)
        run = HDF5Results.load(path)
        run.add_event("error", "killed", outcome.reason)
        level = "info" if outcome.outputs_off else "error"
        states = ", ".join(f"{k} {v}" for k, v in outcome.outputs.items()) or "none"
        run.add_event(level, "safe_state", f"read back by the supervisor: {states}")
    except (StorageError, OSError) as exc:
        outcome.file_readable, outcome.file_problem = False, f"recovery failed: {exc}"
        return
    outcome.file_readable, outcome.file_problem = check_file_readable(path)


def _outcome_from(data: dict[str, Any]) -> RunOutcome:
    return RunOutcome(
        path=Path(data["file"]),
        status=data["status"],
        reason=data.get("reason", ""),
        figures=dict(data.get("figures", {})),
        interrupted_by=data.get("interrupted_by", ""),
        elapsed_s=float(data.get("elapsed_s", 0.0)),
        safe_state=dict(data.get("shutdown_commands", {})),
        outputs=dict(data.get("safe_state", {})),
        file_readable=bool(data.get("file_readable", True)),
        file_problem=data.get("file_problem", ""),
    )


def _send(sock: socket.socket, message: dict[str, Any]) -> None:
    sock.sendall(json.dumps(message, default=str).encode("utf-8") + b"\n")


# --------------------------------------------------------------------------- child
def _child_main(fd: int, verbosity: int) -> int:
    """Acquisition process: plan, run through :func:`execute_run`, report the outcome."""
    from perovlab_daq.bench import BenchError

    _configure_logging(verbosity)
    sock = socket.socket(fileno=fd)
    reader = sock.makefile("rb")
    stop = StopFlag()
    lock = threading.Lock()

    def send(message: dict[str, Any]) -> None:
        with lock, contextlib.suppress(OSError):
            _send(sock, message)

    with stop_on_signals(stop, quiet=True):
        if hasattr(signal, "pthread_sigmask"):  # blocked by _supervise until now
            signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
        line = reader.readline()
        if not line:
            return 1
        try:
            path, execute = _job_from_request(json.loads(line))
        except (RunInputError, BenchError) as exc:
            send({"error": {"kind": "input", "message": str(exc)}})
            return _CHILD_BAD_INPUT
        threading.Thread(
            target=_watch_parent, args=(reader, stop), name="watch-supervisor", daemon=True
        ).start()
        try:
            outcome = execute(
                stop_event=stop, on_progress=lambda p, m: send({"progress": p, "message": m})
            )
        except BenchError as exc:
            send({"error": {"kind": "bench", "message": str(exc)}})
            return _CHILD_BAD_INPUT
        except BaseException as exc:
            send({"error": {"kind": "internal", "message": f"{type(exc).__name__}: {exc}"}})
            raise
        finally:
            with contextlib.suppress(OSError):  # the supervisor may be gone: tidy up here
                pid_file(path).unlink(missing_ok=True)
    summary = outcome.summary()
    summary["interrupted_by"] = outcome.interrupted_by
    stop.reason = stop.reason or "ended"
    stop.set()  # the run is over: the supervisor closing its end is no news now
    send({"outcome": summary})
    return outcome.exit_code


def _job_from_request(message: dict[str, Any]) -> tuple[Path, Callable[..., RunOutcome]]:
    """Plan what the supervisor asked for; return the run file and how to execute it.

    Raises
    ------
    RunInputError, perovlab_daq.bench.BenchError
        For a plan the child refuses (nothing opened or written).
    """
    if "resume" in message:
        request = message["resume"]
        resume = plan_resume(
            request["file"],
            bench_from_spec(request["bench"]),
            durability_interval_s=float(request["durability"]),
            power_loss_safe=bool(request["power_loss_safe"]),
        )
        if str(resume.segment_path) != request["segment"]:
            # the supervisor closes a killed continuation in the segment it planned
            raise RunInputError(
                f"--resume {resume.path}: segment {resume.segment_path} planned here, "
                f"{request['segment']} by the supervisor (the file changed in between)"
            )
        return resume.path, partial(execute_resume, resume)
    request = message["plan"]
    plan = plan_run(
        request["procedure"],
        bench_config=bench_from_spec(request["bench"]),
        parameters=request["parameters"],
        output=request["output"],
        sample=request["sample"],
        durability_interval_s=float(request["durability"]),
        power_loss_safe=bool(request["power_loss_safe"]),
    )
    return plan.path, partial(execute_run, plan)


def _configure_logging(verbosity: int) -> None:
    """Warnings on stderr (more with ``-v``); the run's log file gets INFO and above."""
    console = logging.StreamHandler()
    console.setLevel(logging.WARNING if verbosity <= 0 else logging.DEBUG)
    console.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.setLevel(logging.INFO if verbosity <= 1 else logging.DEBUG)
    root.addHandler(console)
    logging.getLogger("pyvisa").setLevel(logging.INFO if verbosity < 3 else logging.DEBUG)
    logging.getLogger("pymeasure.experiment.experiment").setLevel(logging.ERROR)


def _watch_parent(reader: Any, stop: StopFlag) -> None:
    """Stop the run on a stop request or when the supervisor's end closes (it died)."""
    while True:
        try:
            line = reader.readline()
        except (OSError, ValueError):
            line = b""
        if not line:
            if stop.stop("supervisor gone"):
                log.error("the supervising process is gone: stopping the run safely")
            return
        with contextlib.suppress(ValueError, KeyError):
            reason = json.loads(line)["stop"]
            if stop.stop(str(reason)):
                log.warning("stop requested by the supervisor (%s)", reason)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the acquisition process (``--child FD [--verbose N]``)."""
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) < 2 or args[0] != "--child":
        print("usage: python -m perovlab_daq.supervisor --child FD [--verbose N]", file=sys.stderr)
        return 2
    verbosity = int(args[3]) if len(args) >= 4 and args[2] == "--verbose" else 0
    return _child_main(int(args[1]), verbosity)


if __name__ == "__main__":
    sys.exit(main())
