"""E-mails of one fingerprint thread together; digests show their count; bodies name the
process and host that raised the alert.

Against a real SMTP server (aiosmtpd on 127.0.0.1): the headers checked are those of the
messages it received, parsed as a mail client would.
"""

from __future__ import annotations

import base64
import os
import re
import socket
import subprocess
import sys
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from flask_alerting import Alert, FlaskAlerting, MemoryNotifier, SMTPNotifier
from flask_alerting.dispatch import Throttle
from flask_alerting.flood import FloodGuard
from flask_alerting.metrics.alerts import metric_alert
from flask_alerting.metrics.machine import Event
from flask_alerting.metrics.rules import Rule
from flask_alerting.notifiers.smtp import thread_id, thread_index, thread_root
from flask_alerting.notifiers.webhook import alert_json
from flask_alerting.render import html_body, subject, text_body
from flask_alerting.store import decode_alert, encode_alert
from tests.conftest import FakeClock
from tests.mail_thread_app import make_app
from tests.smtp_server import SMTPServer

ROOT = Path(__file__).resolve().parent.parent
T0 = datetime(2024, 5, 1, 12, 0, 0, tzinfo=timezone.utc)
LABELS = {"app": "shop", "host": "web-1"}
ROOT_ID = re.compile(r"<[0-9a-f]{32}\.thread@example\.com>")


def notifier_for(server: SMTPServer) -> SMTPNotifier:
    return SMTPNotifier(
        server.host, server.port, security="none", sender="Alerts <alerts@example.com>",
        recipients="admin@example.com", timeout=10.0,
    )  # fmt: skip


def plain(message: EmailMessage) -> str:
    part = message.get_body(("plain",))
    assert part is not None
    text = part.get_content()
    assert isinstance(text, str)
    return text.replace("\r\n", "\n")


def html(message: EmailMessage) -> str:
    part = message.get_body(("html",))
    assert part is not None
    text = part.get_content()
    assert isinstance(text, str)
    return text.replace("\r\n", "\n")


def thread_guid(message: EmailMessage) -> bytes:
    """The GUID of the Thread-Index header block (what names an Outlook conversation)."""
    block = base64.b64decode(str(message["Thread-Index"]), validate=True)
    assert len(block) == 22 and block[0] == 1
    return block[6:]


def assert_one_thread(messages: list[EmailMessage]) -> str:
    """Each message has an ID of its own; all answer one root that none of them has."""
    ids = [str(m["Message-ID"]) for m in messages]
    assert len(set(ids)) == len(ids)
    roots = {str(m["In-Reply-To"]) for m in messages} | {str(m["References"]) for m in messages}
    assert len(roots) == 1
    (root,) = roots
    assert ROOT_ID.fullmatch(root), root
    assert root not in ids
    assert len({thread_guid(m) for m in messages}) == 1
    return root


def _rule() -> Rule:
    return Rule(name="queue-depth", probe=lambda: 0.0, threshold=100.0, unit="jobs",
                hysteresis=10.0)  # fmt: skip


# -- one thread per fingerprint ----------------------------------------------------------------


def test_first_alert_its_digest_and_a_second_window_thread_together(
    app: Flask,
    make_alerting: Callable[..., FlaskAlerting],
    smtp_server: SMTPServer,
    smtp_config: dict[str, Any],
    clock: FakeClock,
) -> None:
    app.config.update(smtp_config)
    alerting = make_alerting(app, throttle_seconds=60, clock=clock)
    with app.app_context():
        alerting.alert("Disk nearly full", "2% left", fingerprint="disk:/")
        alerting.alert("Disk nearly full", "1% left", fingerprint="disk:/")
        alerting.alert("Queue stuck", "no job for 10 min", fingerprint="queue")
        assert alerting.flush(10.0)
        clock.advance(61)  # the window ends: one digest, of one occurrence
        assert alerting.flush(10.0)
        clock.advance(61)  # an empty window is forgotten: the next alert is a first one
        assert alerting.flush(10.0)
        alerting.alert("Disk nearly full", "0% left", fingerprint="disk:/")
        assert alerting.flush(10.0)
    messages = smtp_server.wait_for(4)
    assert len(messages) == 4
    disk = [m for m in messages if "Disk" in str(m["Subject"])]
    (queue,) = [m for m in messages if "Queue" in str(m["Subject"])]
    assert [str(m["Subject"]) for m in disk] == [
        "[testapp] Disk nearly full",
        "[testapp] (1x) Disk nearly full",
        "[testapp] Disk nearly full",
    ]
    root = assert_one_thread(disk)
    # Another fingerprint, another thread.
    assert str(queue["References"]) != root
    assert thread_guid(queue) != thread_guid(disk[0])


