"""Spectrometer facade for EL/PL spectra: one narrow typed interface, two back ends.

:class:`Spectrometer` mirrors the part of python-seabreeze's ``Spectrometer`` the
procedures need (raw counts, wavelengths in nm, integration time in microseconds) and
raises a single :class:`SpectrometerError`. Back ends:

- :class:`OceanSpectrometer`: Ocean Insight devices through python-seabreeze (optional
  extra ``[seabreeze]``, imported only when a device is opened);
- :class:`VisaSpectrometer`: a small SCPI command set served by the simulated bench
  (``SPEC:*``, documented in ``docs/instruments.md``).

Intensities are raw counts; dark frames and the sensitivity calibration are the
application's job. Nonlinearity correction follows seabreeze: corrected =
counts / (c0 + c1 x + ... + c7 x^7) with x the (dark-corrected) counts.
"""

from __future__ import annotations

import abc
import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
from perovlab_daq.instruments._common import InstrumentCommunicationError, ScpiDriver, shutdown_step
from pymeasure.instruments import Instrument
from pymeasure.instruments.validators import strict_range

log = logging.getLogger(__name__)


class SpectrometerError(RuntimeError):
    """Any failure of a spectrometer back end (communication, settings, bad data)."""


class SpectrometerCommunicationError(SpectrometerError, InstrumentCommunicationError):
    """The spectrometer did not answer, or its answer was unreadable (worth retrying)."""


def apply_nonlinearity(counts: np.ndarray, coefficients: Sequence[float]) -> np.ndarray:
    """Correct counts with the polynomial nonlinearity coefficients, refusing garbage.

    Parameters
    ----------
    counts : ndarray
        (Dark-corrected) counts per pixel.
    coefficients : sequence of float
        c0..cN of the correction polynomial, lowest order first.

    Returns
    -------
    ndarray
        ``counts / polynomial(counts)``.

    Raises
    ------
    SpectrometerError
        If there are no coefficients, they are all zero, or the polynomial is not finite
        and positive over the counts (factory coefficients can be zero or garbage).
    """
    coeffs = np.asarray(coefficients, dtype=float)
    if coeffs.size == 0 or not np.any(coeffs):
        raise SpectrometerError("no usable nonlinearity coefficients (empty or all zero)")
    factor = np.polynomial.polynomial.polyval(np.asarray(counts, dtype=float), coeffs)
    if not np.all(np.isfinite(factor)) or np.any(factor <= 0):
        raise SpectrometerError(
            "nonlinearity coefficients give a non-positive or non-finite factor"
        )
    return np.asarray(counts, dtype=float) / factor


class Spectrometer(abc.ABC):
    """Seabreeze-like spectrometer facade used by the procedures."""

    name: str

    @property
    @abc.abstractmethod
    def model(self) -> str:
        """Get the model name (str)."""

    @property
    @abc.abstractmethod
    def serial_number(self) -> str:
        """Get the serial number (str)."""

    @property
    @abc.abstractmethod
    def pixels(self) -> int:
        """Get the number of pixels (int)."""

    @abc.abstractmethod
    def wavelengths(self) -> np.ndarray:
        """Return the wavelength of every pixel in nm.

        Returns
        -------
        ndarray
            One float per pixel.
        """

    @abc.abstractmethod
    def intensities(
        self, correct_dark_counts: bool = False, correct_nonlinearity: bool = False
    ) -> np.ndarray:
        """Acquire one spectrum and return its counts.

        Parameters
        ----------
        correct_dark_counts : bool
            Subtract the mean of the optically masked (electric dark) pixels.
        correct_nonlinearity : bool
            Apply the factory nonlinearity polynomial.

        Returns
        -------
        ndarray
            Counts per pixel (float).
        """

    @abc.abstractmethod
    def integration_time_micros(self, integration_time_micros: int) -> None:
        """Set the integration time in microseconds.

        Parameters
        ----------
        integration_time_micros : int
            Within :attr:`integration_time_micros_limits`.
        """

    @property
    @abc.abstractmethod
    def integration_time_micros_limits(self) -> tuple[int, int]:
        """Get the (min, max) integration time in microseconds (tuple of int)."""

    @property
    @abc.abstractmethod
    def max_intensity(self) -> float:
        """Get the saturation level in counts (float)."""

    @property
    @abc.abstractmethod
    def nonlinearity_coefficients(self) -> np.ndarray:
        """Get the nonlinearity polynomial coefficients, lowest order first (ndarray)."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release the device."""

    @property
    def identity(self) -> str:
        """Get a one-line identity "model serial" (str)."""
        return f"{self.model} {self.serial_number}"

    def snapshot(self) -> dict[str, Any]:
        """Return the settings worth recording with every run.

        Returns
        -------
        dict
            Identity, pixels, integration time and its limits, saturation level.
        """
        low, high = self.integration_time_micros_limits
        return {
            "identity": self.identity,
            "model": self.model,
            "serial_number": self.serial_number,
            "pixels": self.pixels,
            "integration_time_micros": getattr(self, "_integration_time_us", None),
            "integration_time_micros_min": low,
            "integration_time_micros_max": high,
            "max_intensity": self.max_intensity,
        }

    def shutdown(self) -> None:
        """Close the device; never raises."""
        shutdown_step(getattr(self, "name", type(self).__name__), "close", self.close)


