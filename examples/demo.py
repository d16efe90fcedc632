"""flask-alerting end-to-end demo: a Flask app, a local SMTP server, real e-mails.

Run it with the README's first command. It needs no mail account: an SMTP server
(aiosmtpd) runs on 127.0.0.1 inside this process and prints every e-mail it receives.

What it shows:

1. one failing request -> one e-mail with the traceback and the request (secrets filtered),
   while the client gets a 500 at once;
2. a storm of identical errors -> no flood: they are counted, and one digest e-mail says
   how many there were.
"""

from __future__ import annotations

import argparse
import email
import email.policy
import socket
import sys
import threading
from typing import Any

from aiosmtpd.controller import Controller
from flask import Flask

from flask_alerting import FlaskAlerting


class PrintingHandler:
    """Receives mail on 127.0.0.1 and prints each message."""

    def __init__(self) -> None:
        self.count = 0
        self.arrived = threading.Condition()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        number = self.count + 1
        body = message.get_body(preferencelist=("plain",))
        text = body.get_content() if body is not None else ""
        lines = text.splitlines()
        shown = "\n".join(lines[:40]) + ("\n    [...]" if len(lines) > 40 else "")
        print(f"\n======== e-mail #{number} ================================================")
        for header in ("From", "To", "Subject", "Date"):
            print(f"{header}: {message[header]}")
        print()
        print(shown)
        print("=" * 72, flush=True)
        with self.arrived:
            self.count = number
            self.arrived.notify_all()
        return "250 OK"

    def wait_for(self, count: int, timeout: float) -> bool:
        with self.arrived:
            return self.arrived.wait_for(lambda: self.count >= count, timeout)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def create_app(smtp_port: int, storm: int) -> tuple[Flask, FlaskAlerting]:
    app = Flask("demo-shop")
    app.config.update(
        ALERTING_SMTP_HOST="127.0.0.1",
        ALERTING_SMTP_PORT=smtp_port,
        ALERTING_SMTP_SECURITY="none",  # a local demo server; use "ssl" or "starttls" for real
        ALERTING_MAIL_SENDER="alerts@demo.example",
        ALERTING_MAIL_RECIPIENTS=["admin@demo.example"],
        ALERTING_THROTTLE_SECONDS=300,
        PROPAGATE_EXCEPTIONS=False,
    )
    alerting = FlaskAlerting(app)
    # The demo prints the e-mails; Flask's own traceback logging would only repeat them.
    app.logger.disabled = True

    @app.route("/checkout")
    def checkout() -> str:
        cart: dict[str, int] = {}
        return f"total: {cart['total']}"  # KeyError: the bug the admin must hear about

    return app, alerting


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--storm", type=int, default=200, help="identical errors to raise")
    args = parser.parse_args(argv)

    handler = PrintingHandler()
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    print(f"[demo] SMTP server listening on 127.0.0.1:{port}")
    try:
        app, alerting = create_app(port, args.storm)
        client = app.test_client()

        print("[demo] 1. one failing request (with a password in the query string)")
        response = client.get("/checkout?coupon=SPRING&password=hunter2")
        print(f"[demo]    the client got HTTP {response.status_code}: {response.get_data(True)}")
        if not handler.wait_for(1, timeout=10):
            print("[demo] no e-mail arrived within 10 s", file=sys.stderr)
            return 1

        print(f"\n[demo] 2. a storm of {args.storm} identical errors")
        for _ in range(args.storm):
            client.get("/checkout")
        alerting.flush(timeout=10)
        stats = alerting.stats(app)
        print(
            f"[demo]    {stats['raised']} alerts raised, {stats['suppressed']} suppressed by "
            "the throttle; the digest leaves when the 5-minute window ends, or at shutdown:"
        )
        alerting.shutdown(timeout=10)
        handler.wait_for(2, timeout=10)
        print(
            f"\n[demo] done: {1 + args.storm} errors -> {handler.count} e-mails "
            f"(the hand-written version sends {1 + args.storm})."
        )
        return 0 if handler.count == 2 else 1
    finally:
        controller.stop()


if __name__ == "__main__":
    sys.exit(main())
