"""Hostile inputs and odd failures (issue 10), against real parts.

Each test here failed before its fix. Two sections, each keeping its fixtures and helpers
to itself: the request side (slow clients, leaking cookies, huge exceptions, deep stacks:
a real threaded WSGI server and a raw socket client that trickles its body, e-mails
received by the real aiosmtpd server of the tests) and the local side and delivery (lock
files and a second local user, the throttle table, the flood guard, SMTP deadlines,
notifier threads).
"""

from __future__ import annotations

import contextlib
import email
import email.policy
import fcntl
import json
import logging
import os
import re
import select
import socket
import stat
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import psutil
import pytest
from flask import Flask, request
from werkzeug.serving import BaseWSGIServer, make_server

from flask_alerting import (
    Alert,
    ConfigurationError,
    FlaskAlerting,
    MemoryNotifier,
    Notifier,
    SMTPNotifier,
    alert_failed,
    alert_sent,
    alert_suppressed,
)
from flask_alerting.alert import PendingAlert
from flask_alerting.dispatch import Dispatcher, Throttle
from flask_alerting.flood import FloodGuard
from flask_alerting.metrics.election import default_lock_path
from flask_alerting.metrics.machine import RuleMachine
from flask_alerting.metrics.rules import Rule
from flask_alerting.metrics.sampler import Sampler
from flask_alerting.scrub import FILTERED, Scrubber
from tests.conftest import FakeClock
from tests.forking import wait_child
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
    # The card number, dashes included: the Message-ID's random digits may hold "4111".
    assert "4111-1111" not in _texts(raw)


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


# -- 4. the e-mail and the work on the request path are bounded -------------------------------

#: The bound the e-mail must stay under (the message as received, headers included).
MAX_EMAIL_BYTES = 1_000_000


def _raise_group() -> None:
    raise ExceptionGroup(  # noqa: F821 - Python >= 3.11 (skipped below)
        "batch failed", [ValueError(f"item {i}: " + "x" * 1_000_000) for i in range(50)]
    )


def _raise_chain(links: int = 2000) -> None:
    exc: BaseException | None = None
    for i in range(links):
        try:
            try:
                if exc is not None:
                    raise exc
                raise KeyError("root cause")
            except BaseException as inner:
                raise RuntimeError(f"link {i}: " + "y" * 5000) from inner
        except RuntimeError as outer:
            exc = outer
    assert exc is not None
    raise exc


def _ping(n: int) -> None:
    if n <= 0:
        raise RecursionError("gave up at the bottom")
    _pong(n - 1)


def _pong(n: int) -> None:
    _ping(n - 1)


@pytest.fixture
def deep_recursion() -> Iterator[int]:
    """Room for a 20,000-deep mutual recursion (pure Python frames: no C stack)."""
    old = sys.getrecursionlimit()
    sys.setrecursionlimit(old + 21_000)
    try:
        yield 20_000
    finally:
        sys.setrecursionlimit(old)


needs_groups = pytest.mark.skipif(sys.version_info < (3, 11), reason="ExceptionGroup: 3.11+")


@needs_groups
def test_an_exception_group_of_50_huge_messages_makes_a_bounded_email(
    app: Flask, make_alerting: Make, smtp_config: dict[str, Any], smtp_server: SMTPServer
) -> None:
    alerting = _smtp_app(app, make_alerting, smtp_config)

    @app.route("/batch")
    def batch() -> str:
        _raise_group()
        return "unreachable"

    assert app.test_client().get("/batch").status_code == 500
    assert alerting.flush(20.0)
    raw = smtp_server.raw[0] if smtp_server.raw else smtp_server.wait_for(1)[0].as_bytes()
    assert len(raw) < MAX_EMAIL_BYTES
    text = _plain(raw)
    assert "ExceptionGroup: batch failed (50 sub-exceptions)" in text
    assert "+---------------- 1 ----------------" in text
    assert "ValueError: item 0: xxx" in text and "more characters]" in text
    # The first members are shown (each message cut), the others counted.
    shown = len(re.findall(r"\+---------------- \d+ ----------------", text))
    more = re.search(r"and (\d+) more exceptions", text)
    assert more is not None and 1 <= shown <= 15 and shown + int(more.group(1)) == 50
    assert "item 49" not in text


def test_a_2000_link_cause_chain_makes_a_bounded_email_with_both_ends(
    app: Flask, make_alerting: Make, smtp_config: dict[str, Any], smtp_server: SMTPServer
) -> None:
    alerting = _smtp_app(app, make_alerting, smtp_config)

    @app.route("/chain")
    def chain() -> str:
        _raise_chain()
        return "unreachable"

    assert app.test_client().get("/chain").status_code == 500
    assert alerting.flush(20.0)
    raw = smtp_server.wait_for(1)[0].as_bytes()
    assert len(raw) < MAX_EMAIL_BYTES
    text = _plain(raw)
    # The root cause (printed first) and the exception that reached Flask (printed last).
    assert "KeyError: 'root cause'" in text
    assert "RuntimeError: link 0: yyy" in text
    assert "RuntimeError: link 1999: yyy" in text
    assert "exceptions of the chain not shown" in text
    assert "link 1000:" not in text


def test_a_20000_deep_mutual_recursion_makes_a_bounded_email_with_both_ends(
    app: Flask,
    make_alerting: Make,
    smtp_config: dict[str, Any],
    smtp_server: SMTPServer,
    deep_recursion: int,
) -> None:
    alerting = _smtp_app(app, make_alerting, smtp_config)

    @app.route("/deep")
    def deep() -> str:
        _ping(deep_recursion)
        return "unreachable"

    assert app.test_client().get("/deep").status_code == 500
    assert alerting.flush(20.0)
    raw = smtp_server.wait_for(1)[0].as_bytes()
    assert len(raw) < MAX_EMAIL_BYTES
    text = _plain(raw)
    assert "in deep\n" in text  # the outermost frames of the app
    assert 'raise RecursionError("gave up at the bottom")' in text  # the innermost
    assert "frames not shown" in text
    assert text.count("in _pong\n") < 100


