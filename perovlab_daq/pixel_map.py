"""Validation of a bench's pixel map and simulated pixel faults (``roles.pixel_switch``).

Pure functions on the safe-loaded YAML: :mod:`perovlab_daq.bench` calls them and turns a
:class:`PixelMapError` into its :class:`~perovlab_daq.bench.BenchError` naming the entry.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from typing import Any

log = logging.getLogger(__name__)

#: One switch channel: card ! channel (a matrix card: card ! row ! column).
CHANNEL_PATTERN = re.compile(r"\d+(!\d+){1,2}")
PIXEL_NAME_PATTERN = re.compile(r"[A-Za-z0-9_.-]{1,32}")
PIXEL_FAULTS: tuple[str, ...] = ("short", "open")


class PixelMapError(ValueError):
    """A pixel-map or faulty-pixel entry is wrong; ``entry`` names it."""

    def __init__(self, entry: str, problem: str) -> None:
        super().__init__(f"{entry}: {problem}")
        self.entry = entry
        self.problem = problem


def check_pixel_map(value: Any) -> dict[str, str]:
    """Return ``roles.pixel_switch.pixels`` as pixel name -> channel, one channel per pixel.

    Raises
    ------
    PixelMapError
        For a missing or empty map, a malformed channel or name, or a shared channel.
    """
    entry = "roles.pixel_switch.pixels"
    if not isinstance(value, Mapping) or not value:
        raise PixelMapError(entry, "expected a mapping of pixel name: switch channel ('1': '1!1')")
    pixels: dict[str, str] = {}
    for name, channel in value.items():
        text = str(channel).strip()
        if not CHANNEL_PATTERN.fullmatch(text):
            raise PixelMapError(
                f"{entry}.{name}", f"expected a channel like '1!3', got {channel!r}"
            )
        if text in pixels.values():
            raise PixelMapError(f"{entry}.{name}", f"channel {text} is wired to two pixels")
        if not PIXEL_NAME_PATTERN.fullmatch(str(name)):
            raise PixelMapError(f"{entry}.{name}", "pixel names are letters, digits, '_', '.', '-'")
        pixels[str(name)] = text
    return pixels


def check_faulty_pixels(value: Any, names: list[str]) -> dict[str, str]:
    """Return ``sim.faulty_pixels`` as pixel name -> "short" | "open".

    Raises
    ------
    PixelMapError
        For a pixel not in ``names`` or an unknown fault kind.
    """
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise PixelMapError("sim.faulty_pixels", f"expected a mapping, got {value!r}")
    faulty: dict[str, str] = {}
    for name, kind in value.items():
        entry = f"sim.faulty_pixels.{name}"
        if str(name) not in names:
            raise PixelMapError(entry, f"no such pixel (pixels: {names})")
        if kind not in PIXEL_FAULTS:
            raise PixelMapError(entry, f"expected short or open, got {kind!r}")
        faulty[str(name)] = kind
    return faulty
