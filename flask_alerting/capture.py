"""Exceptions -> error alerts, with a snapshot of the request taken on the request path.

The request path (:func:`error_alert_builder` itself) only copies what it must while the
request and the exception still exist: the WSGI environ's strings, the view arguments and
a bounded copy of the body (:func:`snapshot_request`), and a frame-free summary of the
exception (:func:`summarize_exception`: code objects, offsets, the message). Parsing and
scrubbing the request (:func:`render_request`, :mod:`flask_alerting.scrub`), formatting
the traceback (:func:`format_summary`), the fingerprint and the alert itself happen later,
on the dispatch thread, in the callable it returns. That callable holds no reference to
the exception, its traceback or its frames.

Frame local variables are never read: tracebacks are formatted without locals.
"""

from __future__ import annotations

import builtins
import collections
import collections.abc
import functools
import itertools
import json
import linecache
import os
import sys
import sysconfig
import traceback
from collections.abc import Callable, Iterable, Iterator, Mapping
from types import CodeType, TracebackType
from typing import TYPE_CHECKING, Any, NamedTuple

from flask import current_app, has_app_context, has_request_context
from flask import g as flask_g
from flask import request as flask_request
from werkzeug.wrappers import Request as WerkzeugRequest

from ._flask import body_read_by_view
from .alert import Alert, PendingAlert, Severity, make_fingerprint, utcnow
from .scrub import (
    JSON_BUDGET,
    MAX_ITEMS,
    TRUNCATED,
    Scrubber,
    bounded_copy,
    bounded_items,
    clean_text,
    cut,
    cut_middle,
    get_scrubber,
    safe_repr,
)

if TYPE_CHECKING:
    from flask import Request

#: Marks an exception object alerted outside any app context, so that no path reports it
#: twice (``capture_exception``, :class:`~flask_alerting.AlertingHandler`).
CAPTURED_ATTR = "__flask_alerting_captured__"

#: Where a request (or, outside requests, an app context's ``g``) keeps the token that
#: marks the exceptions alerted during its lifetime (see :func:`mark_captured`).
_TOKEN_ATTR = "_flask_alerting_token"
_tokens = itertools.count(1)

#: A body the view read as raw data only (``request.get_data()``) is parsed for the alert
#: up to this many bytes; a larger one is described. A body the view did not read is
#: never read for the alert (a slow client would hold the error response and the worker).
MAX_BODY_READ = 1024 * 1024

#: The rendered JSON body is cut near this many characters.
MAX_JSON_TEXT = JSON_BUDGET + 1024

#: The ``Type: message`` part of a traceback is cut to this many characters.
MAX_EXCEPTION_TEXT = 10_000
#: Frames kept of one traceback: the outermost and the innermost halves.
MAX_FRAMES = 100
#: Exceptions kept of one ``__cause__``/``__context__`` chain: the first and the last
#: halves (in print order: the root cause first, the exception raised last).
MAX_CHAIN = 20
#: A chain is not followed beyond this many links (a loop-free chain of that length is
#: already absurd; following it costs a pointer chase per link on the request path).
MAX_CHAIN_WALK = 10_000
#: Members shown of one exception group, and nesting depth (the standard library's).
MAX_GROUP_WIDTH = 15
MAX_GROUP_DEPTH = 10
#: What one summary holds at most, whatever the exception: exceptions, frames, and
#: characters of text (messages, notes, separators). The request path copies no more.
MAX_SUMMARY_EXCEPTIONS = 100
MAX_SUMMARY_FRAMES = 500
MAX_SUMMARY_CHARACTERS = 100_000
#: The formatted traceback is cut to about this many characters (head and tail kept).
MAX_TRACEBACK_TEXT = 120_000
#: The request's URL line is cut to this many characters.
MAX_URL_TEXT = 2048

_LIB_DIRS = tuple(
    {os.path.abspath(p) for k, p in sysconfig.get_paths().items() if k in ("stdlib", "platstdlib")}
)
_SELF_DIR = os.path.dirname(os.path.abspath(__file__))
_FORM_TYPES = frozenset({"application/x-www-form-urlencoded", "multipart/form-data"})


# -- "already reported" marks -------------------------------------------------------------


def _scope_token() -> int | bool:
    """The current request's token, else the current app context's; True outside both.

    Per request rather than per app context: requests share one app context when one was
    already pushed for the app (pytest-flask, ``with app.app_context()`` around a client).
    A number, unique in the process, so the exception refers to nothing: a request that
    held its exceptions would form a cycle (request, exception, traceback, frames,
    request) that keeps the app alive until the garbage collector runs.
    """
    if has_request_context():
        holder = flask_request._get_current_object()  # type: ignore[attr-defined]
    elif has_app_context():
        holder = flask_g._get_current_object()
    else:
        return True
    token: int | None = getattr(holder, _TOKEN_ATTR, None)
    if token is None:
        token = next(_tokens)
        setattr(holder, _TOKEN_ATTR, token)
    return token


