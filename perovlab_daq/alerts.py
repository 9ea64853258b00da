"""Alerts of unattended runs: a command hook and e-mail when a channel ends or reaches T_x.

A bench file's ``alerts:`` entry (``docs/bench-file.md``) says *how* to notify; a recipe
(or one of its runs) may say *when* (``alerts: [failed, T80]``). Events:

* ``finished``: a run (a channel) ended with status ``finished``;
* ``failed``: it ended any other way (failed, aborted, interrupted, could not start);
* ``T<x>`` (``T95`` ... ``T10``): its relative luminance L/L0 fell below x %.

Transports, both optional, both bounded in time and never raising into a run:

* ``command``: an argument list run without a shell (``subprocess.run(argv, shell=False)``,
  ``command_timeout_s``); ``{event}``, ``{channel}``, ``{file}``, ``{message}`` inside an
  argument are replaced by plain text substitution (no format mini-language), and the same
  values are in the environment as ``PEROVLAB_ALERT_EVENT`` ... ``PEROVLAB_ALERT_MESSAGE``;
* ``smtp``: one e-mail per alert through ``smtplib`` (``host``, ``port``, ``from``, ``to``,
  ``timeout_s``, optional ``starttls``); no authentication (a lab relay).

Alerts are sent from a thread of their own (:class:`Notifier`), so a slow mail server never
delays an acquisition. Nothing of the project is imported here.
"""

from __future__ import annotations

import logging
import os
import queue
import re
import smtplib
import subprocess
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any

log = logging.getLogger(__name__)

#: Events that are not thresholds.
END_EVENTS: tuple[str, ...] = ("finished", "failed")
#: A threshold event: T followed by a percentage 1-99 (T50 = L/L0 fell below 50 %).
THRESHOLD_PATTERN = re.compile(r"T([1-9][0-9]?)")
DEFAULT_EVENTS: tuple[str, ...] = ("finished", "failed")
MAX_COMMAND_TIMEOUT_S = 600.0
MAX_SMTP_TIMEOUT_S = 120.0
_ALERT_KEYS = ("on", "command", "command_timeout_s", "smtp")
_SMTP_KEYS = ("host", "port", "from", "to", "timeout_s", "starttls", "subject_prefix")
_ADDRESS = re.compile(r"[^@\s<>,;]+@[^@\s<>,;]+")


class AlertConfigError(ValueError):
    """An ``alerts`` entry is malformed; ``entry`` names it (``alerts.smtp.port``)."""

    def __init__(self, entry: str, problem: str) -> None:
        super().__init__(f"{entry}: {problem}")
        self.entry = entry
        self.problem = problem


@dataclass(frozen=True)
class SmtpConfig:
    """Where e-mail alerts go: an SMTP relay, sender and recipients."""

    host: str
    port: int = 25
    sender: str = "perovlab-daq@localhost"
    recipients: tuple[str, ...] = ()
    timeout_s: float = 10.0
    starttls: bool = False
    subject_prefix: str = "[perovlab-daq]"


@dataclass(frozen=True)
class AlertConfig:
    """How (command, e-mail) and, by default, on which events to notify."""

    events: tuple[str, ...] = DEFAULT_EVENTS
    command: tuple[str, ...] = ()
    command_timeout_s: float = 10.0
    smtp: SmtpConfig | None = None

    @property
    def enabled(self) -> bool:
        """Return whether any transport is configured."""
        return bool(self.command) or self.smtp is not None


@dataclass(frozen=True)
class Alert:
    """One notification: what happened to which channel, with the run file."""

    event: str
    channel: str
    file: str = ""
    message: str = ""

    def subject(self) -> str:
        """Return a one-line subject (``channel 2: failed``)."""
        return f"channel {self.channel}: {self.event}" if self.channel else self.event

    def fields(self) -> dict[str, str]:
        """Return the substitution values of a command hook."""
        return {
            "event": self.event,
            "channel": self.channel,
            "file": self.file,
            "message": self.message,
        }


def threshold_percent(event: str) -> float | None:
    """Return x of a ``T<x>`` event (``"T80"`` -> 80.0), None for other events."""
    match = THRESHOLD_PATTERN.fullmatch(event)
    return float(match.group(1)) if match else None


