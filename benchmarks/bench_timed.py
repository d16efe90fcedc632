"""Per-call overhead of ``@alerting.timed`` against a hand-written floor and its peers.

Run: ``.venv/bin/python benchmarks/bench_timed.py`` (about 10-20 s; needs the ``bench``
extras: prometheus_client, sentry-sdk).

Every candidate wraps the same trivial function. Each is timed with :mod:`timeit` over many
repeats, interleaved (one repeat of each in turn, so load from other processes hits all of
them alike); the minimum per call is kept. Overhead = candidate - bare call, in the same
run, and the goals are ratios of overheads:

* ``alerting.timed`` overhead <= 1.5 x the floor's (a hand-written wrapper doing two
  ``time.perf_counter()`` reads and a compare);
* ``alerting.timed`` overhead <= 1/3 of prometheus_client ``Histogram.time()``'s.

Also printed, for information: the same floor plus the statistics that ``timed`` keeps
(the cost of ``timing_stats``), ``alerting.timer`` as a context manager, and
``sentry_sdk.trace`` inside a sampled transaction (transport discarding everything).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import timeit
from collections.abc import Callable
from typing import Any

import prometheus_client
import sentry_sdk
from flask import Flask
from sentry_sdk.transport import Transport

from flask_alerting import FlaskAlerting, MemoryNotifier
from flask_alerting.timing import MAX_NAMES
from flask_alerting.timing_stats import WINDOW, Recorder


def work() -> int:
    return 1


def floor_wrap(func: Callable[..., Any], threshold: float = 2.0) -> Callable[..., Any]:
    """The floor: two time.perf_counter() reads and a compare."""

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        result = func(*args, **kwargs)
        if time.perf_counter() - start > threshold:
            print("slow")
        return result

    return wrapper


class _Rec:
    __slots__ = ("count", "ring")

    def __init__(self) -> None:
        self.count = 0
        self.ring = [0.0] * WINDOW


def floor_stats_wrap(func: Callable[..., Any], threshold: float = 2.0) -> Callable[..., Any]:
    """The floor plus the statistics ``timed`` keeps (count, ring of recent durations)."""
    rec = _Rec()
    ring = rec.ring
    mask = WINDOW - 1

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        result = func(*args, **kwargs)
        duration = time.perf_counter() - start
        rec.count = n = rec.count + 1
        ring[n & mask] = duration
        if duration > threshold:
            print("slow")
        return result

    return wrapper


def _recorder_bytes() -> int:
    """Bytes held by one name's statistics once its window is full."""
    rec = Recorder("x")
    for i in range(WINDOW):
        rec.ring[i] = i + 0.5
    return sys.getsizeof(rec) + sys.getsizeof(rec.ring) + sum(map(sys.getsizeof, rec.ring))


