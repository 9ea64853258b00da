"""Storage test set-up: make the test procedures importable by module name."""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    # Writer subprocesses and HDF5Results.load re-import procedures as "module:qualname".
    sys.path.insert(0, str(HERE))
