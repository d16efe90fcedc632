"""Exceptions and log records -> error alerts: the one capture path of every source.

:func:`capture_error` is what the request hooks, ``capture_exception`` (through
:func:`capture_exception`) and :class:`~flask_alerting.AlertingHandler` (through
:func:`capture_log_record`) run. On the caller's thread it only copies what it must
while the request and the exception still exist (the fingerprint, a request snapshot, a
frame-free summary of the exception); the returned builder makes the alert later, on the
dispatch thread, and holds no reference to the exception, its traceback or its frames.
Frame local variables are never read.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from flask import has_request_context
from flask import request as flask_request

from .._lifecycle import guard
from .._text import exception_text
from ..alert import Alert, PendingAlert, Severity, make_fingerprint, utcnow
from ..config import Config
from ..scrub import Scrubber, bounded_copy, clean_text, cut, cut_middle, get_scrubber
from ._fingerprint import error_fingerprint, exception_name, source_key
from ._format import format_summary
from ._marks import mark_captured
from ._request import RequestDetails, request_context
from ._summary import ExceptionPart, Summary, _exception_only, summarize_exception

logger = logging.getLogger("flask_alerting")

#: The formatted traceback is cut to about this many characters (head and tail kept).
MAX_TRACEBACK_TEXT = 120_000
#: A log record's message is cut to this many characters.
MAX_LOG_MESSAGE = 10_000

#: The ``exception`` label of the alert made from a record without an exception. Every
#: error alert carries that label; this value (which no class name can take) says that
#: the error was logged, not raised, so routing and grouping rules on ``exception`` see it.
LOG_RECORD_EXCEPTION = "(log record)"


class CaptureState(Protocol):
    """What capture uses of an app's state (``app.extensions["alerting"]``)."""

    @property
    def labels(self) -> Mapping[str, str]: ...

    @property
    def config(self) -> Config: ...

    def submit(self, item: Alert | Callable[[], Alert | None]) -> None: ...

    def counts_only(self, fingerprint: str) -> bool: ...


# -- capture (the caller's thread) ----------------------------------------------------------


def capture_error(
    state: CaptureState,
    exc: BaseException,
    extra: Mapping[str, Any] | None = None,
    *,
    log: Mapping[str, Any] | None = None,
    severity: Severity = "error",
    logged: bool = False,
) -> None:
    """Alert about ``exc`` once, through ``state``. Copies only; never raises.

    :param extra: details given to ``capture_exception``.
    :param log: facts about the log record that reported ``exc``, if one did.
    :param severity: ``"error"``, or ``"critical"`` for critical log records.
    :param logged: ``exc`` was already logged (Flask's own ``log_exception``); implied
        by ``log``. In a storm an occurrence that was logged is only counted.
    """
    if not mark_captured(exc):
        return
    with guard("capturing an exception"):
        logged = logged or log is not None
        endpoint = flask_request.endpoint if has_request_context() else None
        fingerprint = error_fingerprint(exc, endpoint)
        if logged and state.counts_only(fingerprint):
            # A storm: this occurrence only adds to a digest's (or a flood summary's)
            # count.
            title = exception_name(exc) + (f" in {endpoint}" if endpoint else "")
            state.submit(PendingAlert(None, fingerprint, utcnow(), logged=True, title=title))
            return
        labels, snapshot = request_context(
            state.labels, cookie_values=state.config.show_cookie_values
        )
        state.submit(
            error_alert_builder(
                exc,
                labels=labels,
                request=snapshot,
                extra=extra,
                log=log,
                severity=severity,
                scrub_fields=state.config.scrub_fields,
                logged=logged,
                fingerprint=fingerprint,
            )
        )


def capture_exception(
    find_state: Callable[[], CaptureState | None],
    exc: BaseException | None,
    extra: Mapping[str, Any],
) -> None:
    """:meth:`FlaskAlerting.capture_exception <flask_alerting.FlaskAlerting.capture_exception>`
    (which finds the exception being handled and makes room on the stack):
    :func:`capture_error` through the state ``find_state`` returns, if any and enabled.
    """
    if exc is None:
        logger.warning("flask-alerting: capture_exception() called with no exception")
        return
    state = find_state()
    if state is not None and state.config.enabled:
        capture_error(state, exc, extra)


