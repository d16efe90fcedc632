"""Error capture: scrubbing more fields, and an app that keeps its own error page."""

from __future__ import annotations

from flask import Flask, request

from flask_alerting import FlaskAlerting

app = Flask(__name__)
app.config.update(
    # Filtered in addition to the built-in names (password, token, secret, cookie ...).
    ALERTING_SCRUB_FIELDS=["card_number", "iban"],
)
alerting = FlaskAlerting(app)


@app.post("/pay")
def pay() -> str:
    card = request.form["card_number"]
    raise TimeoutError(f"payment gateway did not answer for card ending {card[-4:]}")


@app.errorhandler(500)
def server_error(error: Exception) -> tuple[str, int]:
    # The app's own 500 page is kept; the error is alerted all the same.
    return "<h1>Sorry!</h1><p>Something broke. We have been told.</p>", 500
