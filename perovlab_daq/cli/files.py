"""The ``perovlab-daq`` commands ``analyze``, ``report`` and ``lifetime-fit``.

Key figures and pictures of run files (:mod:`perovlab_daq.figures`).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any

from perovlab_daq.cli._common import (
    EXIT_BAD_INPUT,
    EXIT_FAILED,
    EXIT_OK,
    UsageError,
    format_figure,
)
from perovlab_daq.filecheck import DamagedFileError
from perovlab_daq.safe_input import UnsafeInputError, check_new_output_file, check_regular_file

log = logging.getLogger(__name__)


def _cmd_lifetime_fit(args: argparse.Namespace) -> int:
    from perovlab_daq.figures import AnalysisInputError
    from perovlab_daq.figures.lifetime_fit import (
        draw_lifetime_fit,
        format_fit_report,
        lifetime_fit_report,
    )
    from perovlab_daq.runner import jsonable

    for path in args.files:
        try:
            check_regular_file(path, "run file")
        except UnsafeInputError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_BAD_INPUT
    if args.output is not None:
        _check_figure_output(args.output)
    for value in args.at or []:
        if not (value > 0 and value < 1e7):
            raise UsageError(f"--at {value}: a luminance from 0 to 1e7 cd/m^2 (exclusive)")
    try:
        report = lifetime_fit_report(args.files, at=args.at or [100.0, 1000.0])
        if args.output is not None:
            import matplotlib

            matplotlib.use("Agg")
            from matplotlib.figure import Figure

            figure = Figure(figsize=(7, 5), layout="constrained")
            draw_lifetime_fit(args.files, figure, report=report)
            _save(figure, args.output)
    except AnalysisInputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except _OUTPUT_ERRORS:
        raise
    except Exception as exc:  # noqa: BLE001 - a damaged file: one line, not a traceback
        log.debug("lifetime-fit failed", exc_info=True)
        names = ", ".join(str(p) for p in args.files)
        print(f"error: {names}: cannot be read ({type(exc).__name__}: {exc})", file=sys.stderr)
        return EXIT_FAILED
    print(json.dumps(report, default=jsonable) if args.json else format_fit_report(report))
    return EXIT_OK


def _check_figure_output(output: Path) -> None:
    """Refuse a figure path that cannot be written, before any file is read (exit 2)."""
    if output.suffix.lower() not in {".png", ".pdf"}:
        raise UsageError(f"-o {output}: the figure must be a .png or .pdf file")
    try:
        check_new_output_file(output, "figure")
    except UnsafeInputError as exc:
        raise UsageError(f"-o {exc}") from None


def _save(figure: Any, output: Path) -> None:
    """Save a figure; an unwritable path is bad input naming it (exit 2)."""
    try:
        figure.savefig(output, dpi=110)
    except OSError as exc:
        raise UsageError(f"-o {output}: cannot write the figure ({exc.strerror or exc})") from None


#: Errors that keep their own exit code when they escape a file command.
_OUTPUT_ERRORS = (UsageError, BrokenPipeError, KeyboardInterrupt)


def _cmd_analyze_by_pixel(args: argparse.Namespace) -> int:
    from perovlab_daq.figures import AnalysisInputError
    from perovlab_daq.figures.substrate import draw_substrate, format_summary, summarise_substrate

    try:
        summary = summarise_substrate(args.files)
    except (FileNotFoundError, AnalysisInputError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    if args.json:
        print(json.dumps(summary.as_dict()))
    else:
        print("\n".join(format_summary(summary)))
    if args.figure is not None:
        from matplotlib.figure import Figure

        figure = Figure(figsize=(12, 4))
        draw_substrate(summary, figure)
        figure.savefig(args.figure)
        print(f"figure: {args.figure}")
    return EXIT_OK


def _cmd_analyze(args: argparse.Namespace) -> int:
    from perovlab_daq.figures import analyze_files

    if getattr(args, "by", None) == "pixel":
        return _cmd_analyze_by_pixel(args)

    results: dict[str, Any] = {}
    code = EXIT_OK
    scheduler = getattr(args, "scheduler", None)
    analysed = analyze_files(
        args.files, store=not args.no_store, jobs=args.jobs, scheduler=scheduler
    )
    try:
        for path, figures in analysed:
            code = _print_figures(args, path, figures, results, code)
    except BrokenPipeError:
        raise
    except OSError as exc:  # TimeoutError included: the scheduler did not answer
        if scheduler is None:
            raise
        raise UsageError(f"--scheduler {scheduler}: cannot use the Dask cluster ({exc})") from None
    if args.json:
        from perovlab_daq.runner import jsonable

        print(json.dumps({p: {k: jsonable(v) for k, v in f.items()} for p, f in results.items()}))
    return code


def _print_figures(
    args: argparse.Namespace, path: Path, figures: Any, results: dict[str, Any], code: int
) -> int:
    """Print one file's figures (or the error it gave); return the exit code so far."""
    if isinstance(figures, FileNotFoundError):
        print(f"error: {path}: no such file", file=sys.stderr)
        return EXIT_BAD_INPUT
    if isinstance(figures, DamagedFileError):
        print(f"error: {figures}", file=sys.stderr)
        return max(code, EXIT_FAILED)
    if isinstance(figures, Exception):
        print(f"error: {path}: {figures}", file=sys.stderr)
        return EXIT_BAD_INPUT
    results[str(path)] = figures
    if not args.json:
        print(f"{path}:")
        for key, value in figures.items():
            print(f"  {key}: {format_figure(value)}")
    return code