class _DiscardTransport(Transport):
    def capture_envelope(self, envelope: Any) -> None:
        pass


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=40, help="interleaved repeats")
    parser.add_argument(
        "--target", type=float, default=0.01, help="seconds per measurement (calibrated)"
    )
    args = parser.parse_args()

    app = Flask("bench")
    app.config["ALERTING_METRICS_ENABLED"] = False
    alerting = FlaskAlerting(app, notifiers=[MemoryNotifier()])

    timed_default = alerting.timed(work)
    timed_explicit = alerting.timed(threshold=2.0, name="explicit")(work)

    def timer_block() -> int:
        with alerting.timer("block"):
            return work()

    histogram = prometheus_client.Histogram(
        "bench_seconds", "bench", registry=prometheus_client.CollectorRegistry()
    )
    prom = histogram.time()(work)

    sentry_sdk.init(
        dsn="http://public@127.0.0.1:9/1",  # never contacted: the transport discards
        transport=_DiscardTransport,
        traces_sample_rate=1.0,
        default_integrations=False,
    )
    sentry_traced = sentry_sdk.trace(work)

    ctx = app.app_context()
    candidates: dict[str, tuple[Callable[[], Any], bool, bool]] = {
        # name: (callable, inside app context, inside a sentry transaction)
        "bare call": (work, False, False),
        "floor (2x perf_counter + compare)": (floor_wrap(work), False, False),
        "floor + stats (same ops as timed)": (floor_stats_wrap(work), False, False),
        "alerting.timed, no app context": (timed_default, False, False),
        "alerting.timed, in app context": (timed_default, True, False),
        "alerting.timed(threshold=2.0)": (timed_explicit, False, False),
        "alerting.timer (with block)": (timer_block, False, False),
        "prometheus Histogram.time()": (prom, False, False),
        "sentry_sdk.trace (in transaction)": (sentry_traced, False, True),
    }

    # Calibrate: loops per measurement so that one takes about --target seconds.
    loops: dict[str, int] = {}
    for name, (func, _, _) in candidates.items():
        timer = timeit.Timer(func)
        n, _t = timer.autorange()
        per_call = _t / n
        loops[name] = max(100, int(args.target / per_call))

    results: dict[str, list[float]] = {name: [] for name in candidates}
    started = time.perf_counter()
    for _ in range(args.repeats):
        for name, (func, in_app, in_tx) in candidates.items():
            timer = timeit.Timer(func)
            if in_app:
                ctx.push()
            try:
                if in_tx:
                    with sentry_sdk.start_transaction(name="bench", op="bench"):
                        seconds = timer.timeit(loops[name])
                else:
                    seconds = timer.timeit(loops[name])
            finally:
                if in_app:
                    ctx.pop()
            results[name].append(seconds / loops[name])
    elapsed = time.perf_counter() - started

    best = {name: min(values) for name, values in results.items()}
    median = {name: statistics.median(values) for name, values in results.items()}
    bare, bare_median = best["bare call"], median["bare call"]

    def overhead(name: str, table: dict[str, float], base: float) -> float:
        return table[name] - base

    print(f"Python {sys.version.split()[0]}, {args.repeats} interleaved repeats, "
          f"{elapsed:.1f} s; per call (min of repeats), overhead = minus bare call")
    print(f"{'candidate':38} {'per call':>10} {'overhead':>10} {'median ovh':>11} {'x floor':>8}")
    floor = overhead("floor (2x perf_counter + compare)", best, bare)
    floor_median = overhead("floor (2x perf_counter + compare)", median, bare_median)
    for name in candidates:
        ovh = overhead(name, best, bare)
        ovh_median = overhead(name, median, bare_median)
        ratio = "" if name == "bare call" else f"{ovh / floor:8.2f}"
        print(
            f"{name:38} {best[name] * 1e9:8.0f}ns {ovh * 1e9:8.0f}ns "
            f"{ovh_median * 1e9:9.0f}ns {ratio}"
        )

    prom_ovh = overhead("prometheus Histogram.time()", best, bare)
    prom_median = overhead("prometheus Histogram.time()", median, bare_median)
    ok = True
    print()
    for label in ("alerting.timed, no app context", "alerting.timed, in app context"):
        ours = overhead(label, best, bare)
        ours_median = overhead(label, median, bare_median)
        vs_floor, vs_prom = ours / floor, ours / prom_ovh
        goal_floor, goal_prom = vs_floor <= 1.5, vs_prom <= 1 / 3
        ok = ok and goal_floor and goal_prom
        print(
            f"{label}: {vs_floor:.2f}x the floor's overhead (goal <= 1.5: "
            f"{'met' if goal_floor else 'NOT met'}; medians {ours_median / floor_median:.2f}x), "
            f"{vs_prom:.3f} of prometheus' (goal <= 0.333: "
            f"{'met' if goal_prom else 'NOT met'}; medians {ours_median / prom_median:.3f})"
        )
    stats_cost = overhead("floor + stats (same ops as timed)", best, bare) - floor
    print(f"cost of the statistics on the hot path: about {stats_cost * 1e9:.0f} ns per call")
    print(f"memory per timed name with a full window of {WINDOW} distinct durations: "
          f"{_recorder_bytes() / 1024:.1f} KiB (names kept: at most {MAX_NAMES})")
    print("goals met" if ok else "goals NOT met")
    return 0


if __name__ == "__main__":
    sys.exit(main())
