"""Finding runs in the catalogue: filters on who, what, when and key-figure ranges.

A key-figure condition is text such as ``peak_eqe_pct>=10`` parsed by a regular
expression into a name, one of ``< <= > >= = == !=`` and a finite number (nothing is
evaluated); it becomes an ``EXISTS`` on the ``key_figures`` table, so runs without that
figure never match.
"""

from __future__ import annotations

import logging
import math
import operator
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, time
from typing import Any

from sqlalchemy import Engine, and_, exists, select
from sqlalchemy.orm import Session

from .models import KeyFigure, Run

log = logging.getLogger(__name__)

_OPERATORS: dict[str, Callable[[Any, Any], Any]] = {
    "<=": operator.le,
    ">=": operator.ge,
    "==": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    ">": operator.gt,
    "=": operator.eq,
}
_CONDITION = re.compile(
    r"^\s*(?P<name>[A-Za-z_][A-Za-z0-9_]{0,127})\s*(?P<op><=|>=|==|!=|<|>|=)\s*"
    r"(?P<value>[-+]?(?:\d{1,30}\.?\d{0,30}|\.\d{1,30})(?:[eE][-+]?\d{1,3})?)\s*$"
)


class FilterError(ValueError):
    """A filter that cannot be read (exit code 2): the message names it."""


@dataclass(frozen=True)
class FigureCondition:
    """``name op value`` on a run's key figure (``peak_eqe_pct >= 10``)."""

    name: str
    op: str
    value: float

    def __str__(self) -> str:
        return f"{self.name}{self.op}{self.value:g}"


def parse_condition(text: str) -> FigureCondition:
    """Parse ``NAME OP NUMBER`` (``t50_h>=100``, ``peak_eqe_pct < 5``).

    Raises
    ------
    FilterError
        If the text is not of that form or the number is not finite.
    """
    match = _CONDITION.match(str(text)) if len(str(text)) <= 200 else None
    if match is None:
        raise FilterError(
            f"key-figure condition {str(text)[:80]!r}: expected NAME OP NUMBER with OP one of "
            "< <= > >= = != (e.g. peak_eqe_pct>=10)"
        )
    value = float(match["value"])
    if not math.isfinite(value):
        raise FilterError(f"key-figure condition {text!r}: the number must be finite")
    return FigureCondition(match["name"], match["op"], value)


def parse_time(text: str, *, option: str) -> datetime:
    """Parse an ISO 8601 date or time into naive UTC; without an offset it is local time.

    Raises
    ------
    FilterError
        Naming ``option`` if the text is not an ISO date or time.
    """
    try:
        if len(text) > 40:
            raise ValueError(text)
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise FilterError(
            f"{option} {text[:60]!r}: expected an ISO date or time such as 2026-12-03 or "
            "2026-12-03T14:00 (local time unless an offset is given)"
        ) from None
    if len(text) <= 10:  # a date alone: its midnight
        moment = datetime.combine(moment.date(), time())
    return moment.astimezone(UTC).replace(tzinfo=None)


@dataclass
class RunFilter:
    """Which runs to list: each given field must match (a list: any of its values).

    ``since`` (inclusive) and ``until`` (exclusive) bound the start time (naive UTC).
    """

    sample: Sequence[str] = ()
    procedure: Sequence[str] = ()
    status: Sequence[str] = ()
    station: Sequence[str] = ()
    since: datetime | None = None
    until: datetime | None = None
    where: Sequence[FigureCondition] = field(default_factory=tuple)

    def clauses(self) -> list[Any]:
        """Return the SQL conditions of this filter."""
        clauses: list[Any] = []
        for column, values in (
            (Run.sample, self.sample),
            (Run.procedure, self.procedure),
            (Run.status, self.status),
            (Run.station, self.station),
        ):
            if values:
                clauses.append(column.in_(list(values)))
        if self.since is not None:
            clauses.append(Run.started_utc >= self.since)
        if self.until is not None:
            clauses.append(Run.started_utc < self.until)
        for condition in self.where:
            compare = _OPERATORS[condition.op]
            clauses.append(
                exists().where(
                    and_(
                        KeyFigure.run_id == Run.run_id,
                        KeyFigure.name == condition.name,
                        compare(KeyFigure.value, condition.value),
                    )
                )
            )
        return clauses


def find_runs(engine: Engine, run_filter: RunFilter | None = None) -> list[Run]:
    """Return the runs matching ``run_filter``, oldest start first, with their figures loaded."""
    statement = select(Run).where(*(run_filter or RunFilter()).clauses())
    statement = statement.order_by(Run.started_utc, Run.run_id)
    with Session(engine, expire_on_commit=False) as session:
        runs = list(session.scalars(statement))
        for run in runs:
            session.expunge(run)
    return runs


def run_summary(run: Run) -> dict[str, Any]:
    """Return a JSON-friendly dict of a run row and its key figures (times as ISO UTC)."""
    figures = sorted(run.figures, key=lambda f: f.name)
    return {
        "run_id": run.run_id,
        "path": run.path,
        "station": run.station,
        "host": run.host,
        "sample": run.sample,
        "device": run.device,
        "pixel": run.pixel,
        "operator": run.operator,
        "procedure": run.procedure,
        "status": run.status,
        "status_reason": run.status_reason,
        "started": _iso(run.started_utc),
        "ended": _iso(run.ended_utc),
        "simulated": run.simulated,
        "figures": {f.name: (f.value if f.text is None else f.text) for f in figures},
        "units": {f.name: f.unit for f in figures if f.unit},
    }


def _iso(moment: datetime | None) -> str:
    return "" if moment is None else moment.replace(tzinfo=UTC).isoformat(timespec="milliseconds")
