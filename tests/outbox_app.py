"""An app for the outbox tests, run as real processes (``python -m tests.outbox_app MODE``)
and under gunicorn (``tests.outbox_app:app``).

Configured from the environment: ``FA_APP`` (the app's name, which names its default store
and Redis namespace), ``FA_SMTP_PORT`` (the SMTP server on 127.0.0.1; a port where none
listens stands for a server that is down), ``FA_STORAGE_URI`` (default: the per-host
SQLite file in ``$XDG_RUNTIME_DIR``, the tests' private runtime directory), ``FA_LOG``
(a file: each process writes ``<pid> <event>`` lines there, for the test to wait on),
``FA_TICK`` and ``FA_RECOVER_EVERY`` (seconds between two store ticks and between two
recovery rounds; default: production's 1 s and 2 s, which the tests need not wait for).

``GET /fail/<n>`` raises ``Error<n>``, a class of its own per ``n``, so each request is an
alert of its own (distinct fingerprints; the flood guard is off), whose message carries
``n``. Modes:

* ``raise N``: raise ``/fail/N``, wait until the alert is recorded in the outbox, write
  ``recorded``, then wait to be killed;
* ``recover``: raise nothing; once the dispatch thread has run ``FA_ROUNDS`` recovery
  rounds (default 2) and taken over ``FA_EXPECT`` records (default 0), flush, write the
  outbox's stats (``stats {...}``) and exit;
* ``drain``: like ``recover``, until the store's outbox is empty (other processes may
  take records over too).
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from typing import Any

from flask import Flask

from flask_alerting import FlaskAlerting
from flask_alerting._state import get_state
from flask_alerting.delivery import outbox as outbox_module
from flask_alerting.delivery import store_link

ROUND_TIMEOUT = 60.0

if os.environ.get("FA_TICK"):
    store_link.TICK = float(os.environ["FA_TICK"])
if os.environ.get("FA_RECOVER_EVERY"):
    outbox_module.RECOVER_EVERY = float(os.environ["FA_RECOVER_EVERY"])


def note(event: str) -> None:
    path = os.environ.get("FA_LOG")
    if path:
        with open(path, "a", encoding="utf-8") as log:
            log.write(f"{os.getpid()} {event}\n")


def make_app() -> tuple[Flask, FlaskAlerting]:
    app = Flask(os.environ.get("FA_APP", "outbox-app"))
    app.config.update(
        PROPAGATE_EXCEPTIONS=False,
        ALERTING_METRICS_ENABLED=False,
        ALERTING_SMTP_HOST="127.0.0.1",
        ALERTING_SMTP_PORT=int(os.environ["FA_SMTP_PORT"]),
        ALERTING_SMTP_SECURITY="none",
        ALERTING_SMTP_TIMEOUT=5.0,
        ALERTING_MAIL_SENDER="alerts@example.com",
        ALERTING_MAIL_RECIPIENTS="admin@example.com",
        ALERTING_RATE_LIMIT=0,
        ALERTING_SHUTDOWN_TIMEOUT=10.0,
    )
    if os.environ.get("FA_STORAGE_URI"):
        app.config["ALERTING_STORAGE_URI"] = os.environ["FA_STORAGE_URI"]

    @app.route("/fail/<int:n>")
    def fail(n: int) -> str:
        raise type(f"Error{n}", (Exception,), {})(f"request {n} failed")

    @app.route("/pid")
    def pid() -> dict[str, Any]:
        return {"pid": os.getpid()}

    return app, FlaskAlerting(app)


def wait(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    pause = threading.Event()
    while not predicate():
        if time.monotonic() > deadline:
            note(f"timeout waiting for {what}")
            sys.exit(3)
        pause.wait(0.02)


def raise_and_wait(n: int) -> None:
    app, alerting = make_app()
    store = get_state(app).store
    assert app.test_client().get(f"/fail/{n}").status_code == 500
    # Outside the delivery threads, for the test's sake: the record is there.
    wait(lambda: any(r.alert and f"request {n} " in r.alert.message
                     for r in store.outbox_records()), 30, "the record")
    note("recorded")
    threading.Event().wait(120)  # killed before this ends
    sys.exit(4)


def recover(until_empty: bool) -> None:
    app, alerting = make_app()
    state = get_state(app)
    outbox = state.pipeline.outbox
    assert outbox is not None
    rounds = int(os.environ.get("FA_ROUNDS", "2"))
    expected = int(os.environ.get("FA_EXPECT", "0"))
    note("started")

    def done() -> bool:
        if outbox.rounds < rounds or outbox.recovered < expected:
            return False
        # Read outside the delivery threads, for the test's sake.
        return not until_empty or not state.store.outbox_records()

    wait(done, ROUND_TIMEOUT, "the recovery rounds")
    delivered = alerting.flush(30.0)
    note("stats " + json.dumps({**outbox.stats(), "delivered": delivered}))
    alerting.shutdown(10.0)


if __name__ == "__main__":
    if sys.argv[1] == "raise":
        raise_and_wait(int(sys.argv[2]))
    elif sys.argv[1] in ("recover", "drain"):
        recover(until_empty=sys.argv[1] == "drain")
else:
    app, alerting = make_app()
