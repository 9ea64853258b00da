"""Safety strip and simulated-bench banner: outputs and laser, bench kind, roles, the run.

The strip only displays what it is given (:meth:`InstrumentStatusPanel.show_states`); who
reads the instruments, and from which thread, is decided by the window (see
``docs/gui.md``, threading model).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

from pymeasure.display.Qt import QtCore, QtWidgets

from perovlab_daq.run_progress import EtaClock, LiveFigures

log = logging.getLogger(__name__)

_STYLE = {
    "on": "background:#d62728;color:white;font-weight:bold;",
    "off": "background:#2ca02c;color:white;",
    "unknown": "background:#c7c7c7;color:black;",
    "info": "background:#1f77b4;color:white;",
    "missing": "background:#ff7f0e;color:black;",
}


def _chip(text: str, kind: str, parent: QtWidgets.QWidget) -> QtWidgets.QLabel:
    label = QtWidgets.QLabel(text, parent)
    label.setStyleSheet(f"QLabel{{{_STYLE[kind]}border-radius:3px;padding:2px 6px;}}")
    return label


class SimulatedBanner(QtWidgets.QLabel):
    """A coloured strip across the window while the bench is simulated."""

    def __init__(self, preset: str = "", parent: Any = None) -> None:
        detail = f" (sample preset {preset})" if preset else ""
        super().__init__(f"SIMULATED BENCH \u2014 no real instrument{detail}", parent)
        self.setStyleSheet("QLabel{background:#6a3d9a;color:white;font-weight:bold;padding:3px;}")
        self.setAlignment(QtCore.Qt.AlignmentFlag.AlignCenter)
        self.setToolTip(
            "Every reading comes from the physics model behind the simulated VISA library; "
            "open the window with --bench FILE for the real instruments."
        )


class InstrumentStatusPanel(QtWidgets.QFrame):
    """The safety strip: output and laser states first, then bench kind, roles, the run.

    Red means an output or the laser emission is ON; green means it is off; grey means
    not known yet (or not readable); orange marks a role of the bench file that is not
    connected. The connected roles share one green chip (listed in its tooltip) so that
    the strip stays narrow enough for a 1280 px screen; the run text (progress, ETA, the
    live figure) gives way first when the window is narrow.

    Parameters
    ----------
    bench_label
        ``simulated`` (the banner gives the preset) or ``REAL bench: name``.
    simulated
        Whether the bench is simulated (colours the bench chip).
    connected, missing
        Roles that are open, and roles of the bench file that could not be opened.
    """

    def __init__(
        self,
        bench_label: str,
        simulated: bool,
        connected: Iterable[str],
        missing: Iterable[str] = (),
        parent: Any = None,
    ) -> None:
        super().__init__(parent)
        self.setFrameShape(QtWidgets.QFrame.Shape.StyledPanel)
        layout = QtWidgets.QHBoxLayout(self)
        layout.setContentsMargins(4, 2, 4, 2)
        layout.setSpacing(4)
        self.state_layout = QtWidgets.QHBoxLayout()
        self.state_layout.setSpacing(4)
        layout.addLayout(self.state_layout)
        self.state_chips: dict[str, QtWidgets.QLabel] = {}
        layout.addSpacing(12)
        self.bench_chip = _chip(bench_label, "info" if simulated else "missing", self)
        layout.addWidget(self.bench_chip)
        connected = list(connected)
        self.roles_chip = _chip(f"{len(connected)} instruments \u2713", "off", self)
        self.roles_chip.setToolTip("connected: " + ", ".join(connected))
        layout.addWidget(self.roles_chip)
        self.role_chips: dict[str, QtWidgets.QLabel] = {}
        for role in missing:
            chip = _chip(f"{role} \u2717", "missing", self)
            chip.setToolTip(f"{role}: in the bench file but not connected")
            self.role_chips[role] = chip
            layout.addWidget(chip)
        self.run_label = QtWidgets.QLabel("idle", self)
        self.run_label.setSizePolicy(
            QtWidgets.QSizePolicy.Policy.Ignored, QtWidgets.QSizePolicy.Policy.Preferred
        )
        # Left-aligned: on a narrow window the end (the T_x reached) gives way first;
        # progress and ETA stay. The whole text is in the tooltip.
        self.run_label.setAlignment(
            QtCore.Qt.AlignmentFlag.AlignLeft | QtCore.Qt.AlignmentFlag.AlignVCenter
        )
        layout.addSpacing(8)
        layout.addWidget(self.run_label, 1)
        self.states: dict[str, str] = {}

    def show_states(self, states: Mapping[str, str], source: str = "") -> None:
        """Show output and emission states (``role output`` -> on/off/unreadable...)."""
        self.states = dict(states)
        for name, state in states.items():
            text = state if state in ("on", "off") else "?"
            kind = {"on": "on", "off": "off"}.get(state, "unknown")
            role, _, what = name.partition(" ")
            label = (
                f"{'Laser emission' if what == 'emission' else role + ' output'}: {text.upper()}"
            )
            chip = self.state_chips.get(name)
            if chip is None:
                chip = _chip(label, kind, self)
                self.state_layout.addWidget(chip)
                self.state_chips[name] = chip
            chip.setText(label)
            chip.setStyleSheet(f"QLabel{{{_STYLE[kind]}border-radius:3px;padding:2px 6px;}}")
            chip.setToolTip(f"{name}: {state}" + (f" ({source})" if source else ""))

    def show_run(self, text: str) -> None:
        """Show what the queue is doing (``idle``, ``running jlv 45 %, ETA 0:02:10``)."""
        self.run_label.setText(text)
        self.run_label.setToolTip(text)

    def chip_text(self, name: str) -> str:
        """Return the text of a state chip (for tests)."""
        chip = self.state_chips.get(name)
        return chip.text() if chip is not None else ""


class RunProgress:
    """What the strip says about the running run: percent, ETA and the live figure.

    The live figure (lifetime: L/L0 now and T95/T90/T50 reached) comes from the rows the
    worker has copied into memory, taken once each as they arrive, through the same
    :class:`~perovlab_daq.run_progress.LiveFigures` as the console's progress line.
    """

    #: Columns the live figure reads.
    COLUMNS = ("relative_luminance", "device_time", "jlv_sweep")

    def __init__(self, name: str, run: Any) -> None:
        self.name = name
        self.run = run
        self.eta = EtaClock()
        self.live = LiveFigures(name)
        self._seen = 0

    def text(self, percent: float) -> str:
        """Return ``running lifetime 45 %, ETA 0:02:10, L/L0 0.931 at 1.2 h, T95 0.8 h``."""
        count = len(self.run)
        if self.name == "lifetime" and count > self._seen:
            columns = {
                c: self.run.column(c, self._seen, count)
                for c in self.COLUMNS
                if self.run.has_column(c)
            }
            for index in range(count - self._seen):
                self.live.add_row({c: values[index] for c, values in columns.items()})
            self._seen = count
        parts = [f"running {self.name} {percent:.0f} %", self.eta.text(percent)]
        live = self.live.text()
        return ", ".join([*parts, live] if live else parts)
