"""Alerts raised by hand: in a try/except block, and about anything else."""

from __future__ import annotations

import shutil

from flask_alerting import FlaskAlerting

alerting = FlaskAlerting()  # alerting.init_app(app) in the app factory


class PaymentError(Exception):
    pass


def charge(order_id: str, amount: float) -> None:
    """Stands in for a payment provider's client."""
    raise PaymentError(f"card declined for order {order_id}")


def checkout(order_id: str, amount: float) -> str:
    try:
        charge(order_id, amount)
    except PaymentError:
        # Handled (the customer gets an answer) and still reported, with some context.
        alerting.capture_exception(order_id=order_id, amount=amount)
        return "Your payment was declined."
    return "Thank you!"


def check_disk(path: str = "/", limit: float = 0.9) -> None:
    usage = shutil.disk_usage(path)
    if usage.used / usage.total > limit:
        alerting.alert(
            "Disk nearly full",
            f"{usage.free / 2**30:.1f} GiB left on {path}",
            severity="warning",
            labels={"disk": path},
        )
