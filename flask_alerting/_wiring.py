"""Request wiring: Flask's hooks and signals -> error capture.

Module-level functions, connected once for every app and looking the state up in
``app.extensions``: no closure or signal connection ever holds an app. None of them
stands in the call stack of the application's code, so no traceback ever shows a frame
of flask-alerting.
"""

from __future__ import annotations

import functools
import logging
from typing import Any

from flask import (
    Flask,
    Response,
    after_this_request,
    current_app,
    has_request_context,
    request,
)
from flask.signals import got_request_exception
from flask.typing import ResponseReturnValue
from werkzeug.exceptions import HTTPException, InternalServerError

from ._flask import hook_error_handler_lookup, propagates
from ._lifecycle import guard
from ._state import State, find_state
from .capture import is_captured, mark_captured

logger = logging.getLogger("flask_alerting")

_capture_installed = False


def install_capture() -> None:
    """Connect the request capture (once per process; every app shares it)."""
    global _capture_installed
    if _capture_installed:
        return
    # A module-level function: a strong connection keeps nothing alive.
    got_request_exception.connect(_on_request_exception, weak=False)
    hook_error_handler_lookup(_on_error_handler_lookup)
    _capture_installed = True


def _enabled_state(app: object) -> State | None:
    state = find_state(app)
    return state if state is not None and state.config.enabled else None


def _on_request_exception(sender: Flask, exception: BaseException, **_: object) -> None:
    """``got_request_exception``: an exception no handler of the app turned into a
    response. Flask logs it right after this signal, unless it propagates it."""
    state = _enabled_state(sender)
    if state is None:
        return
    if isinstance(exception, HTTPException) and (exception.code or 500) < 500:
        return
    with guard("capturing an exception"):
        state.extension._capture(state, exception, {}, logged=not propagates(sender))
        # An error handler that raised: the exception it was handling is part of this
        # one's traceback ("During handling of the above exception ..."), not a second
        # alert (see _on_error_handler_lookup).
        seen = {id(exception)}
        inner = exception.__context__
        while inner is not None and id(inner) not in seen:
            seen.add(id(inner))
            mark_captured(inner)
            inner = inner.__context__


def _on_error_handler_lookup(app: Flask, exc: BaseException, handler: Any) -> Any:
    """Flask looks up the error handler of ``exc`` (inside its ``except`` block).

    An exception that the app's own handler (or, for an ``HTTPException``, Flask itself)
    turns into a response is noted, and alerted once the response is known to be a 5xx.
    For the ``InternalServerError`` of an unhandled exception, when the app has no handler
    for it (nor for a base class) and ``ALERTING_ERROR_RESPONSE`` is set, the notice is
    the handler; an explicit ``abort(500, description=...)`` or ``InternalServerError(
    response=...)`` keeps its own. Returns ``handler`` otherwise.
    """
    state = _enabled_state(app)
    if state is None:
        return handler
    try:
        server_error: BaseException | None = None
        if isinstance(exc, HTTPException):
            if (exc.code or 500) < 500:
                return handler
            original = getattr(exc, "original_exception", None)
            if original is None or not is_captured(original):
                server_error = exc
            body = state.config.error_response
            if (
                handler is None
                and body is not None
                and isinstance(exc, InternalServerError)
                and exc.response is None
                and exc.description == type(exc).description
            ):
                handler = functools.partial(_notice, body)
        elif handler is not None:
            # Without a handler, Flask re-raises it: got_request_exception reports it.
            server_error = exc
        if server_error is not None and has_request_context():
            after_this_request(_AlertIfServerError(server_error))
    except Exception:
        logger.exception("flask-alerting: internal error while looking at an error handler")
    return handler


class _AlertIfServerError:
    """``after_this_request`` of a handled exception: alert when it answered with a 5xx.

    Lets go of the exception once called: the request context holds this object, and
    the exception's traceback holds the frames that hold the request context, a cycle
    that would keep the app alive until the garbage collector runs.
    """

    __slots__ = ("exc",)

    def __init__(self, exc: BaseException) -> None:
        self.exc: BaseException | None = exc

    def __call__(self, response: Response) -> Response:
        exc, self.exc = self.exc, None
        with guard("capturing a handled exception"):
            if exc is not None and response.status_code >= 500 and not is_captured(exc):
                state = _enabled_state(current_app)
                if state is not None:
                    state.extension._capture(state, exc, {})
        return response


def _notice(body: str, e: InternalServerError) -> ResponseReturnValue:
    """The 500 response with ``ALERTING_ERROR_RESPONSE`` (see _on_error_handler_lookup)."""
    try:
        wants_json = _wants_json()
    except Exception:  # a malformed header: the text is fine
        wants_json = False
    if wants_json:
        return {"error": body}, 500
    return body, 500, {"Content-Type": "text/plain; charset=utf-8"}


def _wants_json() -> bool:
    # Raw environ first: parsing Content-Type and Accept costs more than the rest of the
    # 500 response, and most requests name JSON in neither.
    environ = request.environ
    if "json" in environ.get("CONTENT_TYPE", "") and request.is_json:
        return True
    if "json" not in environ.get("HTTP_ACCEPT", ""):
        return False
    # On a tie (*/*, or no Accept header) the first entry, HTML, wins.
    best = request.accept_mimetypes.best_match(["text/html", "application/json"])
    return best == "application/json"
