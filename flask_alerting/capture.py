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

from flask import g as flask_g
from flask import has_app_context, has_request_context
from flask import request as flask_request
from werkzeug.wrappers import Request as WerkzeugRequest

from .alert import Alert, PendingAlert, Severity, make_fingerprint, utcnow
from .scrub import (
    JSON_BUDGET,
    Scrubber,
    bounded_copy,
    bounded_items,
    clean_text,
    cut,
    get_scrubber,
)

if TYPE_CHECKING:
    from flask import Request

#: Marks an exception object alerted outside any app context, so that no path reports it
#: twice (``capture_exception``, :class:`~flask_alerting.AlertingHandler`).
CAPTURED_ATTR = "__flask_alerting_captured__"

#: Where a request (or, outside requests, an app context's ``g``) keeps the exceptions
#: alerted during its lifetime: ``id(exc) -> exc``.
_MARKS_ATTR = "_flask_alerting_captured"

#: Request bodies up to this many bytes are parsed for the alert when the view did not
#: parse them itself (werkzeug caches the parsed form and JSON, so a view that did pays
#: nothing more). Larger bodies are described, not read.
MAX_BODY_READ = 1024 * 1024

#: The rendered JSON body is cut near this many characters.
MAX_JSON_TEXT = JSON_BUDGET + 1024

#: The ``Type: message`` part of a traceback is cut to this many characters.
MAX_EXCEPTION_TEXT = 10_000

_LIB_DIRS = tuple(
    {os.path.abspath(p) for k, p in sysconfig.get_paths().items() if k in ("stdlib", "platstdlib")}
)
_SELF_DIR = os.path.dirname(os.path.abspath(__file__))
_FORM_TYPES = frozenset({"application/x-www-form-urlencoded", "multipart/form-data"})


# -- "already reported" marks -------------------------------------------------------------


def _marks() -> dict[int, BaseException] | None:
    """The current request's marks, else the current app context's; None outside both.

    Per request rather than per app context: requests share one app context when one was
    already pushed for the app (pytest-flask, ``with app.app_context()`` around a client).
    """
    if has_request_context():
        holder = flask_request._get_current_object()  # type: ignore[attr-defined]
    elif has_app_context():
        holder = flask_g._get_current_object()
    else:
        return None
    marks: dict[int, BaseException] | None = getattr(holder, _MARKS_ATTR, None)
    if marks is None:
        marks = {}
        setattr(holder, _MARKS_ATTR, marks)
    return marks


def mark_captured(exc: BaseException) -> bool:
    """Mark ``exc`` as alerted; False when it already was.

    Inside a request the mark lasts for that request, inside an app context (no request)
    for that context: the same exception object raised again later (a failed ``Future``,
    a cached initialisation error) is alerted again in each request. Outside any app
    context the mark is an attribute of the exception and lasts as long as it.
    Never raises.
    """
    try:
        marks = _marks()
        if marks is not None:
            if marks.get(id(exc)) is exc:
                return False
            marks[id(exc)] = exc  # keeps exc alive, so its id is not reused meanwhile
            return True
        if getattr(exc, CAPTURED_ATTR, False):
            return False
        setattr(exc, CAPTURED_ATTR, True)
    except Exception:  # pragma: no cover - exceptions with __slots__ and no __dict__
        pass
    return True


def is_captured(exc: BaseException) -> bool:
    """Whether ``exc`` was already alerted (in the current request or app context, or,
    outside any, ever; see :func:`mark_captured`)."""
    if has_app_context():  # a request context always comes with one
        marks = _marks()
        return marks is not None and marks.get(id(exc)) is exc
    return bool(getattr(exc, CAPTURED_ATTR, False))


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


def _location(frames: Iterable[tuple[CodeType, int]]) -> str:
    innermost: tuple[CodeType, int] | None = None
    app_frame: tuple[CodeType, int] | None = None
    for frame in frames:
        innermost = frame
        if not _is_library_file(frame[0].co_filename):
            app_frame = frame
    chosen = app_frame or innermost
    if chosen is None:
        return ""
    code, lineno = chosen
    return f"{code.co_filename}:{code.co_name}:{lineno}"


def _walk(tb: TracebackType | None) -> Iterator[tuple[CodeType, int]]:
    while tb is not None:
        yield tb.tb_frame.f_code, tb.tb_lineno
        tb = tb.tb_next


