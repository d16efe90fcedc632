"""The request section of an error alert: copied on the request path, rendered later.

:func:`snapshot_request` copies, while the request exists, what an alert shows of it
(small, not yet parsed nor scrubbed); :func:`render_request` parses and scrubs that copy
on the dispatch thread, when :class:`RequestDetails` is first read.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from flask import current_app, has_app_context, has_request_context
from flask import request as flask_request
from werkzeug.wrappers import Request as WerkzeugRequest

from .._flask import body_read_by_view
from ..scrub import (
    JSON_BUDGET,
    MAX_ITEMS,
    TRUNCATED,
    Scrubber,
    bounded_copy,
    bounded_items,
    clean_text,
    cut,
)

if TYPE_CHECKING:
    from flask import Request

#: A body the view read as raw data only (``request.get_data()``) is parsed for the alert
#: up to this many bytes; a larger one is described. A body the view did not read is
#: never read for the alert (a slow client would hold the error response and the worker).
MAX_BODY_READ = 1024 * 1024

#: The rendered JSON body is cut near this many characters.
MAX_JSON_TEXT = JSON_BUDGET + 1024

#: The request's URL line is cut to this many characters.
MAX_URL_TEXT = 2048

_FORM_TYPES = frozenset({"application/x-www-form-urlencoded", "multipart/form-data"})


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

