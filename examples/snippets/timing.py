"""Slow-call alerts: functions, coroutines and blocks (docs/timing.rst)."""

from __future__ import annotations

import asyncio

from flask import Flask

from flask_alerting import FlaskAlerting

app = Flask(__name__)
alerting = FlaskAlerting(app)


@alerting.timed  # threshold: ALERTING_SLOW_THRESHOLD (2.0 s)
def load_catalogue() -> list[str]:
    return ["coffee", "pastries", "cakes"]


@alerting.timed(threshold=2.0, name="prediction_from_model")
def predict(model: dict[int, str], hour: int) -> str:
    return model[hour]


@alerting.timed(threshold=0.5)
async def fetch_rates() -> dict[str, float]:
    await asyncio.sleep(0)
    return {"EUR": 1.0, "USD": 1.08}


def load_model() -> dict[int, str]:
    with alerting.timer("load-model", threshold=1.0) as timer:
        model = {hour: "coffee" if hour < 11 else "sandwiches" for hour in range(24)}
    app.logger.info("model loaded in %.3f s", timer.duration)
    return model
