"""Prometheus Alertmanager from configuration (docs/notifiers.rst)."""

from __future__ import annotations

from flask import Flask

from flask_alerting import FlaskAlerting

app = Flask(__name__)
app.config["ALERTING_ALERTMANAGER_URL"] = "http://alertmanager:9093"
app.config.from_prefixed_env()  # FLASK_ALERTING_ALERTMANAGER_URL=... wins
alerting = FlaskAlerting(app)
