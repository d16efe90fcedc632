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
from flask_alerting.scrub import FILTERED
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
