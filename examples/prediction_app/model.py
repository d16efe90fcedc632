"""The prediction model: which product category sells best at a given hour.

A tiny, pure-Python model shipped with the example (``model.json``): for each opening
hour of a small cafe, the share of each category in last year's sales. Nothing to
download, no numpy.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from collections.abc import Callable
from pathlib import Path

from .extensions import alerting

DEFAULT_MODEL = Path(__file__).with_name("model.json")

#: Seconds a prediction may take before the administrators hear about it: 2 s as in the
#: design. Read once, at import (the decorator below needs it then); the demo lowers it
#: with the environment variable ``PREDICTION_SLOW_SECONDS``.
SLOW_PREDICTION_SECONDS = float(os.environ.get("PREDICTION_SLOW_SECONDS", "2.0"))


@dataclasses.dataclass
class Model:
    """Sales shares per category, for each hour the model has data for.

    :param latency: extra seconds each prediction takes (``PREDICTION_LATENCY``), to see
        the slow-call alert: a real model gets slow on its own (a cold cache, a bigger
        model, a busy host).
    :param sleep: how the latency is spent (tests pass a fake clock's ``advance``).
    """

    name: str
    categories: list[str]
    hours: dict[int, list[float]]
    latency: float = 0.0
    sleep: Callable[[float], None] = time.sleep


@dataclasses.dataclass(frozen=True)
class Prediction:
    hour: int
    category: str
    confidence: float
    scores: dict[str, float]


def load_model(path: str | os.PathLike[str] = DEFAULT_MODEL, *, latency: float = 0.0) -> Model:
    """Read a model file (the format of ``model.json``)."""
    with open(path, encoding="utf-8") as file:
        data = json.load(file)
    return Model(
        name=data["name"],
        categories=list(data["categories"]),
        hours={int(hour): [float(n) for n in shares] for hour, shares in data["hours"].items()},
        latency=latency,
    )


@alerting.timed(threshold=SLOW_PREDICTION_SECONDS)
def prediction_from_model(model: Model, selected_hour: int) -> Prediction:
    """The category most likely to sell best at ``selected_hour`` (0-23)."""
    if model.latency:
        model.sleep(model.latency)
    # The model only knows the cafe's opening hours while the form offers all 24: a night
    # hour raises KeyError. A bug kept on purpose, so that you can see an error e-mail.
    shares = model.hours[selected_hour]
    total = sum(shares)
    pairs = zip(model.categories, shares, strict=True)
    scores = {category: share / total for category, share in pairs}
    best = max(scores, key=scores.__getitem__)
    return Prediction(selected_hour, best, scores[best], scores)