def check_events(value: Any, entry: str) -> tuple[str, ...]:
    """Validate a list of alert events (``[finished, failed, T80]``).

    Raises
    ------
    AlertConfigError
        For anything but a list of ``finished``, ``failed`` and ``T1``-``T99``.
    """
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value:
        raise AlertConfigError(
            entry, f"expected a list of events such as [failed, T80], got {value!r}"
        )
    events: list[str] = []
    for item in value:
        text = str(item).strip()
        if text not in END_EVENTS and threshold_percent(text) is None:
            raise AlertConfigError(
                entry, f"unknown event {item!r} (finished, failed, or T<x> with x from 1 to 99)"
            )
        if text not in events:
            events.append(text)
    return tuple(events)


def _timeout(value: Any, entry: str, high: float, default: float) -> float:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0.1 <= value <= high:
        raise AlertConfigError(entry, f"expected seconds from 0.1 to {high:g}, got {value!r}")
    return float(value)


def _smtp(value: Any) -> SmtpConfig:
    entry = "alerts.smtp"
    if not isinstance(value, Mapping):
        raise AlertConfigError(entry, f"expected a mapping (host, port, from, to), got {value!r}")
    for key in value:
        if key not in _SMTP_KEYS:
            raise AlertConfigError(
                f"{entry}.{key}", f"unknown entry (allowed: {', '.join(_SMTP_KEYS)})"
            )
    host = value.get("host")
    if not isinstance(host, str) or not host.strip() or any(c.isspace() for c in host.strip()):
        raise AlertConfigError(f"{entry}.host", f"expected a host name or address, got {host!r}")
    port = value.get("port", 25)
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise AlertConfigError(f"{entry}.port", f"expected a port from 1 to 65535, got {port!r}")
    sender = value.get("from", "perovlab-daq@localhost")
    if not isinstance(sender, str) or not _ADDRESS.fullmatch(sender):
        raise AlertConfigError(f"{entry}.from", f"expected one e-mail address, got {sender!r}")
    to = value.get("to")
    to_list = [to] if isinstance(to, str) else to
    if not isinstance(to_list, list) or not to_list:
        raise AlertConfigError(f"{entry}.to", f"expected one address or a list, got {to!r}")
    for address in to_list:
        if not isinstance(address, str) or not _ADDRESS.fullmatch(address):
            raise AlertConfigError(f"{entry}.to", f"not an e-mail address: {address!r}")
    starttls = value.get("starttls", False)
    if not isinstance(starttls, bool):
        raise AlertConfigError(f"{entry}.starttls", f"expected true or false, got {starttls!r}")
    prefix = value.get("subject_prefix", "[perovlab-daq]")
    if not isinstance(prefix, str) or len(prefix) > 80 or "\n" in prefix or "\r" in prefix:
        raise AlertConfigError(
            f"{entry}.subject_prefix", "expected one line of at most 80 characters"
        )
    return SmtpConfig(
        host=host.strip(),
        port=port,
        sender=sender,
        recipients=tuple(to_list),
        timeout_s=_timeout(value.get("timeout_s"), f"{entry}.timeout_s", MAX_SMTP_TIMEOUT_S, 10.0),
        starttls=starttls,
        subject_prefix=prefix,
    )


def parse_alerts(value: Any) -> AlertConfig:
    """Validate a bench file's ``alerts:`` mapping and return an :class:`AlertConfig`.

    Raises
    ------
    AlertConfigError
        Naming the entry (``alerts.command``) and the problem.
    """
    if value is None:
        return AlertConfig()
    if not isinstance(value, Mapping):
        raise AlertConfigError("alerts", f"expected a mapping (on, command, smtp), got {value!r}")
    for key in value:
        if key not in _ALERT_KEYS:
            raise AlertConfigError(
                f"alerts.{key}", f"unknown entry (allowed: {', '.join(_ALERT_KEYS)})"
            )
    events = check_events(value["on"], "alerts.on") if "on" in value else DEFAULT_EVENTS
    command = value.get("command")
    argv: tuple[str, ...] = ()
    if command is not None:
        if (
            not isinstance(command, list)
            or not command
            or not all(isinstance(a, str) and a and "\0" not in a for a in command)
        ):
            raise AlertConfigError(
                "alerts.command",
                "expected an argument list such as [/usr/local/bin/notify, '{event}'] "
                "(run without a shell)",
            )
        argv = tuple(command)
    return AlertConfig(
        events=events,
        command=argv,
        command_timeout_s=_timeout(
            value.get("command_timeout_s"), "alerts.command_timeout_s", MAX_COMMAND_TIMEOUT_S, 10.0
        ),
        smtp=_smtp(value["smtp"]) if value.get("smtp") is not None else None,
    )


