"""The durable outbox: erroring-request throughput with it on, against ``memory://`` and a
log-only app, and what one outbox write and one delete cost per backend.

Run: ``.venv/bin/python benchmarks/bench_outbox.py`` (about 30 s; ``--quick``: about 10 s).
Needs aiosmtpd (the ``test`` or ``bench`` extras): a real SMTP server is started on
127.0.0.1 (``tests/smtp_server.py``); and ``redis-server`` for the Redis rows (left out,
with a note, without it).

The apps raise from one view and log their errors to a file, as the seed does
(``benchmarks/bench_errors.py``); they run in one process, their rounds interleaved (log-only,
memory://, SQLite, Redis, log-only, ...) so that load from other processes hits all alike,
and medians are compared. The alerting apps' times include flushing their pipeline at the end
of each round, so the dispatch thread's and the workers' work counts; a garbage collection
precedes each round.

* **log-only**: the baseline of every ratio;
* **memory://**: flask-alerting without an outbox (``ALERTING_STORAGE_URI = "memory://"``,
  the path of 0.1);
* **SQLite**: the default store, the per-host SQLite file (in a temporary
  ``XDG_RUNTIME_DIR``): the outbox on;
* **Redis**: a real redis-server on 127.0.0.1 (TCP): the outbox on.

Figures:

1. an error storm with one fingerprint, delivered to the SMTP server: requests per second,
   / log-only (goal for the outbox apps: >= 0.85);
2. a flood of distinct errors, every one of them delivered (``ALERTING_RATE_LIMIT = 0``, a
   notifier that keeps nothing): the outbox's worst case, each alert recorded (one write per
   dispatch batch), delivered and settled (one write, on the dispatch thread, while the
   worker waits for it). Also the settling as a worker sees it: from the end of its send to
   its next one, median per alert (information);
3. one outbox write (``outbox_put`` of one error alert: the first alert of a burst) and one
   delete (``outbox_delete`` of one record: a settlement), per backend: microseconds, the
   minimum over interleaved rounds.
"""

from __future__ import annotations

import argparse
import gc
import logging
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from flask import Flask

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from flask_alerting import Alert, FlaskAlerting, Notifier  # noqa: E402
from flask_alerting.store import Outgoing, Store, current_process, parse_storage_uri  # noqa: E402
from tests.smtp_server import SMTPServer  # noqa: E402

SEED_FORMAT = "%(asctime)s:%(levelname)s:%(message)s"
ME = current_process()


class Null(Notifier):
    """Delivers instantly and keeps nothing: the outbox's own cost shows."""

    name = "null"

    def send(self, alert: Alert) -> None:
        pass


def failing_app(name: str) -> Flask:
    app = Flask(name)
    app.config["PROPAGATE_EXCEPTIONS"] = False

    @app.route("/fail/<int:n>")
    def fail(n: int) -> str:
        raise ValueError(f"could not score request {n} (model timeout after {n % 97} ms)")

    @app.route("/distinct/<int:n>")
    def distinct(n: int) -> str:
        raise type(f"ScoringError{n}", (ValueError,), {})(f"request {n} failed")

    return app


def alerting_app(name: str, storage_uri: str | None, **options: Any) -> tuple[Flask, FlaskAlerting]:
    app = failing_app(name)
    app.config.update(ALERTING_METRICS_ENABLED=False)
    if storage_uri is not None:
        app.config["ALERTING_STORAGE_URI"] = storage_uri
    return app, FlaskAlerting(app, **options)


def smtp_options(server: SMTPServer) -> dict[str, Any]:
    return {
        "smtp_host": server.host,
        "smtp_port": server.port,
        "smtp_security": "none",
        "mail_sender": "alerts@example.com",
        "mail_recipients": "admin@example.com",
    }


