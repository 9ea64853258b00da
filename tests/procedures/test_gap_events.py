"""Rows further apart than two expected intervals are announced by a ``gap`` event."""

from __future__ import annotations

from typing import Any, ClassVar

from perovlab_daq.procedures.base import DaqProcedure


class _Timed(DaqProcedure):
    COLUMNS: ClassVar[dict[str, str]] = {"time": "s", "value": ""}

    def __init__(self, interval: float | None) -> None:
        super().__init__()
        self.interval = interval
        self.records: list[tuple[str, Any]] = []
        self.emit = lambda topic, record: self.records.append((topic, record))

    def expected_row_interval_s(self, row: Any) -> float | None:
        return self.interval

    def gaps(self) -> list[str]:
        return [r["message"] for t, r in self.records if t == "event" and r["kind"] == "gap"]


def test_a_pause_of_more_than_two_intervals_is_a_gap_event() -> None:
    procedure = _Timed(1.0)
    for t in (0.0, 1.0, 2.0, 5.18, 6.2):  # 3.18 s without a sample, as in the finding
        procedure.emit_row(time=t, value=1.0)
    assert len(procedure.gaps()) == 1
    assert "3.18 s" in procedure.gaps()[0]
    # the event comes before the late row
    kinds = [r.get("kind", "row") if t == "event" else "row" for t, r in procedure.records]
    assert kinds == ["row", "row", "row", "gap", "row", "row"]


def test_jitter_an_explained_pause_and_unchecked_rows_make_no_gap() -> None:
    fast = _Timed(0.05)
    for t in (0.0, 0.05, 0.3, 0.35):  # 0.25 s: over two intervals but under GAP_MIN_S
        fast.emit_row(time=t, value=1.0)
    assert fast.gaps() == []
    paused = _Timed(1.0)
    paused.emit_row(time=0.0, value=1.0)
    paused.emit_event("info", "pause", "dark level")
    paused.emit_row(time=10.0, value=1.0)
    paused.emit_row(time=20.0, value=1.0)  # not explained: a gap again
    assert len(paused.gaps()) == 1
    unchecked = _Timed(None)
    for t in (0.0, 100.0):
        unchecked.emit_row(time=t, value=1.0)
    assert unchecked.gaps() == []


def test_a_row_dict_is_emitted_as_it_is_and_keywords_win() -> None:
    procedure = _Timed(None)
    row = {"time": 0.0, "value": 1.0}
    procedure.emit_row(row)
    assert procedure.records[-1] == ("results", row)
    assert procedure.records[-1][1] is row  # not copied (a lifetime run emits 1e5 of them)
    procedure.emit_row(row, value=2.0)
    assert procedure.records[-1][1] == {"time": 0.0, "value": 2.0}
    assert row == {"time": 0.0, "value": 1.0}  # the caller's dict is left alone


def test_progress_passes_on_visible_changes_only() -> None:
    procedure = _Timed(None)
    for percent in (0.0, 0.01, 0.05, 0.1, 0.15, 0.2, 0.2, 50.0, 50.09, 99.99, 100.0, 100.0):
        procedure.emit_progress(percent)
    shown = [record for topic, record in procedure.records if topic == "progress"]
    assert shown == [0.0, 0.1, 0.2, 50.0, 99.99, 100.0]
