"""The README's first command: the demo, run as a new user runs it.

A subprocess with no input, from the checkout's root, with its real SMTP server and real
HTTP on 127.0.0.1. CI runs the same command through .ci/run.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import urllib.request
from pathlib import Path

from tests.smtp_server import free_port

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "examples" / "demo.py"
TIMEOUT = 120  # the demo takes a few seconds; this only bounds a hang


def _env() -> dict[str, str]:
    """The caller's environment without anything that configures the example app."""
    return {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("FLASK_", "PREDICTION_")) and k != "EMAIL_PASSWORD"
    }


def _emails(out: str) -> list[tuple[int, str]]:
    return [(int(n), kind) for n, kind in re.findall(r"---- e-mail #(\d+) \(([a-z ]+)\)", out)]


def test_the_demo_shows_every_alert_kind_arrive() -> None:
    result = subprocess.run(
        [sys.executable, str(DEMO)],
        cwd=ROOT,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    assert "Traceback" not in result.stderr
    # One e-mail per alert kind, in the scenario's order; the storm is one digest.
    assert _emails(out) == [(1, "metric"), (2, "error"), (3, "timing"), (4, "error digest")]
    assert "Subject: [prediction_app] Memory Usage has exceeded the threshold" in out
    assert "Subject: [prediction_app] KeyError: 3 in prediction.index" in out
    assert "Subject: [prediction_app] prediction_from_model took 0.8" in out
    assert "Subject: [prediction_app] (200x) KeyError: 3 in prediction.index" in out
    assert "HTTP 500 'An error occurred. The administrators have been notified.'" in out
    summary = out[out.index("[demo] summary") :]
    figures = dict(re.findall(r"^\[demo\]     ([a-z() -]+?)\s{2,}(\d+)", summary, re.MULTILINE))
    assert figures == {
        "alerts raised": "203",
        "suppressed (throttle)": "200",
        "digests": "1",
        "e-mails sent": "4",
        "e-mails received": "4",
    }
    assert "every alert kind arrived: metric, error, timing, error digest" in summary


def test_the_demo_serves_a_browser_until_interrupted() -> None:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, str(DEMO), "--serve", "--port", str(port), "--storm", "20"],
        cwd=ROOT,
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    serving = threading.Event()

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            if "Ctrl-C to stop." in line:
                serving.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        assert serving.wait(TIMEOUT), "".join(lines)
        direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with direct.open(f"http://127.0.0.1:{port}/", timeout=10) as response:
            assert response.status == 200
            assert '<select name="hour"' in response.read().decode()
        proc.send_signal(signal.SIGINT)  # Ctrl-C
        assert proc.wait(TIMEOUT) == 0, "".join(lines)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        reader.join(10)
        assert proc.stdout is not None
        proc.stdout.close()
    out = "".join(lines)
    assert '"GET / HTTP/1.1" 200' in out  # the browser's request, logged while serving
    # The storm's digest left at Ctrl-C, not before.
    assert out.index("[demo] stopping") < out.index("(20x) KeyError: 3")
    assert "every alert kind arrived: metric, error, timing, error digest" in out
