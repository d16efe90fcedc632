"""Several hosts share their throttle through one Redis (docs/scaling.rst)."""

from __future__ import annotations

import os

from flask import Flask

from flask_alerting import FlaskAlerting

app = Flask(__name__)
app.config.from_prefixed_env()  # FLASK_ALERTING_SMTP_HOST=... and the others
# Every host of the app names the same Redis (pip install "flask-alerting[redis]");
# rediss:// for TLS, redis://:password@... with a password.
app.config["ALERTING_STORAGE_URI"] = os.environ.get("REDIS_URL", "redis://redis:6379/0")
alerting = FlaskAlerting(app)
