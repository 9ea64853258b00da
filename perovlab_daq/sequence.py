"""Recipes: a list of runs (J-L-V, EL spectra, lifetime at three currents...) run in order.

A recipe is data: YAML read by :func:`perovlab_daq.safe_input.load_yaml_file` (safe,
bounded in size, depth and aliases) and never evaluated as code. Values
with units (``"20mA/cm^2"``) are parsed by pint's unit parser, nothing else. Every run of
a recipe is validated before the first one starts, so a typo in run 5 is reported (exit 2)
before run 1 touches an instrument.

Format (``docs/recipes.md``)::

    name: pixel characterisation        # optional
    output: data/batch-12               # optional folder (the command line's -o wins)
    continue_on_failure: false          # default for every run
    defaults:                           # sample fields shared by every run
      sample: B12
      operator: ann
    runs:
      - procedure: jlv
        pixels: [A1, A2]                # one run per pixel (or: pixel: A1)
        parameters: {stop_voltage: 6}
      - procedure: lifetime
        pixel: A1
        preset: qd-only                 # simulated bench only: another sample
        parameters: {current_density: 20mA/cm^2}
        continue_on_failure: true
      - name: rack                      # runs that start together, one per channel
        parallel:                       # (bench file ``channels:``; docs/rack.md)
          - {procedure: lifetime, channel: 1, pixel: A1, parameters: {current_density: 30}}
          - {procedure: lifetime, channel: 2, pixel: A2, parameters: {current_density: 60}}

A recipe (or a parallel group) may choose its alerts, ``alerts: [finished, failed, T80]``;
how they are sent is the bench file's ``alerts:`` (:mod:`perovlab_daq.alerts`).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from perovlab_daq.alerts import Alert, AlertConfigError, Notifier, check_events
from perovlab_daq.rack import ChannelRun, run_parallel
from perovlab_daq.runner import RunInputError, RunOutcome, RunPlan, execute_run, plan_run
from perovlab_daq.safe_input import UnsafeInputError, load_yaml_file

log = logging.getLogger(__name__)

_RECIPE_KEYS = {"name", "output", "continue_on_failure", "defaults", "runs", "alerts"}
_PARALLEL_KEYS = {"parallel", "name", "continue_on_failure", "alerts"}
_RUN_KEYS = {
    "procedure",
    "parameters",
    "pixel",
    "pixels",
    "sample",
    "device",
    "operator",
    "notes",
    "continue_on_failure",
    "name",
    "preset",
}
_SAMPLE_KEYS = ("sample", "device", "pixel", "operator", "notes")
MAX_RUNS = 1000


@dataclass
class RecipeStep:
    """One validated run of a recipe, or a group of channel runs that start together.

    ``channels`` holds the runs of a ``parallel:`` entry (``plan`` is then the first of
    them); ``alerts`` the events to notify (None: the bench file's choice).
    """

    label: str
    plan: RunPlan
    continue_on_failure: bool
    channels: list[ChannelRun] = field(default_factory=list)
    alerts: tuple[str, ...] | None = None


@dataclass
class StepResult:
    """How one step of a recipe ended."""

    label: str
    procedure: str
    outcome: RunOutcome | None
    error: str = ""

    @property
    def summary_keys(self) -> tuple[str, ...]:
        """Return the figure keys that summarise this run (the procedure's SUMMARY_FIGURES)."""
        from perovlab_daq.runner import procedure_classes

        cls = procedure_classes().get(self.procedure)
        return tuple(getattr(cls, "SUMMARY_FIGURES", ()) or ())

    @property
    def status(self) -> str:
        """Return the run status, or ``error`` when it could not start."""
        return self.outcome.status if self.outcome is not None else "error"


def _reject_unknown(given: Iterable[str], allowed: Sequence[str], what: str) -> None:
    """Raise :class:`RunInputError` ``"<what> 'x' (allowed: ...)"`` for the first unknown key."""
    unknown = set(given) - set(allowed)
    if unknown:
        raise RunInputError(f"{what} {sorted(unknown)[0]!r} (allowed: {', '.join(allowed)})")


def load_recipe(path: str | Path) -> dict[str, Any]:
    """Read a recipe file (safe YAML) and check its top-level shape."""
    file_path = Path(path)
    try:
        data = load_yaml_file(file_path, "recipe")
    except UnsafeInputError as exc:
        raise RunInputError(str(exc)) from None
    if not isinstance(data, Mapping):
        raise RunInputError(f"{file_path}: a recipe is a mapping with a 'runs' list")
    _reject_unknown(data, sorted(_RECIPE_KEYS), f"{file_path}: unknown recipe entry")
    runs = data.get("runs")
    if not isinstance(runs, list) or not runs:
        raise RunInputError(f"{file_path}: 'runs' must be a non-empty list of runs")
    return dict(data)


def plan_recipe(
    recipe: Mapping[str, Any],
    *,
    bench_config: Any,
    output: Path | str | None = None,
    durability_interval_s: float = 1.0,
) -> list[RecipeStep]:
    """Validate every run of a recipe and return the steps; nothing is touched.

    Output files of different steps never collide: each plan gets its own new file name.

    Raises
    ------
    RunInputError
        Naming the run (``runs[2]``) and the problem.
    """
    defaults = recipe.get("defaults") or {}
    if not isinstance(defaults, Mapping):
        raise RunInputError("recipe 'defaults' must be a mapping of sample fields")
    _reject_unknown(defaults, _SAMPLE_KEYS, "recipe defaults: unknown field")
    default_continue = _flag(recipe.get("continue_on_failure", False), "continue_on_failure")
    folder = output if output is not None else recipe.get("output")
    if folder is not None and not isinstance(folder, str | Path):
        raise RunInputError(f"recipe 'output' must be a folder name, got {folder!r}")
    target = Path(folder) if folder is not None else Path("data")
    if target.suffix.lower() in {".h5", ".hdf5"}:
        raise RunInputError("a recipe writes one file per run: give a folder, not a .h5 file")
    steps: list[RecipeStep] = []
    taken: set[Path] = set()
    alerts = _alert_events(recipe.get("alerts"), "alerts")
    for index, run in enumerate(recipe["runs"]):
        where = f"runs[{index}]"
        if not isinstance(run, Mapping):
            raise RunInputError(f"{where}: each run is a mapping with a 'procedure'")
        if "parallel" in run:
            group = _plan_parallel(
                run,
                where,
                bench_config,
                defaults,
                default_continue,
                target,
                taken,
                durability_interval_s,
            )
            group.alerts = _alert_events(run.get("alerts"), f"{where}.alerts") or alerts
            steps.append(group)
            continue
        _reject_unknown(run, sorted(_RUN_KEYS), f"{where}: unknown entry")
        procedure = run.get("procedure")
        if not isinstance(procedure, str):
            raise RunInputError(f"{where}: 'procedure' must be a procedure name")
        parameters = run.get("parameters") or {}
        if not isinstance(parameters, Mapping):
            raise RunInputError(f"{where}.parameters: expected a mapping of name: value")
        pixels = run.get("pixels")
        if pixels is not None and "pixel" in run:
            raise RunInputError(f"{where}: give 'pixel' or 'pixels', not both")
        if pixels is None:
            pixels = [run.get("pixel", defaults.get("pixel"))]
        if not isinstance(pixels, list) or not pixels:
            raise RunInputError(f"{where}.pixels: expected a non-empty list of pixel identifiers")
        step_bench = _bench_for_run(bench_config, run.get("preset"), where)
        keep_going = _flag(
            run.get("continue_on_failure", default_continue), f"{where}.continue_on_failure"
        )
        for pixel in pixels:
            sample = {key: run.get(key, defaults.get(key)) for key in _SAMPLE_KEYS}
            sample["pixel"] = None if pixel is None else str(pixel)
            plan = _plan_one(
                procedure,
                step_bench,
                parameters,
                target,
                sample,
                durability_interval_s,
                where,
                taken,
            )
            label = str(
                run.get("name") or f"{index + 1}:{procedure}" + (f"@{pixel}" if pixel else "")
            )
            steps.append(
                RecipeStep(label=label, plan=plan, continue_on_failure=keep_going, alerts=alerts)
            )
            if len(steps) > MAX_RUNS:
                raise RunInputError(f"recipe expands to more than {MAX_RUNS} runs")
    return steps


def _alert_events(value: Any, where: str) -> tuple[str, ...] | None:
    if value is None:
        return None
    try:
        return check_events(value, where)
    except AlertConfigError as exc:
        raise RunInputError(str(exc)) from None


def _plan_parallel(
    group: Mapping[str, Any],
    where: str,
    bench_config: Any,
    defaults: Mapping[str, Any],
    default_continue: bool,
    target: Path,
    taken: set[Path],
    durability_interval_s: float,
) -> RecipeStep:
    """Validate a ``parallel:`` entry: one run per channel, each on its channel's bench."""
    from perovlab_daq.bench import BenchError

    _reject_unknown(group, sorted(_PARALLEL_KEYS), f"{where}: unknown entry")
    runs = group["parallel"]
    if not isinstance(runs, list) or not runs:
        raise RunInputError(f"{where}.parallel: expected a non-empty list of runs")
    channels: list[ChannelRun] = []
    for number, run in enumerate(runs):
        here = f"{where}.parallel[{number}]"
        if not isinstance(run, Mapping):
            raise RunInputError(f"{here}: each run is a mapping with a 'procedure' and a 'channel'")
        allowed = (_RUN_KEYS - {"pixels", "preset", "continue_on_failure"}) | {"channel"}
        _reject_unknown(run, sorted(allowed), f"{here}: unknown entry")
        channel = run.get("channel")
        if isinstance(channel, bool) or not isinstance(channel, int | str):
            raise RunInputError(f"{here}.channel: expected a channel number, got {channel!r}")
        channel = str(channel).strip()
        if any(c.channel == channel for c in channels):
            raise RunInputError(f"{here}.channel: channel {channel} runs twice in this group")
        try:
            channel_bench = bench_config.channel_config(channel)
        except BenchError as exc:
            raise RunInputError(f"{here}.channel: {exc}") from None
        procedure = run.get("procedure")
        if not isinstance(procedure, str):
            raise RunInputError(f"{here}: 'procedure' must be a procedure name")
        parameters = run.get("parameters") or {}
        if not isinstance(parameters, Mapping):
            raise RunInputError(f"{here}.parameters: expected a mapping of name: value")
        sample = {key: run.get(key, defaults.get(key)) for key in _SAMPLE_KEYS}
        if sample["pixel"] is None:
            sample["pixel"] = f"ch{channel}"
        sample["pixel"] = str(sample["pixel"])
        plan = _plan_one(
            procedure,
            channel_bench,
            parameters,
            target,
            sample,
            durability_interval_s,
            here,
            taken,
        )
        label = str(run.get("name") or f"ch{channel}:{procedure}@{sample['pixel']}")
        channels.append(ChannelRun(channel, label, plan))
    keep_going = _flag(
        group.get("continue_on_failure", default_continue), f"{where}.continue_on_failure"
    )
    label = str(group.get("name") or f"{where}: {len(channels)} channels")
    return RecipeStep(label, channels[0].plan, keep_going, channels=channels)


def _bench_for_run(bench_config: Any, preset: Any, where: str) -> Any:
    """Return the bench of one run: the recipe's, or the simulated one with another preset."""
    if preset is None:
        return bench_config
    from perovlab_daq.bench import BenchError, sim_bench

    if not bench_config.simulated:
        raise RunInputError(f"{where}.preset: a sample preset only exists on the simulated bench")
    if not isinstance(preset, str):
        raise RunInputError(f"{where}.preset: expected a preset name, got {preset!r}")
    seed = bench_config.sim.seed if bench_config.sim is not None else None
    try:
        return sim_bench(preset, seed=seed)
    except BenchError as exc:
        raise RunInputError(f"{where}.preset: {exc}") from None


def _flag(value: Any, where: str) -> bool:
    if not isinstance(value, bool):
        raise RunInputError(f"{where}: expected true or false, got {value!r}")
    return value


def _plan_one(
    procedure: str,
    bench_config: Any,
    parameters: Mapping[str, Any],
    target: Any,
    sample: dict[str, Any],
    durability_interval_s: Any,
    where: str,
    taken: set[Path],
) -> RunPlan:
    """Plan one run of a recipe at a file name no other run of the recipe has taken."""
    try:
        plan = plan_run(
            procedure,
            bench_config=bench_config,
            parameters=dict(parameters),
            output=target,
            sample=sample,
            durability_interval_s=durability_interval_s,
        )
    except RunInputError as exc:
        raise RunInputError(f"{where}: {exc}") from None
    plan.path = _unclaimed(plan.path, taken)
    taken.add(plan.path)
    return plan


def _unclaimed(path: Path, taken: set[Path]) -> Path:
    """Return ``path`` or a numbered sibling no earlier step of this recipe claimed."""
    candidate = path
    counter = 2
    while candidate in taken or candidate.exists():
        candidate = path.with_name(f"{path.stem}-{counter}{path.suffix}")
        counter += 1
    return candidate


def run_recipe(
    steps: list[RecipeStep],
    *,
    stop_event: threading.Event | None = None,
    on_step: Callable[[int, RecipeStep], None] | None = None,
    on_progress: Callable[[float, str], None] | None = None,
    execute: Callable[..., Any] = execute_run,
    on_start: Callable[[Any], None] | None = None,
) -> list[StepResult]:
    """Run the steps in order; stop at a failure unless the step says to continue.

    A stop request (any of :data:`perovlab_daq.stop_signals.STOP_SIGNALS`) ends the current
    run safely and skips the rest; so does an output that did not read back off, whatever
    the step says. ``execute`` runs one plan (default :func:`execute_run`; the command
    line passes :func:`perovlab_daq.supervisor.execute_supervised`).

    A ``parallel:`` step runs its channels together in this process
    (:func:`perovlab_daq.rack.run_parallel`; ``on_start`` receives the live channels, for
    the rack view); a channel's failure ends that channel only, and the group counts as
    failed for ``continue_on_failure`` when any channel did not finish. Alerts chosen by
    the recipe go out through the bench file's ``alerts:`` transports.
    """
    results: list[StepResult] = []
    notifiers: list[Notifier] = []
    try:
        for number, step in enumerate(steps):
            if stop_event is not None and stop_event.is_set():
                results.append(
                    StepResult(step.label, step.plan.procedure_cls.NAME, None, "skipped: stopped")
                )
                continue
            if on_step is not None:
                on_step(number, step)
            notifier = Notifier(step.plan.bench_config.alerts, step.alerts)
            notifiers.append(notifier)
            if step.channels:
                if not _run_group(step, stop_event, notifier, on_start, results):
                    _skip_rest(steps, number, results)
                    break
                continue
            if not _run_step(step, stop_event, on_progress, execute, notifier, results):
                _skip_rest(steps, number, results)
                break
    finally:
        for notifier in notifiers:
            notifier.close()
    return results


def _run_group(
    step: RecipeStep,
    stop_event: threading.Event | None,
    notifier: Notifier,
    on_start: Callable[[Any], None] | None,
    results: list[StepResult],
) -> bool:
    """Run a parallel group (in this process, one thread per channel); False: stop here."""
    ended = run_parallel(step.channels, stop_event=stop_event, notifier=notifier, on_start=on_start)
    for channel in ended:
        results.append(StepResult(channel.label, channel.procedure, channel.outcome, channel.error))
    outcomes = [c.outcome for c in ended if c.outcome is not None]
    if any(o.status == "aborted" or not o.outputs_off for o in outcomes):
        return False
    all_finished = len(outcomes) == len(ended) and all(o.status == "finished" for o in outcomes)
    return all_finished or step.continue_on_failure


def _run_step(
    step: RecipeStep,
    stop_event: threading.Event | None,
    on_progress: Callable[[float, str], None] | None,
    execute: Callable[..., Any],
    notifier: Notifier,
    results: list[StepResult],
) -> bool:
    """Run one step and notify how it ended; False: the recipe stops here."""
    from perovlab_daq.bench import BenchError

    name = step.plan.procedure_cls.NAME
    try:
        outcome = execute(step.plan, stop_event=stop_event, on_progress=on_progress)
    except BenchError as exc:
        results.append(StepResult(step.label, name, None, str(exc)))
        notifier.notify(Alert("failed", "", str(step.plan.path), f"{step.label}: {exc}"))
        return step.continue_on_failure
    results.append(StepResult(step.label, name, outcome))
    event = "finished" if outcome.status == "finished" else "failed"
    message = f"{step.label}: {outcome.status} {outcome.reason}".strip()
    notifier.notify(Alert(event, "", str(outcome.path), message))
    if outcome.status == "aborted" or not outcome.outputs_off:
        return False
    return outcome.status == "finished" or step.continue_on_failure


def _skip_rest(steps: list[RecipeStep], number: int, results: list[StepResult]) -> None:
    for later in steps[number + 1 :]:
        results.append(StepResult(later.label, later.plan.procedure_cls.NAME, None, "skipped"))


def recipe_exit_code(results: list[StepResult]) -> int:
    """Return the recipe's exit code (the codes of :class:`perovlab_daq.runner.RunOutcome`).

    3 if an output did not read back off, 130 when stopped by a signal, 0 when every run
    finished, 1 otherwise.
    """
    if any(r.outcome is not None and not r.outcome.outputs_off for r in results):
        return 3
    if any(r.outcome is not None and r.outcome.status == "aborted" for r in results):
        return 130
    if all(r.status == "finished" for r in results):
        return 0
    return 1
