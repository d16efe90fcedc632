"""SMTPNotifier against a real SMTP server on 127.0.0.1 (aiosmtpd), TLS from trustme.

Each test talks SMTP over a real socket: plain, STARTTLS and implicit TLS, with AUTH;
failures are classified (transient: retried; permanent: reported once) by what the real
server answers, never by monkeypatching smtplib.
"""

from __future__ import annotations

import base64
import logging
import re
import smtplib
import ssl
from collections.abc import Callable
from datetime import datetime, timezone
from email.message import EmailMessage
from typing import Any

import pytest
import trustme
from blinker import Signal
from flask import Flask

from flask_alerting import (
    Alert,
    FlaskAlerting,
    RetryPolicy,
    SMTPNotifier,
    alert_failed,
    alert_raised,
    alert_sent,
)
from flask_alerting.render import MAX_SUBJECT_LENGTH, text_body
from tests.recorder import Recorder
from tests.smtp_server import PASSWORD, USERNAME, SMTPServer

SENDER = "alerts@example.com"
ADMIN = "admin@example.com"
FAST_RETRY = RetryPolicy(initial=0.05, cap=0.2)


# -- helpers -----------------------------------------------------------------------------------


def make_alert(**fields: Any) -> Alert:
    fields.setdefault("title", "Disk nearly full")
    fields.setdefault("message", "Only 2% left on /")
    fields.setdefault("labels", {"app": "testapp", "host": "web-1"})
    return Alert(**fields)


def notifier_for(server: SMTPServer, **kwargs: Any) -> SMTPNotifier:
    """An SMTPNotifier pointed at ``server`` (same security mode)."""
    kwargs.setdefault("security", server.security)
    kwargs.setdefault("sender", SENDER)
    kwargs.setdefault("recipients", ADMIN)
    kwargs.setdefault("timeout", 10.0)
    return SMTPNotifier(server.host, server.port, **kwargs)


def app_config(server: SMTPServer, **extra: Any) -> dict[str, Any]:
    """``app.config`` keys for ``server``; the metrics sampler stays off (no stray alerts)."""
    config: dict[str, Any] = {
        "ALERTING_SMTP_HOST": server.host,
        "ALERTING_SMTP_PORT": server.port,
        "ALERTING_SMTP_SECURITY": server.security,
        "ALERTING_MAIL_SENDER": SENDER,
        "ALERTING_MAIL_RECIPIENTS": ADMIN,
        "ALERTING_METRICS_ENABLED": False,
    }
    config.update(extra)
    return config


def parts(message: EmailMessage) -> tuple[str, str]:
    """(text/plain content, text/html content) of a received alert e-mail, with ``\\n``
    line ends (on the wire they are CRLF, which quoted-printable parts keep)."""
    plain = message.get_body(preferencelist=("plain",))
    html = message.get_body(preferencelist=("html",))
    assert plain is not None and html is not None
    return (
        plain.get_content().replace("\r\n", "\n"),
        html.get_content().replace("\r\n", "\n"),
    )


def delivery_logs(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "flask_alerting" and "could not deliver" in r.getMessage()
    ]


# -- security modes, ports, AUTH -----------------------------------------------------------


def test_default_ports_follow_security() -> None:
    kw: dict[str, Any] = {"sender": SENDER, "recipients": ADMIN}
    assert SMTPNotifier("mail.example.com", security="none", **kw).port == 25
    assert SMTPNotifier("mail.example.com", security="starttls", **kw).port == 587
    assert SMTPNotifier("mail.example.com", security="ssl", **kw).port == 465
    assert SMTPNotifier("mail.example.com", **kw).port == 465  # "ssl" is the default
    assert SMTPNotifier("mail.example.com", 2525, security="none", **kw).port == 2525


def test_plain_smtp_delivers_without_login(smtp_server: SMTPServer) -> None:
    notifier = notifier_for(smtp_server)
    notifier.send(make_alert())
    [message] = smtp_server.wait_for(1)
    assert smtp_server.envelopes == [(SENDER, [ADMIN])]
    assert message["Subject"] == "[testapp] Disk nearly full"
    assert smtp_server.logins == []