def mark_captured(exc: BaseException) -> bool:
    """Mark ``exc`` as alerted; False when it already was.

    Inside a request the mark lasts for that request, inside an app context (no request)
    for that context: the same exception object raised again later (a failed ``Future``,
    a cached initialisation error) is alerted again in each request. Outside any app
    context the mark lasts as long as the exception. Never raises.
    """
    try:
        token = _scope_token()
        if _same(getattr(exc, CAPTURED_ATTR, None), token):
            return False
        setattr(exc, CAPTURED_ATTR, token)
    except Exception:  # pragma: no cover - exceptions with __slots__ and no __dict__
        pass
    return True


def is_captured(exc: BaseException) -> bool:
    """Whether ``exc`` was already alerted (in the current request or app context, or,
    outside any, ever; see :func:`mark_captured`)."""
    return _same(getattr(exc, CAPTURED_ATTR, None), _scope_token())


def _same(mark: object, token: int | bool) -> bool:
    # True (no context) and the token 1 are equal numbers, not the same mark.
    return type(mark) is type(token) and mark == token


# -- fingerprint ------------------------------------------------------------------------------


def exception_name(exc: BaseException) -> str:
    """The class name, qualified with its module unless builtin."""
    cls = type(exc)
    if cls.__module__ == "builtins":
        return cls.__qualname__
    return f"{cls.__module__}.{cls.__qualname__}"


@functools.lru_cache(maxsize=4096)
def _is_library_file(filename: str) -> bool:
    if filename.startswith("<"):
        return True
    path = os.path.abspath(filename)
    return (
        "site-packages" in path
        or "dist-packages" in path
        or path.startswith(_SELF_DIR)
        or any(path.startswith(d + os.sep) for d in _LIB_DIRS)
    )


def code_location(tb: TracebackType | None) -> str:
    """``file:function:line`` of the innermost frame in the app's own code.

    Library frames (site-packages, the standard library, flask-alerting itself) are
    skipped; falls back to the innermost frame when every frame is library code. One
    plain loop over the traceback (a 20,000-frame recursion costs a few milliseconds).
    """
    innermost: TracebackType | None = None
    app_entry: TracebackType | None = None
    is_library = _is_library_file
    while tb is not None:
        innermost = tb
        if not is_library(tb.tb_frame.f_code.co_filename):
            app_entry = tb
        tb = tb.tb_next
    chosen = app_entry or innermost
    if chosen is None:
        return ""
    code = chosen.tb_frame.f_code
    return f"{code.co_filename}:{code.co_name}:{chosen.tb_lineno}"


def error_fingerprint(exc: BaseException, endpoint: str | None) -> str:
    """Exception class + code location (+ endpoint); never the message text.

    Cheap enough for the request path: a walk over the traceback's frames (library
    checks are cached) and a cached hash.
    """
    return _fingerprint(exception_name(exc), code_location(exc.__traceback__), endpoint)


@functools.lru_cache(maxsize=1024)
def _fingerprint(name: str, location: str, endpoint: str | None) -> str:
    return make_fingerprint("error", name, location, endpoint)


# -- request snapshot (request path) --------------------------------------------------------

#: WSGI environ entries an alert reads (besides the ``HTTP_*`` headers).
_ENVIRON_KEYS = frozenset(
    {
        "REQUEST_METHOD",
        "SCRIPT_NAME",
        "PATH_INFO",
        "QUERY_STRING",
        "CONTENT_TYPE",
        "CONTENT_LENGTH",
        "SERVER_NAME",
        "SERVER_PORT",
        "SERVER_PROTOCOL",
        "REMOTE_ADDR",
        "wsgi.url_scheme",
    }
)


def _plain(value: Any) -> Any:
    """A value safe to hand to another thread: primitives as they are, else a string."""
    if value is None or isinstance(value, (bool, int, float)):
        return value
    return cut(value if isinstance(value, str) else str(value))


#: Stands for a body that was not read: its length is unknown (a chunked upload).
UNKNOWN_LENGTH_BODY = "[body of unknown length, not included]"


def _unread(length: int | None) -> str:
    if length is None:
        return UNKNOWN_LENGTH_BODY
    return f"[body of {length} bytes not read by the view, not included]"


