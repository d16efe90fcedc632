"""The routes: an HTML form (GET and POST) and the same prediction as JSON.

No try/except and no e-mail code: an exception here becomes an alert with the traceback
and the request (flask-alerting), and the client gets a 500 response at once.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, current_app, render_template, request

from .model import Model, prediction_from_model

bp = Blueprint("prediction", __name__)


def _model() -> Model:
    model: Model = current_app.extensions["prediction_model"]
    return model


def _hour(value: Any) -> int:
    """The selected hour, or a 400 response (a client error is not alerted)."""
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 23:
        abort(400, "Pick an hour between 0 and 23.")
    return value


@bp.route("/", methods=["GET", "POST"])
def index() -> str:
    prediction = None
    selected_hour = None
    if request.method == "POST":
        selected_hour = _hour(request.form.get("hour"))
        prediction = prediction_from_model(_model(), selected_hour)
    return render_template(
        "index.html", prediction=prediction, selected_hour=selected_hour, hours=range(24)
    )


@bp.post("/api/predict")
def api_predict() -> dict[str, Any]:
    payload = request.get_json(silent=True) or {}
    prediction = prediction_from_model(_model(), _hour(payload.get("hour")))
    return {
        "hour": prediction.hour,
        "category": prediction.category,
        "confidence": round(prediction.confidence, 3),
        "scores": {name: round(score, 3) for name, score in prediction.scores.items()},
    }
