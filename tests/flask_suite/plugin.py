"""pytest plugin for Flask's own test suite: ``FlaskAlerting`` on every Flask app.

Loaded by ``tests/flask_suite/run.py`` (``-p plugin``). Every ``Flask(...)`` that Flask's
tests create, subclasses included, gets ``FlaskAlerting(app, notifiers=[MemoryNotifier()],
metrics_enabled=False)`` right after ``Flask.__init__``, plus
``error_response=<FLASK_ALERTING_SUITE_ERROR_RESPONSE>`` when that variable is set.
"""

from __future__ import annotations

import os
from typing import Any

import flask
import pytest

from flask_alerting import FlaskAlerting, MemoryNotifier

#: The environment variable naming the ALERTING_ERROR_RESPONSE of the "notice" run.
NOTICE_VARIABLE = "FLASK_ALERTING_SUITE_ERROR_RESPONSE"

_original_init = flask.Flask.__init__
_initialised = [0]


def _init_with_alerting(self: flask.Flask, *args: Any, **kwargs: Any) -> None:
    _original_init(self, *args, **kwargs)
    options: dict[str, Any] = {}
    notice = os.environ.get(NOTICE_VARIABLE)
    if notice:
        options["error_response"] = notice
    FlaskAlerting(self, notifiers=[MemoryNotifier()], metrics_enabled=False, **options)
    _initialised[0] += 1


def pytest_configure(config: pytest.Config) -> None:
    flask.Flask.__init__ = _init_with_alerting  # type: ignore[method-assign]


def pytest_unconfigure(config: pytest.Config) -> None:
    flask.Flask.__init__ = _original_init  # type: ignore[method-assign]


def pytest_terminal_summary(terminalreporter: Any) -> None:
    # run.py reads this line: a run in which no app got the extension proves nothing.
    terminalreporter.write_line(f"flask-alerting initialised on {_initialised[0]} apps")


def pytest_report_header(config: pytest.Config) -> str:
    notice = os.environ.get(NOTICE_VARIABLE)
    return "flask-alerting on every Flask app" + (
        f", ALERTING_ERROR_RESPONSE={notice!r}" if notice else ", default configuration"
    )
