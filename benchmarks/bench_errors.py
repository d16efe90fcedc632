"""An error storm: e-mails sent, request throughput and latency against a log-only app.

Run: ``.venv/bin/python benchmarks/bench_errors.py`` (about 40-50 s; ``--quick``: about
15 s). Needs aiosmtpd (the ``test`` or ``bench`` extras): a real SMTP server is started on
127.0.0.1 (``tests/smtp_server.py``); and, for the Redis figure, ``redis-server`` (the
Debian package; without it that line says so) and the ``redis`` package.

Every app has the same view, ``/fail/<n>``, raising ``ValueError("... n ...")``: one
fingerprint, a different message each time. Logging is configured like the seed
(``logging.basicConfig(filename="error.log", level=ERROR)``), so every app logs every error
with its traceback (Flask's own ``log_exception``). The apps:

* **log-only**: just that (the baseline of every ratio);
* **alerting**: the same plus ``FlaskAlerting`` delivering to the local SMTP server, with
  its default store (this host's SQLite file, in a temporary ``XDG_RUNTIME_DIR``);
* **alerting, memory://**: the same with the store of one process (0.1's throttle);
* **alerting, Redis**: the same with a ``redis-server`` on 127.0.0.1 (TCP);
* **seed**: the seed's design, a ``try``/``except`` in the view that logs and sends the
  e-mail with :mod:`smtplib` before answering (plain SMTP on 127.0.0.1, without the seed's
  TLS handshake and login: a lower bound of its cost).

Figures (goals from issue 3):

1. e-mails for 10,000 erroring requests: alerting (goal: 1 + one digest per throttle
   window), shown for the default 300-s window and for a 1-s window; the seed sends one
   per error (measured on a few hundred requests, then extrapolated linearly, which is
   exact for its design: one SMTP transaction per error);
2. request throughput, alerting / log-only, per store: the default (goal >= 0.85),
   ``memory://`` (0.1's goal: >= 0.9), Redis (goal >= 0.8). An alerting app's time includes
   flushing its pipeline at the end of each round (the counts added to the store
   included), so the dispatch thread's work counts;
3. with the SMTP server delaying every reply by 0.5 s: median latency of an erroring
   request, alerting / log-only (goal <= 1.2), and the seed's (it waits for SMTP).

Rounds are interleaved (log-only, alerting, log-only, ...) so that load from other
processes hits all alike; medians over rounds are compared.
"""

from __future__ import annotations

import argparse
import logging
import os
import smtplib
import statistics
import sys
import tempfile
import time
import traceback
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from pathlib import Path
from typing import Any

from flask import Flask

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from flask_alerting import FlaskAlerting  # noqa: E402
from tests.smtp_server import SMTPServer  # noqa: E402

# The default store lives in $XDG_RUNTIME_DIR: a private one for this run.
os.environ["XDG_RUNTIME_DIR"] = tempfile.mkdtemp(prefix="bench-errors-runtime-")

SEED_FORMAT = "%(asctime)s:%(levelname)s:%(message)s"


def failing_app(name: str) -> Flask:
    app = Flask(name)
    app.config["PROPAGATE_EXCEPTIONS"] = False

    @app.route("/fail/<int:n>")
    def fail(n: int) -> str:
        raise ValueError(f"could not score request {n} (model timeout after {n % 97} ms)")

    return app


def alerting_app(
    server: SMTPServer, name: str = "alerting", **options: Any
) -> tuple[Flask, FlaskAlerting]:
    app = failing_app(name)
    app.config.update(
        ALERTING_SMTP_HOST=server.host,
        ALERTING_SMTP_PORT=server.port,
        ALERTING_SMTP_SECURITY="none",
        ALERTING_MAIL_SENDER="alerts@example.com",
        ALERTING_MAIL_RECIPIENTS="admin@example.com",
        ALERTING_METRICS_ENABLED=False,
    )
    return app, FlaskAlerting(app, **options)


def seed_app(server: SMTPServer) -> Flask:
    """The seed's route: try/except, logging.error(traceback), send_error_email, answer."""
    app = Flask("seed")

    def send_error_email(traceback_str: str) -> None:
        message = MIMEMultipart("alternative")
        message["Subject"] = "Error in Flask Application"
        message["From"] = "your_email@example.com"
        message["To"] = "admin@example.com"
        text = f"An error occurred in your Flask application:\n\n{traceback_str}"
        message.attach(MIMEText(text, "plain"))
        try:
            with smtplib.SMTP(server.host, server.port) as smtp:
                smtp.sendmail("your_email@example.com", "admin@example.com", message.as_string())
        except Exception as exc:
            print(f"Failed to send email: {exc}")

    @app.route("/fail/<int:n>")
    def fail(n: int) -> Any:
        try:
            raise ValueError(f"could not score request {n} (model timeout after {n % 97} ms)")
        except Exception:
            error_message = traceback.format_exc()
            logging.error(error_message)
            send_error_email(error_message)
            return "An error occurred. The administrators have been notified.", 500

    return app