def test_starttls_with_auth(
    smtp_factory: Callable[..., SMTPServer], client_context: ssl.SSLContext
) -> None:
    server = smtp_factory(security="starttls", auth=True)
    notifier = notifier_for(
        server, username=USERNAME, password=PASSWORD, ssl_context=client_context
    )
    notifier.send(make_alert())
    [message] = server.wait_for(1)
    assert server.logins == [USERNAME]
    assert message["Subject"] == "[testapp] Disk nearly full"


def test_implicit_tls_with_auth(
    smtp_factory: Callable[..., SMTPServer], client_context: ssl.SSLContext
) -> None:
    server = smtp_factory(security="ssl", auth=True)
    notifier = notifier_for(
        server, username=USERNAME, password=PASSWORD, ssl_context=client_context
    )
    notifier.send(make_alert())
    server.wait_for(1)
    assert server.logins == [USERNAME]


def test_starttls_server_refuses_a_client_that_skips_tls(
    smtp_factory: Callable[..., SMTPServer],
) -> None:
    """The fixture really requires STARTTLS: the TLS tests above are not vacuous."""
    server = smtp_factory(security="starttls")
    notifier = notifier_for(server, security="none")
    with pytest.raises(smtplib.SMTPSenderRefused) as info:
        notifier.send(make_alert())
    assert info.value.smtp_code == 530
    assert not notifier.is_transient(info.value)
    assert server.raw == []


def test_login_only_when_a_username_is_set(smtp_factory: Callable[..., SMTPServer]) -> None:
    server = smtp_factory(auth=True)
    # A password alone does not log in: the server's "authentication required" answer
    # (not an authentication failure) shows that no AUTH was attempted.
    without_user = notifier_for(server, password=PASSWORD)
    with pytest.raises(smtplib.SMTPSenderRefused) as info:
        without_user.send(make_alert())
    assert info.value.smtp_code == 530
    assert server.logins == []

    notifier_for(server, username=USERNAME, password=PASSWORD).send(make_alert())
    server.wait_for(1)
    assert server.logins == [USERNAME]


