"""A notifier of your own: POST each alert to an incident tracker's API (docs/notifiers.rst).

(flask-alerting ships a complete WebhookNotifier: this shows how to write one.)
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request

from flask import Flask

from flask_alerting import Alert, FlaskAlerting, Notifier, TransientError


class IncidentNotifier(Notifier):
    name = "incidents"

    def __init__(self, url: str, timeout: float = 10.0) -> None:
        self.url = url
        self.timeout = timeout

    def send(self, alert: Alert) -> None:
        body = json.dumps(
            {
                "title": alert.title,
                "severity": alert.severity,
                "status": alert.status,
                "occurrences": alert.occurrences,
                "labels": dict(alert.labels),
            }
        ).encode()
        request = urllib.request.Request(
            self.url, body, {"Content-Type": "application/json"}, method="POST"
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout):
                pass
        except urllib.error.HTTPError as exc:
            exc.close()
            if exc.code >= 500 or exc.code == 429:
                raise TransientError(f"HTTP {exc.code}") from None  # retried with backoff
            # Any other refusal is permanent: reported once, not retried. (HTTPError is
            # an OSError, which would be retried.)
            raise RuntimeError(f"webhook refused the alert: HTTP {exc.code}") from None
        # Connection errors and timeouts escape as OSError: retried.

    def describe(self) -> str:
        return self.url.partition("?")[0]  # never a token from the query string


app = Flask(__name__)
alerting = FlaskAlerting(app, notifiers=[IncidentNotifier("https://hooks.example.com/alerts")])
