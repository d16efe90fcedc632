"""Nothing lost when a process ends: real servers stopped by SIGTERM (and SIGINT),
multiprocessing children, and the alert log after SIGKILL.

Every server is a real subprocess (``flask run``, ``python app.py``, waitress, gunicorn)
serving tests/ending_app.py and sending e-mail to the real aiosmtpd server of the test.
Twenty requests raise the same error: one first alert leaves at once, the other 19 wait
in the throttle for the digest that only the shutdown sends early. Waits are bounded: on
the server answering, on e-mails, on the process ending; never a bare sleep.
"""

from __future__ import annotations

import multiprocessing
import os
import re
import signal
import subprocess
import sys
import textwrap
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from email.message import EmailMessage
from pathlib import Path

import pytest
from gunicorn.config import KNOWN_SETTINGS  # type: ignore[import-untyped]

from tests.servers import require_binary
from tests.smtp_server import SMTPServer, free_port

ROOT = Path(__file__).resolve().parent.parent
ERRORS = 20

pytestmark = pytest.mark.skipif(os.name != "posix", reason="POSIX signals")


class Served:
    """A server process running tests/ending_app.py (its own session: one group)."""

    def __init__(
        self, command: list[str], tmp_path: Path, smtp_port: int, port: int, **extra: str
    ) -> None:
        self.port = port
        self.out_path = tmp_path / "server.out"
        env = {
            **os.environ,
            "FA_SMTP_PORT": str(smtp_port),
            "FA_LOCK": str(tmp_path / "metrics.lock"),
            "FA_PORT": str(port),
            "PYTHONPATH": str(ROOT),
            **extra,
        }
        for name in ("WERKZEUG_RUN_MAIN", "WERKZEUG_SERVER_FD", "FLASK_DEBUG", "FLASK_APP"):
            env.pop(name, None)
        self.out = open(self.out_path, "wb")  # noqa: SIM115 - closed in close()
        self.proc = subprocess.Popen(
            command,
            cwd=ROOT,
            env=env,
            stdout=self.out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def output(self) -> str:
        return self.out_path.read_text(errors="replace")

    def get(self, path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(
                f"http://127.0.0.1:{self.port}{path}", timeout=10
            ) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, ""

    def wait_serving(self, timeout: float = 30.0) -> int:
        """The pid of the serving process, once it answers."""
        deadline = time.monotonic() + timeout
        pause = threading.Event()
        while True:
            try:
                status, body = self.get("/pid")
                if status == 200:
                    return int(body)
            except OSError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"the server never answered\n{self.output()}")
            pause.wait(0.05)

    def raise_errors(self, count: int = ERRORS) -> None:
        for _ in range(count):
            status, _ = self.get("/boom")
            assert status == 500

    def wait(self, timeout: float = 60.0) -> int:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"the server did not end\n{self.output()}") from None

    def close(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        else:
            try:  # a reloader's child, a gunicorn worker left behind
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.out.close()


@pytest.fixture
def serve(tmp_path: Path, smtp_server: SMTPServer) -> Iterator[Callable[..., Served]]:
    started: list[Served] = []

    def start(command: list[str], smtp_port: int | None = None, **extra: str) -> Served:
        port = free_port()
        command = [part.format(port=port) for part in command]
        server = Served(command, tmp_path, smtp_port or smtp_server.port, port, **extra)
        started.append(server)
        return server

    yield start
    for server in started:
        server.close()


def count_of(message: EmailMessage) -> int:
    """The occurrences an e-mail stands for: a digest's subject shows ``(Nx)``."""
    found = re.search(r"\((\d+)x\)", message["Subject"])
    return int(found.group(1)) if found else 1


def received(smtp: SMTPServer) -> list[int]:
    """Counts of the e-mails received, once the sender has ended (all of them are in)."""
    return sorted(count_of(m) for m in smtp.messages)


FLASK_RUN = [sys.executable, "-m", "flask", "--app", "tests.ending_app", "run",
             "--host", "127.0.0.1", "--port", "{port}"]  # fmt: skip
PYTHON_APP = [sys.executable, "-m", "tests.ending_app"]
WAITRESS = [sys.executable, "-m", "waitress", "--listen=127.0.0.1:{port}", "--threads=4",
            "tests.ending_app:app"]  # fmt: skip


@pytest.mark.parametrize(
    "command",
    [FLASK_RUN, PYTHON_APP, WAITRESS],
    ids=["flask run", "python app.py (app.run)", "waitress-serve"],
)
def test_sigterm_delivers_pending_alerts_and_digests_then_ends_by_the_signal(
    serve: Callable[..., Served], smtp_server: SMTPServer, command: list[str]
) -> None:
    server = serve(command)
    pid = server.wait_serving()
    assert pid == server.proc.pid  # no reloader: the process we signal serves
    server.raise_errors()
    smtp_server.wait_for(1, timeout=30)  # the first alert leaves at once, not the digest
    server.proc.send_signal(signal.SIGTERM)
    # Killed by SIGTERM, as without flask-alerting, after the digest of 19 left.
    assert server.wait() == -signal.SIGTERM, server.output()
    assert received(smtp_server) == [1, ERRORS - 1], server.output()


def test_sigterm_under_the_reloader_is_handled_by_the_serving_child(
    serve: Callable[..., Served], smtp_server: SMTPServer
) -> None:
    """``app.run(use_reloader=True)``: Werkzeug's own SIGTERM handler (``sys.exit(0)``)
    is kept in the serving child, which then flushes through the interpreter's exit; the
    reloader's parent ends with the child's status, 0, as without flask-alerting."""
    server = serve(PYTHON_APP, FA_RELOADER="1")
    child = server.wait_serving()
    assert child != server.proc.pid
    server.raise_errors()
    smtp_server.wait_for(1, timeout=30)
    os.kill(child, signal.SIGTERM)
    assert server.wait() == 0, server.output()
    assert received(smtp_server) == [1, ERRORS - 1], server.output()


def test_sigint_ends_flask_run_through_the_interpreters_exit(
    serve: Callable[..., Served], smtp_server: SMTPServer
) -> None:
    """Ctrl+C needs no handler of ours: Werkzeug's server returns on KeyboardInterrupt,
    and the interpreter's exit runs the exit hooks."""
    server = serve(FLASK_RUN)
    server.wait_serving()
    server.raise_errors()
    smtp_server.wait_for(1, timeout=30)
    server.proc.send_signal(signal.SIGINT)
    assert server.wait() == 0, server.output()
    assert received(smtp_server) == [1, ERRORS - 1], server.output()


def test_an_apps_own_sigterm_handler_is_kept_and_called(
    serve: Callable[..., Served], smtp_server: SMTPServer, tmp_path: Path
) -> None:
    marker = tmp_path / "own-handler.txt"
    server = serve(FLASK_RUN, FA_OWN_HANDLER=str(marker))
    pid = server.wait_serving()
    server.raise_errors()
    smtp_server.wait_for(1, timeout=30)
    server.proc.send_signal(signal.SIGTERM)
    # The app's handler ran (and chose status 0); its sys.exit() ran the exit hooks.
    assert server.wait() == 0, server.output()
    assert marker.read_text() == f"called {pid}\n"
    assert received(smtp_server) == [1, ERRORS - 1], server.output()


def gunicorn_command(workers: int) -> list[str]:
    command = [sys.executable, "-m", "gunicorn", "-w", str(workers), "-b", "127.0.0.1:{port}",
               "--graceful-timeout", "30"]  # fmt: skip
    if any(s.name == "control_socket_disable" for s in KNOWN_SETTINGS):  # gunicorn >= 25.1
        command.append("--no-control-socket")  # one per user by default: runs would share it
    return [*command, "tests.ending_app:app"]


def test_sigterm_to_the_gunicorn_master_flushes_every_worker(
    serve: Callable[..., Served], smtp_server: SMTPServer
) -> None:
    """gunicorn's workers keep their own SIGTERM handler and end through ``sys.exit``:
    the interpreter's exit runs the exit hooks in each of them."""
    server = serve(gunicorn_command(workers=2))
    server.wait_serving()
    server.raise_errors()
    smtp_server.wait_for(1, timeout=30)
    server.proc.send_signal(signal.SIGTERM)
    assert server.wait() == 0, server.output()  # gunicorn's own status
    counts = received(smtp_server)
    # Each worker throttles on its own unless they share a store: however the 20 errors
    # were spread, first alerts + digests count every one of them.
    assert sum(counts) == ERRORS, (counts, server.output())
    assert len(counts) <= 4


def test_the_alert_log_holds_every_alert_of_a_worker_killed_with_sigkill(
    serve: Callable[..., Served], tmp_path: Path
) -> None:
    """SMTP is down (nothing listens), so nothing is delivered; the alert log gets each
    alert as the dispatch thread takes it, not when it is delivered, so what it holds
    stays after the worker is SIGKILLed."""
    log = tmp_path / "alerts.log"
    server = serve(gunicorn_command(workers=1), smtp_port=free_port(), FA_LOG_FILE=str(log))
    worker = server.wait_serving()
    server.raise_errors()

    def records() -> list[str]:
        """The log's records: one header line each (a traceback follows)."""
        text = log.read_text(encoding="utf-8") if log.exists() else ""
        return re.findall(r"^\d{4}-\d\d-\d\d [\d:,]+:[A-Z]+:.*$", text, re.MULTILINE)

    deadline = time.monotonic() + 30
    pause = threading.Event()
    while len(records()) < ERRORS:
        assert time.monotonic() < deadline, (records(), server.output())
        pause.wait(0.05)
    os.kill(worker, signal.SIGKILL)
    assert "could not deliver" in server.output()  # SMTP really was down
    written = records()
    assert len(written) == ERRORS
    assert all(line.endswith(":ERROR:KeyError: 'boom' in boom") for line in written), written


# -- the exit hooks' own edges, in a plain script -------------------------------------------

SCRIPT_HEAD = """
import os, signal, sys, threading, time
from flask import Flask
from flask_alerting import FlaskAlerting, Notifier

class FileNotifier(Notifier):
    name = "file"
    def __init__(self, path, on_digest=None):
        self.path, self.on_digest = path, on_digest
    def send(self, alert):
        if alert.is_digest and self.on_digest:
            self.on_digest()
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(f"{alert.title}|{alert.occurrences}\\n")

out = sys.argv[1]
"""


def run_script(tmp_path: Path, body: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    script = tmp_path / "script.py"
    script.write_text(SCRIPT_HEAD + textwrap.dedent(body), encoding="utf-8")
    return subprocess.run(
        [sys.executable, str(script), str(tmp_path / "delivered.txt")],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )


def test_sigterm_while_the_main_thread_holds_a_lock_the_shutdown_needs_is_bounded(
    tmp_path: Path,
) -> None:
    """The handler runs on the main thread between two bytecodes; here that thread holds
    the pipeline's lock, which shutdown() needs. The flush runs on a helper thread and the
    wait for it is bounded: the process still ends, by the signal, not in a deadlock."""
    done = run_script(
        tmp_path,
        """
        app = Flask("locked")
        alerting = FlaskAlerting(app, notifiers=[FileNotifier(out)], shutdown_timeout=1.0,
                                 metrics_enabled=False)
        alerting.alert("raised")
        assert alerting.flush(10)
        with app.extensions["alerting"].pipeline._lock:
            os.kill(os.getpid(), signal.SIGTERM)
            threading.Event().wait(60)  # the signal ends the process before this ends
        print("not reached")
        """,
    )
    assert done.returncode == -signal.SIGTERM, done.stderr
    assert "not reached" not in done.stdout
    assert "flushing alerts on signal 15 took more than" in done.stderr


def test_sigterm_during_the_exit_flush_lets_it_finish_then_ends_by_the_signal(
    tmp_path: Path,
) -> None:
    """A SIGTERM that arrives while the interpreter's exit runs the exit hooks on the
    main thread does not cut them (nor wait on them from a second thread): they finish,
    then the signal is sent again and ends the process."""
    done = run_script(
        tmp_path,
        """
        notifier = FileNotifier(out, on_digest=lambda: os.kill(os.getpid(), signal.SIGTERM))
        app = Flask("exit-signal")
        alerting = FlaskAlerting(app, notifiers=[notifier], metrics_enabled=False)
        for _ in range(3):
            alerting.alert("storm")
        alerting.alert("last words")
        # No shutdown(): the digest of 2 only leaves from the exit hooks, and sends the
        # process a SIGTERM just before it is written.
        """,
    )
    assert done.returncode == -signal.SIGTERM, done.stderr
    lines = (tmp_path / "delivered.txt").read_text(encoding="utf-8").splitlines()
    assert lines == ["storm|1", "last words|1", "storm|2"]
    assert "took more than" not in done.stderr


def test_a_resent_sigterm_that_does_not_end_the_process_is_never_swallowed(
    tmp_path: Path,
) -> None:
    """Where the kernel ignores the re-sent signal (see the PID 1 test below), or every
    thread blocks it, as here, the process still ends after the flush: status 143."""
    done = run_script(
        tmp_path,
        """
        from flask_alerting import _lifecycle
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})  # before any thread
        app = Flask("blocked")
        alerting = FlaskAlerting(app, notifiers=[FileNotifier(out)], metrics_enabled=False)
        for _ in range(3):
            alerting.alert("storm")
        assert signal.getsignal(signal.SIGTERM) is _lifecycle._on_sigterm
        _lifecycle._on_sigterm(signal.SIGTERM, None)  # as on a SIGTERM
        print("not reached")
        """,
    )
    assert done.returncode == 128 + signal.SIGTERM, done.stderr
    assert "not reached" not in done.stdout
    lines = (tmp_path / "delivered.txt").read_text(encoding="utf-8").splitlines()
    assert lines == ["storm|1", "storm|2"]


def children_of(parent: int) -> list[int]:
    """The pids of ``parent``'s children (from /proc: Linux)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:  # ended meanwhile
            continue
        if int(fields[1]) == parent:
            found.append(int(stat.parent.name))
    return found


def unshare_pid_namespace() -> list[str]:
    """A command prefix that runs its command as PID 1 of a new PID namespace."""
    unshare = require_binary("unshare", package="util-linux")
    for prefix in (
        [unshare, "--pid", "--fork", "--kill-child"],
        [unshare, "--user", "--map-root-user", "--pid", "--fork", "--kill-child"],
    ):
        probe = subprocess.run([*prefix, sys.executable, "-c", "import os; print(os.getpid())"],
                               capture_output=True, text=True, timeout=30)  # fmt: skip
        if probe.returncode == 0 and probe.stdout.strip() == "1":
            return prefix
    pytest.skip("this kernel lets neither root nor an unprivileged user make a PID namespace")


def test_sigterm_to_the_init_process_of_a_container_flushes_and_ends_it(
    serve: Callable[..., Served], smtp_server: SMTPServer
) -> None:
    """``python app.py`` as PID 1 (a container without an init): the kernel ignores a
    default-action SIGTERM there, so without a handler the process runs on until the
    runtime's SIGKILL. With ours it flushes and ends, with status 143."""
    prefix = unshare_pid_namespace()
    server = serve([*prefix, *PYTHON_APP])
    assert server.wait_serving() == 1
    server.raise_errors()
    smtp_server.wait_for(1, timeout=30)
    (python,) = children_of(server.proc.pid)
    os.kill(python, signal.SIGTERM)
    assert server.wait() == 128 + signal.SIGTERM, server.output()  # unshare passes it on
    assert received(smtp_server) == [1, ERRORS - 1], server.output()


#: A notifier that first imports a module on its delivery thread (the e-mail package does,
#: lazily), and a finder that has the process sent SIGTERM while the main thread is in the
#: import system, whose lock it holds there: the notifier cannot import until it goes on.
IMPORTING = """
import importlib.machinery
here = os.path.dirname(out)
with open(os.path.join(here, "late_module.py"), "w", encoding="utf-8") as f:
    f.write("LATE = True\\n")
sys.path.insert(0, here)
importing = threading.Event()

class ImportingNotifier(FileNotifier):
    def send(self, alert):
        importing.wait(30)
        import late_module
        super().send(alert)

class SigtermOnImport(importlib.machinery.PathFinder):
    @classmethod
    def find_spec(cls, name, path=None, target=None):
        if name == "trigger_module":
            importing.set()
            os.kill(os.getpid(), signal.SIGTERM)
        return None

sys.meta_path.insert(0, SigtermOnImport)

def import_trigger():
    try:
        import trigger_module
    except ImportError:
        pass

app = Flask("importing")
alerting = FlaskAlerting(app, notifiers=[ImportingNotifier(out)], shutdown_timeout=2.0,
                         metrics_enabled=False)
alerting.alert("raised")
"""


@pytest.mark.parametrize(
    "when",
    [
        "running",
        pytest.param(
            "at exit",
            marks=pytest.mark.skipif(
                sys.version_info[:2] == (3, 12),
                reason="Python 3.12 starts no thread at exit: the flush runs on the main "
                "thread there, bounded by the shutdown timeout",
            ),
        ),
    ],
)
def test_sigterm_while_the_main_thread_imports_lets_the_import_finish_then_flushes(
    tmp_path: Path, when: str
) -> None:
    """The main thread holds the import lock when the SIGTERM comes (an application
    importing lazily, or another exit hook, as in a ``multiprocessing`` pool worker that
    ``terminate()`` stops). Waiting there for the flush would keep the threads that
    deliver from importing anything: nothing would leave. The main thread goes on, the
    flush runs beside it, and then the signal ends the process."""
    if when == "running":
        body = IMPORTING + textwrap.dedent(
            """
            import_trigger()
            threading.Event().wait(60)  # the signal ends the process before this ends
            print("not reached")
            """
        )
    else:
        body = IMPORTING + textwrap.dedent(
            """
            import atexit
            atexit.register(import_trigger)  # runs before the exit hooks (registered first)
            """
        )
    done = run_script(tmp_path, body)
    assert done.returncode == -signal.SIGTERM, done.stderr
    assert "not reached" not in done.stdout
    assert "took more than" not in done.stderr
    lines = (tmp_path / "delivered.txt").read_text(encoding="utf-8").splitlines()
    assert lines == ["raised|1"]


def test_sigint_in_a_script_runs_the_exit_hooks(tmp_path: Path) -> None:
    """An uncaught KeyboardInterrupt ends the process through the interpreter's exit
    (status -2 since Python 3.8), which runs the exit hooks."""
    done = run_script(
        tmp_path,
        """
        app = Flask("interrupted")
        alerting = FlaskAlerting(app, notifiers=[FileNotifier(out)], metrics_enabled=False)
        for _ in range(3):
            alerting.alert("storm")
        os.kill(os.getpid(), signal.SIGINT)
        threading.Event().wait(60)
        """,
    )
    assert done.returncode == -signal.SIGINT, done.stderr
    lines = (tmp_path / "delivered.txt").read_text(encoding="utf-8").splitlines()
    assert lines == ["storm|1", "storm|2"]


# -- multiprocessing children ---------------------------------------------------------------

METHODS = [
    m for m in ("fork", "forkserver", "spawn") if m in multiprocessing.get_all_start_methods()
]


def run_children(
    tmp_path: Path, smtp: SMTPServer, method: str, mode: str
) -> tuple[int, list[int]]:
    """Run tests/mp_children.py; return the parent's pid and its children's pids."""
    done = subprocess.run(
        [sys.executable, "-m", "tests.mp_children", method, mode],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        env={
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "FA_SMTP_PORT": str(smtp.port),
            "FA_LOCK": str(tmp_path / "metrics.lock"),
        },
    )
    assert done.returncode == 0, done.stderr
    parent, _, children = done.stdout.strip().partition(" ")
    return int(parent), [int(pid) for pid in children.split(",")]


def senders(smtp: SMTPServer) -> list[int]:
    pids = []
    for message in smtp.messages:
        body = message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
        found = re.search(r"Raised by: pid (\d+)", body)
        assert found, body
        pids.append(int(found.group(1)))
    return sorted(pids)


@pytest.mark.parametrize("method", METHODS)
def test_alerts_of_multiprocessing_children_are_delivered_before_they_end(
    tmp_path: Path, smtp_server: SMTPServer, method: str
) -> None:
    """Five children capture an exception and return at once; multiprocessing ends them
    with os._exit(), past atexit: the finaliser registered in each delivered its alert."""
    parent, children = run_children(tmp_path, smtp_server, method, "processes")
    assert len(set(children)) == 5 and parent not in children
    # The parent has ended: every e-mail that will ever arrive is in.
    assert senders(smtp_server) == sorted(children)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("mode", ["pool-close", "pool-terminate"])
def test_alerts_of_pool_workers_are_delivered(
    tmp_path: Path, smtp_server: SMTPServer, method: str, mode: str
) -> None:
    """Pool workers end by returning (close, join: the finaliser) or by SIGTERM (the
    ``with Pool()`` block's terminate(): the SIGTERM handler); both deliver first."""
    parent, workers = run_children(tmp_path, smtp_server, method, mode)
    assert parent not in workers
    sent = senders(smtp_server)
    assert len(sent) == 6  # one alert per task
    assert set(sent) <= set(workers)


GRANDCHILD = """
import multiprocessing
here = os.path.dirname(out)
marker = os.path.join(here, "marker")
app = Flask("grandchildren")
app.config["ALERTING_STORAGE_URI"] = "memory://"  # the child's digest is its own to send
alerting = FlaskAlerting(app, notifiers=[FileNotifier(out)], metrics_enabled=False)

def wait_for_the_marker():
    deadline = time.monotonic() + 60
    while not os.path.exists(marker) and time.monotonic() < deadline:
        threading.Event().wait(0.02)

def work(method):
    multiprocessing.get_context(method).Process(target=wait_for_the_marker).start()
    for _ in range(3):
        alerting.alert("storm")  # the first leaves at once, the digest of 2 at the end

if __name__ == "__main__":
    context = multiprocessing.get_context(sys.argv[2])
    child = context.Process(target=work, args=(sys.argv[2],))
    child.start()
    child.join(120)
    assert child.exitcode == 0, child.exitcode
"""


@pytest.mark.parametrize("method", METHODS)
def test_a_childs_alerts_leave_when_its_work_ends_not_when_its_own_children_do(
    tmp_path: Path, method: str
) -> None:
    """A child that returns while a child of its own still runs: multiprocessing waits
    for that one before the child ends, but runs its finalisers first, ours among them,
    whatever the start method: the digest leaves while the grandchild still runs."""
    script = tmp_path / "script.py"
    script.write_text(SCRIPT_HEAD + GRANDCHILD, encoding="utf-8")
    delivered = tmp_path / "delivered.txt"
    proc = subprocess.Popen(
        [sys.executable, str(script), str(delivered), method],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        pause = threading.Event()
        while "storm|2" not in (delivered.read_text(encoding="utf-8") if delivered.exists()
                                else ""):  # fmt: skip
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
            pause.wait(0.05)
        assert not (tmp_path / "marker").exists()  # the grandchild still runs
    finally:
        (tmp_path / "marker").touch()
        out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert delivered.read_text(encoding="utf-8").splitlines() == ["storm|1", "storm|2"]
