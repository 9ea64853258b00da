"""Loading a run file never imports what the file names (issue 18).

A run file from elsewhere stores ``entry/procedure_class`` as ``module:Class``; before,
``HDF5Results.load`` imported that module, so a file could make the program import a
module planted in the working folder. The class now comes from the installed procedures
by the file's procedure name only.
"""

from __future__ import annotations

import sys
from pathlib import Path

import h5py
import pytest
from perovlab_daq.procedures.jlv import JlvProcedure
from perovlab_daq.procedures.registry import UnknownProcedureError
from storage_test_procedures import SweepProcedure

from perovlab_daq.storage import HDF5Results, RunReader

PLANTED = """
from pathlib import Path
Path(__file__).with_name("IMPORTED").write_text("the planted module ran")
from pymeasure.experiment import Procedure
class Evil(Procedure):
    pass
"""


def write_run(path: Path, procedure) -> Path:
    results = HDF5Results(procedure, path)
    results.start()
    results.append_row({"time": 0.0, "voltage": 1.0, "current": 2.0, "current_density": 3.0})
    results.close("finished")
    return path


@pytest.fixture
def installed_test_procedures() -> None:
    """Only the procedures procedures/registry.py installs (not the storage tests' own)."""


@pytest.fixture
def planted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A module ``evil_mod`` in the working folder that leaves a marker when imported."""
    (tmp_path / "evil_mod.py").write_text(PLANTED)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))  # importable, were anything to import it
    monkeypatch.delitem(sys.modules, "evil_mod", raising=False)
    return tmp_path / "IMPORTED"


def test_a_planted_class_path_is_never_imported(tmp_path: Path, planted: Path) -> None:
    path = write_run(tmp_path / "run.h5", JlvProcedure())
    with h5py.File(path, "r+") as file:
        file["entry"].attrs["procedure_class"] = "evil_mod:Evil"
    loaded = HDF5Results.load(path)
    assert type(loaded.procedure) is JlvProcedure  # by the name 'jlv'
    assert loaded.status == "finished" and len(loaded.data) == 1
    assert not planted.exists(), "load imported the module the file named"
    assert "evil_mod" not in sys.modules
    assert RunReader(path).procedure == "jlv" and not planted.exists()


def test_an_unknown_procedure_name_is_a_clear_error(tmp_path: Path, planted: Path) -> None:
    path = write_run(tmp_path / "run.h5", SweepProcedure(points=1))
    with h5py.File(path, "r+") as file:
        file["entry"].attrs["procedure"] = "evil_mod"
        file["entry"].attrs["procedure_class"] = "evil_mod:Evil"
    with pytest.raises(UnknownProcedureError, match=r"unknown procedure 'evil_mod'.*known: .*jlv"):
        HDF5Results.load(path)
    assert not planted.exists()
    # The explicit override still loads it, and the file reads without any procedure.
    assert type(HDF5Results.load(path, procedure_class=SweepProcedure).procedure) is SweepProcedure
    assert RunReader(path).read_columns(["voltage"])["voltage"].tolist() == [1.0]
