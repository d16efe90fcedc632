"""flask-alerting demo: the example prediction app, a local SMTP server, real e-mails.

Run it with the README's first command. It needs no mail account: an SMTP server
(aiosmtpd) runs on 127.0.0.1 inside this process and prints every e-mail it receives.
The example app (examples/prediction_app) serves real HTTP on 127.0.0.1, configured from
environment variables as in production, with thresholds lowered so that everything
happens within seconds:

1. the host's memory use is above its threshold  -> a metric e-mail
2. a normal prediction                           -> no e-mail
3. a failing request (no model data at night)    -> an error e-mail with the traceback
4. a slow prediction                             -> a slow-call e-mail
5. a storm of 200 identical failing requests     -> no flood: one digest e-mail

``--serve`` then keeps the app and the mail server up for a browser, at
http://127.0.0.1:5000 (Ctrl-C to stop).
"""

from __future__ import annotations

import argparse
import email
import email.policy
import os
import re
import signal
import socket
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # makes examples/prediction_app importable

#: Demo thresholds (the defaults are 80 % memory and 2 s per prediction).
MEMORY_THRESHOLD = 0  # percent: any memory use is "too much"
SLOW_SECONDS = 0.5  # the prediction's threshold
SLOW_MODEL_LATENCY = 0.8  # how long the slow prediction takes

_print_lock = threading.Lock()
# Straight to 127.0.0.1, whatever http_proxy says.
_http = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def say(text: str = "") -> None:
    """A progress line (never in the middle of a printed e-mail)."""
    with _print_lock:
        print(f"[demo] {text}" if text else "", flush=True)


# -- the mail server ------------------------------------------------------------------------


class Mailbox:
    """An aiosmtpd handler: prints each e-mail as it arrives and remembers its kind."""

    def __init__(self, body_lines: int) -> None:
        self.body_lines = body_lines
        self.kinds: list[str] = []
        self._arrived = threading.Condition()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        part = message.get_body(preferencelist=("plain",))
        body = part.get_content() if part is not None else ""
        body = body.replace("\r\n", "\n")
        match = re.search(r"^Kind: (\w+)$", body, re.MULTILINE)
        kind = match.group(1) if match else "unknown"
        if body.startswith("This alert occurred"):
            kind += " digest"
        with self._arrived:
            self.kinds.append(kind)
            number = len(self.kinds)
        with _print_lock:
            print(f"\n  ---- e-mail #{number} ({kind}) " + "-" * (60 - len(kind)))
            for header in ("From", "To", "Date", "Subject"):
                print(f"  {header}: {message[header]}")
            print()
            for line in excerpt(body, self.body_lines):
                print(f"  | {line}".rstrip())
            print("  " + "-" * 76 + "\n", flush=True)
        with self._arrived:
            self._arrived.notify_all()
        return "250 OK"

    def wait_for(self, count: int, timeout: float) -> bool:
        with self._arrived:
            return self._arrived.wait_for(lambda: len(self.kinds) >= count, timeout)


def excerpt(body: str, limit: int) -> list[str]:
    """The first ``limit`` lines of ``body``, a traceback cut down to its last frame."""
    lines = body.splitlines()
    out: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        i += 1
        if line.startswith("Traceback (most recent call last):"):
            end = i
            while end < len(lines) and lines[end].startswith(" "):
                end += 1
            frames = lines[i:end]
            starts = [n for n, text in enumerate(frames) if text.startswith('  File "')]
            out.append(line)
            if len(starts) > 1:
                out.append(f"  [... {len(starts) - 1} outer frames ...]")
                frames = frames[starts[-1] :]
            out.extend(frames)
            i = end
        elif line or (out and out[-1]):  # no runs of blank lines
            out.append(line)
    if len(out) > limit:
        out = [*out[:limit], f"[... {len(out) - limit} more lines]"]
    return out


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- the app --------------------------------------------------------------------------------


class RequestLog(WSGIRequestHandler):
    """Werkzeug's request handler, quiet during the scripted scenario."""

    quiet = True

    def log_request(self, *args: Any, **kwargs: Any) -> None:
        if not self.quiet:
            super().log_request(*args, **kwargs)