def test_a_107_kb_url_is_cut_in_the_email(
    app: Flask, make_alerting: Make, smtp_config: dict[str, Any], smtp_server: SMTPServer
) -> None:
    alerting = _smtp_app(app, make_alerting, smtp_config)

    @app.route("/search")
    def search() -> str:
        raise RuntimeError("search failed")

    app.test_client().get("/search", query_string={"q": "z" * 107_000, "page": "2"})
    assert alerting.flush(10.0)
    raw = smtp_server.wait_for(1)[0].as_bytes()
    url_lines = [line for line in _plain(raw).splitlines() if line.startswith("  url: ")]
    assert len(url_lines) == 1 and len(url_lines[0]) < 3000
    assert "more characters]" in url_lines[0]
    assert len(raw) < 100_000


def test_huge_custom_alerts_make_bounded_emails_saying_what_was_cut(
    app: Flask, make_alerting: Make, smtp_config: dict[str, Any], smtp_server: SMTPServer
) -> None:
    alerting = _smtp_app(app, make_alerting, smtp_config)
    # Not ASCII and long lines: the worst case for the transfer encoding.
    head, tail = "HEAD-OF-THE-MESSAGE\n", "\nTAIL-OF-THE-MESSAGE"
    with app.app_context():
        alerting.alert("huge", head + ("\u00e9\u6f22\U0001f680<&>" * 500_000) + tail)
    assert alerting.flush(20.0)
    raw = smtp_server.wait_for(1)[0].as_bytes()
    assert len(raw) < MAX_EMAIL_BYTES
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    for kind in ("plain", "html"):
        part = message.get_body((kind,))
        assert part is not None
        content = part.get_content()
        assert "HEAD-OF-THE-MESSAGE" in content and "TAIL-OF-THE-MESSAGE" in content
        assert "bytes cut: the message was too long" in content


def _summary_size(summary: Any) -> tuple[int, int]:
    """(code objects, characters) a summary holds, whatever its shape."""
    codes = chars = 0
    stack = [summary]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            chars += len(item)
        elif isinstance(item, type((lambda: 0).__code__)):
            codes += 1
        elif isinstance(item, (tuple, list)):
            stack.extend(item)
    return codes, chars


def _raise_endless_chain() -> None:
    exc = RuntimeError("link 0")
    for i in range(1, 30_000):  # linked by hand: raising 30,000 times is slow
        outer = RuntimeError(f"link {i}")
        outer.__cause__ = exc
        exc = outer
    raise exc


def _raise_group_tree() -> None:
    # 15 members (the same object) at each of 12 levels: 15 ** 12 leaves to visit.
    level: BaseException = ValueError("leaf")
    for depth in range(12):
        level = ExceptionGroup(f"level {depth}", [level] * 15)  # type: ignore[list-item]  # noqa: F821
    raise level


def _raise_with_notes() -> None:
    exc = ValueError("annotated")
    for i in range(10_000):
        exc.add_note(f"note {i}: " + "n" * 1000)  # type: ignore[attr-defined]
    raise exc


HOSTILE: dict[str, Callable[[], None]] = {
    "chain of 2000": _raise_chain,
    "chain of 30000": _raise_endless_chain,
    "recursion 20000 deep": lambda: _ping(20_000),
}
if sys.version_info >= (3, 11):
    HOSTILE["group of 50 x 1 MB"] = _raise_group
    HOSTILE["group 15 wide, 12 deep"] = _raise_group_tree
    HOSTILE["10000 notes of 1 KB"] = _raise_with_notes


@pytest.mark.parametrize("case", list(HOSTILE))
def test_the_request_path_copies_a_bounded_summary_of_a_hostile_exception(
    case: str, deep_recursion: int
) -> None:
    from flask_alerting.capture import (
        MAX_SUMMARY_CHARACTERS,
        MAX_SUMMARY_FRAMES,
        format_summary,
        summarize_exception,
    )

    try:
        HOSTILE[case]()
    except BaseException as exc:  # noqa: BLE001 - ExceptionGroup included
        summary = summarize_exception(exc)
    codes, chars = _summary_size(summary)
    assert codes <= MAX_SUMMARY_FRAMES
    assert chars <= MAX_SUMMARY_CHARACTERS
    text = format_summary(summary)
    assert len(text) < 2 * MAX_SUMMARY_CHARACTERS + 300 * MAX_SUMMARY_FRAMES
    assert re.search(r"not shown|more exceptions|max_group_depth|more characters", text)


def test_the_exception_itself_is_never_left_out_of_a_chain_by_the_size_limit() -> None:
    from flask_alerting.capture import format_traceback

    exc = RuntimeError("the root cause")
    for i in range(30):  # 30 messages of 20,000 characters: more than a summary holds
        try:
            try:
                raise exc
            except RuntimeError as inner:
                raise RuntimeError(f"{i}: " + "m" * 20_000) from inner
        except RuntimeError as outer:
            exc = outer
    top = RuntimeError("top")
    top.__cause__ = exc
    text = format_traceback(top)
    assert text.rstrip().endswith("RuntimeError: top")
    assert "not shown: the alert's size limit" in text


@needs_groups
def test_a_small_exception_group_is_formatted_as_the_standard_library_does() -> None:
    import traceback

    from flask_alerting.capture import format_traceback

    def inner() -> None:
        try:
            raise KeyError("inside")
        except KeyError as exc:
            raise ExceptionGroup(  # noqa: F821
                "inner", [exc, TypeError("t")]
            ) from None

    def outer() -> None:
        errors: list[Exception] = []
        for func in (inner, lambda: int("x")):
            try:
                func()
            except Exception as exc:  # noqa: BLE001
                errors.append(exc)
        raise ExceptionGroup("outer", errors)  # noqa: F821

    try:
        outer()
    except Exception as exc:  # noqa: BLE001
        assert format_traceback(exc) == "".join(traceback.format_exception(exc))


