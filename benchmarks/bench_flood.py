"""A flood of distinct errors: request throughput and e-mails sent, with the flood guard.

Run: ``.venv/bin/python benchmarks/bench_flood.py`` (about 30 s; ``--quick``: about 10 s).
Needs aiosmtpd (the ``test`` or ``bench`` extras): real SMTP servers are started on
127.0.0.1 (``tests/smtp_server.py``).

Every request raises an error of its own class (``Error<n>``), so every error has its own
fingerprint and the throttle groups nothing: the case the flood guard
(``ALERTING_RATE_LIMIT``) is for. Logging is configured like the seed
(``logging.basicConfig(filename="error.log", level=ERROR)``), so every app logs every
error with its traceback. The apps:

* **log-only**: just that (the baseline of every ratio);
* **alerting**: the same plus ``FlaskAlerting`` with its defaults (20 alerts a minute,
  the rest folded into one summary a minute; the host's default store, in a temporary
  ``XDG_RUNTIME_DIR``), delivering to a local SMTP server. Its time includes flushing
  the pipeline at the end of each round;
* **alerting, memory://** (information): the same with the store of one process (0.1's
  throttle), in the same rounds;
* **no guard** (information): ``ALERTING_RATE_LIMIT = 0``, as 0.1 behaved: every error is
  built and e-mailed, or dropped when the queue is full. Not flushed per round (that
  would time the SMTP server): its delivery thread works during its next rounds, as it
  would in production. Measured in a second phase, against the log-only app again, so
  that its busy threads do not slow the first phase's apps;
* **full captures** (information): the alerting app with its pipeline replaced by a
  no-op (as ``flask_alerting.testing`` does), so that every error is captured in full
  on the request thread (request snapshot, traceback summary): what the alerting app's
  requests would pay if they did not see the guard folding and skip that work.

Figures (goals from issue 10): throughput alerting / log-only (goal >= 0.85) and the
e-mails sent. Rounds are interleaved and preceded by a garbage collection (each request
creates a class: collections would otherwise land on whichever app runs then); a ratio is
the median over rounds of the log-only app's time over the other's in the same round.
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
from pathlib import Path
from typing import Any

from flask import Flask

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from flask_alerting import FlaskAlerting  # noqa: E402

# The default store lives in $XDG_RUNTIME_DIR: a private one for this run.
os.environ["XDG_RUNTIME_DIR"] = tempfile.mkdtemp(prefix="bench-flood-runtime-")
from tests.smtp_server import SMTPServer  # noqa: E402

SEED_FORMAT = "%(asctime)s:%(levelname)s:%(message)s"


def flooding_app(name: str) -> Flask:
    app = Flask(name)
    app.config["PROPAGATE_EXCEPTIONS"] = False

    @app.route("/fail/<int:n>")
    def fail(n: int) -> str:
        # A class of its own: a new fingerprint on every request.
        raise type(f"Error{n}", (ValueError,), {})(f"could not score request {n}")

    return app


def alerting_app(name: str, server: SMTPServer, **options: Any) -> tuple[Flask, FlaskAlerting]:
    app = flooding_app(name)
    app.config.update(
        ALERTING_SMTP_HOST=server.host,
        ALERTING_SMTP_PORT=server.port,
        ALERTING_SMTP_SECURITY="none",
        ALERTING_MAIL_SENDER="alerts@example.com",
        ALERTING_MAIL_RECIPIENTS="admin@example.com",
        ALERTING_METRICS_ENABLED=False,
    )
    return app, FlaskAlerting(app, **options)


def run(app: Flask, start: int, count: int, alerting: FlaskAlerting | None = None) -> float:
    """Seconds to serve ``count`` erroring requests (and flush ``alerting``, if given)."""
    client = app.test_client()
    gc.collect()
    begin = time.perf_counter()
    for n in range(start, start + count):
        client.get(f"/fail/{n}")
    if alerting is not None and not alerting.flush(60.0):
        raise SystemExit("the alerting pipeline did not flush within 60 s")
    return time.perf_counter() - begin


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer requests (about 10 s)")
    args = parser.parse_args()
    rounds = 5 if args.quick else 15
    per_round = 400 if args.quick else 500
    total = rounds * per_round

    workdir = tempfile.mkdtemp(prefix="bench-flood-")
    logging.basicConfig(
        filename=os.path.join(workdir, "error.log"), level=logging.ERROR, format=SEED_FORMAT
    )
    guarded_smtp = SMTPServer().start()
    unguarded_smtp = SMTPServer().start()
    try:
        print(f"flask-alerting error flood: {total} erroring requests, each its own fingerprint")
        print(f"(interleaved rounds of {per_round}; logs in {workdir})\n")
        log_only = flooding_app("log-only")
        app, alerting = alerting_app("alerting", guarded_smtp)
        memory_smtp = SMTPServer().start()
        memory_app, memory = alerting_app("memory", memory_smtp, storage_uri="memory://")
        bare_app, bare = alerting_app("no-guard", unguarded_smtp, rate_limit=0)
        path_app, path_alerting = alerting_app("full-captures", guarded_smtp)
        path_app.extensions["alerting"].submit = lambda item: None
        warm = 100
        run(log_only, -warm, warm)  # imports, linecache, the first e-mails
        run(app, -warm, warm, alerting)
        run(memory_app, -warm, warm, memory)
        run(path_app, -warm, warm)
        began = time.monotonic()
        times: dict[str, list[float]] = {"base": [], "alerting": [], "memory": [], "path": []}
        for r in range(rounds):
            start = r * per_round
            times["base"].append(run(log_only, start, per_round))
            times["alerting"].append(run(app, start, per_round, alerting))
            times["memory"].append(run(memory_app, start, per_round, memory))
            times["path"].append(run(path_app, start, per_round))
        elapsed = time.monotonic() - began
        stats = alerting.stats()
        alerting.shutdown(30.0)  # the pending summary leaves now
        guarded_emails = guarded_smtp.wait_for(stats["notifiers"]["smtp"]["sent"] + 1, 30.0)
        memory.shutdown(30.0)
        memory_smtp.stop()
        path_alerting.shutdown(5.0)

        run(bare_app, -warm, warm)
        times["base2"], times["bare"] = [], []
        for r in range(rounds):
            start = r * per_round
            times["base2"].append(run(log_only, start, per_round))
            times["bare"].append(run(bare_app, start, per_round))
        bare_stats = bare.stats()
        bare.shutdown(5.0)  # what is still queued is reported, not waited for
        bare_emails = len(unguarded_smtp.raw)

        rps = {name: per_round / statistics.median(t) for name, t in times.items()}
        base = rps["base"]

        def ratio(name: str, baseline: str = "base") -> float:
            """Median over rounds of the baseline's time / this app's, same round."""
            pairs = zip(times[baseline], times[name], strict=True)
            return statistics.median(b / t for b, t in pairs)

        summary = guarded_emails[-1]["Subject"]
        print(f"1. E-mails for {total + warm} distinct errors each, over {elapsed:.0f} s")
        print(
            f"   alerting:                 {len(guarded_emails)} e-mails "
            f"({stats['notifiers']['smtp']['sent']} one by one + 1 summary at shutdown; "
            f"folded {stats['folded']}, dropped {stats['dropped']})"
        )
        print(f"     the summary:            {summary}")
        print(
            f"   no guard (0.1):           {bare_emails} e-mails "
            f"(dropped {bare_stats['dropped']}; still queued at shutdown "
            f"{bare_stats['notifiers']['smtp']['queued']})"
        )
        print("\n2. Throughput (erroring requests per second, median of rounds)")
        print(f"   log-only:                 {base:8.0f} req/s")
        print(
            f"   alerting:                 {rps['alerting']:8.0f} req/s   ratio "
            f"{ratio('alerting'):.2f}   (goal >= 0.85; the default store)"
        )
        print(
            f"   (alerting, memory://:     {rps['memory']:8.0f} req/s   ratio "
            f"{ratio('memory'):.2f}   information: one process's store)"
        )
        print(
            f"   (no guard:                {rps['bare']:8.0f} req/s   ratio "
            f"{ratio('bare', 'base2'):.2f}   information: 0.1's behaviour, against "
            f"log-only at {rps['base2']:.0f} req/s in its own phase)"
        )
        print(
            f"   (full captures:           {rps['path']:8.0f} req/s   ratio "
            f"{ratio('path'):.2f}   information: every error captured, no pipeline)"
        )
        print("   (ratios: median over rounds of log-only's time / the app's, same round)")
    finally:
        guarded_smtp.stop()
        unguarded_smtp.stop()


if __name__ == "__main__":
    main()
