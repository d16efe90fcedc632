"""Exceptions as text: the one place that turns an exception into a message."""

from __future__ import annotations


def exception_text(exc: BaseException) -> str:
    """``str(exc)``; ``<exception str() failed>`` (as :mod:`traceback` prints it) when
    that raises. Never raises."""
    try:
        return str(exc)
    except Exception:
        return "<exception str() failed>"


def describe_exception(exc: BaseException) -> str:
    """``Type: message`` on one line, or ``Type`` alone for an empty message: for logs,
    the CLI and the errors of metric rules. Never raises.

    The message is neither cut nor masked: a notifier that knows its secrets masks them
    (:meth:`~flask_alerting.Notifier.describe_error`).
    """
    text = " ".join(exception_text(exc).split())
    name = type(exc).__name__
    return f"{name}: {text}" if text else name
