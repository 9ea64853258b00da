"""Simulated PLQY sample stage: moves the film between the de Mello sphere configurations.

The three-measurement PLQY method needs (a) empty sphere, (b) sample in the sphere
off-beam, (c) sample in the beam (REFERENCE §3); positions ``A``, ``B``, ``C``, and
``STAGE`` (sample out of the sphere, on the PL stage). A real lab moves the sample by
hand or with its own stage; this small SCPI device exists for the simulated bench.
"""

from __future__ import annotations

import logging
from typing import Any

from pymeasure.instruments import Instrument, SCPIMixin
from pymeasure.instruments.validators import strict_discrete_set

from instruments._common import StrictRepliesMixin

log = logging.getLogger(__name__)


class SampleStage(StrictRepliesMixin, SCPIMixin, Instrument):
    """Sample positioner with the PLQY sphere positions.

    Parameters
    ----------
    adapter : str or pymeasure Adapter
        VISA resource name or adapter.
    name : str
        Human-readable name used in logs.
    **kwargs
        Passed on to the adapter.
    """

    def __init__(self, adapter: Any, name: str = "Sample stage", **kwargs: Any):
        kwargs.setdefault("read_termination", "\n")
        kwargs.setdefault("write_termination", "\n")
        kwargs.setdefault("timeout", 5000)
        super().__init__(adapter, name, **kwargs)

    position = Instrument.control(
        "POS?",
        "POS %s",
        """Control the sample position (str strictly 'A' empty sphere, 'B' sample off-beam,
        'C' sample in beam, or 'STAGE' out of the sphere).""",
        validator=strict_discrete_set,
        values=["A", "B", "C", "STAGE"],
        cast=str,
    )

    @property
    def identity(self) -> str:
        """Get the ``*IDN?`` answer (str)."""
        return str(self.id).strip()

    def snapshot(self) -> dict[str, Any]:
        """Return the settings worth recording with every run.

        Returns
        -------
        dict
            Identity and position.
        """
        return {"identity": self.identity, "position": self.position}

    def shutdown(self) -> None:
        """Mark the stage shut down (it stays where it is); never raises."""
        self.isShutdown = True
