"""An error storm over 4 gunicorn workers: e-mails sent, and what the shared store costs.

Run: ``.venv/bin/python benchmarks/bench_workers.py`` (about 40 s; ``--quick``: about
15 s). Needs gunicorn and aiosmtpd (the ``test`` extras); for the Redis line,
``redis-server`` (the Debian package) and the ``redis`` package.

Side by side, gunicorn masters with 4 sync workers each serve the same app
(``tests/storm_app.py``: ``/fail`` raises one error, so one fingerprint), each with an
SMTP server of its own on 127.0.0.1, and differ only in their store:

* **default**: this host's SQLite file (a private ``XDG_RUNTIME_DIR`` per master), the
  default of 0.2: the workers share their throttle;
* **memory://**: each worker throttles on its own (0.1's behaviour);
* **Redis**: a ``redis-server`` on 127.0.0.1, as several hosts would share it.

Rounds of erroring requests (8 client threads, a connection per request, so the workers
share the load) go to each master in turn; then every master is stopped (SIGTERM), which
sends the pending digests. Figures:

1. e-mails for the whole storm (goal with a shared store: 2, one at once and one
   digest; per-process throttles send up to 2 per worker);
2. request throughput, each store / ``memory://``, median of per-round ratios;
3. CPU time of the workers (every thread, the dispatch threads and SMTP included) per
   error, and the difference with ``memory://``: what the store costs per error.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.smtp_server import SMTPServer  # noqa: E402

WORKERS = 4


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Master:
    """A gunicorn master with ``WORKERS`` workers, and its SMTP server."""

    def __init__(self, label: str, workdir: Path, store: str | None) -> None:
        self.label = label
        self.smtp = SMTPServer().start()
        self.port = free_port()
        directory = workdir / label.strip(":/")
        runtime = directory / "runtime"
        runtime.mkdir(parents=True, mode=0o700)
        env = {
            **os.environ,
            "XDG_RUNTIME_DIR": str(runtime),
            "FA_LOG": str(directory / "alerting.log"),
            "FA_SMTP_PORT": str(self.smtp.port),
            "PYTHONPATH": str(ROOT),
        }
        env.pop("FA_STORE", None)
        if store is not None:
            env["FA_STORE"] = store
        self.output = open(directory / "gunicorn.out", "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-w", str(WORKERS), "-b",
             f"127.0.0.1:{self.port}", "--graceful-timeout", "30", "tests.storm_app:app"],
            cwd=ROOT, env=env, stdout=self.output, stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def wait_ready(self, timeout: float = 60.0) -> None:
        """Until every worker answered a request."""
        deadline = time.monotonic() + timeout
        seen: set[int] = set()
        while len(seen) < WORKERS:
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise SystemExit(f"{self.label}: gunicorn did not start its {WORKERS} workers")
            with concurrent.futures.ThreadPoolExecutor(8) as pool:
                seen.update(p for p in pool.map(self._pid, range(16)) if p)

    def _pid(self, _: int) -> int | None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/pid", timeout=5) as r:
                return int(r.read())
        except OSError:
            return None

    def fail(self, _: int) -> int:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/fail", timeout=30) as r:
                return int(r.status)
        except urllib.error.HTTPError as exc:
            exc.close()
            return int(exc.code)

    def storm(self, count: int) -> float:
        """Seconds to serve ``count`` erroring requests, 8 at once."""
        begin = time.perf_counter()
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            statuses = list(pool.map(self.fail, range(count)))
        elapsed = time.perf_counter() - begin
        if statuses != [500] * count:
            raise SystemExit(f"{self.label}: unexpected statuses {set(statuses)}")
        return elapsed

    def cpu(self) -> float:
        """CPU seconds used so far by the workers (user + system)."""
        total = 0.0
        for child in psutil.Process(self.proc.pid).children():
            try:
                times = child.cpu_times()
            except psutil.Error:
                continue
            total += times.user + times.system
        return total

    def stop(self) -> int:
        """Stop the master (the last worker sends the digests); the e-mails received."""
        os.kill(self.proc.pid, signal.SIGTERM)
        self.proc.wait(60)
        self.output.close()
        # Every worker has exited: whatever it sent has arrived.
        count = len(self.smtp.raw)
        self.smtp.stop()
        return count


def start_redis(workdir: Path) -> object | None:
    binary = shutil.which("redis-server") or "/usr/bin/redis-server"
    if not os.path.exists(binary):
        return None
    try:
        import redis  # noqa: F401
    except ImportError:
        return None
    from tests.servers import RedisServer

    (workdir / "redis").mkdir()
    return RedisServer(workdir / "redis", binary=binary).start()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer requests (about 15 s)")
    args = parser.parse_args()
    rounds = 3 if args.quick else 6
    per_round = 300 if args.quick else 600

    workdir = Path(tempfile.mkdtemp(prefix="bench-workers-"))
    redis_server = start_redis(workdir)
    stores: dict[str, str | None] = {"default": None, "memory://": "memory://"}
    if redis_server is not None:
        stores["Redis"] = redis_server.url  # type: ignore[attr-defined]
    masters = [Master(label, workdir, store) for label, store in stores.items()]
    try:
        for master in masters:
            master.wait_ready()
        for master in masters:  # warm up: imports, the first e-mail, the store's file
            master.storm(40)
        cpu_before = {m.label: m.cpu() for m in masters}
        times: dict[str, list[float]] = {m.label: [] for m in masters}
        for r in range(rounds):
            order = masters[r % len(masters):] + masters[: r % len(masters)]
            for master in order:
                times[master.label].append(master.storm(per_round))
        cpu = {m.label: (m.cpu() - cpu_before[m.label]) / (rounds * per_round) for m in masters}
        emails = {m.label: m.stop() for m in masters}
    finally:
        for master in masters:
            if master.proc.poll() is None:
                os.killpg(master.proc.pid, signal.SIGKILL)
        if redis_server is not None:
            redis_server.stop()  # type: ignore[attr-defined]

    total = 40 + rounds * per_round
    print(f"An error storm over {WORKERS} gunicorn workers: {total} errors, one fingerprint")
    print(f"({rounds} interleaved rounds of {per_round}, 8 client threads; logs in {workdir})\n")
    print("1. E-mails for the whole storm (after SIGTERM to each master)")
    goals = {"default": "goal 2: one at once, one digest", "memory://": "each worker on its own",
             "Redis": "goal 2"}
    for label, count in emails.items():
        print(f"   {label + ':':<12}{count:4d} e-mails   ({goals[label]})")
    print("\n2. Throughput (erroring requests per second, median of rounds)")
    base = "memory://"
    for label, values in times.items():
        rps = per_round / statistics.median(values)
        ratios = [b / t for b, t in zip(times[base], values, strict=True)]
        print(
            f"   {label + ':':<12}{rps:8.0f} req/s   x {statistics.median(ratios):.2f} of "
            f"{base} (median of per-round ratios)"
        )
    print("\n3. Workers' CPU time per error (all threads: request, dispatch, SMTP)")
    for label, seconds in cpu.items():
        extra = "" if label == base else f"   store: {(seconds - cpu[base]) * 1e6:+.0f} µs"
        print(f"   {label + ':':<12}{seconds * 1e6:8.0f} µs{extra}")


if __name__ == "__main__":
    main()