@needs_groups
def test_notes_are_formatted_as_the_standard_library_does_and_bounded() -> None:
    import traceback

    from flask_alerting.capture import format_traceback

    def annotated(count: int) -> BaseException:
        try:
            exc = KeyError("k")
            for i in range(count):
                exc.add_note(f"note {i}\nsecond line")  # type: ignore[attr-defined]
            raise exc
        except KeyError as caught:
            return caught

    few = annotated(3)
    assert format_traceback(few) == "".join(traceback.format_exception(few))
    many = format_traceback(annotated(500))
    assert "note 19\n" in many and "note 20\n" not in many
    assert "[480 more notes not shown]" in many


# -- 9. capture_exception() next to the recursion limit -----------------------------------------


def _descend(n: int) -> None:
    if n > 1:
        _descend(n - 1)


def _room_for(frames: int) -> bool:
    """Whether ``frames`` more nested calls fit under the recursion limit from the caller."""
    try:
        _descend(frames - 1)  # with this function's own frame: ``frames`` frames
    except RecursionError:
        return False
    return True


def _call_with_room(room: int, func: Callable[[], None]) -> None:
    """Call ``func`` from a frame that has room for exactly ``room`` more nested calls.

    Measured, not computed from the frame count: calls from C code into Python (pytest's
    plugins) count against the limit too.
    """
    if _room_for(room + 1):
        _call_with_room(room, func)
    else:
        assert _room_for(room)
        func()


def test_capture_exception_next_to_the_recursion_limit_never_raises(
    app: Flask, make_alerting: Make, memory: MemoryNotifier
) -> None:
    # 39 distinct alerts, each of which must arrive: no flood guard.
    alerting = make_alerting(app, notifiers=[memory], throttle_seconds=0, rate_limit=0)
    raised: dict[int, BaseException] = {}
    errors = {k: ValueError(f"with room for {k} calls") for k in range(1, 40)}

    def capture(k: int) -> Callable[[], None]:
        return lambda: alerting.capture_exception(errors[k], k=k)

    for k in errors:
        try:
            # The lambda's frame has room for k calls: capture_exception's and k - 1 more.
            _call_with_room(k + 1, capture(k))
        except BaseException as exc:  # noqa: BLE001
            raised[k] = exc
    assert raised == {}
    assert alerting.flush(10.0)
    captured = sorted(int(a.details["extra"]["k"]) for a in memory.alerts)
    # With room for capture_exception's frame, the frame of the helper that checks for
    # room and one built-in call there, the alert is delivered (built on a fresh stack).
    # With less, nothing can be called, not even to log (Python 3.11: built-in calls
    # count against the limit), and the alert is lost, silently.
    assert set(range(3, 40)) <= set(captured) <= set(range(1, 40))
    assert len(captured) == len(set(captured))


def test_capture_exception_next_to_the_recursion_limit_in_a_view_keeps_the_request(
    app: Flask, make_alerting: Make, memory: MemoryNotifier
) -> None:
    alerting = make_alerting(app, notifiers=[memory], throttle_seconds=0)

    @app.route("/deep/<int:k>")
    def deep(k: int) -> str:
        _call_with_room(k + 1, lambda: alerting.capture_exception(ValueError(f"room {k}")))
        return "still answering"

    client = app.test_client()
    for k in (3, 5, 8, 13):
        assert client.get(f"/deep/{k}").get_data(as_text=True) == "still answering"
    assert alerting.flush(10.0)
    assert len(memory.alerts) == 4
    for alert in memory.alerts:
        assert alert.labels["endpoint"] == "deep"
        assert alert.details["request"]["url"].startswith("http://localhost/deep/")


def test_alert_next_to_the_recursion_limit_never_raises(
    app: Flask, alerting: FlaskAlerting, memory: MemoryNotifier
) -> None:
    raised: list[BaseException] = []
    for k in range(1, 20):
        try:
            _call_with_room(k + 1, lambda: alerting.alert("near the limit"))
        except BaseException as exc:  # noqa: BLE001
            raised.append(exc)
    assert raised == []
    assert alerting.flush(10.0)
    assert memory.alerts  # delivered (the throttle folds the repeats)


# == Local side and delivery: lock files, throttle table, flood guard, SMTP deadlines, ======
# == notifier threads (points 2, 5, 6, 7, 8 and the DATA reply of 9) ========================

NOBODY = 65534
needs_root = pytest.mark.skipif(
    not hasattr(os, "geteuid") or os.geteuid() != 0,
    reason="needs root, to act as a second local user (uid 65534) through setuid",
)
fork_warning = pytest.mark.filterwarnings(
    "ignore:This process .* is multi-threaded:DeprecationWarning"
)


@contextlib.contextmanager
def as_other_user(work: Callable[[], None]) -> Iterator[None]:
    """Run ``work`` in a forked child as uid/gid 65534 (nobody); the child keeps what it
    opened (and the locks it took) until the block ends. ``work`` may only use ``os``
    level calls: the child of a threaded process must not touch Python locks."""
    ready_r, ready_w = os.pipe()
    release_r, release_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child never returns into pytest
        code = 1
        try:
            os.close(ready_r)
            os.close(release_w)
            os.setgroups([])
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            os.umask(0)
            work()
            os.write(ready_w, b"ok")
            os.read(release_r, 1)  # until the parent closes its end
            code = 0
        except BaseException as exc:  # tell the parent, whatever it was
            with contextlib.suppress(BaseException):
                os.write(ready_w, f"child failed: {exc!r}".encode())
        finally:
            os._exit(code)
    os.close(ready_w)
    os.close(release_r)
    try:
        readable, _, _ = select.select([ready_r], [], [], 30.0)
        said = os.read(ready_r, 1000) if readable else b"no answer within 30 s"
        assert said == b"ok", said.decode()
        yield
    finally:
        os.close(release_w)
        os.close(ready_r)
        wait_child(pid, 30.0)


