"""A station in a subprocess: registers runs in a catalogue as the runner does, or indexes.

``python catalog_child.py register URL STATION RUNS.json`` registers each run file through
the runner's hooks (start row from the plan, end row read back from the file) and waits
for every registration thread; ``python catalog_child.py index URL PATH...`` runs
``runs index``. Used by test_concurrency.py to write into one catalogue from several
processes at once.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
from pathlib import Path
from types import SimpleNamespace

from perovlab_daq.catalog import register_run_end, register_run_start
from perovlab_daq.catalog.engine import open_catalog
from perovlab_daq.catalog.index import index_paths

log = logging.getLogger(__name__)


def register(url: str, station: str, runs: list[dict]) -> None:
    """Register every run (path, run_id, procedure, sample, pixel) as a station would."""
    config = SimpleNamespace(catalog=url, station=station, simulated=True)
    for run in runs:
        path = run["path"]
        plan = SimpleNamespace(
            bench_config=config,
            sample={"sample": run["sample"], "pixel": run["pixel"]},
            procedure_cls=SimpleNamespace(NAME=run["procedure"]),
        )
        results = SimpleNamespace(path=path, run_id=run["run_id"])
        registration = register_run_start(plan, results)
        assert registration is not None
        register_run_end(registration, SimpleNamespace(path=Path(path)))
    for thread in threading.enumerate():
        if thread.name.startswith("catalog-"):
            thread.join()


def main() -> int:
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    action, url, *rest = sys.argv[1:]
    if action == "register":
        register(url, rest[0], json.loads(Path(rest[1]).read_text()))
    else:
        report = index_paths(open_catalog(url), rest)
        print(len(report.added) + len(report.updated) + len(report.unchanged))
    return 0


if __name__ == "__main__":
    sys.exit(main())