def _cmd_report(args: argparse.Namespace) -> int:
    from perovlab_daq.figures import AnalysisInputError, draw_report

    _check_figure_output(args.output)
    if getattr(args, "compare", False):
        return _cmd_report_compare(args)
    if len(args.file) > 1:
        raise UsageError("report: give one FILE, or --compare FILE FILE ... to overlay runs")
    args.file = args.file[0]
    try:
        out = draw_report(args.file, args.output)
    except FileNotFoundError:
        print(f"error: {args.file}: no such file", file=sys.stderr)
        return EXIT_BAD_INPUT
    except AnalysisInputError as exc:
        print(f"error: {args.file}: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except OSError as exc:
        if Path(exc.filename or "") == args.output or not args.output.parent.is_dir():
            raise UsageError(
                f"-o {args.output}: cannot write the report ({exc.strerror or exc})"
            ) from None
        return _damaged(args.file, exc)
    except _OUTPUT_ERRORS:
        raise
    except Exception as exc:  # noqa: BLE001 - a damaged file: one line, not a traceback
        return _damaged(args.file, exc)
    print(f"report: {out}")
    return EXIT_OK


def _cmd_report_compare(args: argparse.Namespace) -> int:
    """``report --compare FILES -o OUT``: overlay runs of one procedure (exit 2 if mixed)."""
    from perovlab_daq.figures import AnalysisInputError
    from perovlab_daq.figures.compare import write_comparison

    for path in args.file:
        if not Path(path).exists():
            print(f"error: {path}: no such file", file=sys.stderr)
            return EXIT_BAD_INPUT
        try:
            check_regular_file(path, "run file")
        except UnsafeInputError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_BAD_INPUT
    try:
        out = write_comparison(args.file, args.output)
    except AnalysisInputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except _OUTPUT_ERRORS:
        raise
    except OSError as exc:
        if Path(exc.filename or "") == args.output:
            raise UsageError(f"-o {args.output}: cannot write ({exc.strerror or exc})") from None
        return _damaged(Path(exc.filename or args.file[0]), exc)
    except Exception as exc:  # noqa: BLE001 - a damaged file: one line, not a traceback
        return _damaged(Path(args.file[0]), exc)
    print(f"report: {out}")
    return EXIT_OK


def _damaged(path: Path, exc: BaseException) -> int:
    log.debug("reading %s failed", path, exc_info=True)
    print(f"error: {path}: cannot be read ({type(exc).__name__}: {exc})", file=sys.stderr)
    return EXIT_FAILED
