"""Signal receivers: count deliveries, shout when an alert is lost (docs/signals.rst)."""

from __future__ import annotations

from collections import Counter
from typing import Any

from flask import Flask

from flask_alerting import Alert, FlaskAlerting, Notifier, alert_failed, alert_sent

app = Flask(__name__)
app.config.from_prefixed_env()
alerting = FlaskAlerting(app)

deliveries: Counter[str] = Counter()  # or your metrics client


@alert_sent.connect_via(app)
def count_sent(sender: Flask, notifier: Notifier, alert: Alert, **extra: Any) -> None:
    deliveries[f"{notifier.name}.sent"] += 1


@alert_failed.connect_via(app)
def report_failure(
    sender: Flask,
    notifier: Notifier,
    alert: Alert,
    exception: BaseException,
    will_retry: bool,
    **extra: Any,
) -> None:
    deliveries[f"{notifier.name}.failed"] += 1
    if not will_retry:  # a permanent failure: this alert will never arrive
        sender.logger.critical(
            "alert %r lost: %s", alert.title, notifier.describe_error(exception)
        )
