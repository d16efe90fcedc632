"""Request overhead on the happy path: flask-alerting and its peers against plain Flask.

Run: ``.venv/bin/python benchmarks/bench_overhead.py`` (about 30 s; ``--quick``: about
10 s). Needs the ``bench`` extras (sentry-sdk, prometheus-flask-exporter).

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

Each variant runs in a process of its own (no patch, registry or import of one variant
affects another), calling the WSGI app directly with a fresh environ per request (no
server, no socket, no test client: what is measured is Flask's request handling and what
the variant adds to it). The five processes run side by side: each warms up, then times
one batch whenever the driver asks, and the driver asks them in turn, in a rotating
order, so that their batches are interleaved and load from other processes of the
machine hits all of them alike. The figure of a variant is its best batch (the least
disturbed), and its ratio is plain Flask's best batch time over its own.

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


def serve(variant: str, batch_size: int) -> None:
    """The child: build ``variant``, warm up, then time one batch per line on stdin."""
    from werkzeug.test import EnvironBuilder

    app = build(variant)
    environ = EnvironBuilder(path="/hello/world", method="GET").get_environ()
    statuses: set[str] = set()

    def start_response(status: str, headers: Any, exc_info: Any = None) -> Any:
        statuses.add(status)
        return None

    def batch() -> float:
        start = time.perf_counter()
        for _ in range(batch_size):
            body = app(dict(environ), start_response)
            try:
                for _ in body:
                    pass
            finally:
                close = getattr(body, "close", None)
                if close is not None:
                    close()
        return time.perf_counter() - start

    batch()  # warm-up
    if statuses != {"200 OK"}:
        raise SystemExit(f"{variant}: unexpected statuses {statuses}")
    print("ready", flush=True)
    for line in sys.stdin:
        if line.strip() != "batch":
            break
        print(json.dumps(batch()), flush=True)


class Child:
    """One variant's process, timing a batch whenever asked."""

    def __init__(self, variant: str, batch_size: int) -> None:
        self.variant = variant
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "--child", variant, "--batch-size", str(batch_size)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=Path(__file__).resolve().parent.parent,
        )
        self._expect("ready")

    def _expect(self, word: str | None = None) -> str:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line or (word is not None and line.strip() != word):
            raise SystemExit(f"{self.variant}: child failed (said {line!r})")
        return line

    def batch(self) -> float:
        assert self.proc.stdin is not None
        self.proc.stdin.write("batch\n")
        self.proc.stdin.flush()
        return float(json.loads(self._expect()))

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        self.proc.wait(30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds")
    parser.add_argument("--rounds", type=int)
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--child", choices=VARIANTS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        serve(args.child, args.batch_size)
        return
    rounds = args.rounds or (12 if args.quick else 60)

    children = [Child(variant, args.batch_size) for variant in VARIANTS]
    times: dict[str, list[float]] = {v: [] for v in VARIANTS}
    try:
        for round_number in range(rounds):
            shift = round_number % len(children)
            for child in children[shift:] + children[:shift]:
                times[child.variant].append(child.batch())
    finally:
        for child in children:
            child.close()

    # Per variant its best batch: the one least disturbed by other load; the batches of
    # all variants were interleaved, so each had the same chances.
    best = {v: min(times[v]) / args.batch_size for v in VARIANTS}
    ratios = {v: best["plain"] / best[v] for v in VARIANTS}
    print(f"Happy-path request overhead: {len(VARIANTS)} processes side by side, one per")
    print(f"variant, {rounds} interleaved batches of {args.batch_size} WSGI requests each;")
    print("best batch per variant.")
    print()
    print(f"{'variant':<16}{'requests/s':>12}{'per request':>14}{'x plain':>10}")
    for variant in VARIANTS:
        cost = best[variant] * 1e6
        extra = f" (+{cost - best['plain'] * 1e6:.1f} us)" if variant != "plain" else ""
        print(f"{variant:<16}{1 / best[variant]:>12,.0f}{cost:>11.1f} us"
              f"{ratios[variant]:>9.2f}x{extra}")  # fmt: skip
    # How stable: the same ratio from the median batches.
    median = {v: statistics.median(times[v]) for v in VARIANTS}
    print()
    print(f"flask-alerting (defaults): {ratios['alerting']:.2f} x plain Flask (goal >= 0.95); "
          f"from median batches: {median['plain'] / median['alerting']:.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