@pytest.fixture
def shared_dir(tmp_path: Path) -> Iterator[tuple[Path, int]]:
    """A world-writable sticky directory, like /tmp, and a descriptor of it through which a
    child running as another user reaches it (tmp_path's parents are closed to others)."""
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)
    fd = os.open(shared, os.O_RDONLY | os.O_DIRECTORY)
    yield shared, fd
    os.close(fd)


@pytest.fixture
def lock_samplers() -> Iterator[Callable[..., Sampler]]:
    made: list[Sampler] = []

    def make(lock_path: str | None, **kwargs: Any) -> Sampler:
        kwargs.setdefault("name", "hostile")
        kwargs.setdefault("submit", lambda alert: None)
        kwargs.setdefault("labels", {"app": "hostile", "host": "h"})
        kwargs.setdefault("interval", 5.0)
        kwargs.setdefault(
            "rules", [Rule(name="cpu", probe=lambda: 95.0, threshold=80.0, hysteresis=5.0)]
        )
        sampler = Sampler(lock_path=lock_path, **kwargs)
        made.append(sampler)
        return sampler

    yield make
    for sampler in made:
        sampler.stop()


def forged_state(clock_now: float) -> bytes:
    """A rule state another user could write: "firing" since a while, delivered, and
    notified in the far future, so that neither a "firing" alert nor a reminder would
    ever leave."""
    state = {
        "pid": 1,
        "boot": float(psutil.boot_time()),
        "clock": clock_now,
        "interval": 5.0,
        "rules": {
            "cpu": {
                "state": "firing",
                "value": 95.0,
                "breach_started": clock_now - 60.0,
                "last_notified": clock_now + 10.0**9,
                "reminders": 0,
                "changed_at": clock_now - 30.0,
                "sampled_at": clock_now,
                "error": None,
                "threshold": 80.0,
                "comparison": ">",
                "notice": "sent",
            }
        },
    }
    return json.dumps(state).encode()


@needs_root
@fork_warning
def test_lock_file_held_by_another_user_does_not_silence_metric_alerts(
    shared_dir: tuple[Path, int],
    lock_samplers: Callable[..., Sampler],
    clock: FakeClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    shared, dir_fd = shared_dir
    lock = shared / "metrics.lock"

    def squat() -> None:  # a 0666 file of theirs, locked for good
        fd = os.open("metrics.lock", os.O_RDWR | os.O_CREAT, 0o666, dir_fd=dir_fd)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)

    sent: list[Alert] = []
    with as_other_user(squat):
        assert lock.stat().st_uid == NOBODY
        sampler = lock_samplers(str(lock), submit=sent.append, clock=clock)
        with caplog.at_level(logging.WARNING, logger="flask_alerting"):
            assert sampler.tick()  # samples, on its own
    assert [a.status for a in sent] == ["firing"]
    [warning] = [r for r in caplog.records if str(lock) in r.getMessage()]
    assert "uid 65534" in warning.getMessage()
    assert warning.levelno >= logging.WARNING


@needs_root
@fork_warning
def test_forged_state_in_another_users_file_is_never_restored(
    shared_dir: tuple[Path, int], lock_samplers: Callable[..., Sampler], clock: FakeClock
) -> None:
    shared, dir_fd = shared_dir
    lock = shared / "metrics.lock"
    payload = forged_state(clock())

    def forge() -> None:  # not locked: only a forged "firing, notified in the future"
        fd = os.open("metrics.lock", os.O_RDWR | os.O_CREAT, 0o666, dir_fd=dir_fd)
        os.write(fd, payload)
        os.close(fd)

    with as_other_user(forge):
        pass
    sent: list[Alert] = []
    sampler = lock_samplers(str(lock), submit=sent.append, clock=clock)
    (shown,) = sampler.status()  # not even shown as the rule's state
    assert (shown.state, shown.last_state) == ("unknown", None)
    assert sampler.tick()
    assert [a.status for a in sent] == ["firing"]
    assert json.loads(lock.read_bytes())["pid"] == 1  # and never written to


