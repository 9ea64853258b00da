"""Alerts: bench-file validation, the command hook, e-mail to a local SMTP server, T_x events.

Every e-mail goes to an aiosmtpd server the test starts on 127.0.0.1; nothing leaves the
machine.
"""

from __future__ import annotations

import socket
import sys
import time
from pathlib import Path

import pytest
from rack_helpers import write_rack_bench, write_recipe

from perovlab_daq.alerts import (
    Alert,
    AlertConfig,
    AlertConfigError,
    Notifier,
    SmtpConfig,
    parse_alerts,
)
from perovlab_daq.bench import BenchError, load_bench
from perovlab_daq.sequence import load_recipe, plan_recipe, run_recipe

aiosmtpd = pytest.importorskip("aiosmtpd")


class Inbox:
    """aiosmtpd handler keeping every message received."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], str]] = []

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd API
        text = envelope.content.decode("utf-8", "replace")
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), text))
        return "250 OK"


@pytest.fixture
def smtp_server():
    from aiosmtpd.controller import Controller

    inbox = Inbox()
    with socket.socket() as probe:  # a free port on the loopback interface only
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield inbox, port
    finally:
        controller.stop()


def hook_command(tmp_path: Path) -> list[str]:
    """A hook that appends its arguments to a file (run without a shell)."""
    script = tmp_path / "hook.py"
    script.write_text(
        "import os, sys\n"
        "with open(sys.argv[1], 'a') as f:\n"
        "    f.write(' '.join(sys.argv[2:]) + ' ' + os.environ['PEROVLAB_ALERT_EVENT'] + '\\n')\n"
    )
    return [sys.executable, str(script), str(tmp_path / "hook.log"), "{event}", "ch={channel}"]


@pytest.mark.parametrize(
    ("alerts", "entry"),
    [
        ({"on": ["finished", "T120"]}, "alerts.on"),
        ({"on": ["done"]}, "alerts.on"),
        ({"command": "notify-send failed"}, "alerts.command"),
        ({"command": []}, "alerts.command"),
        ({"command_timeout_s": 0}, "alerts.command_timeout_s"),
        ({"smtp": {"port": 25, "to": "a@b"}}, "alerts.smtp.host"),
        ({"smtp": {"host": "127.0.0.1", "port": 70000, "to": "a@b"}}, "alerts.smtp.port"),
        ({"smtp": {"host": "127.0.0.1", "to": "not an address"}}, "alerts.smtp.to"),
        ({"smtp": {"host": "127.0.0.1", "to": "a@b", "password": "x"}}, "alerts.smtp.password"),
        ({"email": {}}, "alerts.email"),
    ],
)
def test_bad_alert_entries_are_refused_naming_the_entry(tmp_path: Path, alerts, entry) -> None:
    with pytest.raises(AlertConfigError) as caught:
        parse_alerts(alerts)
    assert caught.value.entry == entry
    path = write_rack_bench(tmp_path, acceleration=1000.0, alerts=alerts)
    with pytest.raises(BenchError, match=entry.replace(".", r"\.")):
        load_bench(path)


def test_command_hook_and_email_are_sent(tmp_path: Path, smtp_server) -> None:
    inbox, port = smtp_server
    config = parse_alerts(
        {
            "on": ["failed", "T80"],
            "command": hook_command(tmp_path),
            "smtp": {"host": "127.0.0.1", "port": port, "from": "rack@lab", "to": ["ann@lab"]},
        }
    )
    notifier = Notifier(config)
    notifier.notify(Alert("finished", "1", "a.h5", "not wanted"))
    notifier.notify(Alert("failed", "2", "b.h5", "source meter off the bus"))
    notifier.close()
    assert notifier.problems == []
    assert (tmp_path / "hook.log").read_text().splitlines() == ["failed ch=2 failed"]
    assert len(inbox.messages) == 1
    sender, recipients, text = inbox.messages[0]
    assert sender == "rack@lab" and recipients == ["ann@lab"]
    assert "channel 2: failed" in text and "source meter off the bus" in text


def test_a_hook_that_hangs_or_a_dead_server_never_blocks(tmp_path: Path) -> None:
    config = AlertConfig(
        events=("failed",),
        command=(sys.executable, "-c", "import time; time.sleep(30)"),
        command_timeout_s=0.5,
        smtp=SmtpConfig(host="127.0.0.1", port=9, recipients=("a@b",), timeout_s=1.0),
    )
    notifier = Notifier(config)
    started = time.monotonic()
    notifier.notify(Alert("failed", "3", "", ""))
    assert time.monotonic() - started < 0.2  # queued, not sent in the caller's thread
    notifier.close()
    assert time.monotonic() - started < 10
    assert any("did not end within 0.5 s" in p for p in notifier.problems)
    assert any("127.0.0.1:9" in p for p in notifier.problems)


def test_a_parallel_recipe_notifies_threshold_and_endings(tmp_path: Path, smtp_server) -> None:
    inbox, port = smtp_server
    alerts = {
        "command": hook_command(tmp_path),
        "smtp": {"host": "127.0.0.1", "port": port, "to": "ann@lab"},
    }
    outage = {"source_meter": {"disconnect_after_s": 0.0, "disconnect_for_s": 600}}
    bench = load_bench(
        write_rack_bench(tmp_path, acceleration=20_000.0, alerts=alerts, faults={"2": outage})
    )
    recipe = load_recipe(
        write_recipe(
            tmp_path,
            "alerts: [finished, failed, T80]\nruns:\n  - parallel:\n"
            "      - {procedure: lifetime, channel: 1, parameters: {current_density: 60}}\n"
            "      - {procedure: lifetime, channel: 2, parameters: {current_density: 60}}\n",
        )
    )
    steps = plan_recipe(recipe, bench_config=bench, output=tmp_path / "data")
    results = run_recipe(steps)
    # Channel 2's source meter is off the bus from the start: it cannot even be opened.
    assert [r.status for r in results] == ["finished", "error"]
    assert "roles.source_meter" in results[1].error
    lines = (tmp_path / "hook.log").read_text().splitlines()
    assert "T80 ch=1 T80" in lines
    assert "finished ch=1 finished" in lines
    assert "failed ch=2 failed" in lines
    assert not any("ch=2 T80" in line for line in lines)
    subjects = sorted(
        line for _f, _t, text in inbox.messages for line in text.splitlines() if "Subject" in line
    )
    assert subjects == [
        "Subject: [perovlab-daq] channel 1: T80",
        "Subject: [perovlab-daq] channel 1: finished",
        "Subject: [perovlab-daq] channel 2: failed",
    ]


def test_a_single_run_of_a_recipe_notifies_how_it_ended(tmp_path: Path) -> None:
    alerts = {"on": ["finished"], "command": hook_command(tmp_path)}
    bench = load_bench(write_rack_bench(tmp_path, acceleration=1000.0, alerts=alerts))
    recipe = load_recipe(
        write_recipe(tmp_path, "runs:\n  - {procedure: jlv, parameters: {stop_v: 3}}\n")
    )
    results = run_recipe(plan_recipe(recipe, bench_config=bench, output=tmp_path / "data"))
    assert [r.status for r in results] == ["finished"]
    assert (tmp_path / "hook.log").read_text().splitlines() == ["finished ch= finished"]
