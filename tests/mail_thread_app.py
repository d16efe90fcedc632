"""An app whose one view fails at one place, for the e-mail threading tests.

Imported by the tests (the parent process) and run as ``python -m tests.mail_thread_app
PORT`` (another process): both raise the same error (same class, code location and
endpoint, so the same fingerprint) and send it to the SMTP server on 127.0.0.1:PORT. The
child prints its pid and exits once its e-mail has been delivered.
"""

from __future__ import annotations

import os
import sys

from flask import Flask

from flask_alerting import FlaskAlerting


class PaymentDeclined(Exception):
    pass


def make_app(smtp_port: int) -> tuple[Flask, FlaskAlerting]:
    app = Flask("thread-app")
    app.config.update(
        PROPAGATE_EXCEPTIONS=False,
        ALERTING_METRICS_ENABLED=False,
        ALERTING_SMTP_HOST="127.0.0.1",
        ALERTING_SMTP_PORT=smtp_port,
        ALERTING_SMTP_SECURITY="none",
        ALERTING_MAIL_SENDER="alerts@example.com",
        ALERTING_MAIL_RECIPIENTS="admin@example.com",
    )

    @app.route("/pay/<int:n>")
    def pay(n: int) -> str:
        raise PaymentDeclined(f"card {n} declined")

    return app, FlaskAlerting(app)


def main() -> None:
    app, alerting = make_app(int(sys.argv[1]))
    assert app.test_client().get("/pay/2").status_code == 500
    delivered = alerting.flush(20.0)
    alerting.shutdown(5.0)
    print(os.getpid(), flush=True)
    sys.exit(0 if delivered else 1)


if __name__ == "__main__":
    main()
