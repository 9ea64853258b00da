"""Thorlabs FW102C six-position filter wheel driver (neutral-density steps for fluence series).

Serial protocol (FW102C manual, "Command line"): commands end with CR; the wheel echoes
each command, then the reply (for queries) and a ``>`` prompt without terminator.
"""

from __future__ import annotations

import logging

from perovlab_daq.instruments._common import BenchDriverMixin, InstrumentCommunicationError
from pymeasure.instruments import Instrument

log = logging.getLogger(__name__)


class FW102CError(RuntimeError):
    """The wheel answered ``Command error ...`` or broke the echo/prompt protocol."""


class FW102CCommunicationError(FW102CError, InstrumentCommunicationError):
    """The wheel's echo or prompt was lost or garbled: worth retrying."""


class FW102C(BenchDriverMixin, Instrument):
    """Thorlabs FW102C filter wheel.

    Constructed as every bench driver: ``(adapter, name=None, **kwargs)``, see
    :class:`~instruments._common.BenchDriverMixin`. The adapter is a serial port
    such as ``ASRL2::INSTR``.
    """

    POSITIONS = range(1, 7)
    DEFAULT_NAME = "Thorlabs FW102C filter wheel"
    CONNECTION = {
        "read_termination": "\r",
        "write_termination": "\r",
        "timeout": 5000,
        "asrl": {"baud_rate": 115200},
    }
    SNAPSHOT = {"identity": "identity", "position": "position"}

    def _exchange(self, command: str, query: bool) -> str:
        self.write(command)
        echo = self.read().strip()
        if echo != command:
            self._discard_pending()
            raise FW102CCommunicationError(f"{self.name}: expected echo {command!r}, got {echo!r}")
        reply = self.read().strip() if query else ""
        prompt = self.read_bytes(1)
        if prompt != b">":
            # A set command that fails answers an error line (then the prompt).
            reply = (prompt + self.read().encode()).decode(errors="replace").strip()
            self.read_bytes(1)
        if reply.startswith("Command error"):
            raise FW102CError(f"{self.name}: {command!r} -> {reply}")
        return reply

    def _discard_pending(self) -> None:
        """Drop what is left of a broken exchange so the next one starts in step."""
        connection = getattr(self.adapter, "connection", None)
        if connection is None:
            return
        timeout = connection.timeout
        try:
            connection.timeout = 50
            for _ in range(16):
                connection.read_raw()
        except Exception as exc:  # noqa: BLE001 - nothing pending any more (timeout)
            log.debug("%s: discarded pending input until %s", self.name, exc)
        finally:
            connection.timeout = timeout

    @property
    def position(self) -> int:
        """Control the filter position (int strictly from 1 to 6)."""
        return int(self._exchange("pos?", query=True))

    @position.setter
    def position(self, value: int) -> None:
        if int(value) != value or int(value) not in self.POSITIONS:
            raise ValueError(f"position must be an int from 1 to 6, got {value!r}")
        self._exchange(f"pos={int(value)}", query=False)

    @property
    def position_count(self) -> int:
        """Get the number of positions of the wheel (int, 6 or 12)."""
        return int(self._exchange("pcount?", query=True))

    @property
    def identity(self) -> str:
        """Get the ``*idn?`` answer (str)."""
        return self._exchange("*idn?", query=True)
