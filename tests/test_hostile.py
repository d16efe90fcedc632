"""Hostile input (issue 10): slow clients, leaking cookies, huge exceptions, deep stacks.

Real parts where it matters: a real threaded WSGI server (werkzeug's) and a raw socket
client that trickles its body; e-mails received by the real aiosmtpd server of the tests.
"""

from __future__ import annotations

import email
import email.policy
import socket
import threading
from collections.abc import Callable, Iterator
from email.message import EmailMessage
from typing import Any

import pytest
from flask import Flask, request
from werkzeug.serving import BaseWSGIServer, make_server

from flask_alerting import FlaskAlerting, MemoryNotifier
from flask_alerting.scrub import FILTERED, Scrubber
from tests.smtp_server import SMTPServer

Make = Callable[..., FlaskAlerting]


# == request side: points 1, 3, 4 and 9 (first half) =========================================


def _smtp_app(app: Flask, make_alerting: Make, smtp_config: dict[str, Any], **kw: Any) -> Any:
    app.config.update(smtp_config)
    return make_alerting(app, throttle_seconds=0, **kw)


def _texts(raw: bytes) -> str:
    """The raw message and every decoded part, joined (base64 / quoted-printable undone)."""
    message = email.message_from_bytes(raw, policy=email.policy.default)
    texts = [raw.decode("latin-1"), str(message["Subject"])]
    for part in message.walk():
        if not part.is_multipart():
            texts.append(part.get_content())
    return "\n".join(texts)


def _plain(raw: bytes) -> str:
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    body = message.get_body(("plain",))
    assert body is not None
    content = body.get_content()
    assert isinstance(content, str)
    return content


# -- 1. a slow request body is never read on the request path --------------------------------


@pytest.fixture
def serve() -> Iterator[Callable[[Flask], int]]:
    """Serve an app with werkzeug's threaded server on 127.0.0.1; returns the port."""
    running: list[tuple[BaseWSGIServer, threading.Thread]] = []

    def start(app: Flask) -> int:
        server = make_server("127.0.0.1", 0, app, threaded=True)
        thread = threading.Thread(target=server.serve_forever, name="test-wsgi", daemon=True)
        thread.start()
        running.append((server, thread))
        return server.server_port

    yield start
    for server, thread in running:
        server.shutdown()
        thread.join(10.0)
        server.server_close()


class Trickler:
    """A raw HTTP client that sends its headers, then its body one byte at a time, and
    stops as soon as the response arrives (or when the body is all sent)."""

    def __init__(self, port: int, content_type: str, body: bytes) -> None:
        self.body = body
        self.sent = 0
        self.response = b""
        self.got_response = threading.Event()
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=30.0)
        head = (
            "POST /checkout HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Content-Type: {content_type}\r\nContent-Length: {len(body)}\r\n"
            "Connection: close\r\n\r\n"
        )
        self.sock.sendall(head.encode("ascii"))
        self.thread = threading.Thread(target=self._trickle, name="test-trickler", daemon=True)
        self.thread.start()

    def _trickle(self) -> None:
        # 20 bytes a second: the whole body would take minutes.
        while self.sent < len(self.body) and not self.got_response.wait(0.05):
            try:
                self.sock.sendall(self.body[self.sent : self.sent + 1])
            except OSError:
                return
            self.sent += 1

    def read_status_line(self) -> str:
        """The response's status line; socket.timeout when none comes within 30 s."""
        try:
            while b"\r\n" not in self.response:
                chunk = self.sock.recv(4096)
                if not chunk:
                    break
                self.response += chunk
        finally:
            self.got_response.set()
        return self.response.partition(b"\r\n")[0].decode("latin-1")

    def close(self) -> None:
        self.got_response.set()
        self.thread.join(10.0)
        self.sock.close()


