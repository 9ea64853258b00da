"""Simulated PLQY sample stage: moves the film between the de Mello sphere configurations.

The three-measurement PLQY method needs (a) empty sphere, (b) sample in the sphere
off-beam, (c) sample in the beam (REFERENCE §3); positions ``A``, ``B``, ``C``, and
``STAGE`` (sample out of the sphere, on the PL stage). A real lab moves the sample by
hand or with its own stage; this small SCPI device exists for the simulated bench.
"""

from __future__ import annotations

import logging

from perovlab_daq.instruments._common import ScpiDriver
from pymeasure.instruments import Instrument
from pymeasure.instruments.validators import strict_discrete_set

log = logging.getLogger(__name__)


class SampleStage(ScpiDriver):
    """Sample positioner with the PLQY sphere positions.

    Constructed as every bench driver: ``(adapter, name=None, **kwargs)``, see
    :class:`~instruments._common.BenchDriverMixin`.
    """

    DEFAULT_NAME = "Sample stage"
    SNAPSHOT = {"identity": "identity", "position": "position"}

    position = Instrument.control(
        "POS?",
        "POS %s",
        """Control the sample position (str strictly 'A' empty sphere, 'B' sample off-beam,
        'C' sample in beam, or 'STAGE' out of the sphere).""",
        validator=strict_discrete_set,
        values=["A", "B", "C", "STAGE"],
        cast=str,
    )
