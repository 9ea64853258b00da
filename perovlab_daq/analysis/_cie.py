"""CIE photopic V(lambda) and CIE 1931 2-degree colour-matching functions on a caller's grid.

The tables come from colour-science (never typed by hand, see REFERENCE section 3); they
are tabulated every 1 nm from 360 to 830 nm, linearly interpolated onto the caller's
wavelength grid and taken as zero outside that range (both functions are below 1e-4 of
their peak at the table ends). colour-science takes about a second to import, so it is
imported on first use, and the interpolated tables are cached per grid because the
same spectrometer grid is used for every spectrum of a run.
"""

from __future__ import annotations

import functools
import logging

import numpy as np

from perovlab_daq.analysis._validation import FloatArray

log = logging.getLogger(__name__)

PHOTOPIC_NAME = "CIE 1924 Photopic Standard Observer"
CMFS_NAME = "CIE 1931 2 Degree Standard Observer"


@functools.cache
def _tables() -> tuple[FloatArray, FloatArray, FloatArray]:
    """Return (wavelengths nm, V(lambda), CMFs (n, 3)) from colour-science."""
    import colour  # deferred: the import costs about a second

    photopic = colour.SDS_LEFS[PHOTOPIC_NAME]
    cmfs = colour.MSDS_CMFS[CMFS_NAME]
    if not np.array_equal(photopic.wavelengths, cmfs.wavelengths):
        raise RuntimeError("colour-science V(lambda) and CMF tables use different wavelengths")
    wavelengths = np.asarray(photopic.wavelengths, dtype=np.float64)
    log.debug("loaded CIE tables %g-%g nm from colour-science", wavelengths[0], wavelengths[-1])
    return wavelengths, np.asarray(photopic.values, np.float64), np.asarray(cmfs.values, np.float64)


@functools.lru_cache(maxsize=32)
def _on_grid(grid_bytes: bytes) -> tuple[FloatArray, FloatArray]:
    grid = np.frombuffer(grid_bytes, dtype=np.float64)
    table_nm, photopic, cmfs = _tables()
    v_lambda = np.interp(grid, table_nm, photopic, left=0.0, right=0.0)
    cmfs_on_grid = np.stack(
        [np.interp(grid, table_nm, cmfs[:, k], left=0.0, right=0.0) for k in range(3)], axis=-1
    )
    v_lambda.flags.writeable = False
    cmfs_on_grid.flags.writeable = False
    return v_lambda, cmfs_on_grid


def photopic_on_grid(wavelength_nm: FloatArray) -> FloatArray:
    """Return V(lambda) (peak 1 at 555 nm) interpolated onto ``wavelength_nm`` (read-only)."""
    return _on_grid(np.ascontiguousarray(wavelength_nm, dtype=np.float64).tobytes())[0]


def cmfs_on_grid(wavelength_nm: FloatArray) -> FloatArray:
    """Return xbar, ybar, zbar as an (n, 3) read-only array on ``wavelength_nm``."""
    return _on_grid(np.ascontiguousarray(wavelength_nm, dtype=np.float64).tobytes())[1]