def test_metric_firing_reminder_and_resolved_thread_together(smtp_server: SMTPServer) -> None:
    notifier = notifier_for(smtp_server)
    rule = _rule()
    events = [
        (Event("firing", rule, 150.0, 30.0), T0),
        (Event("reminder", rule, 170.0, 3630.0, reminders=1), T0 + timedelta(hours=1)),
        (Event("resolved", rule, 20.0, 3700.0), T0 + timedelta(hours=1, minutes=2)),
    ]
    alerts = [metric_alert(event, labels=LABELS, now=now) for event, now in events]
    assert len({a.fingerprint for a in alerts}) == 1
    for alert in alerts:
        notifier.send(alert)
    messages = smtp_server.wait_for(3)
    assert_one_thread(messages)
    subjects = [str(m["Subject"]) for m in messages]
    assert subjects[0].startswith("[shop] queue-depth has exceeded the threshold")
    assert subjects[1].startswith("[shop] queue-depth is still above the threshold")
    assert subjects[2].startswith("[shop] RESOLVED: queue-depth is back under the threshold")
    # Outlook orders a conversation by the time in the Thread-Index header block.
    stamps = [base64.b64decode(str(m["Thread-Index"]))[1:6] for m in messages]
    assert stamps == sorted(stamps) and len(set(stamps)) == 3


def test_the_thread_is_named_by_app_and_fingerprint_only() -> None:
    first = Alert(title="a", labels=LABELS, fingerprint="fp", timestamp=T0, pid=1)
    same = [
        first.replace(title="b", occurrences=7, details={"digest": {"count": 7}}),
        first.replace(status="resolved", severity="critical", kind="metric"),
        first.replace(labels={**LABELS, "host": "web-2"}, pid=2),
        first.replace(timestamp=T0 + timedelta(days=3)),
    ]
    for alert in same:
        assert thread_id(alert) == thread_id(first)
        assert thread_root(alert, "example.com") == thread_root(first, "example.com")
    for other in (
        first.replace(fingerprint="fp2"),
        first.replace(labels={**LABELS, "app": "shop-admin"}),
    ):
        assert thread_id(other) != thread_id(first)
    # The name of a thread must not change between versions (or hosts running different
    # versions would start a second thread for one incident): pinned.
    assert str(thread_id(first)) == "b3db32b1-5a24-5c80-a520-1bfcb81479a8"
    assert thread_root(first, "example.com") == (
        "<b3db32b15a245c80a5201bfcb81479a8.thread@example.com>"
    )


def test_the_thread_index_carries_the_time_and_the_thread(smtp_server: SMTPServer) -> None:
    alert = Alert(title="a", labels=LABELS, fingerprint="fp", timestamp=T0)
    block = base64.b64decode(thread_index(alert))
    assert len(block) == 22 and block[0] == 1
    assert block[6:] == thread_id(alert).bytes
    # The 40 high bits of the FILETIME (100 ns since 1601-01-01) of T0.
    filetime = int((T0 - datetime(1601, 1, 1, tzinfo=timezone.utc)).total_seconds()) * 10**7
    assert int.from_bytes(block[1:6], "big") == filetime >> 24