def _body(req: Request, snap: dict[str, Any]) -> None:
    # Only what the view already read: reading the rest here would make the error
    # response (and the worker) wait for the client, however slowly it sends.
    length = req.content_length
    read = body_read_by_view(req)
    if req.is_json:
        if read.json is not Ellipsis:
            data = read.json
        elif read.data is None:
            snap["json"] = _unread(length)
            return
        elif len(read.data) > MAX_BODY_READ:
            snap["json"] = f"[JSON body of {len(read.data)} bytes, not included]"
            return
        else:
            data = req.get_json(silent=True)  # parses the cached data
        if data is None and length != 0:
            snap["json"] = (
                f"[{length} bytes of invalid or unreadable JSON, not included]"
                if length
                else "[invalid or unreadable JSON, not included]"
            )
            return
        snap["json"], snap["json_truncated"] = bounded_copy(data)
    elif req.mimetype in _FORM_TYPES:
        if not read.form:
            if read.data is None:
                snap["form"] = {"[body]": _unread(length)}
                return
            if len(read.data) > MAX_BODY_READ:
                snap["form"] = {"[body]": f"{len(read.data)} bytes, not included"}
                return
        # Parsed already, or parsed now from the cached data (never from the stream).
        snap["form"] = bounded_items(req.form.items(multi=True))
        files = req.files
        if files:
            snap["files"] = bounded_items(
                (name, f"{storage.filename!r} ({storage.mimetype or 'unknown type'})")
                for name, storage in files.items(multi=True)
            )


def snapshot_request(req: Request, *, cookie_values: bool = False) -> dict[str, Any]:
    """Copy what an error alert shows of ``req``: small, not yet parsed nor scrubbed.

    Runs on the request path, so it only copies: the string entries of the WSGI environ
    (method, URL parts, headers: strings are immutable, so this copies references), the
    endpoint and view arguments, and a bounded copy of the form or JSON body when the
    view read it (a body the view did not read is never read here: see :func:`_body`).
    Parsing headers, cookies and the query string happens in :func:`render_request`.
    Never raises.

    :param cookie_values: show the values of cookies (``ALERTING_SHOW_COOKIE_VALUES``),
        scrubbed; by default only their names.
    """
    snap: dict[str, Any] = {}
    try:
        if cookie_values:
            snap["cookie_values"] = True
        if has_app_context():
            # The app's session cookies are filtered under any name (read per request:
            # Flask reads them so).
            config = current_app.config
            snap["private_names"] = tuple(
                name
                for name in (config.get("SESSION_COOKIE_NAME"), config.get("REMEMBER_COOKIE_NAME"))
                if isinstance(name, str) and name
            )
        environ = req.environ
        snap["environ"] = {
            k: v
            for k, v in environ.items()
            if (k in _ENVIRON_KEYS or k.startswith("HTTP_")) and isinstance(v, str)
        }
        snap["endpoint"] = req.endpoint
        if req.view_args:
            snap["view_args"] = {str(k): _plain(v) for k, v in req.view_args.items()}
        if environ.get("CONTENT_TYPE"):
            _body(req, snap)
    except Exception:
        snap["unavailable"] = "part of the request could not be read"
    return snap


def request_context(
    labels: Mapping[str, str], *, cookie_values: bool = False
) -> tuple[dict[str, str], dict[str, Any] | None]:
    """``labels`` plus ``endpoint``, and a snapshot of the current request (request path).

    Outside a request: a copy of ``labels`` and None.

    :param cookie_values: see :func:`snapshot_request`.
    """
    labels = dict(labels)
    if not has_request_context():
        return labels, None
    snapshot = snapshot_request(
        flask_request._get_current_object(),  # type: ignore[attr-defined]
        cookie_values=cookie_values,
    )
    if snapshot.get("endpoint"):
        labels["endpoint"] = snapshot["endpoint"]
    return labels, snapshot


