"""No import cycle among the project's modules, imports inside functions included.

The folders ``instruments/``, ``procedures/`` and ``sim_configs/`` install as
``perovlab_daq.instruments`` and so on (setup.cfg ``package_dir``); this check reads the
source tree with that mapping, so an import written either way is followed.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FOLDERS = {
    "perovlab_daq": "perovlab_daq",
    "instruments": "perovlab_daq.instruments",
    "procedures": "perovlab_daq.procedures",
    "sim_configs": "perovlab_daq.sim_configs",
}


def _modules() -> dict[str, Path]:
    found = {}
    for folder, package in FOLDERS.items():
        for path in (ROOT / folder).rglob("*.py"):
            parts = list(path.relative_to(ROOT / folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join([package, *parts])] = path
    return found


def _edges(modules: dict[str, Path]) -> dict[str, set[str]]:
    def resolve(name: str) -> str | None:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    edges: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        is_package = path.name == "__init__.py"
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = name.split(".") if is_package else name.split(".")[:-1]
                    base = base[: len(base) - (node.level - 1)]
                    prefix = ".".join(base + ([node.module] if node.module else []))
                else:
                    prefix = node.module or ""
                targets = [f"{prefix}.{alias.name}" for alias in node.names] + [prefix]
            for target in targets:
                hit = resolve(target)
                if (
                    hit
                    and hit != name
                    and not name.startswith(hit + ".")
                    and not hit.startswith(name + ".")
                ):
                    edges[name].add(hit)
    return edges


def _cycle(edges: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(edges[node]):
            if state.get(nxt) == 1:
                return path[path.index(nxt) :] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(edges):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_the_checker_sees_a_cycle():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]


def test_no_import_cycle_among_the_project_modules():
    modules = _modules()
    assert "perovlab_daq.procedures.lifetime" in modules
    edges = _edges(modules)
    assert "perovlab_daq.procedures.registry" in edges["perovlab_daq.runner"] or any(
        target.startswith("perovlab_daq.procedures") for target in edges["perovlab_daq.runner"]
    )
    assert _cycle(edges) is None, " -> ".join(_cycle(edges) or [])