def configure(smtp_port: int, lock_file: str, store: str) -> dict[str, str]:
    """Configure the example app the way production does: environment variables."""
    env = {
        "FLASK_ALERTING_SMTP_HOST": "127.0.0.1",
        "FLASK_ALERTING_SMTP_PORT": str(smtp_port),
        "FLASK_ALERTING_SMTP_SECURITY": "none",  # a local demo server; "ssl" for real
        "FLASK_ALERTING_MAIL_SENDER": "alerts@prediction.example",
        "FLASK_ALERTING_MAIL_RECIPIENTS": "admin@prediction.example",
        "FLASK_ALERTING_METRICS_ENABLED": "true",
        "FLASK_ALERTING_METRICS_INTERVAL": "0.5",
        "FLASK_ALERTING_METRICS_FOR": "0",
        "FLASK_ALERTING_MEMORY_THRESHOLD": str(MEMORY_THRESHOLD),
        "FLASK_ALERTING_CPU_THRESHOLD": "null",  # CPU would fire at random on a busy host
        # Its own lock: another copy of the app on this host must not sample for us.
        "FLASK_ALERTING_METRICS_LOCK_FILE": lock_file,
        # Its own store, likewise: another copy must not count our storm in its windows.
        "FLASK_ALERTING_STORAGE_URI": f"sqlite:///{store}",
        "PREDICTION_SLOW_SECONDS": str(SLOW_SECONDS),
    }
    os.environ.update(env)
    return env


def post(base: str, hour: int) -> tuple[int, str, float]:
    """POST the form; returns (status, body, seconds)."""
    data = urllib.parse.urlencode({"hour": hour}).encode()
    start = time.perf_counter()
    try:
        with _http.open(base + "/", data, timeout=30) as response:
            status, body = response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        status, body = exc.code, exc.read().decode()
    return status, body, time.perf_counter() - start


def headline(body: str) -> str:
    match = re.search(r'<h2 id="result">(.*?)</h2>', body)
    return match.group(1) if match else " ".join(body.split())[:80]