def render_request(snap: Mapping[str, Any], scrubber: Scrubber) -> dict[str, Any]:
    """The parsed, scrubbed, e-mail-safe request section of an alert (dispatch thread)."""
    scrubber = scrubber.including(snap.get("private_names") or ())
    view_args = snap.get("view_args") or {}
    secrets = [
        str(v)
        for k, v in view_args.items()
        if scrubber.is_sensitive(k) and isinstance(v, (str, int)) and not isinstance(v, bool)
    ]
    environ = snap.get("environ") or {}
    req = WerkzeugRequest(dict(environ), populate_request=False, shallow=True)
    out: dict[str, Any] = {}

    def part(key: str, read: Callable[[], Any]) -> None:
        try:
            value = read()
        except Exception:
            value = "[unavailable]"
        if value:
            out[key] = value

    part("method", lambda: environ.get("REQUEST_METHOD"))
    part("url", lambda: cut(scrubber.scrub_url(req.url, secrets), MAX_URL_TEXT))
    part("endpoint", lambda: snap.get("endpoint"))
    part("view_args", lambda: scrubber.scrub(view_args))
    part("query_args", lambda: scrubber.scrub(bounded_items(req.args.items(multi=True))))
    part("form", lambda: scrubber.scrub(snap.get("form")))
    part("files", lambda: scrubber.scrub(snap.get("files")))
    json_body = snap.get("json")
    if isinstance(json_body, str):
        out["json"] = json_body
    elif "json" in snap:
        text = json.dumps(
            scrubber.scrub(json_body), ensure_ascii=False, default=str, separators=(", ", ": ")
        )
        text = cut(text, MAX_JSON_TEXT)
        if snap.get("json_truncated") and not text.endswith("characters]"):
            text += " \u2026 [truncated]"
        out["json"] = clean_text(text)
    part("remote_addr", lambda: environ.get("REMOTE_ADDR"))
    part("user_agent", lambda: clean_text(cut(environ.get("HTTP_USER_AGENT", ""))))
    part("headers", lambda: scrubber.scrub_headers(bounded_items(req.headers.items()), secrets))
    if snap.get("cookie_values"):
        part("cookies", lambda: scrubber.scrub(bounded_items(req.cookies.items(multi=True))))
    else:
        part("cookies", lambda: _cookie_names(req.cookies.keys()))
    if "unavailable" in snap:
        out["unavailable"] = snap["unavailable"]
    return out


def _cookie_names(names: Iterable[str]) -> list[str]:
    """The distinct cookie names, at most :data:`~flask_alerting.scrub.MAX_ITEMS`."""
    unique = list(dict.fromkeys(clean_text(cut(str(name), 200)) for name in names))
    if len(unique) > MAX_ITEMS:
        unique[MAX_ITEMS:] = [f"{TRUNCATED} {len(unique) - MAX_ITEMS} more"]
    return unique


class RequestDetails(Mapping[str, Any]):
    """The request section of an alert, parsed and scrubbed on first use.

    Most alerts of a storm are only counted by the throttle and never shown: they never
    pay for parsing and scrubbing. Whatever reads the section (a notifier, a signal
    receiver, ``repr``, pickling) gets the scrubbed rendering of :func:`render_request`;
    the raw snapshot is dropped once rendered and is never exposed.
    """

    __slots__ = ("_snapshot", "_scrubber", "_data")

    def __init__(self, snapshot: Mapping[str, Any], scrubber: Scrubber) -> None:
        self._snapshot: Mapping[str, Any] | None = snapshot
        self._scrubber = scrubber
        self._data: dict[str, Any] | None = None

    def _rendered(self) -> dict[str, Any]:
        data = self._data
        if data is None:
            snapshot = self._snapshot
            try:
                data = render_request(snapshot or {}, self._scrubber)
            except Exception:
                data = {"unavailable": "the request could not be rendered"}
            self._data = data
            self._snapshot = None
        return data

    def __getitem__(self, key: str) -> Any:
        return self._rendered()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._rendered())

    def __len__(self) -> int:
        return len(self._rendered())

    def __repr__(self) -> str:
        return repr(self._rendered())

    def __reduce__(self) -> tuple[Any, ...]:
        return (dict, (self._rendered(),))


# -- exception summary (request path) and traceback formatting (dispatch thread) -----------
#
# The request path must not keep the exception: its traceback holds every frame of the
# request and everything they reference, and keeping that alive until the dispatch thread
# runs costs the garbage collector far more than the request path saves (measured: about
# a third of an erroring request). So the request path keeps only code objects, instruction
# offsets and the messages (:func:`summarize_exception`); the dispatch thread formats the
# same text as :func:`traceback.format_exception` from those (:func:`format_summary`).
#
# Both are bounded, whatever the exception: a group of 50 members with 1 MB messages, a
# 2,000-link cause chain or a 20,000-frame recursion are summarised with at most
# MAX_SUMMARY_EXCEPTIONS exceptions, MAX_SUMMARY_FRAMES frames and MAX_SUMMARY_CHARACTERS
# characters, and the text says what was left out.

_CAUSE = "\nThe above exception was the direct cause of the following exception:\n\n"
_CONTEXT = "\nDuring handling of the above exception, another exception occurred:\n\n"
_EXCEPTION_GROUP: type | None = getattr(builtins, "BaseExceptionGroup", None)
_MAX_NOTES = 20

#: One traceback entry: code object, instruction offset (``tb_lasti``), line number.
Frame = tuple[CodeType, int, int]


