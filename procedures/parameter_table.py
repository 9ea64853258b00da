"""The documented table of every procedure parameter (``docs/parameters.md``), made from the code.

:func:`parameter_rows` lists name, unit, default, minimum and maximum of each parameter of
each installed procedure; :func:`markdown_tables` renders them and the table of renamed
parameters as the Markdown that ``docs/parameters.md`` holds between its
``<!-- parameters:begin -->`` and ``<!-- parameters:end -->`` markers. A test compares
the two, so the document cannot drift from the procedures. Regenerate with::

    python -m perovlab_daq.procedures.parameter_table > /tmp/table.md   # paste between the markers
"""

from __future__ import annotations

import logging
from typing import Any

from perovlab_daq.procedures.parameter_names import RENAMED
from perovlab_daq.procedures.registry import PROCEDURES

log = logging.getLogger(__name__)

BEGIN = "<!-- parameters:begin -->"
END = "<!-- parameters:end -->"


def parameter_rows() -> list[dict[str, Any]]:
    """Return one row per (parameter, procedure), sorted by parameter name then procedure.

    Each row: ``name``, ``procedure``, ``units``, ``default``, ``minimum``, ``maximum``,
    ``choices`` (list or None) and ``label``.
    """
    rows = []
    for procedure, cls in PROCEDURES.items():
        for name, spec in cls.parameter_specs().items():
            rows.append(
                {
                    "name": name,
                    "procedure": procedure,
                    "units": spec["units"],
                    "default": spec["default"],
                    "minimum": spec["minimum"],
                    "maximum": spec["maximum"],
                    "choices": spec.get("choices"),
                    "label": spec["label"],
                }
            )
    return sorted(rows, key=lambda row: (row["name"], row["procedure"]))


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:g}"
    text = str(value)
    return f"`{text}`" if isinstance(value, str) else text


def _range(row: dict[str, Any]) -> str:
    if row["minimum"] is not None:
        return f"{_text(row['minimum'])} to {_text(row['maximum'])}"
    if row["choices"]:
        return " \\| ".join(str(choice) for choice in row["choices"])
    return ""


def markdown_tables() -> str:
    """Return the Markdown of the parameter table and of the renamed names (no markers)."""
    lines = [
        "| name | unit | procedure | default | range | meaning |",
        "|---|---|---|---|---|---|",
    ]
    for row in parameter_rows():
        label = str(row["label"]).replace("|", "\\|")
        lines.append(
            f"| `{row['name']}` | {row['units']} | {row['procedure']} | "
            f"{_text(row['default'])} | {_range(row)} | {label} |"
        )
    lines += ["", "| old name (read, with a warning) | name |", "|---|---|"]
    lines += [f"| `{old}` | `{new}` |" for old, new in sorted(RENAMED.items())]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(markdown_tables(), end="")
