"""Every coupling of flask-alerting to Flask and Werkzeug internals, in one module.

Everything else uses Flask's public API only (signals, ``after_this_request``,
``before_request``/``after_request``, ``app.extensions``, ``app.cli``). What is here reads
or wraps something Flask or Werkzeug do not document as public, so it is what to check
first when a new release comes out.

Tested against Flask 3.1.3 with Werkzeug 3.1.9 (the test suite, and Flask's own test
suite with the extension initialised on every app: ``tests/flask_suite/run.py``) and
Flask 2.3.3 with Werkzeug 2.3.8, the oldest release ``flask>=2.3`` allows (the test
suite; one test, of a form body in invalid UTF-8, fails there, as it did before this
module existed: Werkzeug 2.3 cannot parse that body). The internals used, and since
when Flask and Werkzeug have them:

- ``Flask._find_error_handler(e, blueprints)`` (Flask >= 2.0.1; in ``sansio.app.App``
  since 3.0): wrapped once, class-wide, by :func:`hook_error_handler_lookup`;
- the ``PROPAGATE_EXCEPTIONS`` rule of ``Flask.handle_exception`` (:func:`propagates`);
- the caches of werkzeug's ``Request`` (``_cached_data``, ``_cached_json``, the ``form``
  cached property in the instance dict) read by :func:`body_read_by_view`;
- ``werkzeug._reloader.restart_with_reloader`` and ``WERKZEUG_RUN_MAIN`` /
  ``WERKZEUG_SERVER_FD`` read by :func:`in_reloader_parent`.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NamedTuple

from flask import Flask

if TYPE_CHECKING:
    from flask import Request

#: ``callback(app, exception, handler) -> handler`` (see :func:`hook_error_handler_lookup`).
LookupHook = Callable[[Flask, BaseException, Any], Any]

_lookup_hooks: list[LookupHook] = []
_hook_lock = threading.Lock()


def hook_error_handler_lookup(callback: LookupHook) -> None:
    """Have ``callback(app, exception, handler)`` see every error handler lookup of every
    Flask app, and return the handler Flask then uses (``handler`` unchanged, as a rule).

    Flask looks an error handler up (``_find_error_handler``) inside its ``except``
    blocks, for the exception a view raised (``handle_user_exception``,
    ``handle_http_exception``) and for the ``InternalServerError`` of an unhandled one
    (``handle_exception``). The wrapper calls Flask's lookup and the callback and returns
    before the handler runs, so neither ever stands in a traceback, and costs nothing on
    requests that raise nothing. Installed once, class-wide (never on an app instance);
    the callback should only look at apps it was initialised on. Idempotent per callback.
    """
    with _hook_lock:
        if callback in _lookup_hooks:
            return
        _lookup_hooks.append(callback)
        if getattr(Flask._find_error_handler, "_flask_alerting_original", None) is not None:
            return
        original = Flask._find_error_handler

        def _find_error_handler(self: Flask, e: Exception, *args: Any, **kwargs: Any) -> Any:
            handler = original(self, e, *args, **kwargs)
            for hook in _lookup_hooks:
                handler = hook(self, e, handler)
            return handler

        _find_error_handler._flask_alerting_original = original  # type: ignore[attr-defined]
        _find_error_handler.__doc__ = original.__doc__
        Flask._find_error_handler = _find_error_handler  # type: ignore[method-assign,assignment]


def propagates(app: Flask) -> bool:
    """Whether ``app`` re-raises an unhandled exception instead of logging it and
    answering 500, as ``Flask.handle_exception`` decides."""
    propagate = app.config.get("PROPAGATE_EXCEPTIONS")
    if propagate is None:
        return bool(app.testing or app.debug)
    return bool(propagate)


class BodyReadByView(NamedTuple):
    """What werkzeug holds of a request body because the view read it (its private
    caches): reading it again costs nothing and cannot block on the client."""

    #: The parsed JSON (``None`` when it was invalid), or ``Ellipsis`` when not parsed.
    json: Any
    #: The form (and files) were parsed.
    form: bool
    #: The raw body, when the view read it as such (``get_data()``).
    data: bytes | None


def body_read_by_view(req: Request) -> BodyReadByView:
    """What the view already read of ``req``'s body (see :class:`BodyReadByView`)."""
    cached_json = getattr(req, "_cached_json", (Ellipsis, Ellipsis))
    # (normal, silent) results of get_json: either is the parsed value, or None (silent
    # and invalid).
    parsed = cached_json[0] if cached_json[0] is not Ellipsis else cached_json[1]
    data = getattr(req, "_cached_data", None)
    # The parsed form is an instance-dict cached_property.
    return BodyReadByView(parsed, "form" in req.__dict__, data if isinstance(data, bytes) else None)


def in_reloader_parent() -> bool:
    """True in the Werkzeug reloader's watching parent, which never serves requests.

    Its main thread sits in ``werkzeug._reloader.restart_with_reloader`` (the serving child
    has ``WERKZEUG_RUN_MAIN=true``), however the reloader was asked for: ``flask run
    --debug``, ``FLASK_DEBUG`` (also from ``.flaskenv``), ``app.run(debug=True)`` or
    ``use_reloader=True``. Looking at our own main thread's stack is exact and costs
    microseconds.
    """
    # run_simple sets WERKZEUG_SERVER_FD before it starts the reloader: without it
    # (gunicorn, uwsgi, ...) this is not Werkzeug's reloader at all.
    if os.environ.get("WERKZEUG_RUN_MAIN") == "true" or "WERKZEUG_SERVER_FD" not in os.environ:
        return False
    frame = sys._current_frames().get(threading.main_thread().ident or -1)
    while frame is not None:
        code = frame.f_code
        if code.co_name == "restart_with_reloader" and "werkzeug" in code.co_filename:
            return True
        frame = frame.f_back
    return False
