"""The quickstart's app (docs/quickstart.rst): every unhandled error becomes an e-mail."""

from __future__ import annotations

from flask import Flask, request

from flask_alerting import FlaskAlerting

app = Flask(__name__)
# ALERTING_* keys from FLASK_ALERTING_* environment variables (FLASK_ALERTING_SMTP_HOST=...),
# the SMTP password from EMAIL_PASSWORD.
app.config.from_prefixed_env()
alerting = FlaskAlerting(app)


@app.route("/")
def index() -> str:
    return "Hello! Now try /divide?by=0"


@app.route("/divide")
def divide() -> str:
    by = request.args.get("by", 1, type=int)
    return f"100 / {by} = {100 / by}"
