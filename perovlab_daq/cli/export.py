"""The ``perovlab-daq export FILE --csv DIR`` command: a run's tables as tidy CSV files.

The tables and their headers (quantity and unit): :mod:`perovlab_daq.figures.export`.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from perovlab_daq.cli._common import EXIT_BAD_INPUT, EXIT_FAILED, EXIT_OK, UsageError
from perovlab_daq.filecheck import DamagedFileError, NotHdf5Error, check_run_file
from perovlab_daq.safe_input import UnsafeInputError, check_output_folder, check_regular_file

log = logging.getLogger(__name__)


def add_export_parser(sub: argparse._SubParsersAction) -> None:
    """Add ``export FILE --csv DIR`` to the subcommands."""
    export = sub.add_parser(
        "export", help="write a run's tables as CSV (units in the headers) for spreadsheets"
    )
    export.add_argument("files", nargs="+", type=Path, metavar="FILE")
    export.add_argument(
        "--csv",
        type=Path,
        required=True,
        metavar="DIR",
        help="folder for the CSV files (<file stem>_<table>.csv; created if needed)",
    )
    export.set_defaults(func=_cmd_export)


def _cmd_export(args: argparse.Namespace) -> int:
    from perovlab_daq.figures.export import export_csv
    from perovlab_daq.storage import StorageError

    try:
        folder = check_output_folder(args.csv, "CSV folder")
    except UnsafeInputError as exc:
        raise UsageError(f"--csv {exc}") from None
    code = EXIT_OK
    for path in args.files:
        if not path.exists():
            print(f"error: {path}: no such file", file=sys.stderr)
            code = max(code, EXIT_BAD_INPUT)
            continue
        try:
            check_regular_file(path, "run file")
            check_run_file(path)
            written = export_csv(path, folder)
        except (UnsafeInputError, NotHdf5Error, StorageError) as exc:
            print(f"error: {path}: not a run file this program reads ({exc})", file=sys.stderr)
            code = max(code, EXIT_BAD_INPUT)
            continue
        except DamagedFileError as exc:
            print(f"error: {exc}", file=sys.stderr)
            code = max(code, EXIT_FAILED)
            continue
        except (KeyError, ValueError) as exc:
            log.debug("export of %s failed", path, exc_info=True)
            print(f"error: {path}: cannot be exported ({exc})", file=sys.stderr)
            code = max(code, EXIT_FAILED)
            continue
        for out in written:
            print(out)
    return code
