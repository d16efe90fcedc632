"""Exceptions -> error alerts, with a snapshot of the request taken on the request path.

The request path only copies what it must while the request and the exception still
exist (:mod:`._alerts`): a request snapshot (:mod:`._request`), a frame-free summary of
the exception (:mod:`._summary`), the fingerprint (:mod:`._fingerprint`) and a mark that
it was alerted (:mod:`._marks`). Parsing and scrubbing the request and formatting the
traceback (:mod:`._format`) happen later, on the dispatch thread.
"""

from ._alerts import (
    LOG_RECORD_EXCEPTION,
    MAX_LOG_MESSAGE,
    MAX_TRACEBACK_TEXT,
    CaptureState,
    capture_error,
    capture_exception,
    capture_log_record,
    copy_details,
    current_exception,
    error_alert_builder,
    log_alert_builder,
)
from ._fingerprint import code_location, error_fingerprint, exception_name, source_key
from ._format import format_summary, format_traceback
from ._marks import CAPTURED_ATTR, is_captured, mark_captured
from ._request import (
    MAX_BODY_READ,
    MAX_JSON_TEXT,
    MAX_URL_TEXT,
    UNKNOWN_LENGTH_BODY,
    RequestDetails,
    render_request,
    request_context,
    snapshot_request,
)
from ._summary import (
    MAX_CHAIN,
    MAX_CHAIN_WALK,
    MAX_EXCEPTION_TEXT,
    MAX_FRAMES,
    MAX_GROUP_DEPTH,
    MAX_GROUP_WIDTH,
    MAX_SUMMARY_CHARACTERS,
    MAX_SUMMARY_EXCEPTIONS,
    MAX_SUMMARY_FRAMES,
    ExceptionPart,
    Frame,
    Group,
    Summary,
    summarize_exception,
)

__all__ = [
    "CAPTURED_ATTR",
    "LOG_RECORD_EXCEPTION",
    "MAX_BODY_READ",
    "MAX_CHAIN",
    "MAX_CHAIN_WALK",
    "MAX_EXCEPTION_TEXT",
    "MAX_FRAMES",
    "MAX_GROUP_DEPTH",
    "MAX_GROUP_WIDTH",
    "MAX_JSON_TEXT",
    "MAX_LOG_MESSAGE",
    "MAX_SUMMARY_CHARACTERS",
    "MAX_SUMMARY_EXCEPTIONS",
    "MAX_SUMMARY_FRAMES",
    "MAX_TRACEBACK_TEXT",
    "MAX_URL_TEXT",
    "UNKNOWN_LENGTH_BODY",
    "CaptureState",
    "ExceptionPart",
    "Frame",
    "Group",
    "RequestDetails",
    "Summary",
    "capture_error",
    "capture_exception",
    "capture_log_record",
    "code_location",
    "copy_details",
    "current_exception",
    "error_alert_builder",
    "error_fingerprint",
    "exception_name",
    "format_summary",
    "format_traceback",
    "is_captured",
    "log_alert_builder",
    "mark_captured",
    "render_request",
    "request_context",
    "snapshot_request",
    "source_key",
    "summarize_exception",
]