def run(app: Flask, path: str, start: int, count: int, alerting: FlaskAlerting | None) -> float:
    """Seconds to serve ``count`` erroring requests (and flush the pipeline)."""
    client = app.test_client()
    begin = time.perf_counter()
    for n in range(start, start + count):
        client.get(f"/{path}/{n}")
    if alerting is not None and not alerting.flush(120.0):
        raise SystemExit("an alerting pipeline did not flush within 120 s")
    return time.perf_counter() - begin


def settle_times(alerting: FlaskAlerting) -> list[float]:
    """Times each worker spends settling (from the end of a send to its next one)."""
    times: list[float] = []
    for state in alerting._states():
        for worker in state.pipeline.workers:
            settle = worker.on_settled
            if settle is None:
                continue

            def timed(record: str, settle: Callable[[str], None] = settle) -> None:
                began = time.perf_counter()
                settle(record)
                times.append(time.perf_counter() - began)

            worker.on_settled = timed
    return times


def throughput(
    apps: dict[str, tuple[Flask, FlaskAlerting | None]], path: str, rounds: int, per_round: int
) -> dict[str, float]:
    """Requests per second of each app (median of interleaved rounds)."""
    times: dict[str, list[float]] = {name: [] for name in apps}
    for app, alerting in apps.values():  # warm up
        run(app, path, 10_000_000, 50, alerting)
    for r in range(rounds):
        for name, (app, alerting) in apps.items():
            gc.collect()  # each round starts alike
            times[name].append(run(app, path, r * per_round, per_round, alerting))
    return {name: per_round / statistics.median(t) for name, t in times.items()}


def error_alert() -> Alert:
    """An error alert as the capture builds one: a traceback and the request's details."""
    return Alert(
        title="ValueError: could not score request 17 in predict", kind="error",
        severity="error", labels={"app": "shop", "host": "web-1", "endpoint": "predict"},
        message="An error occurred", traceback="Traceback (most recent call last):\n"
        + '  File "/srv/app/views.py", line 42, in predict\n    score(x)\n' * 12
        + "ValueError: could not score request 17",
        details={"request": {"method": "POST", "url": "http://shop/predict", "endpoint":
                             "predict", "headers": {"User-Agent": "curl/8", "Accept": "*/*"}}},
    )  # fmt: skip


def micro(stores: dict[str, Store], rounds: int, per_round: int) -> dict[str, tuple[float, float]]:
    """Per store: µs of one put (one alert) and of one delete (one record), min of rounds."""
    alert = error_alert()
    best: dict[str, list[float]] = {name: [float("inf"), float("inf")] for name in stores}
    for _ in range(rounds):
        for name, store in stores.items():
            ids: list[str] = []
            began = time.perf_counter()
            for _ in range(per_round):
                ids += store.outbox_put([Outgoing(alert, ("smtp",))], owner=ME,
                                        now=time.time()).ids
            put = (time.perf_counter() - began) / per_round
            began = time.perf_counter()
            for record in ids:
                store.outbox_delete([record])
            delete = (time.perf_counter() - began) / per_round
            best[name] = [min(best[name][0], put), min(best[name][1], delete)]
    return {name: (p * 1e6, d * 1e6) for name, (p, d) in best.items()}