def code_location(tb: TracebackType | None) -> str:
    """``file:function:line`` of the innermost frame in the app's own code.

    Library frames (site-packages, the standard library, flask-alerting itself) are
    skipped; falls back to the innermost frame when every frame is library code.
    """
    return _location(_walk(tb))


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


def _body_cached(req: Request) -> bool:
    """Whether werkzeug already holds the body in memory (the view read or parsed it)."""
    return (
        getattr(req, "_cached_data", None) is not None
        or "form" in req.__dict__  # the parsed form (an instance-dict cached_property)
        or getattr(req, "_cached_json", (Ellipsis, Ellipsis)) != (Ellipsis, Ellipsis)
    )


def _body(req: Request, snap: dict[str, Any]) -> None:
    length = req.content_length
    # A body the view did not read is read here only when its length is known and
    # small: a chunked upload (no Content-Length) could be of any size.
    readable = _body_cached(req) or (length is not None and length <= MAX_BODY_READ)
    if req.is_json:
        if not readable:
            snap["json"] = (
                UNKNOWN_LENGTH_BODY
                if length is None
                else f"[JSON body of {length} bytes, not included]"
            )
            return
        data = req.get_json(silent=True)
        if data is None and length != 0:
            snap["json"] = (
                f"[{length} bytes of invalid or unreadable JSON, not included]"
                if length
                else "[invalid or unreadable JSON, not included]"
            )
            return
        snap["json"], snap["json_truncated"] = bounded_copy(data)
    elif req.mimetype in _FORM_TYPES:
        if not readable:
            snap["form"] = {
                "[body]": UNKNOWN_LENGTH_BODY if length is None else f"{length} bytes, not included"
            }
            return
        snap["form"] = bounded_items(req.form.items(multi=True))
        files = req.files
        if files:
            snap["files"] = bounded_items(
                (name, f"{storage.filename!r} ({storage.mimetype or 'unknown type'})")
                for name, storage in files.items(multi=True)
            )


def snapshot_request(req: Request) -> dict[str, Any]:
    """Copy what an error alert shows of ``req``: small, not yet parsed nor scrubbed.

    Runs on the request path, so it only copies: the string entries of the WSGI environ
    (method, URL parts, headers: strings are immutable, so this copies references), the
    endpoint and view arguments, and a bounded copy of the form or JSON body (parsed
    here if the view did not: the body cannot be read later). Parsing headers, cookies
    and the query string happens in :func:`render_request`. Never raises.
    """
    snap: dict[str, Any] = {}
    try:
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


def request_context(labels: Mapping[str, str]) -> tuple[dict[str, str], dict[str, Any] | None]:
    """``labels`` plus ``endpoint``, and a snapshot of the current request (request path).

    Outside a request: a copy of ``labels`` and None.
    """
    labels = dict(labels)
    if not has_request_context():
        return labels, None
    snapshot = snapshot_request(flask_request._get_current_object())  # type: ignore[attr-defined]
    if snapshot.get("endpoint"):
        labels["endpoint"] = snapshot["endpoint"]
    return labels, snapshot


def render_request(snap: Mapping[str, Any], scrubber: Scrubber) -> dict[str, Any]:
    """The parsed, scrubbed, e-mail-safe request section of an alert (dispatch thread)."""
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
    part("url", lambda: scrubber.scrub_url(req.url, secrets))
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
    part("headers", lambda: scrubber.scrub_headers(bounded_items(req.headers.items())))
    part("cookies", lambda: scrubber.scrub(bounded_items(req.cookies.items(multi=True))))
    if "unavailable" in snap:
        out["unavailable"] = snap["unavailable"]
    return out


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
# offsets and the message (:func:`summarize_exception`); the dispatch thread formats the
# same text as :func:`traceback.format_exception` from those (:func:`format_summary`).

_CAUSE = "\nThe above exception was the direct cause of the following exception:\n\n"
_CONTEXT = "\nDuring handling of the above exception, another exception occurred:\n\n"
_EXCEPTION_GROUP: type | None = getattr(builtins, "BaseExceptionGroup", None)

#: One traceback entry: code object, instruction offset (``tb_lasti``), line number.
Frame = tuple[CodeType, int, int]