def test_two_processes_name_the_same_thread_and_each_their_own_pid(
    smtp_server: SMTPServer,
) -> None:
    app, alerting = make_app(smtp_server.port)
    try:
        assert app.test_client().get("/pay/1").status_code == 500
        assert alerting.flush(10.0)
        smtp_server.wait_for(1)
        child = subprocess.run(
            # Not "-m": the exception class must be tests.mail_thread_app's, not __main__'s.
            [sys.executable, "-c", "from tests.mail_thread_app import main; main()",
             str(smtp_server.port)],  # fmt: skip
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT), "PYTHONHASHSEED": "12345"},
            capture_output=True,
            text=True,
            timeout=60,
        )
    finally:
        alerting.shutdown(5.0)
    assert child.returncode == 0, child.stderr
    child_pid = int(child.stdout.split()[-1])
    assert child_pid != os.getpid()
    here, there = smtp_server.wait_for(2)
    # The same error in two processes: one fingerprint, one thread, two messages.
    assert here["X-Alert-Fingerprint"] == there["X-Alert-Fingerprint"]
    assert_one_thread([here, there])
    host = socket.gethostname()
    assert f"Raised by: pid {os.getpid()} on {host}\n" in plain(here)
    assert f"Raised by: pid {child_pid} on {host}\n" in plain(there)
    assert f"Raised by: pid {child_pid} on {host}\n" in html(there)


# -- hostile fingerprints ----------------------------------------------------------------------

