"""Parameter inputs of the operator window: fields that refuse, never clamp, bad values.

pymeasure's spin boxes clamp a typed value into the parameter's range (200 V against a
20 V maximum becomes 20 V) or silently fall back to the default on text they cannot
read, and the run starts with a value the operator did not type. Here every number is a
plain text field: what was typed stays as typed, and :meth:`ProcedurePage.field_problems`
checks it with :func:`perovlab_daq.runner.coerce_parameters` (the command line's check:
units accepted, range from the parameter) before anything is queued. A refused field gets
a red border, the allowed range in its tooltip and a red line under it.

:class:`ProcedurePage` is one procedure's inputs page and sequencer;
:class:`InputsPanel` the left-hand panel (procedure selector, sample identifiers, the
page of the selected procedure, data folder, Queue and Abort).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any

from pymeasure.display.inputs import StringInput
from pymeasure.display.Qt import QtWidgets
from pymeasure.display.widgets import InputsWidget, SequencerWidget
from pymeasure.experiment import FloatParameter, IntegerParameter, Parameter, Procedure

log = logging.getLogger(__name__)

_REFUSED_STYLE = "border: 2px solid #d62728;"


def parameter_order(procedure_class: type) -> list[str]:
    """Return the parameter attribute names of a class in the order they are defined."""
    names: list[str] = []
    for klass in reversed(procedure_class.__mro__):
        for name, value in vars(klass).items():
            if isinstance(value, Parameter) and name not in names:
                names.append(name)
    return names


def read_number(parameter: Parameter, text: str, name: str = "") -> float | int:
    """Read what was typed into a number field, as the command line reads ``--set``.

    Only this parameter's own range is checked here; combinations (a stop voltage below
    the start voltage...) are checked when the run is planned.

    Raises
    ------
    ValueError
        With the reason (``no value``, ``out of range``, ``not a whole number``, or the
        unit problem) as its message.
    """
    from perovlab_daq.procedures.base import ParameterError, check_parameter_value
    from perovlab_daq.runner import RunInputError, parse_quantity

    text = text.strip()
    if not text:
        raise ValueError("no value")
    try:
        number = parse_quantity(name or parameter.name, text, getattr(parameter, "units", "") or "")
    except RunInputError as exc:
        raise ValueError(str(exc).split(": ", 1)[-1]) from None
    try:
        return check_parameter_value(name or parameter.name, parameter, number)
    except ParameterError:
        whole = not isinstance(parameter, IntegerParameter) or number == int(number)
        raise ValueError("out of range" if whole else "not a whole number") from None


def allowed_range(parameter: Parameter) -> str:
    """Return what a numeric parameter accepts, as shown to the operator."""
    units = f" {parameter.units}" if getattr(parameter, "units", None) else ""
    kind = "a whole number" if isinstance(parameter, IntegerParameter) else "a number"
    return f"{kind} from {parameter.minimum:g} to {parameter.maximum:g}{units}"


@dataclass(frozen=True)
class FieldProblem:
    """A refused entry: which parameter, what was typed, why, and what is allowed."""

    name: str
    label: str
    text: str
    reason: str
    allowed: str

    def message(self) -> str:
        """One line naming the parameter, the value and the allowed range."""
        refused = f"{self.label} ({self.name}): {self.text!r} refused, {self.reason}"
        return f"{refused}; allowed: {self.allowed}"


class NumberInput(StringInput):
    """A number field that keeps exactly what was typed (no clamping, no fallback).

    The parameter's unit is shown in the label; the text may also carry a unit
    (``20 mA/cm^2``, ``0.2 A/cm^2``), converted as on the command line.
    """

    def set_parameter(self, parameter: Parameter) -> None:
        """Show the parameter's value; the tooltip gives its allowed range."""
        super().set_parameter(parameter)
        self.setToolTip(f"{parameter.name}: {allowed_range(parameter)}")

    def setValue(self, value: Any) -> None:  # noqa: N802 - pymeasure's name
        """Show ``value`` (floats with up to 10 significant digits)."""
        if isinstance(value, float) and math.isfinite(value):
            value = f"{value:.10g}"
        super().setValue(str(value))

    def value(self) -> Any:
        """Return the typed number (the default if it cannot be read: queueing refuses it)."""
        try:
            return read_number(self._parameter, self.text())
        except ValueError:
            return self._parameter.default


class CheckedInputsWidget(InputsWidget):
    """pymeasure's inputs, with :class:`NumberInput` for every float and integer parameter."""

    def _setup_ui(self) -> None:
        super()._setup_ui()
        objects = self._procedure.parameter_objects()
        self.numbers: dict[str, NumberInput] = {}
        for name in self._inputs:
            parameter = objects[name]
            if parameter.ui_class is not None:
                continue
            if isinstance(parameter, FloatParameter | IntegerParameter):
                getattr(self, name).deleteLater()
                field = NumberInput(parameter)
                setattr(self, name, field)
                self.numbers[name] = field

    def _layout(self, inputs_in_scrollarea: bool) -> None:
        super()._layout(inputs_in_scrollarea)
        objects = self._procedure.parameter_objects()
        self.errors: dict[str, QtWidgets.QLabel] = {}
        for name, label in self.labels.items():
            units = getattr(objects[name], "units", None)
            if units:
                label.setText(f"{objects[name].name} ({units}):")
        for name, field in self.numbers.items():
            layout = field.parentWidget().layout()
            error = QtWidgets.QLabel(field.parentWidget())
            error.setStyleSheet("color: #d62728;")
            error.setWordWrap(True)
            error.hide()
            layout.insertWidget(layout.indexOf(field) + 1, error)
            self.errors[name] = error


