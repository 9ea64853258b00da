"""Reliability suite set-up: the ``fault_class`` marker and a summary of results per fault class.

Every test of ``tests/reliability`` carries ``@pytest.mark.fault_class("...")``; at the end
``pytest tests/reliability`` prints one line per fault class with how many cases passed,
failed or were skipped (and why), so the CI log shows what was exercised.
"""

from __future__ import annotations

import logging
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

# The suite's helpers (reliability_helpers.py) sit beside the tests (import mode importlib).
sys.path.insert(0, str(Path(__file__).resolve().parent))

log = logging.getLogger(__name__)

_RESULTS: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
_SKIP_REASONS: dict[str, set[str]] = defaultdict(set)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "fault_class(name): the fault class a reliability test exercises"
    )


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[Any]) -> Any:
    report = yield
    marker = item.get_closest_marker("fault_class")
    if marker is not None:
        report.fault_class = str(marker.args[0])
    return report


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    fault_class = getattr(report, "fault_class", None)
    if fault_class is None:
        return
    if report.when == "call" or (report.when == "setup" and report.outcome != "passed"):
        outcome = report.outcome
        _RESULTS[fault_class][outcome] += 1
        if outcome == "skipped" and isinstance(report.longrepr, tuple):
            _SKIP_REASONS[fault_class].add(str(report.longrepr[2]).removeprefix("Skipped: "))
    elif report.when == "teardown" and report.outcome == "failed":
        _RESULTS[fault_class]["failed"] += 1


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not _RESULTS:
        return
    terminalreporter.section("reliability: results per fault class")
    width = max(len(name) for name in _RESULTS)
    for name in sorted(_RESULTS):
        counts = _RESULTS[name]
        verdict = "FAILED" if counts.get("failed") else "ok"
        parts = [f"{counts[k]} {k}" for k in ("passed", "failed", "skipped") if counts.get(k)]
        line = f"{name:<{width}}  {verdict:<6}  {', '.join(parts)}"
        if _SKIP_REASONS.get(name):
            line += f"  (skipped: {'; '.join(sorted(_SKIP_REASONS[name]))})"
        terminalreporter.write_line(line)


@pytest.fixture
def no_instrument(monkeypatch: pytest.MonkeyPatch) -> Any:
    """Refuse (and record) every ``Bench.open``: a malformed input must never get that far.

    Yields the list of bench names whose opening was attempted (empty when all is well).
    """
    from perovlab_daq.bench import Bench

    opened: list[str] = []

    def refuse(self: Bench) -> Bench:
        opened.append(self.config.name)
        raise RuntimeError("an instrument was opened for a malformed input")

    monkeypatch.setattr(Bench, "open", refuse)
    yield opened