@needs_root
@fork_warning
def test_default_directory_planted_by_another_user_is_refused(
    shared_dir: tuple[Path, int],
    lock_samplers: Callable[..., Sampler],
    clock: FakeClock,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    shared, dir_fd = shared_dir
    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
    monkeypatch.setattr(tempfile, "tempdir", str(shared))
    path = default_lock_path("hostile")
    assert os.path.dirname(os.path.dirname(path)) == str(shared)
    planted = os.path.basename(os.path.dirname(path))

    def plant() -> None:  # their directory, open to all, where our default path points
        os.mkdir(planted, 0o777, dir_fd=dir_fd)

    with as_other_user(plant):
        pass
    sent: list[Alert] = []
    sampler = lock_samplers(path, submit=sent.append, clock=clock, private_dir=True)
    with caplog.at_level(logging.WARNING, logger="flask_alerting"):
        assert sampler.tick()
    assert [a.status for a in sent] == ["firing"]
    assert os.listdir(os.path.dirname(path)) == []  # nothing of ours in their directory
    assert "uid 65534" in caplog.text and os.path.dirname(path) in caplog.text


def test_default_lock_file_is_private_in_a_private_directory(
    tmp_path: Path,
    lock_samplers: Callable[..., Sampler],
    clock: FakeClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    shared = tmp_path / "tmp"
    shared.mkdir()
    shared.chmod(0o1777)
    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
    monkeypatch.setattr(tempfile, "tempdir", str(shared))
    path = Path(default_lock_path("hostile"))
    assert path.parent.parent == shared and path.parent.name == f"flask-alerting-{os.getuid()}"
    sampler = lock_samplers(str(path), clock=clock, private_dir=True)
    assert sampler.tick() and sampler.leader
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_lock_file_is_created_0600_and_an_older_one_narrowed(
    tmp_path: Path, lock_samplers: Callable[..., Sampler], clock: FakeClock
) -> None:
    fresh = tmp_path / "fresh.lock"
    assert lock_samplers(str(fresh), clock=clock).tick()
    assert stat.S_IMODE(fresh.stat().st_mode) == 0o600
    older = tmp_path / "older.lock"  # as 0.1 left it: readable, so lockable, by anyone
    older.touch()
    older.chmod(0o644)
    assert lock_samplers(str(older), clock=clock).tick()
    assert stat.S_IMODE(older.stat().st_mode) == 0o600


def test_lock_path_hard_linked_to_another_file_is_never_written(
    tmp_path: Path,
    lock_samplers: Callable[..., Sampler],
    clock: FakeClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    lock = tmp_path / "metrics.lock"
    os.link(victim, lock)
    sent: list[Alert] = []
    sampler = lock_samplers(str(lock), submit=sent.append, clock=clock)
    with caplog.at_level(logging.WARNING, logger="flask_alerting"):
        assert sampler.tick()
    assert [a.status for a in sent] == ["firing"]
    assert victim.read_text() == "precious\n"
    assert "hard links" in caplog.text and str(lock) in caplog.text


def test_restored_times_in_the_future_are_clamped_to_now(clock: FakeClock) -> None:
    """Even a state file of ours (a clock quirk, an older version) cannot mute a rule."""
    rule = Rule(name="cpu", probe=lambda: 95.0, threshold=80.0, repeat_seconds=600.0)
    machine = RuleMachine(rule, clock)
    saved = json.loads(forged_state(clock()))["rules"]["cpu"]
    assert machine.restore(saved)
    assert machine.last_notified == clock() and machine.changed_at <= clock()
    clock.advance(600.0)
    event = machine.observe(95.0)
    assert event is not None and event.kind == "reminder"


def test_a_fifo_at_the_lock_path_does_not_hang_status(tmp_path: Path) -> None:
    fifo = tmp_path / "metrics.lock"
    os.mkfifo(fifo)
    (tmp_path / "fifoapp.py").write_text(
        "from flask import Flask\n"
        "from flask_alerting import FlaskAlerting, MemoryNotifier\n"
        "app = Flask('fifoapp')\n"
        f"app.config['ALERTING_METRICS_LOCK_FILE'] = {str(fifo)!r}\n"
        "app.config['ALERTING_METRICS_ENABLED'] = False\n"
        "FlaskAlerting(app, notifiers=[MemoryNotifier()])\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLASK_")}
    try:
        result = subprocess.run(
            [sys.executable, "-m", "flask", "--app", "fifoapp", "alerting", "status"],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
    except subprocess.TimeoutExpired:
        pytest.fail("`flask alerting status` hung on a FIFO at the lock path")
    assert result.returncode == 0, result.stderr
    assert "Metric rules:" in result.stdout
    assert f"{fifo} is a FIFO" in result.stderr


def test_a_fifo_at_the_lock_path_is_not_used_by_the_sampler(
    tmp_path: Path,
    lock_samplers: Callable[..., Sampler],
    clock: FakeClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    fifo = tmp_path / "metrics.lock"
    os.mkfifo(fifo)
    sent: list[Alert] = []
    sampler = lock_samplers(str(fifo), submit=sent.append, clock=clock)
    with caplog.at_level(logging.WARNING, logger="flask_alerting"):
        assert sampler.tick()
    assert [a.status for a in sent] == ["firing"]
    assert f"{fifo} is a FIFO" in caplog.text


# -- 5: a full fingerprint table ----------------------------------------------------------------


def test_full_fingerprint_table_evicts_the_oldest_windows_and_keeps_throttling(
    clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    sent: list[Alert] = []
    dispatcher = Dispatcher(
        sender=object(), throttle=Throttle(300.0, clock), deliver=sent.append, log=lambda a: None
    )
    with caplog.at_level(logging.WARNING, logger="flask_alerting"):
        for n in range(10_000):
            dispatcher.dispatch(Alert(title=f"custom alert {n}"))
            clock.advance(0.001)
        error = Alert(title="ZeroDivisionError in divide", kind="error", fingerprint="divide")
        for _ in range(1_000):
            dispatcher.dispatch(error)
            clock.advance(0.001)
        clock.advance(300.0)
        dispatcher.tick()
    errors = [a for a in sent if a.fingerprint == "divide"]
    assert len(errors) == 2  # the first, then one digest
    assert sum(a.occurrences for a in errors) == 1_000
    assert len(dispatcher.throttle) <= 10_000
    evictions = [r for r in caplog.records if "fingerprint" in r.getMessage()]
    assert len(evictions) == 1  # logged once


def test_an_evicted_window_that_counted_something_leaves_as_its_digest(
    clock: FakeClock,
) -> None:
    sent: list[Alert] = []
    dispatcher = Dispatcher(
        sender=object(),
        throttle=Throttle(300.0, clock, max_fingerprints=3),
        deliver=sent.append,
        log=lambda a: None,
    )
    for title in ["a", "a", "a", "b", "c", "d", "e"]:
        dispatcher.dispatch(Alert(title=title))
        clock.advance(1.0)
    # "a" (2 counted) was evicted by "d": its digest left at once; "b" by "e", empty.
    assert [(a.title, a.occurrences) for a in sent] == [
        ("a", 1),
        ("b", 1),
        ("c", 1),
        ("a", 2),
        ("d", 1),
        ("e", 1),
    ]
    clock.advance(300.0)
    dispatcher.tick()
    dispatcher.drain()
    assert sum(a.occurrences for a in sent if a.title == "a") == 3  # first + digests = all


# -- 6: the flood guard -------------------------------------------------------------------------

T0 = datetime(2024, 1, 1, 12, 0, 0, tzinfo=timezone.utc)


class Wall:
    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.start = clock()

    def __call__(self) -> datetime:
        return T0 + timedelta(seconds=self.clock() - self.start)


def make_guard(clock: FakeClock, limit: int = 3, **kwargs: Any) -> FloodGuard:
    kwargs.setdefault("labels", {"app": "demo", "host": "h"})
    return FloodGuard(limit, clock, wall_clock=Wall(clock), **kwargs)


def test_flood_guard_admits_the_limit_then_one_more_per_share_of_the_minute(
    clock: FakeClock,
) -> None:
    guard = make_guard(clock, limit=3)
    assert [guard.admit() for _ in range(4)] == [True, True, True, False]
    assert guard.folding()
    clock.advance(19.9)
    assert not guard.admit()
    clock.advance(0.1)  # 60 s / 3 = one more every 20 s
    assert not guard.folding()
    assert [guard.admit(), guard.admit()] == [True, False]
    clock.advance(60.0)  # the bucket refills to the limit, not beyond
    assert [guard.admit() for _ in range(4)] == [True, True, True, False]


def test_flood_guard_folds_into_one_summary_per_period_with_the_top_kinds(
    clock: FakeClock,
) -> None:
    guard = make_guard(clock, limit=3, top=2)
    assert guard.next_due() is None and guard.pop_due() is None
    guard.fold("fp-a", "KeyError: 'a' in view", severity="error")
    clock.advance(1.0)
    for _ in range(3):
        guard.fold("fp-b", "Slow call took 3 s", severity="warning")
    guard.fold("fp-c", "disk", severity="info", occurrences=5)  # a digest of 5
    guard.fold("fp-a", "KeyError: 'z' in view", severity="error")
    assert guard.next_due() == 1060.0
    clock.advance(58.9)
    assert guard.pop_due() is None
    clock.advance(0.1)
    summary = guard.pop_due()
    assert summary is not None
    assert summary.title == "6 more alerts of 3 kinds (10 occurrences), over the rate limit"
    assert summary.severity == "error"
    assert summary.labels["app"] == "demo" and summary.labels["host"] == "h"
    lines = summary.message.splitlines()
    assert lines[0] == (
        "From 12:00:00 to 12:01:00 UTC, 6 alerts of 3 kinds (10 occurrences) were raised "
        "beyond the limit of 3 alerts a minute (ALERTING_RATE_LIMIT); they were counted "
        "here instead of being sent one by one. The top 2:"
    )
    assert lines[2:] == [
        "      5  disk",
        "      3  Slow call took 3 s",
        "  and 1 more kind (2 occurrences).",
    ]
    assert summary.details["flood"]["kinds"] == 3
    assert guard.next_due() is None and guard.pop_due() is None  # a new period starts afresh
    assert guard.folded == 6


def test_flood_guard_bounds_the_kinds_it_remembers(clock: FakeClock) -> None:
    guard = make_guard(clock, max_kinds=100)
    for n in range(1_000):
        guard.fold(f"fp-{n}", f"error {n}")
    summary = guard.drain()
    assert summary is not None
    assert summary.title == "1000 more alerts of more than 100 kinds, over the rate limit"
    assert guard.drain() is None


def test_flood_of_distinct_alerts_is_one_summary_and_resolved_alerts_always_pass(
    clock: FakeClock,
) -> None:
    sent: list[Alert] = []
    wall = Wall(clock)
    throttle = Throttle(300.0, clock, wall_clock=wall)
    dispatcher = Dispatcher(
        sender=object(),
        throttle=throttle,
        deliver=sent.append,
        log=lambda a: None,
        guard=make_guard(clock, limit=20),
    )
    for n in range(137):
        dispatcher.dispatch(Alert(title=f"error {n % 41}", fingerprint=f"fp-{n % 41}"))
    resolved = Alert(title="CPU back to normal", kind="metric", status="resolved")
    dispatcher.dispatch(resolved)
    assert len(sent) == 21 and sent[-1] is resolved
    assert dispatcher.folded == 21  # 41 kinds: 20 sent, 21 folded; the rest throttled
    clock.advance(60.0)
    dispatcher.tick()
    summary = sent[-1]
    assert summary.title == "21 more alerts of 21 kinds, over the rate limit"
    # first alerts + digests + folded = every alert raised
    clock.advance(300.0)
    dispatcher.tick()
    dispatcher.drain()
    flood = [a for a in sent if "flood" in a.details]
    counted = sum(a.details["flood"]["occurrences"] for a in flood)
    delivered = sum(a.occurrences for a in sent if a.kind == "custom" and "flood" not in a.details)
    assert delivered + counted == 137


def test_flood_guard_folds_without_building(clock: FakeClock) -> None:
    built: list[int] = []
    sent: list[Alert] = []
    dispatcher = Dispatcher(
        sender=object(),
        throttle=Throttle(300.0, clock),
        deliver=sent.append,
        log=lambda a: None,
        guard=make_guard(clock, limit=5),
    )

    def item(n: int) -> PendingAlert:
        def build() -> Alert:
            built.append(n)
            return Alert(title=f"ValueError {n}", kind="error", fingerprint=f"fp-{n}")

        return PendingAlert(build, f"fp-{n}", T0, logged=True, title=f"ValueError {n}")

    for n in range(100):
        dispatcher.dispatch_pending(item(n))
    assert built == [0, 1, 2, 3, 4]
    assert len(sent) == 5 and dispatcher.folded == 95
    summary = dispatcher.guard.drain() if dispatcher.guard is not None else None
    assert summary is not None and "95 more alerts of 95 kinds" in summary.title
    assert "      1  ValueError 5" in summary.message


def test_flood_guard_folds_bare_counts_and_builds_what_must_be_logged(
    clock: FakeClock,
) -> None:
    sent: list[Alert] = []
    logged: list[Alert] = []
    suppressed: list[Alert] = []
    sender = object()
    dispatcher = Dispatcher(
        sender=sender,
        throttle=Throttle(300.0, clock),
        deliver=sent.append,
        log=logged.append,
        guard=make_guard(clock, limit=1),
    )

    def receive(_: Any, alert: Alert) -> None:
        suppressed.append(alert)

    dispatcher.dispatch(Alert(title="first", fingerprint="fp-0"))
    assert dispatcher.guard is not None and dispatcher.guard.folding()
    # What a request sends while the guard folds: a bare count, named cheaply.
    dispatcher.dispatch_pending(PendingAlert(None, "fp-1", T0, logged=True, title="E1 in v"))
    # Not logged by its source (capture_exception()): built, for the alert log, then folded.
    built = Alert(title="E2: boom in v", kind="error", fingerprint="fp-2")
    with alert_suppressed.connected_to(receive, sender):
        dispatcher.dispatch_pending(PendingAlert(lambda: built, "fp-2", T0, title="E2 in v"))
    assert [a.title for a in sent] == ["first"]
    assert [a.title for a in logged] == ["first", "E2: boom in v"]
    assert suppressed == [built]
    summary = dispatcher.guard.drain()
    assert summary is not None
    assert summary.message.splitlines()[2:] == ["      1  E1 in v", "      1  E2: boom in v"]
    assert dispatcher.raised == 3 and dispatcher.folded == 2


def test_rate_limit_configuration(app: Flask, make_alerting: Callable[..., FlaskAlerting]) -> None:
    for bad in (-1, 2.5, "many", True):
        with pytest.raises(ConfigurationError, match="ALERTING_RATE_LIMIT"):
            make_alerting(Flask("bad"), notifiers=[MemoryNotifier()], rate_limit=bad)
    for off in (None, 0):
        off_app = Flask(f"off{off}")
        make_alerting(off_app, notifiers=[MemoryNotifier()], rate_limit=off)
        assert off_app.extensions["alerting"].pipeline.dispatcher.guard is None
    app.config["ALERTING_RATE_LIMIT"] = "30"
    make_alerting(app, notifiers=[MemoryNotifier()])
    assert app.extensions["alerting"].config.rate_limit == 30
    assert app.extensions["alerting"].pipeline.dispatcher.guard.limit == 30


def test_an_error_flood_through_the_app_is_twenty_alerts_and_a_summary(
    app: Flask, make_alerting: Callable[..., FlaskAlerting], clock: FakeClock
) -> None:
    @app.route("/fail/<int:n>")
    def fail(n: int) -> str:
        raise type(f"Error{n}", (ValueError,), {})(f"distinct error {n}")

    memory = MemoryNotifier()
    alerting = make_alerting(app, notifiers=[memory], clock=clock)
    client = app.test_client()
    for n in range(100):
        assert client.get(f"/fail/{n}").status_code == 500
    assert alerting.flush(10.0)
    assert len(memory.alerts) == 20  # ALERTING_RATE_LIMIT's default
    assert alerting.stats()["folded"] == 80
    # Now that the guard folds, requests see it and skip the capture: their errors are
    # named by class and endpoint only (a full capture's title has the message too).
    for _ in range(30):
        assert client.get("/fail/100").status_code == 500
    alerting.shutdown(10.0)  # the pending summary leaves early
    assert len(memory.alerts) == 21
    summary = memory.alerts[-1]
    assert summary.title == "110 more alerts of 81 kinds, over the rate limit"
    kinds = summary.message.splitlines()[2:]
    assert kinds[0] == "     30  tests.test_hostile.Error100 in fail"
    assert kinds[1] == "      1  tests.test_hostile.Error20: distinct error 20 in fail"
    assert kinds[-1] == "  and 71 more kinds (71 occurrences)."


# -- 7 and 9: SMTP servers that trickle, or take long to accept ---------------------------------


class FaultySMTP:
    """A raw socket server on 127.0.0.1 in front of a real SMTP server.

    Until :meth:`heal`, each connection gets a greeting, then, after EHLO, an endless
    multi-line reply: one ``250-`` line (``mode="lines"``) or one byte of it
    (``mode="bytes"``: a line that never ends, a byte at a time) every ``interval``
    seconds, so that no socket read ever times out.
    Healed, it relays bytes both ways to ``upstream``.
    """

    def __init__(self, upstream: SMTPServer, mode: str = "lines", interval: float = 0.2):
        self.upstream = upstream
        self.mode = mode
        self.interval = interval
        self.healed = threading.Event()
        self.stopped = threading.Event()
        self.trickled = threading.Event()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.2)
        self.host, self.port = "127.0.0.1", self.listener.getsockname()[1]
        self.threads = [threading.Thread(target=self._accept, daemon=True)]
        self.threads[0].start()

    def heal(self) -> None:
        self.healed.set()

    def stop(self) -> None:
        self.stopped.set()
        for thread in list(self.threads):
            thread.join(10.0)
        self.listener.close()

    def _accept(self) -> None:
        while not self.stopped.is_set():
            try:
                conn, _ = self.listener.accept()
            except (TimeoutError, OSError):
                continue
            thread = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            self.threads.append(thread)
            thread.start()

    def _serve(self, conn: socket.socket) -> None:
        with conn, contextlib.suppress(OSError):
            if self.healed.is_set():
                self._relay(conn)
            else:
                self._trickle(conn)

    def _trickle(self, conn: socket.socket) -> None:
        conn.settimeout(10.0)
        conn.sendall(b"220 slow.example ESMTP\r\n")
        received = b""
        while b"\r\n" not in received:
            chunk = conn.recv(1024)
            if not chunk:
                return
            received += chunk
        if self.mode == "bytes":
            conn.sendall(b"250-")  # then a line that never ends
        n = 0
        while not self.stopped.wait(self.interval):
            conn.sendall(b"250-still thinking %d\r\n" % n if self.mode == "lines" else b"x")
            n += 1
            self.trickled.set()

    def _relay(self, conn: socket.socket) -> None:
        with socket.create_connection((self.upstream.host, self.upstream.port), 10.0) as up:
            pair = {conn: up, up: conn}
            while not self.stopped.is_set():
                readable, _, _ = select.select(list(pair), [], [], 0.2)
                for sock in readable:
                    data = sock.recv(65536)
                    if not data:
                        return
                    pair[sock].sendall(data)


@pytest.fixture
def faulty_smtp(smtp_server: SMTPServer) -> Iterator[Callable[..., FaultySMTP]]:
    made: list[FaultySMTP] = []

    def make(**kwargs: Any) -> FaultySMTP:
        made.append(FaultySMTP(smtp_server, **kwargs))
        return made[-1]

    yield make
    for server in made:
        server.stop()


def smtp_notifier(server: Any, timeout: float) -> SMTPNotifier:
    return SMTPNotifier(
        server.host,
        server.port,
        security="none",
        sender="alerts@example.com",
        recipients="admin@example.com",
        timeout=timeout,
    )


@pytest.mark.parametrize("mode", ["lines", "bytes"])
def test_a_trickling_server_cannot_hold_a_send_past_its_deadline(
    faulty_smtp: Callable[..., FaultySMTP], mode: str
) -> None:
    server = faulty_smtp(mode=mode)
    notifier = smtp_notifier(server, timeout=1.0)
    outcome: list[BaseException | None] = []

    def send() -> None:
        try:
            notifier.send(Alert(title="Disk full"))
            outcome.append(None)
        except BaseException as exc:
            outcome.append(exc)

    thread = threading.Thread(target=send, daemon=True)
    thread.start()
    thread.join(30.0)  # the deadline is 1 s: 30 only bounds a broken test
    assert not thread.is_alive(), "the send was still running after 30 s"
    assert server.trickled.is_set()
    [exc] = outcome
    assert isinstance(exc, TimeoutError) and notifier.is_transient(exc)
    assert "did not finish within 1 s" in notifier.describe_error(exc)


def test_after_a_trickling_server_heals_the_alert_arrives(
    app: Flask,
    make_alerting: Callable[..., FlaskAlerting],
    smtp_server: SMTPServer,
    faulty_smtp: Callable[..., FaultySMTP],
    recorder: Callable[[Any], Any],
) -> None:
    server = faulty_smtp(mode="lines")
    app.config.update(
        ALERTING_SMTP_HOST=server.host,
        ALERTING_SMTP_PORT=server.port,
        ALERTING_SMTP_SECURITY="none",
        ALERTING_SMTP_TIMEOUT=1.0,
        ALERTING_MAIL_SENDER="alerts@example.com",
        ALERTING_MAIL_RECIPIENTS="admin@example.com",
    )
    failed = recorder(alert_failed)
    alerting = make_alerting(app)
    alerting.alert("Disk nearly full", "only 2 % left")
    [failure] = failed.wait_for(1, timeout=30.0)
    assert failure["will_retry"] and isinstance(failure["exception"], TimeoutError)
    server.heal()
    assert alerting.flush(30.0)
    [message] = smtp_server.wait_for(1)
    assert "Disk nearly full" in message["Subject"]
    assert len(smtp_server.raw) == 1


def test_a_slow_final_data_reply_is_awaited_not_retried(smtp_server: SMTPServer) -> None:
    """The server takes longer than ALERTING_SMTP_TIMEOUT to accept the message (spam
    filters do): giving up then and sending again would deliver it twice."""
    smtp_server.delay = 2.0
    notifier = smtp_notifier(smtp_server, timeout=1.0)
    notifier.send(Alert(title="Disk full"))  # waits up to 6 x 1 s for that reply
    assert len(smtp_server.raw) == 1


def test_a_slow_final_data_reply_through_the_pipeline_is_one_email(
    app: Flask, make_alerting: Callable[..., FlaskAlerting], smtp_server: SMTPServer
) -> None:
    smtp_server.delay = 2.0
    alerting = make_alerting(app, notifiers=[smtp_notifier(smtp_server, timeout=1.0)])
    alerting.alert("Disk full")
    assert alerting.flush(30.0)
    stats = alerting.stats()["notifiers"]["smtp"]
    assert (stats["sent"], stats["failed"]) == (1, 0)
    assert len(smtp_server.raw) == 1


# -- 8: a BaseException in a notifier ------------------------------------------------------------


class ExitingNotifier(Notifier):
    """Raises SystemExit for alerts titled "exit"; records the others."""

    name = "exiting"

    def __init__(self) -> None:
        self.alerts: list[Alert] = []

    def send(self, alert: Alert) -> None:
        if alert.title == "exit":
            raise SystemExit(3)
        self.alerts.append(alert)


def test_system_exit_in_send_keeps_the_delivery_thread_alive(
    app: Flask,
    make_alerting: Callable[..., FlaskAlerting],
    recorder: Callable[[Any], Any],
    caplog: pytest.LogCaptureFixture,
) -> None:
    notifier = ExitingNotifier()
    sent = recorder(alert_sent)
    failed = recorder(alert_failed)
    alerting = make_alerting(app, notifiers=[notifier])
    with caplog.at_level(logging.WARNING, logger="flask_alerting"):
        alerting.alert("exit")
        for n in range(4):
            alerting.alert(f"after {n}")
        sent.wait_for(4)  # delivered by the same thread, without flush()
    assert [a.title for a in notifier.alerts] == [f"after {n}" for n in range(4)]
    [failure] = failed.calls
    assert failure["alert"].title == "exit" and isinstance(failure["exception"], SystemExit)
    assert failure["will_retry"] is False
    assert alerting.stats()["notifiers"]["exiting"]["failed"] == 1
    assert "SystemExit" in caplog.text and "'exit'" in caplog.text
    worker = app.extensions["alerting"].pipeline.workers[0]
    assert worker.has_thread


def test_keyboard_interrupt_in_send_is_a_failure_on_the_delivery_thread(
    app: Flask, make_alerting: Callable[..., FlaskAlerting], recorder: Callable[[Any], Any]
) -> None:
    class Interrupting(Notifier):
        name = "interrupting"
        calls = 0

        def send(self, alert: Alert) -> None:
            self.calls += 1
            if self.calls == 1:
                raise KeyboardInterrupt  # not a signal: only the main thread gets those

    failed = recorder(alert_failed)
    sent = recorder(alert_sent)
    alerting = make_alerting(app, notifiers=[Interrupting()])
    alerting.alert("first")
    alerting.alert("second")
    sent.wait_for(1)
    assert [type(c["exception"]) for c in failed.calls] == [KeyboardInterrupt]

