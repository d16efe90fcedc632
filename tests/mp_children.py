"""Alerts raised in multiprocessing children, for tests/test_process_end.py.

``python -m tests.mp_children METHOD MODE`` with METHOD a start method (fork, forkserver,
spawn) and MODE one of:

- ``processes``: five ``Process`` children each capture an exception and return at once;
- ``pool-close``: a ``Pool(2)`` runs six such tasks, then ``close()`` and ``join()`` (the
  workers return);
- ``pool-terminate``: the same inside ``with Pool(2)``, whose exit terminates the workers
  (SIGTERM).

Prints ``<parent pid> <child pids, comma-separated>``. Configured from the environment:
``FA_SMTP_PORT`` (the test SMTP server), ``FA_LOCK`` (lock file). The app is built at
import, so that ``spawn`` and ``forkserver`` children build it too.
"""

from __future__ import annotations

import multiprocessing
import os
import sys

from flask import Flask

from flask_alerting import FlaskAlerting

app = Flask("mp-children")
app.config.update(
    ALERTING_SMTP_HOST="127.0.0.1",
    ALERTING_SMTP_PORT=int(os.environ["FA_SMTP_PORT"]),
    ALERTING_SMTP_SECURITY="none",
    ALERTING_MAIL_SENDER="alerts@example.com",
    ALERTING_MAIL_RECIPIENTS="admin@example.com",
    ALERTING_METRICS_ENABLED=False,
    ALERTING_METRICS_LOCK_FILE=os.environ["FA_LOCK"],
    ALERTING_THROTTLE_SECONDS=0,  # one e-mail per alert, whatever the store
)
alerting = FlaskAlerting(app)


def work(number: int) -> int:
    """Capture an exception and return at once: nothing waits for the delivery here."""
    try:
        raise ValueError(f"task {number} failed")
    except ValueError:
        alerting.capture_exception()
    return os.getpid()


def main(method: str, mode: str) -> str:
    context = multiprocessing.get_context(method)
    if mode == "processes":
        children = [context.Process(target=work, args=(n,)) for n in range(5)]
        for child in children:
            child.start()
        for child in children:
            child.join(60)
            assert child.exitcode == 0, (child.pid, child.exitcode)
        pids = [child.pid or 0 for child in children]
    elif mode == "pool-close":
        with context.Pool(2) as pool:
            pids = pool.map(work, range(6), chunksize=1)
            pool.close()
            pool.join()
    elif mode == "pool-terminate":
        with context.Pool(2) as pool:
            pids = pool.map(work, range(6), chunksize=1)
    else:
        raise SystemExit(f"unknown mode {mode!r}")
    return f"{os.getpid()} {','.join(str(pid) for pid in pids)}"


if __name__ == "__main__":
    print(main(sys.argv[1], sys.argv[2]))
