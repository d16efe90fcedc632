"""Request overhead on the happy path: flask-alerting and its peers against plain Flask.

Run: ``.venv/bin/python benchmarks/bench_overhead.py`` (about 2 min; ``--quick``: about
20 s). Needs the ``bench`` extras (sentry-sdk, prometheus-flask-exporter).

The same app (one view returning a short text) in five variants:

* **plain**: Flask alone, the baseline of every ratio;
* **alerting**: ``FlaskAlerting(app)`` with its defaults (metrics sampler off: it runs on
  its own thread, not on the request path; ``bench_metrics.py`` measures it);
* **alerting+slow**: the same with ``ALERTING_SLOW_REQUEST_THRESHOLD`` set, so every
  request is timed;
* **sentry**: sentry-sdk's ``FlaskIntegration`` with traces off and a transport that
  sends nothing (no network);
* **prometheus**: prometheus_flask_exporter's ``PrometheusMetrics(app)`` (a histogram and
  a counter per request).

Each measurement runs in a process of its own (no patch, registry or import of one
variant affects another), calling the WSGI app directly with a fresh environ per request
(no server, no socket, no test client: what is measured is Flask's request handling and
what the variant adds to it). A process warms up, then times batches and keeps its best
batch (the least disturbed by other load on the machine). Rounds run every variant once,
in a rotating order; the figure of a variant is the median over rounds of its rate
divided by plain Flask's rate in the same round.

Goal (issue 9): flask-alerting >= 0.95 x plain Flask, with its defaults.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

VARIANTS = ("plain", "alerting", "alerting+slow", "sentry", "prometheus")


def build(variant: str) -> Any:
    from flask import Flask

    app = Flask("bench")

    if variant == "sentry":
        import sentry_sdk
        from sentry_sdk.integrations.flask import FlaskIntegration
        from sentry_sdk.transport import Transport

        class Nowhere(Transport):
            def capture_envelope(self, envelope: Any) -> None:
                pass

        sentry_sdk.init(
            dsn="http://public@127.0.0.1:9/1",  # never contacted: the transport drops all
            transport=Nowhere,
            integrations=[FlaskIntegration()],
            traces_sample_rate=None,  # traces off
        )
    elif variant == "prometheus":
        from prometheus_flask_exporter import PrometheusMetrics

        PrometheusMetrics(app)
    elif variant.startswith("alerting"):
        from flask_alerting import FlaskAlerting, MemoryNotifier

        app.config["ALERTING_METRICS_ENABLED"] = False
        if variant == "alerting+slow":
            app.config["ALERTING_SLOW_REQUEST_THRESHOLD"] = 2.0
        FlaskAlerting(app, notifiers=[MemoryNotifier()])

    @app.route("/hello/<name>")
    def hello(name: str) -> str:
        return f"Hello, {name}!"

    return app


def measure(variant: str, batches: int, batch_size: int) -> float:
    """Requests per second of ``variant``: the best of ``batches`` timed batches."""
    from werkzeug.test import EnvironBuilder

    app = build(variant)
    environ = EnvironBuilder(path="/hello/world", method="GET").get_environ()
    statuses: list[str] = []

    def start_response(status: str, headers: Any, exc_info: Any = None) -> Any:
        statuses.append(status)
        return None

    def request() -> None:
        body = app(dict(environ), start_response)
        try:
            for _ in body:
                pass
        finally:
            close = getattr(body, "close", None)
            if close is not None:
                close()

    for _ in range(batch_size):  # warm-up
        request()
    best = float("inf")
    for _ in range(batches):
        start = time.perf_counter()
        for _ in range(batch_size):
            request()
        best = min(best, time.perf_counter() - start)
    if set(statuses) != {"200 OK"}:
        raise SystemExit(f"{variant}: unexpected statuses {set(statuses)}")
    return batch_size / best


def child(args: argparse.Namespace) -> None:
    rate = measure(args.child, args.batches, args.batch_size)
    print(json.dumps({"variant": args.child, "rate": rate}))


def run_in_process(variant: str, batches: int, batch_size: int) -> float:
    done = subprocess.run(
        [sys.executable, __file__, "--child", variant, "--batches", str(batches),
         "--batch-size", str(batch_size)],  # fmt: skip
        capture_output=True,
        text=True,
        check=False,
        cwd=Path(__file__).resolve().parent.parent,
    )
    if done.returncode != 0:
        raise SystemExit(f"{variant} failed:\n{done.stdout}{done.stderr}")
    return float(json.loads(done.stdout.strip().splitlines()[-1])["rate"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds and batches")
    parser.add_argument("--rounds", type=int)
    parser.add_argument("--batches", type=int)
    parser.add_argument("--batch-size", type=int, default=2000)
    parser.add_argument("--child", choices=VARIANTS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        args.batches = args.batches or 5
        child(args)
        return
    rounds = args.rounds or (3 if args.quick else 9)
    batches = args.batches or (5 if args.quick else 10)

    rates: dict[str, list[float]] = {v: [] for v in VARIANTS}
    ratios: dict[str, list[float]] = {v: [] for v in VARIANTS}
    for round_number in range(rounds):
        shift = round_number % len(VARIANTS)
        order = VARIANTS[shift:] + VARIANTS[:shift]
        measured = {v: run_in_process(v, batches, args.batch_size) for v in order}
        for variant in VARIANTS:
            rates[variant].append(measured[variant])
            ratios[variant].append(measured[variant] / measured["plain"])

    print(f"Happy-path request overhead: {rounds} rounds, each variant in its own process,")
    print(f"best of {batches} batches of {args.batch_size} requests per process (WSGI calls).")
    print()
    print(f"{'variant':<16}{'requests/s':>12}{'per request':>14}{'x plain':>10}")
    plain_us = 1e6 / statistics.median(rates["plain"])
    for variant in VARIANTS:
        rate = statistics.median(rates[variant])
        ratio = statistics.median(ratios[variant])
        cost = 1e6 / rate
        extra = f" (+{cost - plain_us:.1f} us)" if variant != "plain" else ""
        print(f"{variant:<16}{rate:>12,.0f}{cost:>11.1f} us{ratio:>9.2f}x{extra}")
    alerting = statistics.median(ratios["alerting"])
    print()
    print(f"flask-alerting (defaults): {alerting:.2f} x plain Flask (goal >= 0.95)")
    print(
        "ratios across rounds: "
        + ", ".join(
            f"{v} {min(ratios[v]):.2f}-{max(ratios[v]):.2f}" for v in VARIANTS if v != "plain"
        )
    )


if __name__ == "__main__":
    main()