class ExceptionPart(NamedTuple):
    """One exception of a chain, without frames or locals."""

    #: Printed before this part (the "direct cause" / "during handling" sentences).
    separator: str | None
    #: The traceback entries, outermost first; None when the exception was never raised.
    frames: tuple[Frame, ...] | None
    #: The ``Type: message`` lines, already cut.
    text: str


#: A frame-free summary: the parts in print order, or (exception groups) the final text.
Summary = tuple[ExceptionPart, ...] | str

#: Formatted stacks by code path: a storm of one error formats its stack once.
_STACKS: dict[tuple[tuple[int, int, int], ...], tuple[tuple[CodeType, ...], list[str]]] = {}
_MAX_STACKS = 256


def _safe_str(exc: BaseException) -> str:
    try:
        return str(exc)
    except Exception:
        return "<exception str() failed>"


def _exception_only(exc: BaseException, message: str | None = None) -> str:
    cls = type(exc)
    if isinstance(exc, SyntaxError) or getattr(exc, "__notes__", None) is not None:
        text = "".join(traceback.format_exception_only(cls, exc))
    else:
        # The common case, as traceback prints it, without building a TracebackException.
        module = cls.__module__
        name = cls.__qualname__
        if module not in ("__main__", "builtins"):
            name = f"{module if isinstance(module, str) else '<unknown>'}.{name}"
        value = _safe_str(exc) if message is None else message
        text = f"{name}: {value}\n" if value else f"{name}\n"
    if len(text) > MAX_EXCEPTION_TEXT:
        text = cut(text, MAX_EXCEPTION_TEXT) + "\n"
    return text


def _frames(tb: TracebackType | None) -> tuple[Frame, ...] | None:
    if tb is None:
        return None
    frames: list[Frame] = []
    cache = linecache.cache
    while tb is not None:
        frame = tb.tb_frame
        code = frame.f_code
        if code.co_filename not in cache:
            # Lets the dispatch thread find source that is not in a plain file (zip
            # imports), as traceback does with the frame's globals.
            linecache.lazycache(code.co_filename, frame.f_globals)
        frames.append((code, tb.tb_lasti, tb.tb_lineno))
        tb = tb.tb_next
    return tuple(frames)


def summarize_exception(exc: BaseException, message: str | None = None) -> Summary:
    """A frame-free summary of ``exc`` and its ``__cause__``/``__context__`` chain.

    Cheap (request path): no source lines are read and nothing is formatted but the
    ``Type: message`` lines. Exception groups (rare) are formatted at once.

    :param message: ``str(exc)`` when the caller already has it.
    """
    chain: list[tuple[BaseException, str | None]] = []  # outermost first
    seen: set[int] = set()
    current: BaseException | None = exc
    relation: str | None = None
    while current is not None:
        if _EXCEPTION_GROUP is not None and isinstance(current, _EXCEPTION_GROUP):
            return "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        seen.add(id(current))
        chain.append((current, relation))
        cause, context = current.__cause__, current.__context__
        if cause is not None and id(cause) not in seen:
            current, relation = cause, _CAUSE
        elif not current.__suppress_context__ and context is not None and id(context) not in seen:
            current, relation = context, _CONTEXT
        else:
            current = None
    parts: list[ExceptionPart] = []
    # Printed innermost (oldest) first; each separator goes before the exception that was
    # raised from, or while handling, the one printed just above it.
    for index in range(len(chain) - 1, -1, -1):
        item, _ = chain[index]
        separator = chain[index + 1][1] if index + 1 < len(chain) else None
        text = _exception_only(item, message if item is exc else None)
        parts.append(ExceptionPart(separator, _frames(item.__traceback__), text))
    return tuple(parts)


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


def format_summary(summary: Summary) -> str:
    """The text :func:`traceback.format_exception` prints for the summarised exception
    (no locals), with ``Type: message`` parts cut at :data:`MAX_EXCEPTION_TEXT` characters.

    The formatted stack of each code path is cached. Never raises.
    """
    if isinstance(summary, str):
        return summary
    out: list[str] = []
    for part in summary:
        if part.separator:
            out.append(part.separator)
        if part.frames:
            out.append("Traceback (most recent call last):\n")
            try:
                out.extend(_stack_lines(part.frames))
            except Exception:
                out.append("  (the stack could not be formatted)\n")
        out.append(part.text)
    return "".join(out)


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
        tb_text = clean_text(format_summary(summary))
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
