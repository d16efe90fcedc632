"""Error log records become alerts too, with AlertingHandler."""

from __future__ import annotations

import logging

from flask import Flask

from flask_alerting import AlertingHandler, FlaskAlerting

app = Flask(__name__)
alerting = FlaskAlerting(app)

# ERROR and CRITICAL records of the "shop" loggers become alerts.
handler = AlertingHandler(alerting, level=logging.ERROR)
logging.getLogger("shop").addHandler(handler)

log = logging.getLogger("shop.stock")
WAREHOUSES = {"paris": "https://stock.example.com/paris"}


def sync_stock(warehouse: str, rejected: list[str]) -> None:
    try:
        url = WAREHOUSES[warehouse]
    except KeyError:
        log.exception("stock sync failed")  # an error alert with the traceback
        return
    if rejected:
        # Grouped by logger and line, never by message: one alert for all such syncs.
        log.error("stock sync from %s: %d item(s) rejected", url, len(rejected))
