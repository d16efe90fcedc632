"""Hostile exceptions: the request path's cost and the e-mail's size, against an ordinary error.

Run: ``.venv/bin/python benchmarks/bench_hostile.py`` (about 15 s; ``--quick``: a few
seconds). No server needed: the e-mail is built by the SMTP notifier as it would send it.

For each exception below, raised and caught once, the benchmark times what
flask-alerting runs on the request path when a view raises it, inside a request context:
the fingerprint, the request snapshot and the frame-free summary of the exception (what
``flask_alerting.capture.capture_error`` does before handing over to the dispatch
thread). The figure is the median of the repeats, as a ratio against the same work for an
ordinary error of one frame, measured in the same run. Then the dispatch thread builds
the alert and the SMTP notifier its e-mail: its size in bytes, as it would go over the
wire.

Cases (issue 10): an ordinary error (the baseline); an ``ExceptionGroup`` of 50 members
with 1 MB messages; a chain of 2,000 exceptions (``raise ... from``) with 10 KB
messages; a mutual recursion 20,000 frames deep; a request URL of 107 KB; and the worst
recursion the default recursion limit allows (about 1,000 frames).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from flask import Flask

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from flask_alerting.capture import (  # noqa: E402
    error_alert_builder,
    error_fingerprint,
    request_context,
)
from flask_alerting.notifiers.smtp import SMTPNotifier  # noqa: E402

LABELS = {"app": "bench", "host": "bench-host"}


def _ordinary() -> None:
    raise ValueError("could not score request 42")


def _group() -> None:
    raise ExceptionGroup(  # noqa: F821 - Python >= 3.11 (skipped before)
        "batch failed", [ValueError(f"item {i}: " + "x" * 1_000_000) for i in range(50)]
    )


def _chain() -> None:
    exc: BaseException | None = None
    for i in range(2000):
        try:
            try:
                if exc is not None:
                    raise exc
                raise KeyError("root cause")
            except BaseException as inner:
                raise RuntimeError(f"link {i}: " + "y" * 10_000) from inner
        except RuntimeError as outer:
            exc = outer
    assert exc is not None
    raise exc


def _ping(n: int) -> None:
    if n <= 0:
        raise RecursionError("gave up at the bottom")
    _pong(n - 1)


def _pong(n: int) -> None:
    _ping(n - 1)


def _default_limit_recursion() -> None:
    def down() -> None:
        down()

    down()


def caught(raise_it: Callable[[], None]) -> BaseException:
    try:
        raise_it()
    except BaseException as exc:  # noqa: BLE001 - ExceptionGroup included
        return exc
    raise AssertionError("nothing raised")


def request_path(exc: BaseException) -> Callable[[], Any]:
    """What ``capture_error`` runs for ``exc`` on the request path."""
    fingerprint = error_fingerprint(exc, "view")
    labels, snapshot = request_context(LABELS)
    return error_alert_builder(exc, labels=labels, request=snapshot, fingerprint=fingerprint)


def measure(app: Flask, exc: BaseException, url: str, repeats: int) -> tuple[float, int, float]:
    """(median request-path seconds, e-mail bytes, seconds to build the e-mail)."""
    times = []
    build: Callable[[], Any] | None = None
    with app.test_request_context(url):
        for _ in range(repeats):
            begin = time.perf_counter()
            build = request_path(exc)
            times.append(time.perf_counter() - begin)
    assert build is not None
    notifier = SMTPNotifier(
        "127.0.0.1", 25, security="none", sender="alerts@example.com", recipients="a@example.com"
    )
    begin = time.perf_counter()
    size = len(notifier.build_message(build()).as_bytes())
    return statistics.median(times), size, time.perf_counter() - begin


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats (a few seconds)")
    args = parser.parse_args()
    repeats = 5 if args.quick else 21
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 50_000))
    cases: list[tuple[str, Callable[[], None], str]] = [
        ("ordinary error (baseline)", _ordinary, "/view"),
    ]
    if sys.version_info >= (3, 11):
        cases.append(("ExceptionGroup, 50 x 1 MB messages", _group, "/view"))
    cases += [
        ("cause chain, 2,000 links", _chain, "/view"),
        ("mutual recursion, 20,000 frames", lambda: _ping(20_000), "/view"),
        ("request URL of 107 KB", _ordinary, "/view?q=" + "z" * 107_000),
    ]
    app = Flask("bench")
    old_limit = sys.getrecursionlimit()
    sys.setrecursionlimit(1000)
    default_recursion = caught(_default_limit_recursion)
    sys.setrecursionlimit(old_limit)
    results = []
    for name, raise_it, url in cases:
        results.append((name, *measure(app, caught(raise_it), url, repeats)))
    default = measure(app, default_recursion, "/view", repeats)
    results.append(("recursion at the default limit (1,000)", *default))
    baseline = results[0][1]
    print(f"{'case':42} {'request path':>14} {'ratio':>8} {'e-mail':>12} {'build':>9}")
    for name, seconds, size, build in results:
        print(
            f"{name:42} {seconds * 1e3:11.3f} ms {seconds / baseline:7.1f}x "
            f"{size / 1e6:9.3f} MB {build * 1e3:6.0f} ms"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
