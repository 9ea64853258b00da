"""One SMU of a Keithley 2600-series SourceMeter (2602B: smua, smub) as a channel's source meter.

Built on pymeasure's :class:`pymeasure.instruments.keithley.Keithley2600` (its
``print(errorqueue.next())`` error reading and adapter handling) with the bench
source-meter facade of ``docs/architecture.md`` §2, speaking TSP:
``smua.source.func`` (1 = DC volts, 0 = DC amps), ``smua.source.levelv``/``leveli``,
``smua.source.limiti``/``limitv``, ``smua.measure.nplc``, ``smua.source.output``, and
``print(smua.measure.iv())`` (current, tab, voltage) with ``print(smua.source.compliance)``.
Levels are written with ``%g`` (pymeasure's channel writes ``%f``, which rounds a
microampere to 0.000001 and anything smaller to 0).

Two lifetime channels may use the two SMUs of one instrument (drivers ``keithley2600a``
and ``keithley2600b`` at the same resource). Each channel opens its own VISA session; a
lock per resource, shared by every driver object of this process, keeps one channel's
query and its reply together, so the two SMUs never read each other's replies.
"""

from __future__ import annotations

import logging
import math
import threading
import warnings
from typing import Any, ClassVar

from perovlab_daq.instruments._common import (
    BOOL_1_0,
    BenchDriverMixin,
    GarbledReplyError,
    LeanQueryMixin,
    SourceMeterFacadeMixin,
    SourceMeterReading,
    StrictRepliesMixin,
)
from pymeasure.instruments import Instrument
from pymeasure.instruments.keithley import Keithley2600 as _PymeasureKeithley2600
from pymeasure.instruments.validators import strict_discrete_set, strict_range

log = logging.getLogger(__name__)

# pymeasure marks its 2600 as "SCPI unknown" and warns on every construction; this
# driver speaks TSP only and declares every command it uses.
warnings.filterwarnings(
    "ignore",
    message="It is not known whether this device support SCPI",
    category=FutureWarning,
)

#: Placeholder of the SMU name in the command strings below (``smuX`` -> ``smua``).
SMU = "smuX"
_LOCKS: dict[str, threading.RLock] = {}
_LOCKS_GUARD = threading.Lock()


def _number(value: Any) -> float:
    return float(str(value).strip())


