"""Rack tests: make ``rack_helpers`` importable (as tests/reliability does for its helpers)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
