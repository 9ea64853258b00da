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
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from perovlab_daq.runner import RunInputError, RunOutcome, RunPlan, execute_run, plan_run
from perovlab_daq.safe_input import UnsafeInputError, load_yaml_file

log = logging.getLogger(__name__)

_RECIPE_KEYS = {"name", "output", "continue_on_failure", "defaults", "runs"}
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
    """One validated run of a recipe."""

    label: str
    plan: RunPlan
    continue_on_failure: bool


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
    for index, run in enumerate(recipe["runs"]):
        where = f"runs[{index}]"
        if not isinstance(run, Mapping):
            raise RunInputError(f"{where}: each run is a mapping with a 'procedure'")
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
            try:
                plan = plan_run(
                    procedure,
                    bench_config=step_bench,
                    parameters=dict(parameters),
                    output=target,
                    sample=sample,
                    durability_interval_s=durability_interval_s,
                )
            except RunInputError as exc:
                raise RunInputError(f"{where}: {exc}") from None
            plan.path = _unclaimed(plan.path, taken)
            taken.add(plan.path)
            label = str(
                run.get("name") or f"{index + 1}:{procedure}" + (f"@{pixel}" if pixel else "")
            )
            steps.append(RecipeStep(label=label, plan=plan, continue_on_failure=keep_going))
            if len(steps) > MAX_RUNS:
                raise RunInputError(f"recipe expands to more than {MAX_RUNS} runs")
    return steps


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
) -> list[StepResult]:
    """Run the steps in order; stop at a failure unless the step says to continue.

    A stop request (any of :data:`perovlab_daq.stop_signals.STOP_SIGNALS`) ends the current
    run safely and skips the rest; so does an output that did not read back off, whatever
    the step says. ``execute`` runs one plan (default :func:`execute_run`; the command
    line passes :func:`perovlab_daq.supervisor.execute_supervised`).
    """
    from perovlab_daq.bench import BenchError

    results: list[StepResult] = []
    for number, step in enumerate(steps):
        if stop_event is not None and stop_event.is_set():
            results.append(
                StepResult(step.label, step.plan.procedure_cls.NAME, None, "skipped: stopped")
            )
            continue
        if on_step is not None:
            on_step(number, step)
        try:
            outcome = execute(step.plan, stop_event=stop_event, on_progress=on_progress)
        except BenchError as exc:
            results.append(StepResult(step.label, step.plan.procedure_cls.NAME, None, str(exc)))
            if not step.continue_on_failure:
                _skip_rest(steps, number, results)
                break
            continue
        results.append(StepResult(step.label, step.plan.procedure_cls.NAME, outcome))
        if outcome.status == "aborted" or not outcome.outputs_off:
            _skip_rest(steps, number, results)
            break
        if outcome.status != "finished" and not step.continue_on_failure:
            _skip_rest(steps, number, results)
            break
    return results


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