class Keithley2600Smu(
    SourceMeterFacadeMixin,
    BenchDriverMixin,
    LeanQueryMixin,
    StrictRepliesMixin,
    _PymeasureKeithley2600,
):
    """One SMU (``smua``) of a Keithley 2600-series SourceMeter, with the source-meter facade.

    Constructed as every bench driver: ``(adapter, name=None, **kwargs)``, see
    :class:`~instruments._common.BenchDriverMixin`. :class:`Keithley2600SmuB` drives
    ``smub`` of the same instrument.
    """

    DEFAULT_NAME = "Keithley 2600 SourceMeter smua"
    SMU_NAME: ClassVar[str] = "smua"

    source_mode = Instrument.control(
        f"print({SMU}.source.func)",
        f"{SMU}.source.func=%d",
        """Control the source function (str strictly 'voltage' or 'current').""",
        validator=strict_discrete_set,
        values={"voltage": 1, "current": 0},
        map_values=True,
        get_process=lambda v: int(_number(v)),
    )
    source_voltage = Instrument.control(
        f"print({SMU}.source.levelv)",
        f"{SMU}.source.levelv=%g",
        """Control the source voltage in V (float strictly from -200 to 200).""",
        validator=strict_range,
        values=[-200, 200],
    )
    source_current = Instrument.control(
        f"print({SMU}.source.leveli)",
        f"{SMU}.source.leveli=%g",
        """Control the source current in A (float strictly from -1.5 to 1.5).""",
        validator=strict_range,
        values=[-1.5, 1.5],
    )
    compliance_current = Instrument.control(
        f"print({SMU}.source.limiti)",
        f"{SMU}.source.limiti=%g",
        """Control the current limit of a voltage source in A (float strictly from 1e-9
        to 1.5).""",
        validator=strict_range,
        values=[1e-9, 1.5],
    )
    compliance_voltage = Instrument.control(
        f"print({SMU}.source.limitv)",
        f"{SMU}.source.limitv=%g",
        """Control the voltage limit of a current source in V (float strictly from 0.02
        to 200).""",
        validator=strict_range,
        values=[0.02, 200],
    )
    current_nplc = Instrument.control(
        f"print({SMU}.measure.nplc)",
        f"{SMU}.measure.nplc=%g",
        """Control the integration time in power-line cycles (float strictly from 0.001
        to 25); one setting for voltage and current on a 2600.""",
        validator=strict_range,
        values=[0.001, 25],
    )
    voltage_nplc = current_nplc
    output_enabled = Instrument.control(
        f"print({SMU}.source.output)",
        f"{SMU}.source.output=%d",
        """Control whether the SMU's output is on (bool).""",
        **{**BOOL_1_0, "get_process": lambda v: int(_number(v))},
    )

    # -- one SMU's commands, one channel's query at a time ---------------------------
    def _own(self, command: str) -> str:
        return command.replace(SMU, self.SMU_NAME)

    def _lock(self) -> threading.RLock:
        resource = str(getattr(getattr(self.adapter, "connection", None), "resource_name", ""))
        with _LOCKS_GUARD:
            return _LOCKS.setdefault(resource, threading.RLock())

    def write(self, command: str, **kwargs: Any) -> None:  # noqa: D102 - pymeasure API
        with self._lock():
            super().write(self._own(command), **kwargs)

    def values(self, command: str, *args: Any, **kwargs: Any) -> list[Any]:  # noqa: D102
        with self._lock():
            return super().values(self._own(command), *args, **kwargs)

    def ask(self, command: str, query_delay: float | None = None) -> str:  # noqa: D102
        with self._lock():
            return super().ask(self._own(command), query_delay)

    def query_reply(self, command: str) -> str:  # noqa: D102 - LeanQueryMixin
        with self._lock():
            return super().query_reply(self._own(command))

    def _select_sense(self, mode: str) -> None:
        # measure.iv() reads current and voltage together, whatever is sourced.
        return None

    def read_all(self) -> SourceMeterReading:
        """Measure current and voltage with ``print(smua.measure.iv())`` and the compliance.

        Returns
        -------
        SourceMeterReading
            Voltage and current, time NaN (not asked), status 1 in compliance else 0.

        Raises
        ------
        GarbledReplyError
            If the reply is not two numbers or the compliance is neither true nor false.
        """
        with self._lock():
            reply = self.query_reply(f"print({SMU}.measure.iv())")
            compliance = self.query_reply(f"print({SMU}.source.compliance)").strip()
        try:
            current_a, voltage_v = (float(x) for x in reply.strip().split("\t"))
        except ValueError:
            raise GarbledReplyError(
                f"{self.name}: unreadable measure.iv() reply {reply!r}"
            ) from None
        if compliance not in ("true", "false"):
            raise GarbledReplyError(f"{self.name}: unreadable compliance reply {compliance!r}")
        limited = compliance == "true"
        return SourceMeterReading(
            voltage_v=voltage_v,
            current_a=current_a,
            time_s=math.nan,
            status=int(limited),
            in_compliance=limited,
        )


class Keithley2600SmuB(Keithley2600Smu):
    """SMU ``smub`` of a Keithley 2602B/2612B/2636B SourceMeter (see :class:`Keithley2600Smu`).

    Constructed as every bench driver: ``(adapter, name=None, **kwargs)``.
    """

    DEFAULT_NAME = "Keithley 2600 SourceMeter smub"
    SMU_NAME: ClassVar[str] = "smub"