def start_redis(directory: Path) -> Any:
    from tests.servers import RedisServer

    try:
        return RedisServer(directory).start()
    except BaseException as exc:  # a missing binary skips (pytest's Skipped is a BaseException)
        print(f"(no Redis rows: {exc})")
        return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds (about 10 s)")
    args = parser.parse_args()
    rounds = 3 if args.quick else 7
    storm, flood = (400, 200) if args.quick else (1000, 500)

    workdir = tempfile.mkdtemp(prefix="bench-outbox-")
    runtime = Path(workdir) / "runtime"
    runtime.mkdir(mode=0o700)
    os.environ["XDG_RUNTIME_DIR"] = str(runtime)  # the default store: a fresh file
    logging.basicConfig(
        filename=os.path.join(workdir, "error.log"), level=logging.ERROR, format=SEED_FORMAT
    )
    smtp = SMTPServer().start()
    redis_server = start_redis(Path(workdir))
    made: list[FlaskAlerting] = []
    try:
        uris: dict[str, str | None] = {"memory://": "memory://", "SQLite": None}
        if redis_server is not None:
            uris["Redis"] = redis_server.url
        print("flask-alerting durable outbox: erroring requests with the outbox on")
        print(f"(interleaved rounds, medians; logs and stores in {workdir})\n")

        # -- 1. an error storm, one fingerprint, SMTP -----------------------------------------
        apps: dict[str, tuple[Flask, FlaskAlerting | None]] = {"log-only": (failing_app("log"),
                                                                           None)}
        for label, uri in uris.items():
            app, alerting = alerting_app(f"storm-{uuid.uuid4().hex[:6]}", uri,
                                         **smtp_options(smtp))
            apps[label] = (app, alerting)
            made.append(alerting)
        storm_rps = throughput(apps, "fail", rounds, storm)

        # -- 2. distinct errors, every one delivered ------------------------------------------
        flood_apps: dict[str, tuple[Flask, FlaskAlerting | None]] = {
            "log-only": (failing_app("log2"), None)
        }
        settling: dict[str, list[float]] = {}
        for label, uri in uris.items():
            app, alerting = alerting_app(f"flood-{uuid.uuid4().hex[:6]}", uri,
                                         notifiers=[Null()], rate_limit=0, queue_size=100_000)
            flood_apps[label] = (app, alerting)
            settling[label] = settle_times(alerting)
            made.append(alerting)
        flood_rps = throughput(flood_apps, "distinct", rounds, flood)
        outbox_stats = {label: alerting.stats()["outbox"]
                        for label, (_, alerting) in flood_apps.items() if alerting is not None}

        # -- 3. one write, one delete ---------------------------------------------------------
        stores: dict[str, Store] = {"SQLite": parse_storage_uri(None, app_name="bench-micro")}
        if redis_server is not None:
            stores["Redis"] = parse_storage_uri(redis_server.url, app_name="bench-micro")
        costs = micro(stores, rounds * 2, 200)
        for store in stores.values():
            store.close()

        # -- report --------------------------------------------------------------------------
        print(f"1. Error storm, one fingerprint, SMTP ({rounds} rounds of {storm} requests)")
        base = storm_rps["log-only"]
        for label, rps in storm_rps.items():
            goal = "   (goal >= 0.85)" if label not in ("log-only", "memory://") else ""
            note = "  (no outbox)" if label == "memory://" else ""
            print(f"   {label:<12} {rps:8.0f} req/s   ratio {rps / base:.2f}{goal}{note}")
        print(f"\n2. Distinct errors, each delivered ({rounds} rounds of {flood} requests; "
              "rate limit off, a notifier that keeps nothing)")
        base = flood_rps["log-only"]
        for label, rps in flood_rps.items():
            extra = ""
            if label in settling and settling[label]:
                stats = outbox_stats[label]
                extra = (f"   settling {statistics.median(settling[label]) * 1e6:6.0f} µs/alert"
                         f" (recorded {stats['recorded']}, unrecorded {stats['unrecorded']})")
            vs = f" / memory:// {rps / flood_rps['memory://']:.2f}" if label in stores else ""
            print(f"   {label:<12} {rps:8.0f} req/s   ratio {rps / base:.2f}{vs}{extra}")
        print(f"\n3. One outbox write and one delete (µs, min of {rounds * 2} rounds of 200)")
        for label, (put, delete) in costs.items():
            print(f"   {label:<12} put one alert {put:7.1f} µs   delete one record "
                  f"{delete:7.1f} µs")
    finally:
        for alerting in made:
            alerting.shutdown(30.0)
        smtp.stop()
        if redis_server is not None:
            redis_server.stop()


if __name__ == "__main__":
    main()
