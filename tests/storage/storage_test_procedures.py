"""Procedures used by the storage tests (importable by name from writer subprocesses)."""

from __future__ import annotations

import time

import numpy as np
from pymeasure.experiment import FloatParameter, IntegerParameter, Parameter, Procedure


class SweepProcedure(Procedure):
    """A J-V-like sweep with declared column units and optional spectra."""

    NAME = "jlv"
    COLUMNS = {"time": "s", "voltage": "V", "current": "A", "current_density": "mA/cm^2"}
    DATA_COLUMNS = list(COLUMNS)

    points = IntegerParameter("Points", default=20, minimum=0, maximum=10_000_000)
    start_voltage = FloatParameter("Start voltage", units="V", default=0.0)
    stop_voltage = FloatParameter("Stop voltage", units="V", default=5.0)
    area = FloatParameter("Area", units="cm^2", default=0.09)
    spectra_every = IntegerParameter("Spectra every", default=0, minimum=0, maximum=1000)
    fail_at = IntegerParameter("Fail at", default=-1, minimum=-1, maximum=10_000_000)
    delay = FloatParameter("Delay", units="s", default=0.0, minimum=0.0, maximum=10)
    label = Parameter("Label", default="x")

    def execute(self) -> None:
        voltages = np.linspace(self.start_voltage, self.stop_voltage, max(self.points, 1))
        wavelength = np.linspace(400.0, 800.0, 1044)
        for index in range(self.points):
            if index == self.fail_at:
                raise RuntimeError(f"simulated fault at point {index}")
            if self.should_stop():
                break
            voltage = float(voltages[index])
            current = 1e-3 * voltage**2
            self.emit(
                "results",
                {
                    "time": float(index),
                    "voltage": voltage,
                    "current": current,
                    "current_density": current * 1e3 / self.area,
                },
            )
            if self.spectra_every and index % self.spectra_every == 0:
                self.emit(
                    "frame",
                    {
                        "stream": "spectra",
                        "wavelength": wavelength,
                        "intensity": np.full(1044, float(index)),
                        "context": {"bias": voltage, "laser_power": 1e-3},
                    },
                )
            if self.delay:
                time.sleep(self.delay)
        self.emit("event", {"level": "info", "kind": "sweep_done", "message": "sweep complete"})


class PlainProcedure(Procedure):
    """A plain pymeasure procedure with only DATA_COLUMNS (units in parentheses)."""

    DATA_COLUMNS = ["Voltage (V)", "Current (A)", "Comment"]
    iterations = IntegerParameter("Loop Iterations", default=5)

    def execute(self) -> None:
        for index in range(self.iterations):
            self.emit("results", {"Voltage (V)": index, "Current (A)": index * 1e-3})


class BadShutdownProcedure(SweepProcedure):
    """Finishes its sweep, then its shutdown raises."""

    def shutdown(self) -> None:
        raise RuntimeError("laser did not switch off")
