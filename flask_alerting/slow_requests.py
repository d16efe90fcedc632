"""Slow requests: alert when a whole request of an app takes longer than its threshold.

The clock is the one of ``timed`` (``flask_alerting.timing.perf_counter``, read when the
request starts and ends), so tests that replace it time requests too.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from flask import Flask, Response, g, request

from . import timing
from ._lifecycle import guard
from .alert import Alert, make_fingerprint, utcnow
from .render import fmt_seconds
from .timing import StateLike, took

_START_KEY = "_flask_alerting_request_start"


def slow_request_alert_builder(
    info: Mapping[str, Any],
    duration: float,
    threshold: float,
    *,
    labels: Mapping[str, str],
    timestamp: datetime,
) -> Callable[[], Alert]:
    """A builder of the alert for one slow request (``info``: method, path, endpoint,
    status). ``labels`` carry ``function`` (``"GET report"``) like every timing alert."""

    def build() -> Alert:
        what = f"{info['method']} {info['path']}"
        return Alert(
            kind="timing",
            severity="warning",
            title=f"Slow request: {took(what, duration, threshold)}",
            message=took(what, duration, threshold)
            + f". Endpoint: {info['endpoint']}, status: {info['status']}.",
            labels=labels,
            fingerprint=make_fingerprint("timing", "request", info["method"], info["endpoint"]),
            value=duration,
            threshold=threshold,
            timestamp=timestamp,
            details={
                "display_name": what,
                "request": {**info, "duration": fmt_seconds(duration)},
            },
        )

    return build


def install_slow_requests(app: Flask, state: StateLike, threshold: float) -> None:
    """Alert when a whole request of ``app`` takes longer than ``threshold`` seconds.

    The clock starts before every other ``before_request`` function and stops after every
    other ``after_request`` function (error responses included).
    """

    def start_clock() -> None:
        setattr(g, _START_KEY, timing.perf_counter())

    def stop_clock(response: Response) -> Response:
        started = g.pop(_START_KEY, None)
        if started is None:
            return response
        duration = timing.perf_counter() - started
        if duration > threshold:
            with guard("reporting a slow request"):
                _report_slow_request(state, response, duration, threshold)
        return response

    # Registered first: runs first among before_request, last among after_request.
    app.before_request_funcs.setdefault(None, []).insert(0, start_clock)
    app.after_request_funcs.setdefault(None, []).insert(0, stop_clock)


def _report_slow_request(
    state: StateLike, response: Response, duration: float, threshold: float
) -> None:
    if not state.config.enabled:
        return
    endpoint = request.endpoint
    info = {
        "method": request.method,
        "path": request.path,
        "endpoint": endpoint,
        "status": response.status_code,
    }
    # Every timing alert names a function: for a request, its method and endpoint (the
    # path when no endpoint matched, e.g. a 404).
    labels = {**state.labels, "function": f"{request.method} {endpoint or request.path}"}
    if endpoint:
        labels["endpoint"] = endpoint
    state.submit(
        slow_request_alert_builder(
            info, duration, threshold, labels=labels, timestamp=utcnow()
        )
    )
