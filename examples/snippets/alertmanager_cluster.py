"""A fleet pushing to an Alertmanager cluster (docs/scaling.rst)."""

from __future__ import annotations

import os

from flask import Flask

from flask_alerting import AlertmanagerNotifier, FlaskAlerting

# Every instance of the cluster, not a load balancer in front of it: each instance must
# hear of every alert, and the cluster makes sure a notification leaves once.
ALERTMANAGERS = os.environ.get(
    "ALERTMANAGERS", "http://am-1:9093 http://am-2:9093 http://am-3:9093"
).split()

app = Flask(__name__)
app.config.from_prefixed_env()  # FLASK_ALERTING_* keys from the environment
alerting = FlaskAlerting(app, notifiers=[AlertmanagerNotifier(url) for url in ALERTMANAGERS])
