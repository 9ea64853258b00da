"""Storage test set-up: the test procedures are importable and installed by name.

``HDF5Results.load`` takes a run's procedure class from ``procedures.registry`` by the
name the file stores; the procedures these tests write runs of are registered there for
each test, as an installed procedure is.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    # Writer subprocesses import the test procedures by module name.
    sys.path.insert(0, str(HERE))


@pytest.fixture(autouse=True)
def installed_test_procedures(monkeypatch: pytest.MonkeyPatch) -> None:
    """Register the storage tests' procedures under their names for one test."""
    from perovlab_daq.procedures import registry
    from storage_test_procedures import PlainProcedure, SweepProcedure
    from storage_writer_child import LoggedProcedure

    from perovlab_daq.storage.header import procedure_name

    for cls in (SweepProcedure, PlainProcedure, LoggedProcedure):
        monkeypatch.setitem(registry.PROCEDURES, procedure_name(cls), cls)
