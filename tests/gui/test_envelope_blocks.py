"""The live curves' envelope from block extremes draws what the point-by-point one draws."""

from __future__ import annotations

import numpy as np
import pytest

from perovlab_daq.gui.curves import BLOCK, envelope


def _blocks(y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    whole = y[: len(y) // BLOCK * BLOCK].reshape(-1, BLOCK)
    return whole.min(axis=1), whole.max(axis=1)


@pytest.mark.parametrize("seed", range(6))
def test_block_envelope_keeps_every_extreme(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(400_000, 1_200_000))
    x = np.cumsum(rng.random(n))
    y = rng.standard_normal(n)
    y[rng.integers(n)] = 50.0  # a lone spike must survive
    if seed % 2:
        low, high = x[0], x[-1]
    else:
        low, high = sorted(rng.uniform(x[0], x[-1], 2))
        high = max(high, low + 0.6 * (x[-1] - x[0]))  # enough points per column for blocks
    columns = int(rng.integers(300, 1400))
    exact_x, exact_y = envelope(x, y, low, high, columns)
    fast_x, fast_y = envelope(x, y, low, high, columns, _blocks(y))
    start = max(0, int(np.searchsorted(x, low)) - 1)
    stop = min(n, int(np.searchsorted(x, high, "right")) + 1)
    assert len(fast_x) < len(x[start:stop]) / 100  # the block path was taken
    assert fast_y.max() == y[start:stop].max() and fast_y.min() == y[start:stop].min()
    assert (fast_x[0], fast_x[-1]) == (exact_x[0], exact_x[-1])
    assert np.all(np.diff(fast_x) >= 0)
    # Column edges move by less than a block: as many columns, at most a block apart.
    assert abs(len(fast_x) - len(exact_x)) <= 4
    step = np.median(np.diff(x))
    shift = np.abs(
        fast_x[2:-1:2][: len(exact_x) // 2 - 2] - exact_x[2:-1:2][: len(fast_x) // 2 - 2]
    )
    assert np.median(shift) <= BLOCK * step


def test_curve_keeps_block_extremes_as_it_grows(qapp) -> None:
    from pymeasure.display.Qt import QtGui

    from perovlab_daq.gui.curves import EnvelopeCurve

    rng = np.random.default_rng(3)
    y = rng.standard_normal(10_000)
    curve = EnvelopeCurve(QtGui.QColor("red"))
    done = 0
    for size in (7, 100, 1, 2500, 33, 7359):  # blocks completed across appends
        curve.append(np.arange(done, done + size, dtype=float), y[done : done + size])
        done += size
    low, high = _blocks(y)
    assert curve._blocks == len(low)  # noqa: SLF001
    assert np.array_equal(curve._block_min[: curve._blocks], low)  # noqa: SLF001
    assert np.array_equal(curve._block_max[: curve._blocks], high)  # noqa: SLF001