def test_password_defaults_to_email_password_env(
    smtp_factory: Callable[..., SMTPServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    server = smtp_factory(auth=True)
    monkeypatch.setenv("EMAIL_PASSWORD", PASSWORD)
    notifier_for(server, username=USERNAME).send(make_alert())
    server.wait_for(1)
    assert server.logins == [USERNAME]


def test_password_env_through_app_config(
    app: Flask,
    make_alerting: Callable[..., FlaskAlerting],
    smtp_factory: Callable[..., SMTPServer],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    server = smtp_factory(auth=True)
    monkeypatch.setenv("EMAIL_PASSWORD", PASSWORD)
    app.config.update(app_config(server, ALERTING_SMTP_USERNAME=USERNAME))
    alerting = make_alerting(app)
    alerting.alert("Disk nearly full")
    assert alerting.flush(10)
    server.wait_for(1)
    assert server.logins == [USERNAME]


# -- certificates --------------------------------------------------------------------------


@pytest.mark.parametrize("security", ["ssl", "starttls"])
def test_ca_file_from_app_config(
    security: str,
    app: Flask,
    make_alerting: Callable[..., FlaskAlerting],
    smtp_factory: Callable[..., SMTPServer],
    ca_file: str,
) -> None:
    server = smtp_factory(security=security, auth=True)
    app.config.update(
        app_config(
            server,
            ALERTING_SMTP_USERNAME=USERNAME,
            ALERTING_SMTP_PASSWORD=PASSWORD,
            ALERTING_SMTP_CA_FILE=ca_file,
        )
    )
    alerting = make_alerting(app)
    alerting.alert("Disk nearly full", "Only 2% left on /")
    assert alerting.flush(10)
    [message] = server.wait_for(1)
    assert server.logins == [USERNAME]
    assert message["Subject"] == "[testapp] Disk nearly full"
    assert alerting.stats()["notifiers"]["smtp"] == {"queued": 0, "sent": 1, "failed": 0}


@pytest.mark.parametrize("security", ["ssl", "starttls"])
def test_untrusted_certificate_is_refused(
    security: str, smtp_factory: Callable[..., SMTPServer]
) -> None:
    server = smtp_factory(security=security, auth=True)
    # The default context: the test CA is not trusted.
    notifier = notifier_for(server, username=USERNAME, password=PASSWORD)
    with pytest.raises(ssl.SSLCertVerificationError) as info:
        notifier.send(make_alert())
    assert not notifier.is_transient(info.value)
    assert "CERTIFICATE_VERIFY_FAILED" in notifier.describe_error(info.value)
    assert server.raw == [] and server.logins == []


def test_certificate_for_another_host_is_refused(
    smtp_factory: Callable[..., SMTPServer], ca: trustme.CA, client_context: ssl.SSLContext
) -> None:
    """Verification covers the host name too, not only the issuer."""
    other = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("mail.example.org").configure_cert(other)
    server = smtp_factory(security="ssl", server_context=other)
    notifier = notifier_for(server, ssl_context=client_context)
    with pytest.raises(ssl.SSLCertVerificationError) as info:
        notifier.send(make_alert())
    assert not notifier.is_transient(info.value)
    assert server.raw == []


def test_untrusted_certificate_reported_once_not_retried(
    app: Flask,
    make_alerting: Callable[..., FlaskAlerting],
    smtp_factory: Callable[..., SMTPServer],
    recorder: Callable[[Signal], Recorder],
    caplog: pytest.LogCaptureFixture,
) -> None:
    server = smtp_factory(security="ssl", auth=True)
    app.config.update(
        app_config(server, ALERTING_SMTP_USERNAME=USERNAME, ALERTING_SMTP_PASSWORD=PASSWORD)
    )
    failed = recorder(alert_failed)
    alerting = make_alerting(app, retry_policy=FAST_RETRY)
    alerting.alert("Disk nearly full")
    # flush() returns once the worker is idle: it gave up, no retry is pending.
    assert alerting.flush(10)
    [call] = failed.calls
    assert call["will_retry"] is False
    assert isinstance(call["exception"], ssl.SSLCertVerificationError)
    assert call["alert"].title == "Disk nearly full"
    [line] = delivery_logs(caplog)
    assert "CERTIFICATE_VERIFY_FAILED" in line and "permanent failure" in line
    assert alerting.stats()["notifiers"]["smtp"] == {"queued": 0, "sent": 0, "failed": 1}
    assert server.raw == []


# -- failures: permanent and transient -----------------------------------------------------


def test_wrong_password_is_permanent(smtp_factory: Callable[..., SMTPServer]) -> None:
    server = smtp_factory(auth=True)
    notifier = notifier_for(server, username=USERNAME, password="not-the-password")
    with pytest.raises(smtplib.SMTPAuthenticationError) as info:
        notifier.send(make_alert())
    assert not notifier.is_transient(info.value)
    assert notifier.describe_error(info.value).startswith("SMTPAuthenticationError: 535 ")
    assert server.raw == []


def test_wrong_password_reported_once_not_retried(
    app: Flask,
    make_alerting: Callable[..., FlaskAlerting],
    smtp_factory: Callable[..., SMTPServer],
    recorder: Callable[[Signal], Recorder],
    caplog: pytest.LogCaptureFixture,
    ca_file: str,
) -> None:
    server = smtp_factory(security="starttls", auth=True)
    app.config.update(
        app_config(
            server,
            ALERTING_SMTP_USERNAME=USERNAME,
            ALERTING_SMTP_PASSWORD="not-the-password",
            ALERTING_SMTP_CA_FILE=ca_file,
        )
    )
    failed = recorder(alert_failed)
    alerting = make_alerting(app, retry_policy=FAST_RETRY)
    alerting.alert("Disk nearly full")
    assert alerting.flush(10)
    [call] = failed.calls
    assert call["will_retry"] is False
    assert isinstance(call["exception"], smtplib.SMTPAuthenticationError)
    [line] = delivery_logs(caplog)
    assert "535" in line and "permanent failure" in line
    assert alerting.stats()["notifiers"]["smtp"] == {"queued": 0, "sent": 0, "failed": 1}
    assert server.raw == [] and server.logins == []


def test_refused_recipient_is_permanent(smtp_server: SMTPServer) -> None:
    smtp_server.refuse_recipients = {"nobody@example.com"}
    notifier = notifier_for(smtp_server, recipients="nobody@example.com")
    with pytest.raises(smtplib.SMTPRecipientsRefused) as info:
        notifier.send(make_alert())
    assert not notifier.is_transient(info.value)
    assert notifier.describe_error(info.value) == (
        "SMTPRecipientsRefused: nobody@example.com: 550 5.1.1 no such user"
    )
    assert smtp_server.raw == []


def test_refused_recipient_reported_once_not_retried(
    app: Flask,
    make_alerting: Callable[..., FlaskAlerting],
    smtp_server: SMTPServer,
    recorder: Callable[[Signal], Recorder],
    caplog: pytest.LogCaptureFixture,
) -> None:
    smtp_server.refuse_recipients = {"nobody@example.com"}
    app.config.update(app_config(smtp_server, ALERTING_MAIL_RECIPIENTS="nobody@example.com"))
    failed = recorder(alert_failed)
    alerting = make_alerting(app, retry_policy=FAST_RETRY)
    alerting.alert("Disk nearly full")
    assert alerting.flush(10)
    [call] = failed.calls
    assert call["will_retry"] is False
    assert isinstance(call["exception"], smtplib.SMTPRecipientsRefused)
    [line] = delivery_logs(caplog)
    assert "nobody@example.com: 550" in line
    assert smtp_server.raw == []


def test_partly_refused_recipients_deliver_once_and_log(
    smtp_server: SMTPServer, caplog: pytest.LogCaptureFixture
) -> None:
    """The others got the message: not an error (a retry would send it to them twice)."""
    smtp_server.refuse_recipients = {"nobody@example.com"}
    notifier = notifier_for(smtp_server, recipients=[ADMIN, "nobody@example.com"])
    notifier.send(make_alert())
    smtp_server.wait_for(1)
    assert smtp_server.envelopes == [(SENDER, [ADMIN])]
    [line] = [
        r.getMessage()
        for r in caplog.records
        if r.name == "flask_alerting" and "refused" in r.getMessage()
    ]
    assert "nobody@example.com: 550" in line


def test_temporary_reply_is_transient(smtp_server: SMTPServer) -> None:
    smtp_server.temp_fail = True
    notifier = notifier_for(smtp_server)
    with pytest.raises(smtplib.SMTPDataError) as info:
        notifier.send(make_alert())
    assert info.value.smtp_code == 451
    assert notifier.is_transient(info.value)
    assert smtp_server.raw == []


def test_temporary_reply_retried_then_delivered_once(
    app: Flask,
    make_alerting: Callable[..., FlaskAlerting],
    smtp_server: SMTPServer,
    recorder: Callable[[Signal], Recorder],
) -> None:
    smtp_server.temp_fail = True
    app.config.update(app_config(smtp_server))
    failed = recorder(alert_failed)
    sent = recorder(alert_sent)
    alerting = make_alerting(app, retry_policy=FAST_RETRY)
    alerting.alert("Disk nearly full")
    first = failed.wait_for(1)[0]
    assert first["will_retry"] is True
    assert isinstance(first["exception"], smtplib.SMTPDataError)
    smtp_server.temp_fail = False
    assert alerting.flush(10)
    [message] = smtp_server.messages
    assert message["Subject"] == "[testapp] Disk nearly full"
    assert len(sent.calls) == 1
    assert all(call["will_retry"] for call in failed.calls)


def test_failed_quit_after_accepted_message_is_a_delivery(
    app: Flask,
    make_alerting: Callable[..., FlaskAlerting],
    smtp_server: SMTPServer,
    recorder: Callable[[Signal], Recorder],
) -> None:
    """The server took the message; a bad goodbye must not make the worker send it again."""
    smtp_server.quit_reply = "421 4.3.2 shutting down"
    app.config.update(app_config(smtp_server))
    failed = recorder(alert_failed)
    alerting = make_alerting(app, retry_policy=FAST_RETRY)
    alerting.alert("Disk nearly full")
    assert alerting.flush(10)
    assert len(smtp_server.raw) == 1
    assert failed.calls == []
    assert alerting.stats()["notifiers"]["smtp"] == {"queued": 0, "sent": 1, "failed": 0}


@pytest.mark.parametrize(
    ("exc", "transient"),
    [
        (smtplib.SMTPAuthenticationError(535, b"5.7.8 Authentication failed"), False),
        (smtplib.SMTPAuthenticationError(454, b"4.7.0 Temporary failure"), True),
        (smtplib.SMTPSenderRefused(550, b"5.7.1 not allowed", SENDER), False),
        (smtplib.SMTPSenderRefused(452, b"4.3.1 insufficient storage", SENDER), True),
        (smtplib.SMTPRecipientsRefused({ADMIN: (550, b"no such user")}), False),
        (smtplib.SMTPRecipientsRefused({ADMIN: (450, b"mailbox busy")}), True),
        (smtplib.SMTPNotSupportedError("SMTP AUTH extension not supported by server."), False),
        (smtplib.SMTPException("No suitable authentication method found."), False),
        (smtplib.SMTPServerDisconnected("Connection unexpectedly closed"), True),
        (ConnectionRefusedError(111, "Connection refused"), True),
        (TimeoutError("timed out"), True),
        (ssl.SSLEOFError(8, "EOF occurred in violation of protocol"), True),
        (ssl.SSLError(1, "[SSL: WRONG_VERSION_NUMBER] wrong version number"), False),
        (ValueError("bad header"), False),
    ],
    ids=lambda value: type(value).__name__ if isinstance(value, Exception) else str(value),
)
def test_failure_classification(exc: Exception, transient: bool) -> None:
    notifier = SMTPNotifier("mail.example.com", sender=SENDER, recipients=ADMIN)
    assert notifier.is_transient(exc) is transient


def test_timeout_is_transient(smtp_server: SMTPServer) -> None:
    # The reply to the end of the message gets FINAL_REPLY_FACTOR (6) x the timeout since
    # 0.2 (a slow reply there was retried, and delivered twice: tests/test_hostile.py):
    # 0.6 s here, which a 1.5-s delay still exceeds.
    smtp_server.delay = 1.5
    notifier = notifier_for(smtp_server, timeout=0.1)
    with pytest.raises(OSError) as info:
        notifier.send(make_alert())
    assert "timed out" in str(info.value)
    assert notifier.is_transient(info.value)


# -- the message ---------------------------------------------------------------------------


def test_several_recipients(smtp_server: SMTPServer) -> None:
    notifier = notifier_for(smtp_server, recipients="admin@example.com, ops@example.com,")
    notifier.send(make_alert())
    [message] = smtp_server.wait_for(1)
    assert smtp_server.envelopes == [(SENDER, ["admin@example.com", "ops@example.com"])]
    assert [a.addr_spec for a in message["To"].addresses] == [
        "admin@example.com",
        "ops@example.com",
    ]


def test_date_and_message_id(smtp_server: SMTPServer) -> None:
    notifier = notifier_for(smtp_server, sender="Alerts <alerts@example.com>")
    when = datetime(2024, 5, 1, 12, 30, 45, tzinfo=timezone.utc)
    notifier.send(make_alert(timestamp=when))
    notifier.send(make_alert(timestamp=when))
    first, second = smtp_server.wait_for(2)
    assert first["Date"].datetime == when
    assert first["From"].addresses[0].addr_spec == SENDER
    ids = [first["Message-ID"], second["Message-ID"]]
    for message_id in ids:
        assert re.fullmatch(r"<[^<>@\s]+@example\.com>", message_id), message_id
    assert ids[0] != ids[1]
    assert smtp_server.envelopes[0][0] == SENDER


def test_plain_text_with_escaped_html_alternative(smtp_server: SMTPServer) -> None:
    alert = make_alert(
        title="<b>Injected</b> title",
        message="Payload: <script>alert('x')</script> & more",
    )
    notifier_for(smtp_server).send(alert)
    [message] = smtp_server.wait_for(1)
    assert message.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in message.iter_parts()] == ["text/plain", "text/html"]
    plain, html = parts(message)
    assert "Payload: <script>alert('x')</script> & more" in plain
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; &amp; more" in html
    assert "<script>" not in html
    assert "<b>" not in html and "&lt;b&gt;Injected&lt;/b&gt; title" in html


def test_subject_is_one_line_without_injected_headers(smtp_server: SMTPServer) -> None:
    notifier = notifier_for(smtp_server, subject_prefix="[ops]\r\nBcc: evil@example.com")
    notifier.send(make_alert(title="Disk full\r\nBcc: evil2@example.com\r\n\r\nbody"))
    [message] = smtp_server.wait_for(1)
    assert message["Subject"] == "[ops] Bcc: evil@example.com Disk full Bcc: evil2@example.com body"
    assert "Bcc" not in message
    assert smtp_server.envelopes == [(SENDER, [ADMIN])]
    assert b"\nBcc:" not in smtp_server.raw[0]


def test_subject_is_capped(smtp_server: SMTPServer) -> None:
    notifier_for(smtp_server).send(make_alert(title="x" * 500))
    [message] = smtp_server.wait_for(1)
    subject = str(message["Subject"])
    assert len(subject) == MAX_SUBJECT_LENGTH
    assert subject.startswith("[testapp] xxx") and subject.endswith("\u2026")
    assert "\n" not in subject and "\r" not in subject


def test_default_prefix_is_the_app_label(smtp_server: SMTPServer) -> None:
    notifier_for(smtp_server).send(make_alert(labels={"app": "billing", "host": "web-1"}))
    notifier_for(smtp_server, subject_prefix="").send(make_alert())
    first, second = smtp_server.wait_for(2)
    assert first["Subject"] == "[billing] Disk nearly full"
    assert second["Subject"] == "Disk nearly full"


def test_error_email_keeps_the_seed_wording(
    app: Flask,
    make_alerting: Callable[..., FlaskAlerting],
    smtp_server: SMTPServer,
) -> None:
    app.config.update(app_config(smtp_server))

    @app.route("/predict")
    def predict() -> str:
        return str(1 / 0)

    alerting = make_alerting(app)
    assert app.test_client().get("/predict").status_code == 500
    assert alerting.flush(10)
    [message] = smtp_server.messages
    assert message["Subject"] == "[testapp] ZeroDivisionError: division by zero in predict"
    plain, html = parts(message)
    assert plain.startswith(
        "An error occurred in your Flask application:\n\nTraceback (most recent call last):\n"
    )
    assert "return str(1 / 0)" in plain and "ZeroDivisionError: division by zero" in plain
    assert "An error occurred in your Flask application:" in html


def test_metric_and_timing_emails_read_well(smtp_server: SMTPServer) -> None:
    labels = {"app": "testapp", "host": "web-1"}
    metric = make_alert(
        kind="metric",
        title="CPU Usage above 80%",
        message="",
        labels={**labels, "metric": "cpu"},
        details={"display_name": "CPU Usage"},
        value=93.1,
        threshold=80.0,
    )
    timing = make_alert(
        kind="timing",
        title="prediction_from_model took 2.41 s (threshold 2.00 s)",
        message="",
        labels={**labels, "function": "prediction_from_model"},
        value=2.41,
        threshold=2.0,
    )
    notifier = notifier_for(smtp_server)
    notifier.send(metric)
    notifier.send(timing)
    metric_mail, timing_mail = smtp_server.wait_for(2)
    assert parts(metric_mail)[0].startswith(
        "The CPU Usage has exceeded the threshold:\n\nCurrent Value: 93.1\nThreshold: 80.0\n"
    )
    assert parts(timing_mail)[0].startswith(
        "prediction_from_model took 2.41 s (threshold 2.00 s)."
    )


# -- the password never leaks --------------------------------------------------------------


def _secret_forms(password: str) -> list[str]:
    return [
        password,
        base64.b64encode(password.encode()).decode(),
        base64.b64encode(f"\0{USERNAME}\0{password}".encode()).decode(),
    ]


def _leaks(text: str, password: str) -> list[str]:
    return [form for form in _secret_forms(password) if form in text]


@pytest.mark.parametrize("accepted", [True, False], ids=["right-password", "wrong-password"])
def test_password_never_leaks(
    accepted: bool,
    app: Flask,
    make_alerting: Callable[..., FlaskAlerting],
    smtp_factory: Callable[..., SMTPServer],
    recorder: Callable[[Signal], Recorder],
    caplog: pytest.LogCaptureFixture,
    ca_file: str,
) -> None:
    caplog.set_level(logging.DEBUG)
    password = PASSWORD if accepted else "Planted-Wr0ng-Secret-4242"
    server = smtp_factory(security="starttls", auth=True)
    app.config.update(
        app_config(
            server,
            ALERTING_SMTP_USERNAME=USERNAME,
            ALERTING_SMTP_PASSWORD=password,
            ALERTING_SMTP_CA_FILE=ca_file,
            ALERTING_LOG_FILE=None,
        )
    )

    @app.route("/boom")
    def boom() -> str:
        raise RuntimeError("database unreachable")

    raised = recorder(alert_raised)
    failed = recorder(alert_failed)
    sent = recorder(alert_sent)
    alerting = make_alerting(app, retry_policy=FAST_RETRY)
    alerting.alert("Disk nearly full", "Only 2% left on /")
    assert app.test_client().get("/boom").status_code == 500
    assert alerting.flush(10)

    state = app.extensions["alerting"]
    notifier = state.notifiers[0]
    texts = [repr(notifier), notifier.describe(), repr(state), repr(alerting.stats())]
    for call in raised.calls + failed.calls + sent.calls:
        texts += [repr(call["alert"]), text_body(call["alert"])]
    for call in failed.calls:
        exc = call["exception"]
        texts += [str(exc), repr(exc), notifier.describe_error(exc)]
    formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")
    # "mail.log" is aiosmtpd, the test server: it is not part of the library.
    texts += [formatter.format(r) for r in caplog.records if r.name != "mail.log"]
    if accepted:
        messages = server.wait_for(2)
        assert len(sent.calls) == 2 and failed.calls == []
        texts += [raw.decode("utf-8", "replace") for raw in server.raw]
        for message in messages:
            texts += list(parts(message))
    else:
        assert len(failed.calls) == 2 and server.raw == []
        assert all(call["will_retry"] is False for call in failed.calls)
    assert len(raised.calls) == 2
    assert texts and all(_leaks(text, password) == [] for text in texts)


def test_describe_error_masks_a_password_the_server_echoes() -> None:
    notifier = SMTPNotifier(
        "mail.example.com", username=USERNAME, password=PASSWORD, sender=SENDER, recipients=ADMIN
    )
    plain = base64.b64encode(f"\0{USERNAME}\0{PASSWORD}".encode()).decode()
    for exc in (
        smtplib.SMTPAuthenticationError(535, f"bad credentials {PASSWORD}".encode()),
        smtplib.SMTPAuthenticationError(535, f"cannot decode {plain}".encode()),
        smtplib.SMTPServerDisconnected(f"closed after {PASSWORD}"),
    ):
        text = notifier.describe_error(exc)
        assert _leaks(text, PASSWORD) == [] and "***" in text
    assert PASSWORD not in repr(notifier)


def test_bad_addresses_are_refused_at_construction() -> None:
    for kwargs in (
        {"sender": SENDER, "recipients": []},
        {"sender": "", "recipients": ADMIN},
        {"sender": "alerts@example.com\r\nBcc: evil@example.com", "recipients": ADMIN},
        {"sender": SENDER, "recipients": ["admin@example.com\nBcc: evil@example.com"]},
    ):
        with pytest.raises(ValueError):
            SMTPNotifier("mail.example.com", **kwargs)
    with pytest.raises(ValueError, match="security"):
        SMTPNotifier("mail.example.com", security="tls", sender=SENDER, recipients=ADMIN)


def test_a_fingerprint_with_line_breaks_is_one_line_and_the_email_leaves(
    smtp_server: SMTPServer,
) -> None:
    notifier = SMTPNotifier(
        smtp_server.host, smtp_server.port, security="none", sender=SENDER, recipients=ADMIN
    )
    alert = Alert(title="custom", fingerprint="job-17\r\nBcc: victim@example.com")
    assert alert.fingerprint == "job-17 Bcc: victim@example.com"
    notifier.send(alert)
    message = smtp_server.wait_for(1)[0]
    assert message["X-Alert-Fingerprint"] == "job-17 Bcc: victim@example.com"
    assert message["Bcc"] is None
    assert smtp_server.envelopes[0][1] == [ADMIN]
