"""A Flask app with the metrics sampler on, run by the gunicorn and reloader tests.

Configured from the environment: ``FA_LOG`` (the ``flask_alerting`` log, one line per
record prefixed with the pid), ``FA_LOCK`` (lock file), ``FA_INTERVAL`` (seconds),
``FA_SMTP_PORT`` (a test SMTP server on 127.0.0.1; without it alerts are only logged),
``FA_PORT`` (for ``python -m tests.metrics_app``, which runs the Werkzeug reloader:
``use_reloader=True``, or with ``FA_RELOADER=from-flask-debug`` as ``FLASK_DEBUG`` says).
"""

from __future__ import annotations

import logging
import os

from flask import Flask

from flask_alerting import FlaskAlerting

env = os.environ

handler = logging.FileHandler(env["FA_LOG"])  # append mode: atomic lines across processes
handler.setFormatter(logging.Formatter("%(process)d %(message)s"))
alerting_logger = logging.getLogger("flask_alerting")
alerting_logger.addHandler(handler)
alerting_logger.setLevel(logging.DEBUG)

app = Flask("metrics-test-app")
app.config.update(
    ALERTING_METRICS_ENABLED=True,
    ALERTING_METRICS_INTERVAL=float(env["FA_INTERVAL"]),
    ALERTING_METRICS_LOCK_FILE=env["FA_LOCK"],
    ALERTING_METRICS_FOR=0,
    ALERTING_CPU_THRESHOLD=0,  # any CPU use breaches
    ALERTING_MEMORY_THRESHOLD=100,  # never: one rule, one alert
)
if env.get("FA_SMTP_PORT"):
    app.config.update(
        ALERTING_SMTP_HOST="127.0.0.1",
        ALERTING_SMTP_PORT=int(env["FA_SMTP_PORT"]),
        ALERTING_SMTP_SECURITY="none",
        ALERTING_MAIL_SENDER="alerts@example.com",
        ALERTING_MAIL_RECIPIENTS="admin@example.com",
    )
alerting = FlaskAlerting(app)


@app.route("/")
def index() -> str:
    return str(os.getpid())


if __name__ == "__main__":
    if env.get("FA_RELOADER") == "from-flask-debug":
        app.run(host="127.0.0.1", port=int(env["FA_PORT"]))  # FLASK_DEBUG=1 asks for it
    else:
        app.run(host="127.0.0.1", port=int(env["FA_PORT"]), use_reloader=True)