# --------------------------------------------------------------------------- sending
def run_command(config: AlertConfig, alert: Alert) -> str:
    """Run the command hook for one alert; return ``""`` or the problem. Never raises."""
    values = alert.fields()
    argv = []
    for argument in config.command:
        for key, text in values.items():
            argument = argument.replace("{" + key + "}", text)
        argv.append(argument)
    env = dict(os.environ)
    env.update({f"PEROVLAB_ALERT_{k.upper()}": v for k, v in values.items()})
    try:
        done = subprocess.run(  # noqa: S603 - an argument list from the bench file, no shell
            argv,
            shell=False,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=config.command_timeout_s,
            env=env,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return f"alert command {argv[0]!r} did not end within {config.command_timeout_s:g} s"
    except OSError as exc:
        return f"alert command {argv[0]!r} could not run: {exc}"
    if done.returncode != 0:
        tail = done.stderr.decode("utf-8", "replace").strip()[-200:]
        return f"alert command {argv[0]!r} exited {done.returncode}: {tail}"
    return ""


def send_mail(smtp: SmtpConfig, alert: Alert) -> str:
    """Send one alert by e-mail; return ``""`` or the problem. Never raises."""
    message = EmailMessage()
    message["Subject"] = f"{smtp.subject_prefix} {alert.subject()}".strip()
    message["From"] = smtp.sender
    message["To"] = ", ".join(smtp.recipients)
    message.set_content(
        f"event: {alert.event}\nchannel: {alert.channel}\nfile: {alert.file}\n\n{alert.message}\n"
    )
    try:
        with smtplib.SMTP(smtp.host, smtp.port, timeout=smtp.timeout_s) as client:
            if smtp.starttls:
                client.starttls()
            client.send_message(message)
    except (OSError, smtplib.SMTPException) as exc:
        return f"alert e-mail to {smtp.host}:{smtp.port} failed: {exc}"
    return ""


@dataclass
class Notifier:
    """Send alerts from a thread of its own; :meth:`close` waits for the queue to drain.

    Parameters
    ----------
    config
        Transports (and the default events) from the bench file.
    events
        Events to notify (a recipe's or run's choice); default ``config.events``.
    """

    config: AlertConfig
    events: Sequence[str] | None = None
    sent: list[Alert] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._queue: queue.Queue[Alert | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def wants(self, event: str) -> bool:
        """Return whether ``event`` is to be notified."""
        chosen = self.config.events if self.events is None else self.events
        return self.config.enabled and event in chosen

    def thresholds(self) -> tuple[float, ...]:
        """Return the T_x percentages to watch, highest first (T95 before T50)."""
        chosen = self.config.events if self.events is None else self.events
        found = [threshold_percent(e) for e in chosen]
        return tuple(sorted((x for x in found if x is not None), reverse=True))

    def notify(self, alert: Alert) -> None:
        """Queue ``alert`` if its event is wanted (returns at once)."""
        if not self.wants(alert.event):
            return
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="alerts", daemon=True)
                self._thread.start()
        self._queue.put(alert)

    def _run(self) -> None:
        while True:
            alert = self._queue.get()
            if alert is None:
                return
            for problem in self._send(alert):
                log.error("%s", problem)
                self.problems.append(problem)
            self.sent.append(alert)

    def _send(self, alert: Alert) -> Iterable[str]:
        if self.config.command:
            problem = run_command(self.config, alert)
            if problem:
                yield problem
        if self.config.smtp is not None:
            problem = send_mail(self.config.smtp, alert)
            if problem:
                yield problem
        log.info("alert sent: %s", alert.subject())

    def close(self, timeout_s: float | None = None) -> None:
        """Send what is queued and stop the thread (waits at most ``timeout_s``)."""
        with self._lock:
            thread = self._thread
            self._thread = None
        if thread is None:
            return
        self._queue.put(None)
        if timeout_s is None:
            timeout_s = self.config.command_timeout_s + (
                self.config.smtp.timeout_s if self.config.smtp else 0.0
            )
            timeout_s = 2 * timeout_s + 5.0
        thread.join(timeout_s)
