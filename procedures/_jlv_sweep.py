"""Voltage plan of a J-L-V sweep and the strict parsing of its bias parameters.

Used by :mod:`procedures.jlv` (and re-exported there): the fine/coarse voltage points of a
sweep, and voltages or bias lists typed as text (``"4.5V"``, ``"3, 4; 7"``), parsed as
plain numbers and never evaluated.
"""

from __future__ import annotations

import logging
import math
import re

import numpy as np
from perovlab_daq.procedures.base import ParameterError

log = logging.getLogger(__name__)

#: Most voltage points one sweep may have (a typo such as a 1 mV step over 100 V).
MAX_POINTS_PER_SWEEP = 5000
#: Most extra EL spectra in ``el_biases``.
MAX_EL_BIASES = 50

_NUMBER = re.compile(r"^[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?$")


def parse_voltage(text: str, name: str) -> float:
    """Parse one voltage written as a plain number, optionally followed by ``V``.

    Parameters
    ----------
    text : str
        E.g. ``"4"``, ``"4.5V"``, ``"-1e-1 V"``. Nothing is ever evaluated.
    name : str
        Parameter name for the error message.

    Raises
    ------
    ParameterError
        If ``text`` is not such a number, or is not finite.
    """
    token = str(text).strip()
    if token[-1:] in {"V", "v"}:
        token = token[:-1].strip()
    if not _NUMBER.match(token):
        raise ParameterError(name, text, "a number in V, such as 4 or 4.5V")
    value = float(token)
    if not math.isfinite(value):
        raise ParameterError(name, text, "a finite number in V")
    return value


def parse_bias_list(text: str, name: str = "el_biases") -> tuple[float, ...]:
    """Parse a list of biases such as ``"3, 4, 5.5V"`` (commas, semicolons or spaces).

    Parameters
    ----------
    text : str
        The list; empty for none. Every item must be a plain number (``V`` allowed).
    name : str
        Parameter name for the error message.

    Returns
    -------
    tuple of float
        The biases in V, in the order given.

    Raises
    ------
    ParameterError
        Naming the first item that is not a number, or when there are too many items.
    """
    items = [item for item in re.split(r"[,;\s]+", str(text or "").strip()) if item]
    # "4 V" splits into "4" and "V": glue a lone unit back onto its number.
    merged: list[str] = []
    for item in items:
        if item in {"V", "v"} and merged:
            merged[-1] += item
        else:
            merged.append(item)
    if len(merged) > MAX_EL_BIASES:
        raise ParameterError(name, text, f"at most {MAX_EL_BIASES} biases")
    return tuple(parse_voltage(item, name) for item in merged)


def parse_el_bias(text: str) -> float | None:
    """Parse ``el_bias``: ``"auto"`` (None: the brightest point of the sweep) or a voltage."""
    if str(text).strip().lower() == "auto":
        return None
    return parse_voltage(text, "el_bias")


def sweep_voltages(
    start_v: float, stop_v: float, changeover_v: float, fine_step_v: float, coarse_step_v: float
) -> np.ndarray:
    """Return the upward voltage points: fine steps from start to changeover, coarse above.

    Points are multiples of the step from their segment's origin (no accumulated rounding),
    rounded to 1 uV, and always end exactly at ``stop_v``.

    Parameters
    ----------
    start_v, stop_v : float
        Ends of the sweep (V), ``start_v < stop_v``.
    changeover_v : float
        Voltage (V) where the step changes, from ``start_v`` to ``stop_v`` inclusive.
    fine_step_v, coarse_step_v : float
        Steps (V) below and above ``changeover_v``, > 0.
    """
    eps = 1e-9
    n_fine = max(0, math.ceil((changeover_v - start_v) / fine_step_v - eps))
    fine = start_v + fine_step_v * np.arange(n_fine)
    n_coarse = math.floor((stop_v - changeover_v) / coarse_step_v + eps)
    coarse = changeover_v + coarse_step_v * np.arange(n_coarse + 1)
    points = np.concatenate([fine, coarse])
    if stop_v - points[-1] > eps:
        points = np.append(points, stop_v)
    return np.round(points, 6)