class Group(NamedTuple):
    """The members of an exception group, each summarised with its own chain."""

    members: tuple[tuple[ExceptionPart, ...], ...]
    #: Members not summarised (beyond :data:`MAX_GROUP_WIDTH` or the summary's limits).
    more: int = 0
    #: Nested deeper than :data:`MAX_GROUP_DEPTH`: not summarised at all.
    too_deep: bool = False


class ExceptionPart(NamedTuple):
    """One exception of a chain, without frames or locals."""

    #: Printed before this part (the "direct cause" / "during handling" sentences).
    separator: str | None
    #: The traceback entries kept, outermost first; None when the exception was never
    #: raised.
    frames: tuple[Frame, ...] | None
    #: The ``Type: message`` lines, already cut (or a line saying what was left out).
    text: str
    #: Frames left out between the first ``head`` entries of ``frames`` and the others.
    omitted: int = 0
    head: int = 0
    #: For an exception group, its members.
    group: Group | None = None


#: A frame-free summary: the parts in print order.
Summary = tuple[ExceptionPart, ...]

#: Formatted stacks by code path: a storm of one error formats its stack once.
_STACKS: dict[tuple[tuple[int, int, int], ...], tuple[tuple[CodeType, ...], list[str]]] = {}
_MAX_STACKS = 256


class _Budget:
    """What a summary may still hold (see :data:`MAX_SUMMARY_EXCEPTIONS` ...)."""

    __slots__ = ("exceptions", "frames", "characters")

    def __init__(self) -> None:
        self.exceptions = MAX_SUMMARY_EXCEPTIONS
        self.frames = MAX_SUMMARY_FRAMES
        self.characters = MAX_SUMMARY_CHARACTERS

    def spent(self) -> bool:
        # A part costs at least a line of text: keep room for the one saying what is left.
        return self.exceptions <= 0 or self.characters < 200


def _safe_str(exc: BaseException) -> str:
    try:
        return str(exc)
    except Exception:
        return "<exception str() failed>"


def _exception_only(
    exc: BaseException, message: str | None = None, limit: int = MAX_EXCEPTION_TEXT
) -> str:
    """The ``Type: message`` lines of ``exc`` as :mod:`traceback` prints them, cut to about
    ``limit`` characters before anything long is copied."""
    cls = type(exc)
    if isinstance(exc, SyntaxError):
        text = "".join(traceback.format_exception_only(cls, exc))
    else:
        module = cls.__module__
        name = cls.__qualname__
        if module not in ("__main__", "builtins"):
            name = f"{module if isinstance(module, str) else '<unknown>'}.{name}"
        value = _safe_str(exc) if message is None else message
        if len(value) > limit:
            value = cut(value, limit)
        text = f"{name}: {value}\n" if value else f"{name}\n"
        notes = getattr(exc, "__notes__", None)
        if notes is not None:
            text += _notes(notes, limit)
    if len(text) > limit:
        text = cut(text, limit) + "\n"
    return text


def _notes(notes: Any, limit: int) -> str:
    """The ``__notes__`` lines as :mod:`traceback` prints them, at most :data:`_MAX_NOTES`."""
    if not isinstance(notes, collections.abc.Sequence) or isinstance(notes, str):
        return cut(safe_repr(notes), limit)  # traceback prints it so, without a newline
    out: list[str] = []
    try:
        for note in itertools.islice(notes, _MAX_NOTES):
            try:
                text = note if isinstance(note, str) else str(note)
            except Exception:
                text = "<note str() failed>"
            out += [line + "\n" for line in cut(text, limit).split("\n")]
        if len(notes) > _MAX_NOTES:
            out.append(f"[{len(notes) - _MAX_NOTES} more notes not shown]\n")
    except Exception:
        out.append("<__notes__ could not be read>\n")
    return "".join(out)


def _frames(
    tb: TracebackType | None, budget: _Budget
) -> tuple[tuple[Frame, ...] | None, int, int]:
    """The frames kept of ``tb`` (the outermost and innermost halves of at most
    :data:`MAX_FRAMES`), how many were left out between them, and how many of the kept
    frames come before that gap."""
    if tb is None:
        return None, 0, 0
    room = max(0, min(MAX_FRAMES, budget.frames))
    head_room = (room + 1) // 2
    outer: list[TracebackType] = []
    while tb is not None and len(outer) < head_room:
        outer.append(tb)
        tb = tb.tb_next
    # The innermost frames: a bounded deque keeps the last ones of one plain walk.
    inner: collections.deque[TracebackType] = collections.deque(maxlen=room - head_room)
    count = len(outer)
    while tb is not None:
        inner.append(tb)
        count += 1
        tb = tb.tb_next
    frames: list[Frame] = []
    cache = linecache.cache
    for entry in (*outer, *inner):
        frame = entry.tb_frame
        code = frame.f_code
        if code.co_filename not in cache:
            # Lets the dispatch thread find source that is not in a plain file (zip
            # imports), as traceback does with the frame's globals.
            linecache.lazycache(code.co_filename, frame.f_globals)
        frames.append((code, entry.tb_lasti, entry.tb_lineno))
    budget.frames -= len(frames)
    return tuple(frames), count - len(frames), len(outer)