def capture_log_record(state: CaptureState, record: logging.LogRecord) -> None:
    """Alert about a log record (see :class:`~flask_alerting.AlertingHandler`).

    A record with an exception: :func:`capture_error`, with the record's facts added.
    Without one: an alert titled with its message (see :func:`log_alert_builder`). The
    message is formatted now, as logging's ``QueueHandler`` does: the arguments may
    change, or not be safe to read from another thread.
    """
    severity: Severity = "critical" if record.levelno >= logging.CRITICAL else "error"
    log = {
        "logger": record.name,
        "level": record.levelname,
        "message": cut(record.getMessage(), MAX_LOG_MESSAGE),
        "location": f"{record.pathname}:{record.lineno} in {record.funcName}",
    }
    exc = record.exc_info[1] if record.exc_info else None
    if exc is not None:
        capture_error(state, exc, log=log, severity=severity)
        return
    labels, snapshot = request_context(
        {**state.labels, "logger": record.name, "exception": LOG_RECORD_EXCEPTION},
        cookie_values=state.config.show_cookie_values,
    )
    state.submit(
        log_alert_builder(
            record,
            log=log,
            labels=labels,
            request=snapshot,
            severity=severity,
            scrub_fields=state.config.scrub_fields,
        )
    )


def current_exception() -> BaseException | None:
    """The exception being handled, if any (for ``capture_exception()`` without args)."""
    return sys.exc_info()[1]


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


# -- alert builders (copies now, the alert later, on the dispatch thread) ---------------------


def _details(
    scrubber: Scrubber,
    log: Mapping[str, Any] | None,
    request: Mapping[str, Any] | None,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The ``details`` of an error alert, scrubbed (the request when first read)."""
    details: dict[str, Any] = {}
    if log:
        details["log"] = scrubber.scrub(log)
    if request:
        details["request"] = RequestDetails(request, scrubber)
    if extra:
        details["extra"] = scrubber.scrub(extra)
    return details


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
    :func:`~flask_alerting.capture.summarize_exception`), only copies.

    :param exc: the exception.
    :param labels: base labels (``app``, ``host``), plus ``endpoint`` inside a request.
    :param request: a request snapshot (see
        :func:`~flask_alerting.capture.snapshot_request`).
    :param extra: extra details given to ``capture_exception`` (copied now, see
        :func:`copy_details`).
    :param log: facts about the log record that reported the exception, if any.
    :param severity: ``"error"``, or ``"critical"`` for critical log records.
    :param scrub_fields: extra sensitive names (``ALERTING_SCRUB_FIELDS``).
    :param logged: the exception was already logged (see :class:`PendingAlert`).
    :param fingerprint: :func:`~flask_alerting.capture.error_fingerprint` of ``exc``,
        when the caller has it.
    """
    timestamp = utcnow()
    name = exception_name(exc)
    all_labels = {**labels, "exception": name}
    endpoint = all_labels.get("endpoint")
    message = exception_text(exc)
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
    title = clean_text(title)
    extra = copy_details(extra) if extra else None
    log = dict(log) if log else None
    del exc

    def build() -> Alert:
        tb_text = clean_text(cut_middle(format_summary(summary), MAX_TRACEBACK_TEXT, "traceback"))
        return Alert(
            kind="error",
            severity=severity,
            title=title,
            message=f"An error occurred in your Flask application:\n\n{tb_text}",
            labels=all_labels,
            fingerprint=fingerprint,
            timestamp=timestamp,
            details=_details(get_scrubber(scrub_fields), log, request, extra),
            traceback=tb_text,
        )

    return PendingAlert(build, fingerprint, timestamp, logged=logged, title=title)


def log_alert_builder(
    record: logging.LogRecord,
    *,
    log: dict[str, str],
    labels: dict[str, str],
    request: dict[str, Any] | None,
    severity: Severity,
    scrub_fields: tuple[str, ...] = (),
) -> Callable[[], Alert]:
    """A builder of the alert for a record without exception (see
    :class:`~flask_alerting.AlertingHandler`).

    Fingerprint: logger, file (as :func:`~._fingerprint.source_key` names it, the same
    wherever the code is deployed), line (+ endpoint), never the message text. The builder
    keeps copies, not the record (whose arguments may be anything).
    """
    fingerprint = make_fingerprint(
        "log", record.name, source_key(record.pathname), record.lineno, labels.get("endpoint")
    )
    timestamp = utcnow()
    logger_name = record.name
    stack = record.stack_info

    def build() -> Alert:
        text = clean_text(log["message"])
        return Alert(
            kind="error",
            severity=severity,
            title=f"{logger_name}: {text[:1000]}",
            message=f"An error was logged in your Flask application:\n\n{text}",
            labels=labels,
            fingerprint=fingerprint,
            timestamp=timestamp,
            details=_details(get_scrubber(scrub_fields), log, request),
            traceback=clean_text(stack) if stack else None,
        )

    return build