HOSTILE = {
    "crlf": "job-17\r\nBcc: victim@example.com\r\n\r\nbody",
    "secret": "session=eyJhbGciOi.s3cr3t-token-abcdef",
    "angle": "<root@evil.example> <other@evil.example>",
    "long": "x" * 5000,
    "non_ascii": "\u00e9\u4e2d\u0000\u202e\ufeff",
    "folding": "a\tb   c\x0bd\x0ce\u2028f",
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_a_hostile_fingerprint_never_reaches_a_threading_header(
    app: Flask,
    make_alerting: Callable[..., FlaskAlerting],
    smtp_server: SMTPServer,
    smtp_config: dict[str, Any],
    case: str,
) -> None:
    fingerprint = HOSTILE[case]
    app.config.update(smtp_config)
    alerting = make_alerting(app)
    with app.app_context():
        alerting.alert("Job failed", "details", fingerprint=fingerprint)
        # (prefixed: a fingerprint is cut at 200 characters)
        alerting.alert("Job failed", "details", fingerprint="2-" + fingerprint)
        assert alerting.flush(10.0)
    first, second = smtp_server.wait_for(2)
    for message in (first, second):
        assert not message.defects
        assert message["Bcc"] is None and message.get_all("References") is not None
        # Nothing of the fingerprint in these headers: a hash, the sender's domain.
        assert ROOT_ID.fullmatch(str(message["References"]))
        assert str(message["In-Reply-To"]) == str(message["References"])
        assert re.fullmatch(r"<[0-9.]+@example\.com>", str(message["Message-ID"]))
        assert re.fullmatch(r"[A-Za-z0-9+/]{30}==", str(message["Thread-Index"]))
        for name in ("Message-ID", "In-Reply-To", "References", "Thread-Index"):
            assert len(message.get_all(name) or []) == 1
    # Two fingerprints, two threads, however alike.
    assert str(first["References"]) != str(second["References"])


# -- the digest count in the subject -----------------------------------------------------------


def _digest(occurrences: int) -> Alert:
    clock = FakeClock()
    throttle = Throttle(60.0, clock, wall_clock=lambda: T0)
    first = Alert(title="Disk nearly full", labels=LABELS, fingerprint="disk", timestamp=T0)
    assert throttle.offer(first)
    for _ in range(occurrences):
        assert not throttle.offer(first.replace(timestamp=T0 + timedelta(seconds=1)))
    clock.advance(61)
    (digest,) = throttle.pop_due()
    return digest


def test_a_digest_subject_always_shows_its_count() -> None:
    first = Alert(title="Disk nearly full", labels=LABELS, fingerprint="disk", timestamp=T0)
    assert subject(first, None) == "[shop] Disk nearly full"
    assert subject(_digest(1), None) == "[shop] (1x) Disk nearly full"
    assert subject(_digest(12), None) == "[shop] (12x) Disk nearly full"
    assert subject(_digest(1), "[prod]") == "[prod] (1x) Disk nearly full"
    assert subject(_digest(1), "") == "(1x) Disk nearly full"
    # Told drops do not make a first alert a digest, nor change a digest's count.
    assert subject(first.replace(dropped=3), None) == "[shop] Disk nearly full"
    assert subject(_digest(1).replace(dropped=3), None) == "[shop] (1x) Disk nearly full"
    resolved = _digest(1).replace(status="resolved")
    assert subject(resolved, None) == "[shop] RESOLVED: (1x) Disk nearly full"


def test_a_flood_summary_is_not_a_digest_and_shows_no_count() -> None:
    clock = FakeClock()
    guard = FloodGuard(1, clock, labels=LABELS, wall_clock=lambda: T0)
    assert guard.admit()
    guard.fold("fp-1", "KeyError in cart.add")
    clock.advance(61)
    summary = guard.pop_due()
    assert summary is not None and not summary.is_digest
    assert subject(summary, None) == "[shop] 1 more alert of 1 kind, over the rate limit"


def test_the_one_x_digest_reaches_the_mailbox(
    app: Flask,
    make_alerting: Callable[..., FlaskAlerting],
    smtp_server: SMTPServer,
    smtp_config: dict[str, Any],
    clock: FakeClock,
) -> None:
    app.config.update(smtp_config)
    alerting = make_alerting(app, throttle_seconds=60, clock=clock)

    @app.route("/fail")
    def fail() -> str:
        raise LookupError("no such order")

    client = app.test_client()
    assert client.get("/fail").status_code == 500
    assert client.get("/fail").status_code == 500
    assert alerting.flush(10.0)
    clock.advance(61)
    assert alerting.flush(10.0)
    first, digest = smtp_server.wait_for(2)
    assert str(first["Subject"]) == "[testapp] LookupError: no such order in fail"
    assert str(digest["Subject"]) == "[testapp] (1x) LookupError: no such order in fail"
    assert "This alert occurred 1 more time" in plain(digest)
    assert_one_thread([first, digest])


# -- the process and host that raised it -------------------------------------------------------


def test_the_body_names_the_process_and_host_in_plain_text_and_html() -> None:
    alert = Alert(title="t", labels=LABELS, pid=4242, timestamp=T0)
    assert "\nRaised by: pid 4242 on web-1\n" in text_body(alert)
    assert "\nRaised by: pid 4242 on web-1\n" in html_body(alert)
    # Either alone when the other is unknown; nothing when neither is known.
    assert "\nRaised by: pid 4242\n" in text_body(alert.replace(labels={"app": "shop"}))
    assert "\nRaised by: host web-1\n" in text_body(alert.replace(pid=None))
    assert "Raised by" not in text_body(Alert(title="t", pid=None, timestamp=T0))
    # The host is a label: escaped in HTML like the rest.
    hostile = alert.replace(labels={"host": "<b>web-1</b>"})
    assert "Raised by: pid 4242 on &lt;b&gt;web-1&lt;/b&gt;" in html_body(hostile)


def test_an_alert_carries_the_pid_of_the_process_that_built_it(
    app: Flask, alerting: FlaskAlerting, memory: MemoryNotifier
) -> None:
    @app.route("/fail")
    def fail() -> str:
        raise LookupError("x")

    app.test_client().get("/fail")
    with app.app_context():
        alerting.alert("custom")
        with alerting.timer("load", threshold=0.0):
            pass
    assert alerting.flush(10.0)
    assert {a.kind for a in memory.alerts} == {"error", "custom", "timing"}
    assert {a.pid for a in memory.alerts} == {os.getpid()}


def test_the_pid_travels_with_the_alert() -> None:
    foreign = Alert(title="t", labels=LABELS, pid=4242, timestamp=T0)
    # Copies, digests and stored alerts keep the raising process, not the reader's.
    assert foreign.replace(occurrences=3).pid == 4242
    assert decode_alert(encode_alert(foreign)).pid == 4242
    assert alert_json(foreign)["pid"] == 4242
    clock = FakeClock()
    throttle = Throttle(60.0, clock, wall_clock=lambda: T0)
    assert throttle.offer(foreign)
    assert not throttle.offer(foreign.replace(pid=4343))
    clock.advance(61)
    (digest,) = throttle.pop_due()
    assert digest.pid == 4343  # the occurrence it shows
    # A stored alert of a version without the field: unknown, not this process.
    text = encode_alert(foreign).replace(',"pid":4242', "")
    assert '"pid"' not in text
    assert decode_alert(text).pid is None


@pytest.mark.parametrize("pid", [-1, True, "abc"])
def test_a_bad_pid_is_refused(pid: Any) -> None:
    with pytest.raises((ValueError, TypeError)):
        Alert(title="t", pid=pid)

