"""The app of the multi-process tests (tests/test_shared_processes.py), run by gunicorn.

``/fail`` raises the same error every time (one fingerprint, a different message), and
every response names the worker that served it (``X-Worker-Pid``). Configured from the
environment:

* ``FA_SMTP_PORT``: the test's SMTP server on 127.0.0.1;
* ``FA_STORE``: ``ALERTING_STORAGE_URI`` (unset: the default, this host's SQLite file);
* ``FA_THROTTLE``: ``ALERTING_THROTTLE_SECONDS``;
* ``FA_LOG``: where the ``flask_alerting`` log goes, one line per record after the pid;
* ``FA_RETRY``: seconds between two trials of a store that failed (default 30).
"""

from __future__ import annotations

import logging
import os

from flask import Flask, Response

from flask_alerting import FlaskAlerting
from flask_alerting.delivery import store_link

env = os.environ

handler = logging.FileHandler(env["FA_LOG"])  # append mode: atomic lines across processes
handler.setFormatter(logging.Formatter("%(process)d %(levelname)s %(message)s"))
alerting_logger = logging.getLogger("flask_alerting")
alerting_logger.addHandler(handler)
alerting_logger.setLevel(logging.INFO)

# The tests restart stores within seconds; production waits 30 s between trials.
store_link.RETRY_AFTER = float(env.get("FA_RETRY", "30"))

app = Flask("storm-app")
app.config.update(
    PROPAGATE_EXCEPTIONS=False,
    ALERTING_METRICS_ENABLED=False,
    ALERTING_SMTP_HOST="127.0.0.1",
    ALERTING_SMTP_PORT=int(env["FA_SMTP_PORT"]),
    ALERTING_SMTP_SECURITY="none",
    ALERTING_MAIL_SENDER="alerts@example.com",
    ALERTING_MAIL_RECIPIENTS="admin@example.com",
    ALERTING_THROTTLE_SECONDS=float(env.get("FA_THROTTLE", "300")),
    ALERTING_SHUTDOWN_TIMEOUT=10.0,
)
if env.get("FA_STORE"):
    app.config["ALERTING_STORAGE_URI"] = env["FA_STORE"]
alerting = FlaskAlerting(app)


@app.route("/fail")
def fail() -> str:
    raise ValueError(f"the model timed out (worker {os.getpid()})")


@app.route("/pid")
def pid() -> str:
    return str(os.getpid())


@app.after_request
def name_the_worker(response: Response) -> Response:
    response.headers["X-Worker-Pid"] = str(os.getpid())
    return response