BODIES = {
    "application/json": b'{"card": "4111-1111-1111-1111", "note": "' + b"x" * 2000 + b'"}',
    "application/x-www-form-urlencoded": b"card=4111-1111-1111-1111&note=" + b"x" * 2000,
    "multipart/form-data; boundary=XyZ": (
        b'--XyZ\r\nContent-Disposition: form-data; name="card"\r\n\r\n'
        b"4111-1111-1111-1111\r\n--XyZ--\r\n" + b" " * 2000
    ),
}


#: What the view looks at before it fails: none of it reads the body.
TOUCHES: dict[str, Callable[[], object]] = {
    "nothing": lambda: None,
    "the form of a JSON request": lambda: request.form,
    "the JSON of a form request": lambda: request.get_json(silent=True),
    "args and is_json": lambda: (request.args, request.is_json),
}


@pytest.mark.parametrize(
    ("content_type", "touch"),
    [
        *((content_type, "nothing") for content_type in BODIES),
        ("application/json", "the form of a JSON request"),
        ("application/x-www-form-urlencoded", "the JSON of a form request"),
        ("application/json", "args and is_json"),
    ],
)
def test_an_error_response_never_waits_for_a_body_the_view_did_not_read(
    app: Flask,
    make_alerting: Make,
    smtp_config: dict[str, Any],
    smtp_server: SMTPServer,
    serve: Callable[[Flask], int],
    content_type: str,
    touch: str,
) -> None:
    alerting = _smtp_app(app, make_alerting, smtp_config)

    @app.route("/checkout", methods=["POST"])
    def checkout() -> str:
        TOUCHES[touch]()
        raise RuntimeError("payment backend down")  # before reading the body

    body = BODIES[content_type]
    client = Trickler(serve(app), content_type, body)
    try:
        status = client.read_status_line()
        # The 500 left while the client was still sending: nothing waited for the body.
        assert status == "HTTP/1.1 500 INTERNAL SERVER ERROR"
        assert client.sent < len(body)
    finally:
        client.close()
    assert alerting.flush(10.0)
    raw = smtp_server.wait_for(1)[0].as_bytes()
    text = _plain(raw)
    assert "RuntimeError: payment backend down" in text
    assert "not read by the view, not included" in text
    assert "4111" not in _texts(raw)


def test_a_body_the_view_read_as_raw_data_is_shown_parsed(
    app: Flask, alerting: FlaskAlerting, memory: MemoryNotifier
) -> None:
    @app.route("/raw", methods=["POST"])
    def raw() -> str:
        request.get_data()
        raise RuntimeError("raw")

    app.test_client().post("/raw", json={"sku": "A1", "password": "hunter2"})
    assert alerting.flush(5.0)
    shown = memory.alerts[0].details["request"]["json"]
    assert '"sku": "A1"' in shown and "hunter2" not in shown and FILTERED in shown


# -- 3. cookies and URL-valued headers never leak ----------------------------------------------

COOKIE_SECRETS = {
    "__Host-app": "sEcReT-session-1111",  # the app's own session cookie, renamed
    "keep_me": "sEcReT-remember-2222",  # Flask-Login's remember cookie, renamed
    "connect.sid": "sEcReT-connect-3333",
    "jwt": "sEcReT-jwt-4444",
    "sid": "sEcReT-sid-5555",
}
URL_HEADER_SECRETS = {
    "Referer": ("https://shop.example/reset?token=sEcReT-referer-6666&step=visible-step"),
    "X-Original-URL": "/admin/users?api_key=sEcReT-original-7777&view=visible-view",
    "Content-Location": "https://u:sEcReT-userinfo-8888@cdn.example/a?sig=sEcReT-sig-9999",
}