def _chain(
    exc: BaseException, seen: set[int]
) -> tuple[list[tuple[BaseException, str | None]], bool]:
    """``exc`` and its causes / contexts, innermost (printed first) first, each with the
    sentence relating it to the next one; and whether the walk stopped early."""
    chain: list[tuple[BaseException, str | None]] = []  # outermost first
    current: BaseException | None = exc
    relation: str | None = None
    while current is not None:
        if len(chain) >= MAX_CHAIN_WALK:
            break
        seen.add(id(current))
        chain.append((current, relation))
        cause, context = current.__cause__, current.__context__
        if cause is not None and id(cause) not in seen:
            current, relation = cause, _CAUSE
        elif not current.__suppress_context__ and context is not None and id(context) not in seen:
            current, relation = context, _CONTEXT
        else:
            current = None
    chain.reverse()
    return chain, current is not None


def _summarize(
    exc: BaseException, message: str | None, budget: _Budget, seen: set[int], depth: int
) -> tuple[ExceptionPart, ...]:
    chain, stopped = _chain(exc, seen)
    total = len(chain)
    kept = list(range(total))
    if total > MAX_CHAIN:
        kept = [*range(MAX_CHAIN // 2), *range(total - MAX_CHAIN // 2, total)]
    # ``exc`` itself (printed last) first: the budget never leaves it out.
    summarized: dict[int, ExceptionPart] = {}
    for index in (kept[-1], *kept[:-1]):
        if budget.spent():
            break
        item = chain[index][0]
        # The sentence before an exception relates the one printed just above it.
        separator = chain[index - 1][1] if index else None
        budget.exceptions -= 1
        room = max(0, min(MAX_EXCEPTION_TEXT, budget.characters - 200))
        text = _exception_only(item, message if item is exc else None, room)
        budget.characters -= len(text) + len(separator or "")
        frames, omitted, head = _frames(item.__traceback__, budget)
        group = None
        if _EXCEPTION_GROUP is not None and isinstance(item, _EXCEPTION_GROUP):
            group = _group(item, budget, seen, depth)
        summarized[index] = ExceptionPart(separator, frames, text, omitted, head, group)
    parts: list[ExceptionPart] = []
    if stopped:
        text = f"[the chain goes on: not followed beyond {MAX_CHAIN_WALK} exceptions]\n"
        parts.append(ExceptionPart(None, None, text))
    previous = -1
    left_out = 0  # by the budget, since the last part shown
    for index in kept:
        part = summarized.get(index)
        if part is None:
            left_out += 1
            continue
        gap = index - previous - 1 - left_out
        if left_out:
            parts.append(_left_out(left_out, "more exceptions not shown: the alert's size limit"))
        if gap:
            parts.append(_left_out(gap, "exceptions of the chain not shown"))
        parts.append(part)
        previous, left_out = index, 0
    if left_out:
        parts.append(_left_out(left_out, "more exceptions not shown: the alert's size limit"))
    return tuple(parts)


def _left_out(count: int, what: str) -> ExceptionPart:
    return ExceptionPart(None, None, f"\n[{count} {what}]\n")


def _group(group: Any, budget: _Budget, seen: set[int], depth: int) -> Group:
    if depth > MAX_GROUP_DEPTH:
        return Group((), 0, too_deep=True)
    # As traceback prints them: the top-level group at depth 1, its members one deeper.
    member_depth = max(depth, 1) + 1
    members: list[tuple[ExceptionPart, ...]] = []
    exceptions = group.exceptions
    for member in exceptions[:MAX_GROUP_WIDTH]:
        if budget.spent():
            break
        members.append(_summarize(member, None, budget, seen, member_depth))
    return Group(tuple(members), len(exceptions) - len(members))


def summarize_exception(exc: BaseException, message: str | None = None) -> Summary:
    """A frame-free summary of ``exc``, its ``__cause__``/``__context__`` chain and, for
    exception groups, their members.

    Cheap and bounded (request path): no source lines are read and nothing is formatted
    but the ``Type: message`` lines; long tracebacks, chains and groups are cut (see
    :data:`MAX_FRAMES`, :data:`MAX_CHAIN`, :data:`MAX_GROUP_WIDTH`, and the summary's
    limits, :data:`MAX_SUMMARY_EXCEPTIONS` ...).

    :param message: ``str(exc)`` when the caller already has it.
    """
    return _summarize(exc, message, _Budget(), set(), 0)


def _position(code: CodeType, lasti: int) -> tuple[Any, Any, Any, Any]:
    positions = getattr(code, "co_positions", None)  # Python >= 3.11
    if positions is None or lasti < 0:
        return (None, None, None, None)
    return next(itertools.islice(positions(), lasti // 2, None), (None, None, None, None))


def _frame_summary(code: CodeType, lasti: int, lineno: int) -> traceback.FrameSummary:
    first, last, col, end_col = _position(code, lasti)
    if first is None:
        first = lineno
    try:
        return traceback.FrameSummary(
            code.co_filename,
            first,
            code.co_name,
            lookup_line=False,
            end_lineno=last,  # type: ignore[call-arg]
            colno=col,
            end_colno=end_col,
        )
    except TypeError:  # pragma: no cover - Python 3.10: no column positions
        return traceback.FrameSummary(code.co_filename, first, code.co_name, lookup_line=False)


def _stack_lines(frames: tuple[Frame, ...]) -> list[str]:
    if not frames:
        return []
    # The entry keeps its code objects alive, so no other code object can take their ids
    # while it exists: equal keys mean the very same code objects.
    key = tuple([(id(code), lasti, lineno) for code, lasti, lineno in frames])
    hit = _STACKS.get(key)
    if hit is not None:
        return hit[1]
    for filename in {code.co_filename for code, _, _ in frames}:
        linecache.checkcache(filename)
    summary = traceback.StackSummary.from_list(
        [_frame_summary(code, lasti, lineno) for code, lasti, lineno in frames]
    )
    lines = list(summary.format())
    if len(_STACKS) >= _MAX_STACKS:
        _STACKS.clear()
    _STACKS[key] = (tuple(code for code, _, _ in frames), lines)
    return lines


def _part_stack(part: ExceptionPart) -> list[str]:
    frames = part.frames or ()
    if not part.omitted:
        return _stack_lines(frames)
    return [
        *_stack_lines(frames[: part.head]),
        f"  [{part.omitted} frames not shown]\n",
        *_stack_lines(frames[part.head :]),
    ]


class _Printer:
    """Indentation and box drawing of exception groups, as :mod:`traceback` does them."""

    def __init__(self) -> None:
        self.depth = 0
        self.need_close = False

    def indent(self) -> str:
        return " " * (2 * self.depth)

    def emit(self, texts: str | list[str], margin: str = "|") -> Iterator[str]:
        prefix = self.indent() + (f"{margin} " if self.depth else "")
        for text in [texts] if isinstance(texts, str) else texts:
            if not prefix:
                yield text
            else:
                yield "".join(prefix + line for line in text.splitlines(keepends=True))

    def parts(self, parts: tuple[ExceptionPart, ...]) -> Iterator[str]:
        for part in parts:
            if part.separator:
                yield from self.emit(part.separator)
            group = part.group
            if group is None:
                if part.frames or part.omitted:
                    yield from self.emit("Traceback (most recent call last):\n")
                    yield from self.stack(part)
                yield from self.emit(part.text)
            elif group.too_deep:
                yield from self.emit(f"... (max_group_depth is {MAX_GROUP_DEPTH})\n")
            else:
                yield from self.group(part, group)

    def stack(self, part: ExceptionPart) -> Iterator[str]:
        try:
            lines = _part_stack(part)
        except Exception:
            lines = ["  (the stack could not be formatted)\n"]
        yield from self.emit(lines)

    def group(self, part: ExceptionPart, group: Group) -> Iterator[str]:
        toplevel = self.depth == 0
        if toplevel:
            self.depth += 1
        if part.frames or part.omitted:
            yield from self.emit(
                "Exception Group Traceback (most recent call last):\n",
                margin="+" if toplevel else "|",
            )
            yield from self.stack(part)
        yield from self.emit(part.text)
        count = len(group.members) + (1 if group.more else 0)
        self.need_close = False
        for i in range(count):
            last = i == count - 1
            if last:
                self.need_close = True
            title = str(i + 1) if i < len(group.members) else "..."
            corner = "+-" if i == 0 else "  "
            yield f"{self.indent()}{corner}+---------------- {title} ----------------\n"
            self.depth += 1
            if i < len(group.members):
                yield from self.parts(group.members[i])
            else:
                plural = "s" if group.more > 1 else ""
                yield from self.emit(f"and {group.more} more exception{plural}\n")
            if last and self.need_close:
                yield f"{self.indent()}+------------------------------------\n"
                self.need_close = False
            self.depth -= 1
        if toplevel:
            self.depth = 0


def format_summary(summary: Summary) -> str:
    """The text :func:`traceback.format_exception` prints for the summarised exception
    (no locals), with what :func:`summarize_exception` left out said in its place.

    The formatted stack of each code path is cached. Never raises.
    """
    try:
        return "".join(_Printer().parts(summary))
    except Exception:
        return "(the traceback could not be formatted)\n"


def format_traceback(exc: BaseException) -> str:
    """:func:`format_summary` of :func:`summarize_exception`, in one call."""
    try:
        return format_summary(summarize_exception(exc))
    except Exception:
        return f"{exception_name(exc)} (the traceback could not be formatted)\n"


# -- the alert ------------------------------------------------------------------------------


def copy_details(extra: Mapping[str, Any]) -> dict[str, Any]:
    """Plain data for the ``extra`` details of ``capture_exception``, on the caller's thread.

    The values may be objects whose ``repr`` stops working once the caller moves on (an
    ORM instance detached at teardown): rendering them on the dispatch thread would lose
    the alert. See :func:`~flask_alerting.scrub.bounded_copy`. Never raises.
    """
    try:
        copied, _ = bounded_copy(dict(extra))
    except Exception:
        return {"[unavailable]": "the details could not be copied"}
    return copied  # type: ignore[no-any-return]


def error_alert_builder(
    exc: BaseException,
    *,
    labels: Mapping[str, str],
    request: Mapping[str, Any] | None = None,
    extra: Mapping[str, Any] | None = None,
    log: Mapping[str, Any] | None = None,
    severity: Severity = "error",
    scrub_fields: tuple[str, ...] = (),
    logged: bool = False,
    fingerprint: str | None = None,
) -> PendingAlert:
    """Capture what is needed now; return a callable that builds the alert later.

    The callable holds no reference to ``exc``, its traceback or its frames (see
    :func:`summarize_exception`), only copies.

    :param exc: the exception.
    :param labels: base labels (``app``, ``host``), plus ``endpoint`` inside a request.
    :param request: a request snapshot (see :func:`snapshot_request`).
    :param extra: extra details given to ``capture_exception`` (copied now, see
        :func:`copy_details`).
    :param log: facts about the log record that reported the exception, if any.
    :param severity: ``"error"``, or ``"critical"`` for critical log records.
    :param scrub_fields: extra sensitive names (``ALERTING_SCRUB_FIELDS``).
    :param logged: the exception was already logged (see :class:`PendingAlert`).
    :param fingerprint: :func:`error_fingerprint` of ``exc``, when the caller has it.
    """
    timestamp = utcnow()
    name = exception_name(exc)
    all_labels = {**labels, "exception": name}
    endpoint = all_labels.get("endpoint")
    message = _safe_str(exc)
    try:
        summary: Summary = summarize_exception(exc, message)
    except Exception:
        summary = (ExceptionPart(None, None, _exception_only(exc, message)),)
    # The fingerprint is needed now: in a storm the dispatcher only counts occurrences of
    # an open throttle window, without building them.
    if fingerprint is None:
        fingerprint = error_fingerprint(exc, endpoint)
    headline = " ".join(message[:1000].split())
    title = f"{name}: {headline}" if headline else name
    if endpoint:
        title += f" in {endpoint}"
    extra = copy_details(extra) if extra else None
    log = dict(log) if log else None
    del exc

    def build() -> Alert:
        scrubber = get_scrubber(scrub_fields)
        tb_text = clean_text(cut_middle(format_summary(summary), MAX_TRACEBACK_TEXT, "traceback"))
        title = f"{name}: {headline}" if headline else name
        if endpoint:
            title += f" in {endpoint}"
        details: dict[str, Any] = {}
        if log:
            details["log"] = scrubber.scrub(log)
        if request:
            details["request"] = RequestDetails(request, scrubber)
        if extra:
            details["extra"] = scrubber.scrub(extra)
        return Alert(
            kind="error",
            severity=severity,
            title=clean_text(title),
            message=f"An error occurred in your Flask application:\n\n{tb_text}",
            labels=all_labels,
            fingerprint=fingerprint,
            timestamp=timestamp,
            details=details,
            traceback=tb_text,
        )

    return PendingAlert(build, fingerprint, timestamp, logged=logged, title=clean_text(title))


def current_exception() -> BaseException | None:
    """The exception being handled, if any (for ``capture_exception()`` without args)."""
    return sys.exc_info()[1]