def run(app: Flask, start: int, count: int, alerting: FlaskAlerting | None = None) -> float:
    """Seconds to serve ``count`` erroring requests (and flush the pipeline)."""
    client = app.test_client()
    begin = time.perf_counter()
    for n in range(start, start + count):
        client.get(f"/fail/{n}")
    if alerting is not None and not alerting.flush(60.0):
        raise SystemExit("the alerting pipeline did not flush within 60 s")
    return time.perf_counter() - begin


def latency(app: Flask, n: int) -> float:
    client = app.test_client()
    begin = time.perf_counter()
    client.get(f"/fail/{n}")
    return time.perf_counter() - begin


def start_redis(workdir: str) -> Any:
    """A redis-server on 127.0.0.1 (tests/servers.py), or None when there is none."""
    import shutil

    from tests.servers import RedisServer

    binary = shutil.which("redis-server") or "/usr/bin/redis-server"
    if not os.path.exists(binary):
        return None
    try:
        import redis  # noqa: F401
    except ImportError:
        return None
    directory = Path(workdir) / "redis"
    directory.mkdir()
    return RedisServer(directory, binary=binary).start()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer requests (about 10 s)")
    args = parser.parse_args()
    total = 2_000 if args.quick else 10_000
    rounds = 5 if args.quick else 10
    per_round = total // rounds
    latency_pairs = 300 if args.quick else 1_000
    seed_count = 100 if args.quick else 300

    workdir = tempfile.mkdtemp(prefix="bench-errors-")
    logging.basicConfig(
        filename=os.path.join(workdir, "error.log"), level=logging.ERROR, format=SEED_FORMAT
    )
    fast = SMTPServer().start()
    slow = SMTPServer().start()
    slow.delay = 0.5
    try:
        print(f"flask-alerting error storm: {total} erroring requests, one fingerprint")
        print(f"(interleaved rounds of {per_round}; logs in {workdir})\n")

        # -- 1 and 2: e-mails and throughput ------------------------------------------------
        log_only = failing_app("log-only")
        app, alerting = alerting_app(fast)
        # The same with other stores, each with an SMTP server of its own.
        others: dict[str, tuple[Flask, FlaskAlerting, SMTPServer]] = {}
        redis_server = start_redis(workdir)
        stores = {"memory://": "memory://"}
        if redis_server is not None:
            stores["Redis"] = redis_server.url
        for label, uri in stores.items():
            smtp = SMTPServer().start()
            other_app, other = alerting_app(
                smtp, name=f"alerting-{label[:5].strip(':/')}", storage_uri=uri
            )
            others[label] = (other_app, other, smtp)
        # For information: the request path alone, the pipeline replaced by a no-op (as
        # flask_alerting.testing does, through an instance attribute).
        path_app, path_alerting = alerting_app(fast, name="path", storage_uri="memory://")
        path_app.extensions["alerting"].submit = lambda item: None
        run(log_only, 0, 200)  # warm up (imports, linecache, first e-mail)
        run(app, 0, 200, alerting)
        for other_app, other, _ in others.values():
            run(other_app, 0, 200, other)
        run(path_app, 0, 200)
        warm_emails = len(fast.wait_for(1))
        base_times: list[float] = []
        alert_times: list[float] = []
        other_times: dict[str, list[float]] = {label: [] for label in others}
        path_times: list[float] = []
        for r in range(rounds):
            base_times.append(run(log_only, r * per_round, per_round))
            alert_times.append(run(app, r * per_round, per_round, alerting))
            for label, (other_app, other, _) in others.items():
                other_times[label].append(run(other_app, r * per_round, per_round, other))
            path_times.append(run(path_app, r * per_round, per_round))
        path_alerting.shutdown(5.0)
        stats = alerting.stats()
        alerting.shutdown(30.0)  # emits the pending digest
        emails = len(fast.wait_for(warm_emails + 1))
        other_emails = {}
        for label, (_, other, smtp) in others.items():
            other.shutdown(30.0)
            other_emails[label] = len(smtp.wait_for(2))
            smtp.stop()
        if redis_server is not None:
            redis_server.stop()
        base_rps = per_round / statistics.median(base_times)
        alert_rps = per_round / statistics.median(alert_times)
        other_rps = {label: per_round / statistics.median(t) for label, t in other_times.items()}
        path_rps = per_round / statistics.median(path_times)

        def ratio_of(times: list[float]) -> float:
            """Median over rounds of log-only's time / this app's in the same round."""
            return statistics.median(b / t for b, t in zip(base_times, times, strict=True))

        # A 1-s window: one digest per elapsed window.
        fast_windows = SMTPServer().start()
        try:
            app_w, alerting_w = alerting_app(fast_windows, throttle_seconds=1.0)
            began = time.monotonic()
            run(app_w, 0, total, alerting_w)
            elapsed = time.monotonic() - began
            stats_w = alerting_w.stats()
            alerting_w.shutdown(30.0)
            emails_w = len(fast_windows.raw)
        finally:
            fast_windows.stop()

        # The seed's design, a few hundred errors.
        seed = seed_app(fast)
        before = len(fast.raw)
        seed_time = run(seed, 0, seed_count)
        seed_emails = len(fast.wait_for(before + seed_count)) - before
        seed_rps = seed_count / seed_time

        # -- 3: latency with a slow SMTP server -----------------------------------------------
        slow_app, slow_alerting = alerting_app(slow)
        base_lat: list[float] = []
        alert_lat: list[float] = []
        for n in range(50):  # warm-up; the first alert is now being sent (0.5 s)
            latency(log_only, n)
            latency(slow_app, n)
        for n in range(latency_pairs):
            base_lat.append(latency(log_only, n))
            alert_lat.append(latency(slow_app, n))
        slow_alerting.shutdown(30.0)
        seed_slow = seed_app(slow)
        seed_lat = [latency(seed_slow, n) for n in range(5)]

        # -- report ----------------------------------------------------------------------------
        print("1. E-mails")
        print(
            f"   alerting, 300-s window:   {emails} e-mails for {total + 200} errors "
            f"(1 at once + {emails - 1} digest at shutdown; raised {stats['raised']}, "
            f"suppressed {stats['suppressed']}, dropped {stats['dropped']})"
        )
        print(
            f"   alerting, 1-s window:     {emails_w} e-mails for {total} errors over "
            f"{elapsed:.1f} s (1 + {stats_w['digests']} digests at window ends + the rest "
            f"at shutdown; dropped {stats_w['dropped']})"
        )
        print(
            f"   try/except recipe:        {seed_emails} e-mails for {seed_count} errors "
            f"-> {seed_emails * total // seed_count} for {total} (one per error)"
        )
        for label, count in other_emails.items():
            print(f"   alerting, {label + ':':<16}{count} e-mails (the same storm)")
        print("\n2. Throughput (erroring requests per second, median of rounds)")
        print(f"   log-only:                 {base_rps:8.0f} req/s")
        ratio = ratio_of(alert_times)
        print(f"   alerting, default store:  {alert_rps:8.0f} req/s   ratio {ratio:.2f}", end="")
        print("   (goal >= 0.85; this host's SQLite file)")
        goals = {"memory://": "(0.1's goal >= 0.9; one process)", "Redis": "(goal >= 0.8)"}
        for label, rps in other_rps.items():
            print(
                f"   alerting, {label + ':':<16}{rps:8.0f} req/s   ratio "
                f"{ratio_of(other_times[label]):.2f}   {goals[label]}"
            )
        if redis_server is None:
            print("   alerting, Redis:          (no redis-server or redis package: not measured)")
        print(
            f"   (request path only:       {path_rps:8.0f} req/s   ratio "
            f"{ratio_of(path_times):.2f}   information: pipeline bypassed)"
        )
        print("   (ratios: median over rounds of log-only's time / the app's, same round)")
        print(
            f"   try/except recipe:        {seed_rps:8.0f} req/s   ratio {seed_rps / base_rps:.2f}"
            "   (fast local SMTP, no TLS)"
        )
        b, a, s = (statistics.median(x) * 1000 for x in (base_lat, alert_lat, seed_lat))
        print("\n3. Latency of an erroring request, SMTP replies delayed by 0.5 s (median)")
        print(f"   log-only:                 {b:8.3f} ms")
        print(f"   alerting:                 {a:8.3f} ms   ratio {a / b:.2f}   (goal <= 1.2)")
        print(f"   try/except recipe:        {s:8.3f} ms   ratio {s / b:.0f}   (5 requests)")
    finally:
        fast.stop()
        slow.stop()


if __name__ == "__main__":
    main()