@pytest.mark.parametrize("show_values", [False, True])
def test_cookies_and_url_headers_never_leak_into_the_email(
    app: Flask,
    make_alerting: Make,
    smtp_config: dict[str, Any],
    smtp_server: SMTPServer,
    show_values: bool,
) -> None:
    app.config["SESSION_COOKIE_NAME"] = "__Host-app"
    app.config["REMEMBER_COOKIE_NAME"] = "keep_me"
    app.config["ALERTING_SHOW_COOKIE_VALUES"] = show_values
    alerting = _smtp_app(app, make_alerting, smtp_config)

    @app.route("/account")
    def account() -> str:
        raise RuntimeError("account page failed")

    client = app.test_client()
    for name, value in {**COOKIE_SECRETS, "theme": "visible-theme"}.items():
        client.set_cookie(name, value)
    client.get("/account", headers=URL_HEADER_SECRETS)
    assert alerting.flush(10.0)
    raw = smtp_server.wait_for(1)[0].as_bytes()
    everything = _texts(raw)
    secrets = [*COOKIE_SECRETS.values(), "sEcReT-referer-6666", "sEcReT-original-7777"]
    secrets += ["sEcReT-userinfo-8888", "sEcReT-sig-9999"]
    for secret in secrets:
        assert secret not in everything, secret
        assert secret.encode() not in raw, secret
    # The names are shown, and the harmless parts of the URLs.
    for name in [*COOKIE_SECRETS, "theme", "visible-step", "visible-view", "cdn.example/a"]:
        assert name in everything, name
    # Cookie values only on request, and then never those of the session cookies.
    assert ("visible-theme" in everything) is show_values


def test_cookie_values_are_not_shown_by_default_names_are(
    app: Flask, alerting: FlaskAlerting, memory: MemoryNotifier
) -> None:
    @app.route("/fail")
    def fail() -> str:
        raise RuntimeError("x")

    client = app.test_client()
    client.set_cookie("theme", "dark-never-shown")
    client.set_cookie("lang", "fr-never-shown")
    client.set_cookie("theme", "light-never-shown", path="/fail")  # the name twice
    client.get("/fail")
    assert alerting.flush(5.0)
    assert "never-shown" not in repr(memory.alerts[0])
    assert memory.alerts[0].details["request"]["cookies"] == ["theme", "lang"]
    assert memory.alerts[0].details["request"]["headers"]["Cookie"] == FILTERED


@pytest.mark.parametrize(
    "name",
    [
        "passphrase",
        "pin",
        "PIN",
        "card_pin",
        "cardNumber",
        "card-number",
        "cvv",
        "card_cvv",
        "sig",
        "X-Hub-Signature-256",
        "code",
        "otp_code",
        "key",
        "sort_key",
        "X-Api-Key",
        "otp",
        "OTP",
        "connect.sid",
        "sid",
        "jwt",
    ],
)
def test_new_default_sensitive_names(name: str) -> None:
    assert Scrubber().is_sensitive(name)


@pytest.mark.parametrize(
    "name",
    ["monkey", "keyboard", "shipping", "spinner", "design", "hotpot", "consider", "zipcode"],
)
def test_short_sensitive_names_match_whole_words_only(name: str) -> None:
    assert not Scrubber().is_sensitive(name)


def test_exact_names_match_only_themselves() -> None:
    scrubber = Scrubber(exact=("__Host-app", "id"))
    assert scrubber.is_sensitive("__Host-app") and scrubber.is_sensitive("__host-APP")
    assert scrubber.is_sensitive("id")
    assert not scrubber.is_sensitive("width") and not scrubber.is_sensitive("__Host-app2")


@pytest.mark.parametrize(
    ("header", "value", "shown"),
    [
        ("Referer", "https://a.example/p?token=S3CR3T&x=1", "https://a.example/p?token=[F]&x=1"),
        ("Origin", "https://u:S3CR3T@a.example", "https://u:[F]@a.example"),
        ("Location", "/next?code=S3CR3T", "/next?code=[F]"),
        ("X-Forwarded-Uri", "/x?password=S3CR3T", "/x?password=[F]"),
        ("X-Custom", "https://a.example/cb?otp=S3CR3T", "https://a.example/cb?otp=[F]"),
        ("X-Request-Id", "abc?token=notaurl", "abc?token=notaurl"),
    ],
)
def test_url_valued_headers_have_their_query_scrubbed(header: str, value: str, shown: str) -> None:
    out = Scrubber().scrub_headers({header: value})
    assert out == {header: shown.replace("[F]", FILTERED)}
