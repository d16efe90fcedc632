"""Hostile input (issue 10): slow clients, leaking cookies, huge exceptions, deep stacks.

Real parts where it matters: a real threaded WSGI server (werkzeug's) and a raw socket
client that trickles its body; e-mails received by the real aiosmtpd server of the tests.
"""

from __future__ import annotations

import email
import email.policy
import re
import socket
import sys
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
    alerting = make_alerting(app, notifiers=[memory], throttle_seconds=0)
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
