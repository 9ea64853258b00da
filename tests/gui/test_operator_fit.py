"""Operator window on a lab monitor: fits 1280x800, refuses bad entries at the field, banner."""

from __future__ import annotations

import pytest
from pymeasure.display.Qt import QtCore, QtWidgets


def _settle(qapp) -> None:
    for _ in range(5):
        qapp.processEvents()


def _inside(window, widget) -> bool:
    """Whether ``widget`` is shown and lies entirely inside the window's client area."""
    top_left = widget.mapTo(window, QtCore.QPoint(0, 0))
    rect = QtCore.QRect(top_left, widget.size())
    return widget.isVisible() and window.rect().contains(rect)


def _type(qtbot, field, text: str) -> None:
    field.clear()
    qtbot.keyClicks(field, text)


def test_window_fits_1280x800_with_the_safety_strip_in_view(window, qapp):
    hint = window.minimumSizeHint()
    assert hint.width() <= 1280 and hint.height() <= 800, hint
    window.resize(1280, 800)
    _settle(qapp)
    assert window.width() <= 1280 and window.height() <= 800
    window.poll_status()  # idle: the window reads the outputs itself
    _settle(qapp)
    strip = window.status_panel
    assert _inside(window, strip)
    assert set(strip.state_chips) >= {"source_meter output", "laser emission"}
    for chip in strip.state_chips.values():
        assert _inside(window, chip), chip.text()
    for control in (window.queue_button, window.abort_button, window.procedure_box):
        assert _inside(window, control)
    for name in window.classes:  # every procedure's page: the buttons stay in view
        window.select_procedure(name)
        _settle(qapp)
        assert _inside(window, window.queue_button), name


def test_simulated_bench_shows_a_banner(window):
    assert window.banner is not None
    assert window.banner.isVisible()
    assert "SIMULATED BENCH" in window.banner.text()
    assert "no real instrument" in window.banner.text()


@pytest.mark.parametrize(
    ("text", "reason"),
    [("200", "out of range"), ("abc", "cannot read"), ("5 mA", "wrong unit"), ("", "no value")],
)
def test_out_of_range_or_malformed_entry_is_refused_at_the_field(window, qtbot, text, reason):
    window.select_procedure("jlv")
    page = window.current_page
    field = page.inputs.stop_voltage  # "Stop voltage", -20 to 100 V
    window.warnings.clear()
    before = len(window.manager.experiments.queue)
    _type(qtbot, field, text)
    assert field.text() == text  # kept as typed: never clamped
    window.queue_button.click()
    assert len(window.manager.experiments.queue) == before
    assert not window.manager.is_busy()
    title, message = window.warnings[-1]
    assert title == "Cannot queue"
    assert "stop_voltage" in message and "Stop voltage" in message
    assert repr(text) in message
    assert reason in message
    assert "from -20 to 100 V" in message
    assert "d62728" in field.styleSheet()  # red border
    assert "from -20 to 100 V" in field.toolTip()
    error = page.inputs.errors["stop_voltage"]
    assert error.isVisible() and "from -20 to 100 V" in error.text()
    # corrected: the mark goes, and the value is the one typed
    _type(qtbot, field, "7.5")
    assert page.field_problems() == []
    assert field.styleSheet() == "" and not error.isVisible()
    assert page.make_procedure().stop_voltage == 7.5


def test_sequencer_refuses_a_bad_field_too(window, qtbot):
    window.select_procedure("lifetime")
    page = window.current_page
    _type(qtbot, page.inputs.compliance_voltage, "300")  # maximum 210 V
    window.warnings.clear()
    before = len(window.manager.experiments.queue)
    assert page.queue() is None  # what pymeasure's sequencer calls for each step
    assert len(window.manager.experiments.queue) == before
    assert "compliance_voltage" in window.warnings[-1][1]
    _type(qtbot, page.inputs.compliance_voltage, "12")
    assert page.field_problems() == []


def test_number_with_a_unit_is_converted(window, qtbot):
    window.select_procedure("lifetime")
    page = window.current_page
    _type(qtbot, page.inputs.current_density, "0.2 A/cm^2")
    assert page.field_problems() == []
    assert page.make_procedure().current_density == pytest.approx(200.0)
    window.set_inputs({"current_density": 20.0})
    assert page.inputs.current_density.text() == "20"


def test_fields_show_units_in_their_labels(window):
    window.select_procedure("jlv")
    labels = window.current_page.inputs.labels
    assert labels["stop_voltage"].text() == "Stop voltage (V):"
    assert isinstance(window.current_page.inputs.stop_voltage, QtWidgets.QLineEdit)


def test_strip_shows_progress_eta_and_l_over_l0_during_a_lifetime_run(window, qtbot):
    from .helpers import queue_run

    experiment = queue_run(window, "lifetime", max_duration=600_000.0)  # device s
    qtbot.waitUntil(
        lambda: experiment.browser_item.progressbar.value() >= 1 and len(experiment.run_data) > 12,
        timeout=30_000,
    )
    window.poll_status()
    text = window.status_panel.run_label.text()
    assert text.startswith("running lifetime ")
    assert "ETA " in text and "ETA ?" not in text
    assert "L/L0 0." in text
    window.abort_button.click()
    qtbot.waitUntil(lambda: not window.manager.is_busy(), timeout=30_000)
    assert window.status_panel.run_label.text() == "idle"


def test_each_field_is_checked_against_its_own_range_only(window, qtbot):
    # 0.1 s is inside the interval's range although it is below the default first
    # interval: combinations are the planner's business, not the field's.
    window.select_procedure("lifetime")
    page = window.current_page
    _type(qtbot, page.inputs.interval, "0.1")
    _type(qtbot, page.inputs.max_duration, "30")
    assert page.field_problems() == []
    _type(qtbot, page.inputs.dark_readings, "2.5")
    [problem] = page.field_problems()
    assert problem.name == "dark_readings" and problem.reason == "not a whole number"
    window.set_inputs({"interval": 100.0, "max_duration": 4000.0, "dark_readings": 2})
    assert page.field_problems() == []


def test_power_beyond_the_benchs_laser_is_refused(window, qtbot):
    high = window.bench.instruments["laser"].power_limits_w[1]  # 0.1 W on the simulated bench
    assert window.bench_limits["laser_power"][1] == high
    window.select_procedure("pl-spectrum")
    page = window.current_page
    _type(qtbot, page.inputs.laser_power, "0.5")  # inside the parameter's 0..1 W
    window.warnings.clear()
    before = len(window.manager.experiments.queue)
    window.queue_button.click()
    assert len(window.manager.experiments.queue) == before
    message = window.warnings[-1][1]
    assert "laser_power" in message and f"from 0 to {high:g} W" in message
    _type(qtbot, page.inputs.laser_power, f"{high / 2:g}")
    assert page.field_problems() == []
