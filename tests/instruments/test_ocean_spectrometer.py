"""OceanSpectrometer against a fake python-seabreeze device (CI has no USB and no seabreeze)."""

import sys
from unittest.mock import Mock

import numpy as np
import pytest
from perovlab_daq.instruments.spectrometer import OceanSpectrometer, SpectrometerError


class SeabreezeSpectrometerAPI:
    """The public interface of seabreeze.spectrometers.Spectrometer this facade uses."""

    model = "QE-PRO"
    serial_number = "QEP01234"
    pixels = 1044
    integration_time_micros_limits = (8000, 3600000000)
    max_intensity = 200000.0
    f = None

    def wavelengths(self): ...
    def intensities(self, correct_dark_counts=False, correct_nonlinearity=False): ...
    def integration_time_micros(self, integration_time_micros): ...
    def close(self): ...


@pytest.fixture
def fake():
    dev = Mock(spec=SeabreezeSpectrometerAPI)
    dev.model, dev.serial_number, dev.pixels = "QE-PRO", "QEP01234", 3
    dev.integration_time_micros_limits = (8000, 3600000000)
    dev.max_intensity = 200000.0
    dev.wavelengths.return_value = np.array([500.0, 501.0, 502.0])
    dev.intensities.return_value = np.array([10, 20, 30])
    dev.f = Mock()
    dev.f.nonlinearity_coefficients.get_nonlinearity_coefficients.return_value = [1.0, 1e-7]
    return dev


def test_facade_delegates_to_seabreeze(fake):
    spec = OceanSpectrometer(device=fake)
    assert spec.model == "QE-PRO" and spec.serial_number == "QEP01234" and spec.pixels == 3
    assert list(spec.wavelengths()) == [500.0, 501.0, 502.0]
    counts = spec.intensities(correct_dark_counts=True, correct_nonlinearity=True)
    fake.intensities.assert_called_once_with(correct_dark_counts=True, correct_nonlinearity=True)
    assert counts.dtype == float and list(counts) == [10.0, 20.0, 30.0]
    assert spec.max_intensity == 200000.0
    assert list(spec.nonlinearity_coefficients) == [1.0, 1e-7]


def test_integration_time_checked_against_limits(fake):
    spec = OceanSpectrometer(device=fake)
    spec.integration_time_micros(10000)
    fake.integration_time_micros.assert_called_once_with(10000)
    with pytest.raises(SpectrometerError):
        spec.integration_time_micros(1000)
    assert fake.integration_time_micros.call_count == 1
    assert spec.snapshot()["integration_time_micros"] == 10000


def test_backend_errors_become_spectrometer_error(fake):
    fake.intensities.side_effect = RuntimeError("USB transfer failed")
    spec = OceanSpectrometer(device=fake)
    with pytest.raises(SpectrometerError, match="USB transfer failed"):
        spec.intensities()


def test_shutdown_closes_and_never_raises(fake):
    fake.close.side_effect = OSError("gone")
    spec = OceanSpectrometer(device=fake)
    spec.shutdown()
    fake.close.assert_called_once()


def test_missing_nonlinearity_feature_gives_empty_array(fake):
    fake.f = Mock(spec=[])
    assert OceanSpectrometer(device=fake).nonlinearity_coefficients.size == 0


def test_without_seabreeze_installed_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "seabreeze", None)
    monkeypatch.setitem(sys.modules, "seabreeze.spectrometers", None)
    with pytest.raises(SpectrometerError, match="seabreeze"):
        OceanSpectrometer("QEP01234")


def test_opens_by_serial_number_through_seabreeze(monkeypatch, fake):
    module = Mock()
    module.Spectrometer.from_serial_number.return_value = fake
    monkeypatch.setitem(sys.modules, "seabreeze", Mock(spectrometers=module))
    monkeypatch.setitem(sys.modules, "seabreeze.spectrometers", module)
    spec = OceanSpectrometer("QEP01234")
    module.Spectrometer.from_serial_number.assert_called_once_with("QEP01234")
    assert spec.model == "QE-PRO"
