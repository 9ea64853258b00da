"""``perovlab-daq runs``: list runs from the run catalogue; ``runs index`` rebuilds it from files.

The catalogue is ``--catalog URL`` (or an SQLite file), else the bench file's
``catalog:`` (``--bench FILE``), else ``<data folder>/catalog.sqlite`` (``--data DIR``,
default ``./data``). See docs/catalog.md.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any

from perovlab_daq.cli._common import (
    EXIT_FAILED,
    EXIT_OK,
    UsageError,
    format_figure,
    positive_int,
    say,
)

log = logging.getLogger(__name__)

#: Key figures shown by default for each procedure (``--figure`` chooses others).
HEADLINE_FIGURES = {
    "jlv": ("max_luminance_cd_m2", "peak_eqe_pct", "turn_on_voltage_v"),
    "lifetime": ("t50_h", "l0_cd_m2"),
    "el-spectra": ("first_peak_nm",),
    "pl-spectrum": ("peak_wavelength_nm", "fwhm_nm"),
    "pl-fluence": ("hysteresis_max_pct",),
    "pl-stability": ("max_centre_shift_nm",),
    "plqy": ("plqy_pct",),
}


def add_runs_parser(sub: Any) -> None:
    """Add ``runs`` (list, filter) and ``runs index PATH...`` to the subcommands ``sub``."""
    runs = sub.add_parser("runs", help="list runs from the run catalogue (filters, --json)")
    _add_catalog_options(runs, None)
    runs.add_argument("--sample", action="append", metavar="ID", help="sample (repeatable)")
    runs.add_argument("--procedure", action="append", metavar="NAME", help="procedure (repeatable)")
    runs.add_argument("--status", action="append", metavar="STATUS", help="status (repeatable)")
    runs.add_argument("--station", action="append", metavar="ID", help="station id (repeatable)")
    runs.add_argument(
        "--since", metavar="TIME", help="started at or after (ISO date/time, local unless offset)"
    )
    runs.add_argument("--until", metavar="TIME", help="started before (ISO date/time)")
    runs.add_argument(
        "--where",
        action="append",
        metavar="NAME>=VALUE",
        help="key-figure range, e.g. peak_eqe_pct>=10 (< <= > >= = !=; repeatable, all hold)",
    )
    runs.add_argument(
        "--figure", action="append", metavar="NAME", help="key figure to show (repeatable)"
    )
    runs.add_argument("--json", action="store_true", help="print one JSON document")
    runs.set_defaults(func=_cmd_runs)
    actions = runs.add_subparsers(dest="runs_command", metavar="[index PATH...]")
    index = actions.add_parser(
        "index", help="(re)build the catalogue from run files and folders (idempotent)"
    )
    index.add_argument("paths", nargs="+", type=Path, metavar="PATH")
    _add_catalog_options(index, argparse.SUPPRESS)
    index.add_argument(
        "--json", action="store_true", default=argparse.SUPPRESS, help="print one JSON summary"
    )
    index.add_argument(
        "-j",
        "--jobs",
        type=positive_int,
        default=None,
        metavar="N",
        help="processes reading files (default: one per core)",
    )
    index.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="read the files on the workers of this Dask cluster (pip install .[cluster]); "
        "they must see the same paths",
    )
    index.set_defaults(func=_cmd_index)


def _add_catalog_options(parser: argparse.ArgumentParser, default: Any) -> None:
    # The index subcommand repeats these with SUPPRESS so that values given before
    # 'index' are not reset by its defaults.
    parser.add_argument(
        "--catalog",
        metavar="URL",
        default=default,
        help="catalogue: sqlite:///FILE, postgresql://user@host/db, a file, or 'off'",
    )
    parser.add_argument(
        "--bench", type=Path, metavar="FILE", default=default, help="bench file (its catalog:)"
    )
    parser.add_argument(
        "--data",
        type=Path,
        metavar="DIR",
        default=default,
        help="data folder of the default catalogue (default ./data)",
    )


def _engine(args: argparse.Namespace) -> Any:
    from perovlab_daq.catalog.engine import CatalogError, open_catalog, resolve_url, shown_url

    bench_config = None
    if getattr(args, "bench", None) is not None:
        from perovlab_daq.bench import load_bench

        bench_config = load_bench(args.bench)
    try:
        url = resolve_url(
            getattr(args, "catalog", None),
            bench_config=bench_config,
            data_dir=getattr(args, "data", None),
        )
    except CatalogError as exc:
        raise UsageError(str(exc)) from None
    if url is None:
        raise UsageError("the catalogue is switched off ('off'): give --catalog URL")
    try:
        return open_catalog(url)
    except Exception as exc:  # noqa: BLE001 - any driver error: one line naming the catalogue
        log.debug("catalogue", exc_info=True)
        raise _CatalogDown(
            f"catalogue {shown_url(url)}: {type(exc).__name__}: {' '.join(str(exc).split())[:300]}"
        ) from None


class _CatalogDown(RuntimeError):
    pass


def _cmd_runs(args: argparse.Namespace) -> int:
    from perovlab_daq.catalog.query import (
        FilterError,
        RunFilter,
        find_runs,
        parse_condition,
        parse_time,
        run_summary,
    )

    try:
        run_filter = RunFilter(
            sample=args.sample or (),
            procedure=args.procedure or (),
            status=args.status or (),
            station=args.station or (),
            since=parse_time(args.since, option="--since") if args.since else None,
            until=parse_time(args.until, option="--until") if args.until else None,
            where=tuple(parse_condition(text) for text in args.where or ()),
        )
    except FilterError as exc:
        raise UsageError(str(exc)) from None
    try:
        runs = find_runs(_engine(args), run_filter)
    except _CatalogDown as exc:
        say(f"error: {exc}")
        return EXIT_FAILED
    summaries = [run_summary(run) for run in runs]
    if args.json:
        print(json.dumps({"count": len(summaries), "runs": summaries}))
        return EXIT_OK
    chosen = list(dict.fromkeys([*(args.figure or ()), *(c.name for c in run_filter.where)]))
    _print_table(summaries, chosen)
    return EXIT_OK


def _print_table(summaries: list[dict[str, Any]], chosen: list[str]) -> None:
    header = ["started", "station", "sample", "pixel", "procedure", "status", "key figures"]
    rows = [header]
    for run in summaries:
        names = chosen or HEADLINE_FIGURES.get(run["procedure"], ())
        figures = run["figures"]
        shown = " ".join(
            f"{name}={format_figure(figures[name])}"
            for name in names
            if figures.get(name) is not None  # NaN (undefined) is stored as no number
        )
        rows.append(
            [
                _local(run["started"]),
                run["station"],
                run["sample"],
                run["pixel"],
                run["procedure"],
                run["status"],
                shown,
            ]
        )
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(header) - 1)]
    for row in rows:
        cells = [str(cell).ljust(width) for cell, width in zip(row, widths, strict=False)]
        print("  ".join([*cells, str(row[-1])]).rstrip())
    print(f"{len(summaries)} run(s)")


def _local(iso_utc: str) -> str:
    from datetime import datetime

    if not iso_utc:
        return "-"
    return datetime.fromisoformat(iso_utc).astimezone().strftime("%Y-%m-%d %H:%M:%S")


def _cmd_index(args: argparse.Namespace) -> int:
    from perovlab_daq.catalog.index import index_paths

    try:
        engine = _engine(args)
    except _CatalogDown as exc:
        say(f"error: {exc}")
        return EXIT_FAILED
    scheduler = getattr(args, "scheduler", None)
    try:
        report = index_paths(engine, args.paths, jobs=args.jobs, scheduler=scheduler)
    except OSError as exc:  # TimeoutError included: the scheduler did not answer
        if scheduler is None:
            raise
        raise UsageError(f"--scheduler {scheduler}: cannot use the Dask cluster ({exc})") from None
    for path, problem in report.skipped:
        say(f"skipped: {path}: {problem}")
    if getattr(args, "json", False):
        print(json.dumps(report.summary()))
    else:
        print(
            f"{len(report.added)} added, {len(report.updated)} updated, "
            f"{len(report.unchanged)} unchanged, {len(report.skipped)} skipped"
        )
    sys.stdout.flush()
    return EXIT_FAILED if report.skipped else EXIT_OK
