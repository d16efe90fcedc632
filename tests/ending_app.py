"""A Flask app whose ``/boom`` raises, served by real servers in tests/test_process_end.py.

Configured from the environment:

- ``FA_SMTP_PORT``: the test SMTP server on 127.0.0.1 (a port where nothing listens keeps
  every alert undelivered);
- ``FA_LOCK``: ``ALERTING_METRICS_LOCK_FILE`` (a path of the test's own);
- ``FA_LOG_FILE``: ``ALERTING_LOG_FILE``, when set;
- ``FA_OWN_HANDLER``: a path; the app installs its own SIGTERM handler *before*
  ``init_app``, which writes ``called <pid>`` there and exits with status 0;
- ``FA_PORT`` and ``FA_RELOADER`` for ``python -m tests.ending_app`` (``app.run``, with the
  Werkzeug reloader when ``FA_RELOADER=1``).

``/pid`` answers the serving process's pid; every ``/boom`` raises the same error (one
fingerprint: one first alert, then a digest of the rest at shutdown).
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path
from types import FrameType

from flask import Flask

from flask_alerting import FlaskAlerting

env = os.environ

if env.get("FA_OWN_HANDLER"):
    marker = Path(env["FA_OWN_HANDLER"])

    def own_handler(signum: int, frame: FrameType | None) -> None:
        with open(marker, "a", encoding="utf-8") as f:
            f.write(f"called {os.getpid()}\n")
        sys.exit(0)

    signal.signal(signal.SIGTERM, own_handler)

app = Flask("ending-app")
app.config.update(
    ALERTING_SMTP_HOST="127.0.0.1",
    ALERTING_SMTP_PORT=int(env["FA_SMTP_PORT"]),
    ALERTING_SMTP_SECURITY="none",
    ALERTING_SMTP_TIMEOUT=5.0,
    ALERTING_MAIL_SENDER="alerts@example.com",
    ALERTING_MAIL_RECIPIENTS="admin@example.com",
    ALERTING_METRICS_ENABLED=False,
    ALERTING_METRICS_LOCK_FILE=env["FA_LOCK"],
    ALERTING_THROTTLE_SECONDS=300,
    ALERTING_SHUTDOWN_TIMEOUT=10.0,
)
if env.get("FA_LOG_FILE"):
    app.config["ALERTING_LOG_FILE"] = env["FA_LOG_FILE"]
alerting = FlaskAlerting(app)


@app.route("/pid")
def pid() -> str:
    return str(os.getpid())


@app.route("/boom")
def boom() -> str:
    raise KeyError("boom")


if __name__ == "__main__":
    app.run(host="127.0.0.1", port=int(env["FA_PORT"]), use_reloader=env.get("FA_RELOADER") == "1")
