"""The installed procedures, by the name a run file and the command line use.

A run file names its procedure (``entry/procedure``); that name is looked up here and
nowhere else. Nothing read from a file is ever imported: a name that is not in
:data:`PROCEDURES` is an error, never a module path. Adding a procedure means adding one
line below.
"""

from __future__ import annotations

import logging

from perovlab_daq.procedures.el_spectra import ElSpectraProcedure
from perovlab_daq.procedures.jlv import JlvProcedure
from perovlab_daq.procedures.lifetime import LifetimeProcedure
from perovlab_daq.procedures.pl_fluence import PlFluenceProcedure
from perovlab_daq.procedures.pl_spectrum import PlSpectrumProcedure
from perovlab_daq.procedures.pl_stability import PlStabilityProcedure
from perovlab_daq.procedures.plqy import PlqyProcedure

log = logging.getLogger(__name__)

#: Command-line / file name -> procedure class, in the order ``perovlab-daq list`` shows.
PROCEDURES: dict[str, type] = {
    cls.NAME: cls
    for cls in sorted(
        (
            ElSpectraProcedure,
            JlvProcedure,
            LifetimeProcedure,
            PlFluenceProcedure,
            PlSpectrumProcedure,
            PlStabilityProcedure,
            PlqyProcedure,
        ),
        key=lambda cls: cls.NAME,
    )
}


class UnknownProcedureError(ValueError):
    """A procedure name that is not installed; the message lists the known ones."""


def procedure_class(name: str) -> type:
    """Return the installed procedure class called ``name``.

    Parameters
    ----------
    name
        The procedure's name (``jlv``, ``lifetime``, ...), as given on the command line or
        stored in a run file's ``entry/procedure``.

    Raises
    ------
    UnknownProcedureError
        If no installed procedure has that name (the message lists the known ones).
    """
    cls = PROCEDURES.get(str(name))
    if cls is None:
        raise UnknownProcedureError(
            f"unknown procedure {str(name)[:80]!r} (known: {', '.join(PROCEDURES)})"
        )
    return cls
