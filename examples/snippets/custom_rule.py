"""A metric rule of your own: any function returning a number (docs/metrics.rst)."""

from __future__ import annotations

import queue

from flask import Flask

from flask_alerting import FlaskAlerting

app = Flask(__name__)
alerting = FlaskAlerting(app)

jobs: queue.Queue[str] = queue.Queue()

# Sampled every ALERTING_METRICS_INTERVAL seconds, on the sampler thread: fires when more
# than 100 jobs have been waiting for a minute, resolves below 90.
alerting.add_rule(
    "queue-depth", jobs.qsize, threshold=100, for_=60, hysteresis=10, severity="critical"
)