class OceanSpectrometer(Spectrometer):
    """Ocean Insight spectrometer (QE Pro, Flame, USB4000, ...) through python-seabreeze.

    Parameters
    ----------
    adapter : str or None
        Serial number of the device; empty or None opens the first one available.
    name : str
        Human-readable name used in logs.
    device : object, optional
        An already opened ``seabreeze.spectrometers.Spectrometer`` (or a test double
        with the same interface); when given, seabreeze is not imported.
    """

    def __init__(
        self, adapter: str | None = None, name: str = "Ocean spectrometer", *, device: Any = None
    ):
        self.name = name
        self._integration_time_us: int | None = None
        self._dev = device if device is not None else self._open(adapter or None)

    @staticmethod
    def _open(serial_number: str | None) -> Any:
        try:
            from seabreeze.spectrometers import Spectrometer as SeabreezeSpectrometer
        except ImportError as exc:
            raise SpectrometerError(
                "python-seabreeze is not installed; install perovlab-daq[seabreeze]"
            ) from exc
        try:
            if serial_number:
                return SeabreezeSpectrometer.from_serial_number(serial_number)
            return SeabreezeSpectrometer.from_first_available()
        except Exception as exc:  # seabreeze raises SeaBreezeError and friends
            raise SpectrometerError(f"cannot open spectrometer {serial_number!r}: {exc}") from exc

    def _call(self, what: str, func: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except SpectrometerError:
            raise
        except Exception as exc:  # one exception type for every back-end failure
            raise SpectrometerCommunicationError(f"{self.name}: {what} failed: {exc}") from exc

    @property
    def model(self) -> str:
        """Get the model name (str)."""
        return str(self._dev.model)

    @property
    def serial_number(self) -> str:
        """Get the serial number (str)."""
        return str(self._dev.serial_number)

    @property
    def pixels(self) -> int:
        """Get the number of pixels (int)."""
        return int(self._dev.pixels)

    def wavelengths(self) -> np.ndarray:
        """Return the wavelength of every pixel in nm.

        Returns
        -------
        ndarray
            One float per pixel.
        """
        return np.asarray(self._call("wavelengths", self._dev.wavelengths), dtype=float)

    def intensities(
        self, correct_dark_counts: bool = False, correct_nonlinearity: bool = False
    ) -> np.ndarray:
        """Acquire one spectrum (seabreeze applies the requested corrections).

        Parameters
        ----------
        correct_dark_counts : bool
            Subtract the electric-dark pixel mean.
        correct_nonlinearity : bool
            Apply the factory nonlinearity polynomial.

        Returns
        -------
        ndarray
            Counts per pixel (float).
        """
        counts = self._call(
            "intensities",
            self._dev.intensities,
            correct_dark_counts=correct_dark_counts,
            correct_nonlinearity=correct_nonlinearity,
        )
        return np.asarray(counts, dtype=float)

    def integration_time_micros(self, integration_time_micros: int) -> None:
        """Set the integration time in microseconds, checked against the device limits.

        Parameters
        ----------
        integration_time_micros : int
            Within :attr:`integration_time_micros_limits`.
        """
        low, high = self.integration_time_micros_limits
        value = int(integration_time_micros)
        if not low <= value <= high:
            raise SpectrometerError(f"integration time {value} us outside [{low}, {high}] us")
        self._call("integration_time_micros", self._dev.integration_time_micros, value)
        self._integration_time_us = value

    @property
    def integration_time_micros_limits(self) -> tuple[int, int]:
        """Get the (min, max) integration time in microseconds (tuple of int)."""
        low, high = self._call("limits", lambda: self._dev.integration_time_micros_limits)
        return int(low), int(high)

    @property
    def max_intensity(self) -> float:
        """Get the saturation level in counts (float)."""
        return float(self._call("max_intensity", lambda: self._dev.max_intensity))

    @property
    def nonlinearity_coefficients(self) -> np.ndarray:
        """Get the factory nonlinearity coefficients (ndarray, empty if unsupported)."""
        try:
            feature = self._dev.f.nonlinearity_coefficients
        except AttributeError:
            return np.array([], dtype=float)
        coeffs = self._call("nonlinearity", feature.get_nonlinearity_coefficients)
        return np.asarray(coeffs, dtype=float)

    def close(self) -> None:
        """Release the USB device."""
        self._call("close", self._dev.close)


def _floats(reply: str) -> np.ndarray:
    text = reply.strip()
    if not text:
        return np.array([], dtype=float)
    return np.array([float(x) for x in text.split(",")], dtype=float)


class VisaSpectrometer(ScpiDriver, Spectrometer):
    """Spectrometer behind a VISA resource speaking the ``SPEC:*`` command set.

    The simulated bench serves this command set (``sim_configs/visa_spectrometer.yaml``);
    a real Ocean device is read with :class:`OceanSpectrometer` instead.

    Constructed as every bench driver: ``(adapter, name=None, **kwargs)``, see
    :class:`~instruments._common.BenchDriverMixin`.
    """

    DEFAULT_NAME = "VISA spectrometer"
    CONNECTION = {"read_termination": "\n", "write_termination": "\n", "timeout": 10000}
    #: The facade's record; shutdown switches nothing off and leaves the connection open
    #: (``close()`` releases it).
    snapshot = Spectrometer.snapshot

    def __init__(self, adapter: Any, name: str | None = None, **kwargs: Any) -> None:
        self._wavelengths: np.ndarray | None = None
        self._integration_time_us = None
        super().__init__(adapter, name, **kwargs)

    pixel_count = Instrument.measurement(
        "SPEC:PIX?",
        """Get the number of pixels (int).""",
        cast=int,
    )

    integration_time_us = Instrument.control(
        "SPEC:INT?",
        "SPEC:INT %d",
        """Control the integration time in us (int strictly from 8000 to 3600000000 for a
        QE Pro; narrowed to the device's SPEC:INT:MIN?/MAX? once the limits are read).""",
        validator=strict_range,
        values=[8000, 3_600_000_000],
        cast=int,
        dynamic=True,
    )

    integration_time_min_us = Instrument.measurement(
        "SPEC:INT:MIN?", """Get the shortest integration time in us (int).""", cast=int
    )

    integration_time_max_us = Instrument.measurement(
        "SPEC:INT:MAX?", """Get the longest integration time in us (int).""", cast=int
    )

    saturation_counts = Instrument.measurement(
        "SPEC:SAT?", """Get the saturation level in counts (float).""", cast=float
    )

    @property
    def model(self) -> str:
        """Get the model name, second field of ``*IDN?`` (str)."""
        return self._idn_field(1)

    @property
    def serial_number(self) -> str:
        """Get the serial number, third field of ``*IDN?`` (str)."""
        return self._idn_field(2)

    def _idn_field(self, index: int) -> str:
        fields = [f.strip() for f in self._ask("*IDN?").split(",")]
        return fields[index] if len(fields) > index else ""

    def _ask(self, command: str) -> str:
        try:
            return self.ask(command)
        except Exception as exc:  # VISA timeouts/IO errors become the facade's error type
            raise SpectrometerCommunicationError(f"{self.name}: {command} failed: {exc}") from exc

    def _floats_of(self, command: str) -> np.ndarray:
        reply = self._ask(command)
        try:
            return _floats(reply)
        except ValueError as exc:  # a garbled reply: worth asking again
            raise SpectrometerCommunicationError(
                f"{self.name}: unreadable reply to {command}: {exc}"
            ) from exc

    @property
    def identity(self) -> str:
        """Get the ``*IDN?`` answer (str)."""
        return self._ask("*IDN?").strip()

    @property
    def pixels(self) -> int:
        """Get the number of pixels (int)."""
        return int(self._ask("SPEC:PIX?"))

    def wavelengths(self) -> np.ndarray:
        """Return the wavelength of every pixel in nm (read once, then cached).

        Returns
        -------
        ndarray
            One float per pixel.
        """
        if self._wavelengths is None:
            wl = self._floats_of("SPEC:WAV?")
            if wl.size == 0:
                raise SpectrometerCommunicationError(f"{self.name}: empty wavelength table")
            self._wavelengths = wl
        return self._wavelengths.copy()

    def _electric_dark_pixels(self) -> np.ndarray:
        return self._floats_of("SPEC:EDARK?").astype(int)

    def intensities(
        self, correct_dark_counts: bool = False, correct_nonlinearity: bool = False
    ) -> np.ndarray:
        """Acquire one spectrum with ``SPEC:DATA?`` and apply the requested corrections.

        Parameters
        ----------
        correct_dark_counts : bool
            Subtract the mean of the electric-dark pixels listed by ``SPEC:EDARK?``
            (raises :class:`SpectrometerError` if the device has none, as seabreeze does).
        correct_nonlinearity : bool
            Apply the ``SPEC:NLIN?`` polynomial (raises on zero/garbage coefficients).

        Returns
        -------
        ndarray
            Counts per pixel (float).
        """
        counts = self._floats_of("SPEC:DATA?")
        expected = len(self.wavelengths())
        if counts.size != expected:
            raise SpectrometerCommunicationError(
                f"{self.name}: spectrum has {counts.size} pixels, expected {expected}"
            )
        if correct_dark_counts:
            dark = self._electric_dark_pixels()
            if dark.size == 0:
                raise SpectrometerError(f"{self.name}: device has no electric dark pixels")
            counts = counts - counts[dark].mean()
        if correct_nonlinearity:
            counts = apply_nonlinearity(counts, self.nonlinearity_coefficients)
        return counts

    def integration_time_micros(self, integration_time_micros: int) -> None:
        """Set the integration time in microseconds (``SPEC:INT``).

        Parameters
        ----------
        integration_time_micros : int
            Within :attr:`integration_time_micros_limits`.
        """
        try:
            self.integration_time_us = int(integration_time_micros)
        except ValueError as exc:
            raise SpectrometerError(str(exc)) from exc
        except Exception as exc:
            raise SpectrometerCommunicationError(f"{self.name}: SPEC:INT failed: {exc}") from exc
        self._integration_time_us = int(integration_time_micros)

    @property
    def integration_time_micros_limits(self) -> tuple[int, int]:
        """Get the (min, max) integration time in us and narrow the setter check to it."""
        low = int(float(self._ask("SPEC:INT:MIN?")))
        high = int(float(self._ask("SPEC:INT:MAX?")))
        self.integration_time_us_values = [low, high]
        return low, high

    @property
    def max_intensity(self) -> float:
        """Get the saturation level in counts (float)."""
        return float(self._ask("SPEC:SAT?"))

    @property
    def nonlinearity_coefficients(self) -> np.ndarray:
        """Get the nonlinearity polynomial coefficients, lowest order first (ndarray)."""
        return self._floats_of("SPEC:NLIN?")

    def close(self) -> None:
        """Close the VISA connection."""
        try:
            self.adapter.close()
        except Exception as exc:
            raise SpectrometerError(f"{self.name}: close failed: {exc}") from exc
