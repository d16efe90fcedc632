"""Where configuration comes from (docs/configuration.rst)."""

from __future__ import annotations

from flask import Flask

from flask_alerting import FlaskAlerting

app = Flask(__name__)
app.config["ALERTING_THROTTLE_SECONDS"] = 600
alerting = FlaskAlerting(app, throttle_seconds=60)  # 60 wins
