"""The run catalogue: one table of every run (who, what, when, status, key figures).

Beside the runner and the CLI, above storage: the run file stays the record and the
catalogue can always be rebuilt from files (``perovlab-daq runs index``). SQLite beside
the data by default, PostgreSQL for many stations writing to one catalogue
(docs/catalog.md).

* :mod:`.engine` - URL resolution, connection, migrations (Alembic, on first use);
* :mod:`.models` - the ``runs`` and ``key_figures`` tables;
* :mod:`.index` - read a run file into a row, upsert it, index files and folders;
* :mod:`.query` - filters (sample, procedure, status, station, time, key-figure ranges);
* :mod:`.hooks` - what the runner calls when a run starts and ends (never raises).

Only :mod:`.hooks` is imported here: the database libraries load when first used.
"""

import logging

from .hooks import register_run_end, register_run_resuming, register_run_start

log = logging.getLogger(__name__)

__all__ = ["register_run_end", "register_run_resuming", "register_run_start"]
