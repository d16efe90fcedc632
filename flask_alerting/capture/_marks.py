"""Which exceptions were already alerted, so that no path reports one twice.

The request capture, ``capture_exception`` and :class:`~flask_alerting.AlertingHandler`
may all see the same exception; the first marks it, the others skip it.
"""

from __future__ import annotations

import itertools

from flask import g as flask_g
from flask import has_app_context, has_request_context
from flask import request as flask_request

#: Marks an exception object alerted outside any app context, so that no path reports it
#: twice (``capture_exception``, :class:`~flask_alerting.AlertingHandler`).
CAPTURED_ATTR = "__flask_alerting_captured__"

#: Where a request (or, outside requests, an app context's ``g``) keeps the token that
#: marks the exceptions alerted during its lifetime (see :func:`mark_captured`).
_TOKEN_ATTR = "_flask_alerting_token"
_tokens = itertools.count(1)


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

