"""SCPI spelling rules for the simulated instruments: short/long mnemonics, case, default nodes.

A SCPI instrument accepts each command header in many spellings: every mnemonic in its
short form (``OUTP``) or its long form (``OUTPUT``), in any case, with or without the
leading colon, with the numeric suffix ``1`` or without it (``OUTP1`` = ``OUTP``), and
with or without the default nodes the manual prints in brackets (``:OUTPut[1][:STATe]``
makes ``:OUTP:STAT?`` the same query as ``:OUTP?``). A boolean parameter is ``ON``/``OFF``
or ``1``/``0``, and character data such as ``VOLTage`` may be spelled long too.

pyvisa-sim matches a message against its YAML byte for byte. :class:`ScpiSpelling` sits
in front of it (used by :class:`perovlab_daq.sim.personalities.Personality`): it learns
every header the device's YAML knows (dialogues, getters, setters, error queues, status
registers) plus the queries its personality answers from the world, and rewrites a
message spelled differently into the spelling the YAML uses. A message that matches no
known header in any legal spelling is passed on unchanged (a command error, as on the
instrument); an abbreviation SCPI does not allow (``OUTPU``) is not accepted.

Default nodes are per instrument (each manual brackets its own): a personality lists
them, and a spelling that would make two known headers equal is ignored for both.

Examples
--------
>>> header_key(":outp1:stat?", default_nodes=("STAT",))
(('OUTP',), True)
>>> header_key("OUTPUT?", default_nodes=("STAT",))
(('OUTP',), True)
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from typing import Any

log = logging.getLogger(__name__)

#: SCPI mnemonics in the standard's notation: the capitals are the short form, the whole
#: word the long form (SCPI-99 vol. 1, 6.2.1; the Keithley 2400/2450/6485/6487 and OBIS
#: manuals use these). A word not listed matches only as spelled in the YAML.
MNEMONICS: tuple[str, ...] = (
    "AMPLitude", "AUTO", "CDRH", "CLEar", "CLOSe", "COMMunicate", "CURRent", "DATA", "DC",
    "ELEMents", "ERRor", "FAULt", "FORMat", "FUNCtion", "HANDshaking", "HIGH", "ILIMit",
    "IMMediate", "INFormation", "INTernal", "LEVel", "LIMit", "LOCK", "LOW", "MEASure",
    "MODel", "NPLCycles", "OPEN", "OUTPut", "POWer", "PROTection", "RANGe", "READ",
    "ROUTe", "SENSe", "SOURce", "STATe", "STATus", "SYSTem", "TRIPped", "UPPer", "VLIMit",
    "VOLTage", "WAVelength", "ZCHeck",
)  # fmt: skip


def _short(mnemonic: str) -> str:
    return "".join(c for c in mnemonic if c.isupper() or c.isdigit())


#: Long form (upper case) -> short form, e.g. ``OUTPUT`` -> ``OUTP``.
_LONG_TO_SHORT: dict[str, str] = {m.upper(): _short(m) for m in MNEMONICS}
_NODE = re.compile(r"^([A-Z]+?)(\d*)$")


def canonical_mnemonic(word: str) -> str:
    """Return the short form of one header mnemonic (any case; suffix 1 dropped).

    Parameters
    ----------
    word : str
        One node of a header, e.g. ``"Output1"``.

    Returns
    -------
    str
        ``"OUTP"`` for ``OUTP``, ``OUTPUT``, ``output1``; an unknown word upper-cased.
    """
    upper = word.upper()
    found = _NODE.match(upper)
    if found is None:
        return upper
    stem, suffix = found.groups()
    short = _LONG_TO_SHORT.get(stem, stem)
    return short + ("" if suffix in ("", "1") else suffix)


def header_key(header: str, default_nodes: Iterable[str] = ()) -> tuple[tuple[str, ...], bool]:
    """Return the spelling-free key of a command header: its short nodes and whether a query.

    Parameters
    ----------
    header : str
        The header (no parameters), e.g. ``":OUTP:STAT?"``.
    default_nodes : iterable of str
        Short forms the instrument lets the sender leave out (``"STAT"`` for
        ``:OUTPut[:STATe]``); they are dropped from the key.
    """
    query = header.endswith("?")
    nodes = [n for n in header.rstrip("?").strip().lstrip(":").split(":") if n]
    optional = set(default_nodes)
    key = tuple(c for c in (canonical_mnemonic(n) for n in nodes) if c not in optional)
    return key, query


def _split(message: str) -> tuple[str, str]:
    header, _, parameters = message.strip().partition(" ")
    return header, parameters.strip()


def _normal_parameters(parameters: str) -> str:
    return ",".join(p.strip().upper() for p in parameters.split(","))


class ScpiSpelling:
    """Rewrite a message into the spelling a pyvisa-sim device knows.

    Parameters
    ----------
    device : pyvisa_sim.devices.Device
        The YAML-built device.
    default_nodes : iterable of str
        Short forms of the nodes this instrument's manual brackets as optional.
    extra_messages : iterable of str
        Fixed messages the personality answers itself (world-driven queries).
    """

    def __init__(
        self, device: Any, default_nodes: Iterable[str] = (), extra_messages: Iterable[str] = ()
    ):
        self.default_nodes = tuple(default_nodes)
        fixed = [q.decode("ascii", errors="replace") for q in device._dialogues]
        fixed += [q.decode("ascii", errors="replace") for q in device._getters]
        fixed += [q.decode("ascii", errors="replace") for q in device._error_queues]
        fixed += [q.decode("ascii", errors="replace") for q in device._status_registers]
        fixed += list(extra_messages)
        self.known: set[str] = set(fixed)
        #: (key, query, parameters) -> the YAML's spelling of a fixed message.
        self._fixed: dict[tuple[Any, ...], str | None] = {}
        for message in fixed:
            if message.startswith("*"):
                continue  # common commands have one spelling
            header, parameters = _split(message)
            self._add(self._fixed, (*self._key(header), _normal_parameters(parameters)), message)
        #: key -> (YAML header of a setter, its property).
        self._setters: dict[tuple[Any, ...], tuple[str, Any] | None] = {}
        for name, parser, _response, _error in device._setters:
            header = _setter_header(parser)
            if header is None:
                continue
            self._add(self._setters, self._key(header), (header, device._properties[name]))

    def _key(self, header: str) -> tuple[tuple[str, ...], bool]:
        return header_key(header, self.default_nodes)

    @staticmethod
    def _add(table: dict[Any, Any], key: Any, value: Any) -> None:
        if key in table and table[key] != value:
            log.debug("%r and %r: one SCPI command, neither rewritten", table[key], value)
            table[key] = None  # ambiguous: only the exact spellings match
            return
        table[key] = value

    def rewrite(self, message: str) -> str:
        """Return ``message`` in the device's spelling (unchanged when none applies).

        Parameters
        ----------
        message : str
            One message without termination, e.g. ``":outp:stat on"``.

        Returns
        -------
        str
            e.g. ``"OUTPUT 1"`` for a 2400 whose YAML spells ``OUTPUT {}`` with 0/1.
        """
        text = message.strip()
        if text in self.known or text.startswith("*") or not text:
            return message
        header, parameters = _split(text)
        key = self._key(header)
        fixed = self._fixed.get((*key, _normal_parameters(parameters)))
        if fixed is not None:
            return fixed
        if key[1] or not parameters:
            return message
        setter = self._setters.get(key)
        if setter is None:
            return message
        yaml_header, prop = setter
        return f"{yaml_header} {_parameter(parameters, prop)}"


def _setter_header(parser: Any) -> str | None:
    """Return the header of a ``"HEADER {}"`` setter pattern, or None for another shape."""
    pattern = getattr(parser, "_regex", None)
    if pattern is None:
        return None
    found = re.fullmatch(r"\^(.*?)\\ \(\.\*\?\)\$", pattern.pattern)
    if found is None:
        return None
    return re.sub(r"\\(.)", r"\1", found.group(1))


_BOOLEAN = {"ON": "1", "OFF": "0", "1": "1", "0": "0"}


def _parameter(text: str, prop: Any) -> str:
    """Respell one parameter the way a property's YAML specs accept it.

    ``ON``/``OFF``/``1``/``0`` become what the property's valid set uses; character data
    in long form (``VOLTAGE``) becomes the short form when that is what it accepts.
    """
    specs = getattr(prop, "specs", None)
    valid = getattr(specs, "valid", None) or set()
    upper = text.strip().upper()
    if upper in _BOOLEAN and valid:
        bit = _BOOLEAN[upper]
        if valid == {0, 1}:
            return bit
        if valid == {"ON", "OFF"}:
            return "ON" if bit == "1" else "OFF"
    if valid and all(isinstance(v, str) for v in valid):
        short = canonical_mnemonic(upper) if upper.isalpha() else upper
        if short in valid:
            return short
    return text.strip()
