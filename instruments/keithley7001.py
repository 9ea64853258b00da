"""Keithley 7001/7002 switch system driver: the pixel switch of multi-pixel substrates.

A matrix or multiplexer card connects the source meter to one pixel at a time. Channels
are SCPI channel-list entries ``card!channel`` (``1!3``); the commands are ``:ROUT:CLOS
(@1!3)``, ``:ROUT:OPEN ALL`` and ``:ROUT:CLOS?`` (answers ``(@1!3)``, ``(@)`` when all are
open) (REFERENCE §6). :meth:`Keithley7001.select` is the only way the procedures close a
channel: open all, close one, read the closed list back (break-before-make). The caller
switches the source output off first; the switch cannot see it.
"""

from __future__ import annotations

import logging
import re

from perovlab_daq.instruments._common import ScpiDriver, shutdown_step

log = logging.getLogger(__name__)

#: One channel-list entry: card ! channel (a matrix card: card ! row ! column).
_CHANNEL = re.compile(r"^\d+(!\d+){1,2}$")


class SwitchError(RuntimeError):
    """The switch did not end with exactly the requested channel closed."""


def parse_channel_list(reply: str) -> list[str]:
    """Return the channels of a SCPI channel list such as ``(@1!1,1!3)`` (``(@)`` -> [])."""
    text = reply.strip()
    if not (text.startswith("(@") and text.endswith(")")):
        raise SwitchError(f"not a channel list: {reply!r}")
    body = text[2:-1].strip()
    return [part.strip() for part in body.split(",") if part.strip()]


def check_channel(channel: str) -> str:
    """Return ``channel`` if it is one ``card!channel`` entry, else raise ValueError."""
    text = str(channel).strip()
    if not _CHANNEL.match(text):
        raise ValueError(f"switch channel must look like '1!3' (card!channel), got {channel!r}")
    return text


class Keithley7001(ScpiDriver):
    """Keithley 7001 (or 7002) switch system with a multiplexer or matrix card.

    Constructed as every bench driver: ``(adapter, name=None, **kwargs)``, see
    :class:`~instruments._common.BenchDriverMixin`. ``shutdown`` opens every channel.
    """

    DEFAULT_NAME = "Keithley 7001 switch system"
    SNAPSHOT = {"identity": "identity", "closed_channels": "closed_channels"}

    @property
    def closed_channels(self) -> list[str]:
        """Get the closed channels (list of ``card!channel`` strings, empty when all open)."""
        return parse_channel_list(self.ask(":ROUT:CLOS?"))

    def open_all(self) -> None:
        """Open every channel."""
        self.write(":ROUT:OPEN ALL")

    def close_channel(self, channel: str) -> None:
        """Close one channel (others stay as they are: use :meth:`select` to switch)."""
        self.write(f":ROUT:CLOS (@{check_channel(channel)})")

    def select(self, channel: str) -> None:
        """Connect exactly ``channel``: open all, close it, read the closed list back.

        Break-before-make. The source output must already be off.

        Raises
        ------
        SwitchError
            If the read-back is not exactly ``[channel]`` (all channels are opened again).
        """
        channel = check_channel(channel)
        self.open_all()
        self.close_channel(channel)
        closed = self.closed_channels
        if closed != [channel]:
            shutdown_step(self.name, "open all channels", self.open_all)
            raise SwitchError(f"{self.name}: closed {channel}, switch reports {closed or 'none'}")
        log.info("%s: channel %s closed", self.name, channel)

    def shutdown(self) -> None:
        """Open every channel; never raises (failures are logged)."""
        shutdown_step(self.name, "open all channels", self.open_all)
        self.isShutdown = True
        log.info("%s shut down", self.name)
