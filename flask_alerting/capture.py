"""Exceptions -> error alerts, with a snapshot of the request taken on the request path.

The request path only copies what it must while the request still exists
(:func:`snapshot_request`) and walks the traceback for the fingerprint; formatting the
traceback and building the alert happen later, on the dispatch thread
(:func:`error_alert_builder`).
"""

from __future__ import annotations

import os
import sys
import sysconfig
import traceback
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import Any

from .alert import Alert, make_fingerprint, utcnow

#: Marks an exception object as already alerted, so that no path reports it twice.
CAPTURED_ATTR = "__flask_alerting_captured__"

_LIB_DIRS = tuple(
    {os.path.abspath(p) for k, p in sysconfig.get_paths().items() if k in ("stdlib", "platstdlib")}
)
_SELF_DIR = os.path.dirname(os.path.abspath(__file__))


def mark_captured(exc: BaseException) -> bool:
    """Mark ``exc`` as alerted; False when it already was."""
    if getattr(exc, CAPTURED_ATTR, False):
        return False
    try:
        setattr(exc, CAPTURED_ATTR, True)
    except Exception:  # pragma: no cover - exceptions with __slots__ and no __dict__
        pass
    return True


def exception_name(exc: BaseException) -> str:
    """The class name, qualified with its module unless builtin."""
    cls = type(exc)
    if cls.__module__ == "builtins":
        return cls.__qualname__
    return f"{cls.__module__}.{cls.__qualname__}"


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

    Falls back to the innermost frame when every frame is library code.
    """
    innermost = ""
    app_frame = ""
    while tb is not None:
        code = tb.tb_frame.f_code
        where = f"{code.co_filename}:{code.co_name}:{tb.tb_lineno}"
        innermost = where
        if not _is_library_file(code.co_filename):
            app_frame = where
        tb = tb.tb_next
    return app_frame or innermost


def error_fingerprint(exc: BaseException, endpoint: str | None) -> str:
    """Exception class + code location (+ endpoint); never the message text."""
    location = code_location(exc.__traceback__)
    return make_fingerprint("error", exception_name(exc), location, endpoint)


def error_alert_builder(
    exc: BaseException,
    *,
    labels: Mapping[str, str],
    request: Mapping[str, Any] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> Callable[[], Alert]:
    """Capture what is needed now; return a callable that builds the alert later.

    :param exc: the exception (its traceback is kept until the alert is built).
    :param labels: base labels (``app``, ``host``), plus ``endpoint`` inside a request.
    :param request: a request snapshot (see :func:`snapshot_request`).
    :param extra: extra details given to ``capture_exception``.
    """
    timestamp = utcnow()
    name = exception_name(exc)
    all_labels = {**labels, "exception": name}
    fingerprint = error_fingerprint(exc, all_labels.get("endpoint"))

    def build() -> Alert:
        tb_text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        text = " ".join(str(exc).split())
        title = f"{name}: {text}" if text else name
        endpoint = all_labels.get("endpoint")
        if endpoint:
            title += f" in {endpoint}"
        details: dict[str, Any] = {}
        if request:
            details["request"] = dict(request)
        if extra:
            details["extra"] = dict(extra)
        return Alert(
            kind="error",
            severity="error",
            title=title,
            message=f"An error occurred in your Flask application:\n\n{tb_text}",
            labels=all_labels,
            fingerprint=fingerprint,
            timestamp=timestamp,
            details=details,
            traceback=tb_text,
        )

    return build


def current_exception() -> BaseException | None:
    """The exception being handled, if any (for ``capture_exception()`` without args)."""
    return sys.exc_info()[1]