# -- the scenario ---------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--storm", type=int, default=200, help="identical errors to raise")
    parser.add_argument("--serve", action="store_true", help="keep serving for a browser")
    parser.add_argument("--port", type=int, default=5000, help="HTTP port with --serve")
    parser.add_argument("--lines", type=int, default=18, help="body lines shown per e-mail")
    args = parser.parse_args(argv)

    mailbox = Mailbox(args.lines)
    smtp_port = free_port()
    controller = Controller(mailbox, hostname="127.0.0.1", port=smtp_port)
    controller.start()
    workdir = tempfile.TemporaryDirectory(prefix="flask-alerting-demo-")
    server: BaseWSGIServer | None = None
    try:
        env = configure(
            smtp_port,
            os.path.join(workdir.name, "metrics.lock"),
            os.path.join(workdir.name, "alerts.sqlite3"),
        )
        # Imported only now: the app reads its environment at import and in create_app().
        from prediction_app import alerting, create_app

        from flask_alerting import alert_raised

        app = create_app()
        # Flask logs every traceback too; the e-mails show them, once.
        app.logger.disabled = True
        raised: Counter[str] = Counter()
        alert_raised.connect(lambda sender, alert: raised.update([alert.kind]), app, weak=False)

        port = args.port if args.serve else free_port()
        try:
            server = make_server("127.0.0.1", port, app, threaded=True, request_handler=RequestLog)
        except OSError as exc:
            say(f"cannot listen on 127.0.0.1:{port} ({exc}); try --port")
            return 1
        threading.Thread(target=server.serve_forever, name="demo-http", daemon=True).start()
        base = f"http://127.0.0.1:{port}"

        say("flask-alerting demo: the example prediction app, with its alerts e-mailed to a")
        say(f"local SMTP server on 127.0.0.1:{smtp_port}; the app serves {base}.")
        say("Configured from the environment, as in production:")
        for name, value in env.items():
            say(f"    {name}={value}")

        expected = 0

        say()
        say("1/5 the host: memory use above its threshold (lowered from the default 80 % to")
        say(f"    {MEMORY_THRESHOLD} % for the demo); the sampler checks every 0.5 s ...")
        expected += 1
        if not mailbox.wait_for(expected, timeout=20):
            say("no metric e-mail within 20 s")
            return 1

        say("2/5 a normal prediction")
        status, body, seconds = post(base, 8)
        alerting.flush(10)
        say(f"    POST / hour=08:00 -> HTTP {status} '{headline(body)}' in {seconds * 1000:.0f} ms")
        say(f"    no e-mail ({sum(raised.values())} alert(s) raised so far)")

        say("3/5 a failing request: the model has no data for 03:00")
        status, body, seconds = post(base, 3)
        say(f"    POST / hour=03:00 -> HTTP {status} '{headline(body)}' in {seconds * 1000:.0f} ms")
        say("    (the client is answered at once; the e-mail leaves from a background thread)")
        expected += 1
        if not mailbox.wait_for(expected, timeout=20):
            say("no error e-mail within 20 s")
            return 1

        say(f"4/5 a slow prediction: the model takes {SLOW_MODEL_LATENCY} s (threshold: "
            f"{SLOW_SECONDS} s, the default 2 s lowered for the demo)")
        model = app.extensions["prediction_model"]
        model.latency = SLOW_MODEL_LATENCY
        status, body, seconds = post(base, 15)
        model.latency = 0.0
        say(f"    POST / hour=15:00 -> HTTP {status} '{headline(body)}' in {seconds:.2f} s")
        expected += 1
        if not mailbox.wait_for(expected, timeout=20):
            say("no slow-call e-mail within 20 s")
            return 1

        say(f"5/5 a storm: {args.storm} identical failing requests")
        start = time.perf_counter()
        step = max(1, args.storm // 4)
        for n in range(1, args.storm + 1):
            post(base, 3)
            if n % step == 0 or n == args.storm:
                say(f"    {n}/{args.storm} requests sent")
        alerting.flush(10)
        stats = alerting.stats(app)
        say(
            f"    done in {time.perf_counter() - start:.1f} s: {stats['suppressed']} alerts "
            f"suppressed by the throttle, {len(mailbox.kinds) - expected} new e-mail(s)"
        )
        say("    their digest leaves when the 5-minute throttle window ends, or at shutdown")

        if args.serve:
            RequestLog.quiet = False
            # Ctrl-C, and a plain `kill`, end the wait below (even where the shell started
            # us with SIGINT ignored).
            signal.signal(signal.SIGINT, signal.default_int_handler)
            signal.signal(signal.SIGTERM, signal.default_int_handler)
            say()
            say(f"Serving {base} : open it in a browser (pick a night hour for an error).")
            say("E-mails are printed here as they arrive. Ctrl-C to stop.")
            try:
                threading.Event().wait()
            except KeyboardInterrupt:
                say("stopping")

        say("shutting down: pending digests leave now")
        alerting.shutdown(timeout=10)
        expected += 1 if stats["suppressed"] else 0
        mailbox.wait_for(expected, timeout=10)
        return summary(alerting.stats(app), raised, mailbox.kinds)
    finally:
        if server is not None:
            server.shutdown()
        controller.stop()
        workdir.cleanup()


def summary(stats: dict[str, Any], raised: Counter[str], kinds: list[str]) -> int:
    received = Counter(kinds)
    sent = sum(n["sent"] for n in stats["notifiers"].values())
    say()
    say("summary")
    by_kind = ", ".join(f"{kind} {n}" for kind, n in raised.items())
    say(f"    alerts raised          {stats['raised']:>4}  ({by_kind})")
    say(f"    suppressed (throttle)  {stats['suppressed']:>4}")
    say(f"    digests                {stats['digests']:>4}")
    say(f"    e-mails sent           {sent:>4}  (a hand-written try/except recipe would "
        f"send {stats['raised']})")
    say(f"    e-mails received       {len(kinds):>4}  "
        f"({', '.join(f'{kind} {n}' for kind, n in received.items())})")
    wanted = ["metric", "error", "timing", "error digest"]
    missing = [kind for kind in wanted if not received[kind]]
    if missing or stats["dropped"]:
        say(f"MISSING e-mails: {', '.join(missing) or '-'}; dropped: {stats['dropped']}")
        return 1
    say(f"every alert kind arrived: {', '.join(wanted)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