class ProcedurePage(QtWidgets.QWidget):
    """Inputs (and sequencer) of one procedure: what pymeasure's SequencerWidget calls back.

    The sequencer calls ``procedure_class``, ``displays``, ``make_procedure`` and
    ``queue(procedure=...)`` on its parent; this page forwards them to the window.
    """

    def __init__(self, window: Any, procedure_class: type) -> None:
        super().__init__(window)
        self.window_ = window
        self.procedure_class = procedure_class
        self.displays = tuple(parameter_order(procedure_class))
        self.inputs = CheckedInputsWidget(
            procedure_class, self.displays, parent=self, inputs_in_scrollarea=True
        )
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.inputs)
        self.sequencer = SequencerWidget(None, None, parent=self)
        #: parameter -> (low, high, why): limits of the open bench (:func:`bench_limits`)
        self.bench_limits: dict[str, tuple[float, float, str]] = dict(
            getattr(window, "bench_limits", {})
        )

    def field_problems(self) -> list[FieldProblem]:
        """Check every number field as typed; mark refused ones, clear the others."""
        objects = self.procedure_class.parameter_objects_of_class()
        problems = []
        for name, field in self.inputs.numbers.items():
            parameter = objects[name]
            text = field.text().strip()
            error = self.inputs.errors[name]
            allowed = allowed_range(parameter)
            try:
                number = read_number(parameter, text, name)
                low, high, why = self.bench_limits.get(name, (-math.inf, math.inf, ""))
                if not low <= number <= high:
                    units = getattr(parameter, "units", "") or ""
                    allowed = f"a number from {low:g} to {high:g} {units} ({why})"
                    raise ValueError("beyond what this bench can do")
            except ValueError as exc:
                problem = FieldProblem(name, parameter.name, text, str(exc), allowed)
                problems.append(problem)
                field.setStyleSheet(_REFUSED_STYLE)
                field.setToolTip(problem.message())
                error.setText(f"refused: allowed {problem.allowed}")
                error.setVisible(field.isVisibleTo(self.inputs))
                continue
            field.setStyleSheet("")
            field.setToolTip(f"{parameter.name}: {allowed_range(parameter)}")
            error.hide()
        return problems

    def make_procedure(self) -> Procedure:
        """Return a procedure with the values in the inputs (refused fields: defaults).

        Queueing refuses the procedure when a field is refused (:meth:`queue`), so a
        default never runs in place of what was typed.
        """
        return self.inputs.get_procedure()

    def queue(self, procedure: Procedure | None = None) -> Any:
        """Queue through the window (the sequencer's entry point); refused fields: nothing."""
        problems = self.field_problems()
        if problems:
            self.window_.refuse_fields(problems)
            return None
        return self.window_.queue(procedure=procedure or self.make_procedure())


def bench_limits(bench: Any) -> dict[str, tuple[float, float, str]]:
    """Return limits the open bench sets beyond the parameters' own ranges.

    Read once when the window opens (no run is going then). The laser's highest power
    bounds the power at the sample (filters only attenuate). An instrument that does not
    answer sets no limit (the run's own checks still apply).
    """
    limits: dict[str, tuple[float, float, str]] = {}
    laser = bench.instruments.get("laser")
    if laser is not None:
        try:
            high = float(laser.power_limits_w[1])
        except Exception as exc:  # noqa: BLE001 - a limit is a help, not a requirement
            log.warning("laser power limits not read: %s", exc)
        else:
            limits["laser_power"] = (0.0, high, f"the laser's maximum is {high:g} W")
    return limits


def build_inputs_panel(window: Any) -> QtWidgets.QWidget:
    """Lay out the window's input widgets (built in its ``_setup_ui``) as one panel.

    Procedure selector, sample identifiers and notes at the top, the selected
    procedure's parameters (they scroll) in the middle, data folder and Queue/Abort at
    the bottom: the buttons stay visible however long the parameter list is.
    """
    panel = QtWidgets.QWidget(window)
    form = QtWidgets.QVBoxLayout(panel)
    form.setContentsMargins(4, 4, 4, 4)
    form.addWidget(QtWidgets.QLabel("Procedure:", panel))
    window.procedure_box.setSizeAdjustPolicy(
        QtWidgets.QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon
    )
    window.procedure_box.setMinimumContentsLength(24)
    form.addWidget(window.procedure_box)
    grid = QtWidgets.QGridLayout()
    for index, (key, field) in enumerate(window.sample_fields.items()):
        row, column = index // 2, 2 * (index % 2)
        grid.addWidget(QtWidgets.QLabel(key.capitalize() + ":", panel), row, column)
        grid.addWidget(field, row, column + 1)
    form.addLayout(grid)
    form.addWidget(window.notes_field)
    form.addWidget(window.page_stack, 1)
    folder = QtWidgets.QHBoxLayout()
    folder.addWidget(QtWidgets.QLabel("Data folder:", panel))
    folder.addWidget(window.folder_field, 1)
    folder.addWidget(window.folder_button)
    form.addLayout(folder)
    buttons = QtWidgets.QHBoxLayout()
    buttons.addWidget(window.queue_button)
    buttons.addWidget(window.abort_button)
    buttons.addStretch()
    form.addLayout(buttons)
    return panel
