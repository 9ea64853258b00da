"""The figures package serves every installed procedure, and the layers point one way.

A procedure added to ``procedures/registry.py`` without its ``perovlab_daq/figures``
module (or the reverse) fails here rather than on the first ``analyze`` of such a file;
a procedure module that imports a layer above it (figures, runner, bench, CLI, resume)
fails here rather than as an import cycle.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from perovlab_daq.procedures.registry import PROCEDURES

from perovlab_daq.figures import FIGURES, AnalysisInputError, figures_module

ROOT = Path(__file__).resolve().parents[2]
ABOVE_PROCEDURES = (
    "perovlab_daq.figures",
    "perovlab_daq.runner",
    "perovlab_daq.bench",
    "perovlab_daq.cli",
    "perovlab_daq.resume",
    "perovlab_daq.sequence",
    "perovlab_daq.gui",
)


def test_every_installed_procedure_has_one_figures_module() -> None:
    assert set(FIGURES) == set(PROCEDURES)
    for name, module in FIGURES.items():
        assert callable(module.key_figures), name
        assert callable(module.draw), name


def test_an_unknown_procedure_name_is_bad_input_listing_the_known_ones() -> None:
    with pytest.raises(AnalysisInputError, match="unknown procedure 'nope'.*jlv"):
        figures_module("nope")


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


@pytest.mark.parametrize(
    "path", sorted((ROOT / "procedures").glob("*.py")), ids=lambda path: path.name
)
def test_procedures_import_nothing_above_them(path: Path) -> None:
    offenders = [
        name
        for name in _imports(path)
        if any(name == top or name.startswith(top + ".") for top in ABOVE_PROCEDURES)
    ]
    assert not offenders, f"{path.name} imports {offenders}"


def test_figures_import_neither_the_runner_nor_the_cli() -> None:
    for path in sorted((ROOT / "perovlab_daq" / "figures").glob("*.py")):
        offenders = [
            name
            for name in _imports(path)
            if name.startswith(("perovlab_daq.runner", "perovlab_daq.cli", "perovlab_daq.gui"))
        ]
        assert not offenders, f"{path.name} imports {offenders}"
