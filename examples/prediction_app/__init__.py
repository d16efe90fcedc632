"""A prediction app, with flask-alerting instead of hand-written try/except and e-mail code.

Run it (from the repository root)::

    flask --app examples/prediction_app run

Configured from the environment: ``EMAIL_PASSWORD`` (the SMTP password), and any configuration
key with the ``FLASK_`` prefix (Flask's ``from_prefixed_env``)::

    export FLASK_ALERTING_SMTP_HOST=smtp.example.com      # implicit TLS on 465
    export FLASK_ALERTING_SMTP_USERNAME=alerts@example.com
    export FLASK_ALERTING_MAIL_SENDER=alerts@example.com
    export FLASK_ALERTING_MAIL_RECIPIENTS=admin@example.com
    export EMAIL_PASSWORD=...

Without ``FLASK_ALERTING_SMTP_HOST`` alerts are only logged.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import Flask

from .extensions import alerting
from .model import DEFAULT_MODEL, load_model, prediction_from_model
from .views import bp

__all__ = ["alerting", "create_app", "prediction_from_model"]


def create_app(test_config: Mapping[str, Any] | None = None) -> Flask:
    """The app factory (``flask --app examples/prediction_app`` finds it by its name)."""
    app = Flask(__name__)
    app.config.from_mapping(
        PREDICTION_MODEL=str(DEFAULT_MODEL),  # path of the model file
        PREDICTION_LATENCY=0.0,  # extra seconds per prediction, to see a slow-call alert
        # The 500 response's body (JSON clients get {"error": ...}); without it, Flask's
        # own "Internal Server Error" page.
        ALERTING_ERROR_RESPONSE="An error occurred. The administrators have been notified.",
    )
    # FLASK_ALERTING_SMTP_HOST=... -> app.config["ALERTING_SMTP_HOST"]; values are parsed
    # as JSON when they can be: FLASK_ALERTING_SMTP_PORT=2525 is a number.
    app.config.from_prefixed_env()
    if test_config is not None:
        app.config.update(test_config)

    alerting.init_app(app)  # errors, slow calls and host metrics, all alerted from here on
    app.extensions["prediction_model"] = load_model(
        app.config["PREDICTION_MODEL"], latency=float(app.config["PREDICTION_LATENCY"])
    )
    app.register_blueprint(bp)
    return app
