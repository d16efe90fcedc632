"""A Flask app with one metric rule whose value the test sets, run as a real process by
the tests of states continued from one process to the next and of
``flask alerting status`` (tests/test_metrics_handover.py).

Configured from the environment: ``FA_LOG`` (the ``flask_alerting`` log, one line per
record prefixed with the pid), ``FA_LOCK`` (lock file), ``FA_INTERVAL`` (seconds),
``FA_VALUE`` (a file holding the value of the rule ``queue-depth``), ``FA_THRESHOLD``
(its threshold), ``FA_SMTP_PORT`` (a test SMTP server on 127.0.0.1; without it alerts
are only logged), ``FA_STORAGE`` (``ALERTING_STORAGE_URI``; without it, the default: the
host's SQLite store of this app name, which tests never leave it to).

``python -m tests.rule_app`` samples until its standard input is closed, then shuts the
extension down (pending alerts leave) and exits with status 0; or until it is killed.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

from flask import Flask

from flask_alerting import FlaskAlerting

env = os.environ

handler = logging.FileHandler(env["FA_LOG"])  # append mode: atomic lines across processes
handler.setFormatter(logging.Formatter("%(process)d %(message)s"))
alerting_logger = logging.getLogger("flask_alerting")
alerting_logger.addHandler(handler)
alerting_logger.setLevel(logging.DEBUG)

app = Flask("rule-app")
app.config.update(
    ALERTING_METRICS_ENABLED=True,
    ALERTING_METRICS_INTERVAL=float(env["FA_INTERVAL"]),
    ALERTING_METRICS_LOCK_FILE=env["FA_LOCK"],
    ALERTING_METRICS_FOR=0,
    ALERTING_CPU_THRESHOLD=None,  # the test's rule only
    ALERTING_MEMORY_THRESHOLD=None,
)
if env.get("FA_STORAGE"):
    app.config["ALERTING_STORAGE_URI"] = env["FA_STORAGE"]
if env.get("FA_SMTP_PORT"):
    app.config.update(
        ALERTING_SMTP_HOST="127.0.0.1",
        ALERTING_SMTP_PORT=int(env["FA_SMTP_PORT"]),
        ALERTING_SMTP_SECURITY="none",
        ALERTING_SMTP_TIMEOUT=5.0,
        ALERTING_MAIL_SENDER="alerts@example.com",
        ALERTING_MAIL_RECIPIENTS="admin@example.com",
    )
alerting = FlaskAlerting(app)


def queue_depth() -> float:
    return float(Path(env["FA_VALUE"]).read_text())


alerting.add_rule("queue-depth", queue_depth, threshold=float(env["FA_THRESHOLD"]))


if __name__ == "__main__":
    sys.stdin.read()  # until the test closes it
    alerting.shutdown(timeout=10.0)
