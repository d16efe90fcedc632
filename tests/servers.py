"""Real servers for the tests, on 127.0.0.1: an HTTP endpoint that records what it is
sent, and Prometheus Alertmanager and redis-server run from their Debian packages.

Servers that come from the system (``prometheus-alertmanager``, ``redis-server``) are
found by :func:`require_binary`: missing, the test skips with the reason on a
developer's machine, and fails where ``REQUIRE_TEST_SERVERS=1`` (CI, whose
``.ci/run`` installs them) so that a missing server can never turn into a green run.
"""

from __future__ import annotations

import contextlib
import dataclasses
import http.server
import json
import os
import select
import shutil
import signal
import socket
import ssl
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

#: Set to 1 (CI) to turn a missing server binary into a failure instead of a skip.
REQUIRE_SERVERS = "REQUIRE_TEST_SERVERS"


def require_binary(name: str, package: str, *, paths: tuple[str, ...] = ()) -> str:
    """The path of the executable ``name`` (on ``PATH``, else in ``paths``, /usr/bin or
    /usr/sbin, where Debian puts servers that are not on a user's ``PATH``).

    Missing: skips the test, naming the Debian ``package`` to install; fails instead
    when the environment variable ``REQUIRE_TEST_SERVERS`` is ``1``.
    """
    found = shutil.which(name)
    for path in (*paths, f"/usr/bin/{name}", f"/usr/sbin/{name}"):
        if found:
            break
        if os.path.isfile(path) and os.access(path, os.X_OK):
            found = path
    if found:
        return found
    reason = (
        f"{name} not found: install the Debian package {package!r} "
        f"(apt-get install {package}) to run this test"
    )
    if os.environ.get(REQUIRE_SERVERS) == "1":
        pytest.fail(f"{reason} ({REQUIRE_SERVERS}=1: servers are required here)")
    pytest.skip(reason)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(predicate: Callable[[], Any], timeout: float, what: str) -> Any:
    """Poll ``predicate`` (every 20 ms) until it returns something true; fail after
    ``timeout`` seconds. For state held by another process, which nothing can signal."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.02)


# -- an HTTP endpoint that records requests ---------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Request:
    """One request the recorder received."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclasses.dataclass
class Reply:
    """What the recorder answers: a status, headers, a body; or, with ``hang``, nothing
    at all until the test ends (a server that never answers)."""

    status: int = 200
    headers: dict[str, str] = dataclasses.field(default_factory=dict)
    body: bytes = b""
    hang: bool = False


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        self._handle()

    def do_GET(self) -> None:  # noqa: N802
        self._handle()

    def _handle(self) -> None:
        server: HTTPRecorder = self.server.recorder  # type: ignore[attr-defined]
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        reply = server._next_reply()
        # Recorded before answering: once the client has the answer, the test sees it.
        server._record(Request(self.command, self.path, dict(self.headers), body))
        if reply.hang:
            server.release.wait(30)
            self.close_connection = True
            return
        self.send_response(reply.status)
        for key, value in reply.headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(reply.body)))
        self.end_headers()
        self.wfile.write(reply.body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class HTTPRecorder:
    """A threading HTTP server on 127.0.0.1 (port 0) that records every request and
    answers with the scripted :class:`Reply` objects in turn, then with ``default``."""

    def __init__(self) -> None:
        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._server.daemon_threads = True
        self._server.recorder = self  # type: ignore[attr-defined]
        self.port = int(self._server.server_address[1])
        self.url = f"http://127.0.0.1:{self.port}"
        self.requests: list[Request] = []
        self.replies: list[Reply] = []
        self.default = Reply()
        self.release = threading.Event()
        self._cond = threading.Condition()
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},  # stop() waits up to one poll interval
            name="test-http-recorder",
            daemon=True,
        )

    def start(self) -> HTTPRecorder:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.release.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    def reply(self, *replies: Reply) -> None:
        """Answer the next requests with ``replies``, in order."""
        with self._cond:
            self.replies.extend(replies)

    def _next_reply(self) -> Reply:
        with self._cond:
            return self.replies.pop(0) if self.replies else self.default

    def _record(self, request: Request) -> None:
        with self._cond:
            self.requests.append(request)
            self._cond.notify_all()

    def wait_for(self, count: int, timeout: float = 10.0) -> list[Request]:
        """The requests received, once there are at least ``count``."""
        with self._cond:
            ok = self._cond.wait_for(lambda: len(self.requests) >= count, timeout)
            requests = list(self.requests)
        assert ok, f"{count} request(s) expected within {timeout} s, got {len(requests)}"
        return requests


# -- Prometheus Alertmanager ------------------------------------------------------------------


class Alertmanager:
    """A real Alertmanager process on 127.0.0.1: no clustering, storage in ``workdir``.

    :param binary: the ``prometheus-alertmanager`` executable.
    :param config: the configuration file (YAML).
    :param workdir: a private directory (``tmp_path``) for its storage and output.
    """

    def __init__(self, binary: str, config: Path, workdir: Path) -> None:
        self.binary = binary
        self.config = config
        self.workdir = workdir
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = 0
        self.url = ""

    def start(self, timeout: float = 20.0) -> Alertmanager:
        # A port found free may be taken before the server binds it: try a few.
        for attempt in range(3):
            self.port = free_port()
            self.url = f"http://127.0.0.1:{self.port}"
            log = open(self.workdir / f"alertmanager-{attempt}.log", "wb")  # noqa: SIM115
            self.proc = subprocess.Popen(
                [
                    self.binary,
                    f"--config.file={self.config}",
                    f"--storage.path={self.workdir / 'data'}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                    "--cluster.listen-address=",
                    "--log.level=warn",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.workdir,
            )
            log.close()
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and self.proc.poll() is None:
                if self._ready():
                    return self
                time.sleep(0.05)
            self.stop()
            output = (self.workdir / f"alertmanager-{attempt}.log").read_text(errors="replace")
            if "address already in use" not in output:
                break
        pytest.fail(f"Alertmanager did not become ready on {self.url}:\n{output[-2000:]}")

    def _ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/-/ready", timeout=1) as response:
                return bool(response.status == 200)
        except OSError:
            return False

    def stop(self) -> None:
        proc = self.proc
        if proc is None:
            return
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
        self.proc = None

    def get(self, path: str, **params: Any) -> Any:
        """``GET /api/v2/<path>`` with query ``params`` (lists repeat the parameter)."""
        query = urllib.parse.urlencode(params, doseq=True)
        url = f"{self.url}/api/v2/{path}" + (f"?{query}" if query else "")
        with urllib.request.urlopen(url, timeout=10) as response:
            return json.loads(response.read())

    def alerts(self, *matchers: str) -> list[dict[str, Any]]:
        """The alerts Alertmanager lists (firing, not yet ended), matching ``matchers``
        such as ``'app="shop"'``."""
        result: list[dict[str, Any]] = self.get("alerts", filter=list(matchers))
        return result

    def groups(self, *matchers: str) -> list[dict[str, Any]]:
        """The alert groups (one per notification), matching ``matchers``."""
        result: list[dict[str, Any]] = self.get("alerts/groups", filter=list(matchers))
        return result


# -- redis-server -----------------------------------------------------------------------------


def _pause(seconds: float) -> None:
    select.select([], [], [], seconds)


class RedisServer:
    """A ``redis-server`` on 127.0.0.1 (a free port) and a unix socket (no persistence
    unless asked for).

    :param directory: its working directory (a tmp_path) holding the socket and its log.
    :param binary: the ``redis-server`` executable (default: found by
        :func:`require_binary`, which skips a test without it).
    """

    def __init__(self, directory: Path, binary: str | None = None) -> None:
        self.binary = binary or require_binary("redis-server", "redis-server")
        self.directory = directory
        self.socket_path = str(directory / "redis.sock")
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None
        self.tls: tuple[str, str, str] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def unix_url(self) -> str:
        return f"unix://{self.socket_path}?db=0"

    def start(
        self,
        *,
        port: int | None = None,
        password: str | None = None,
        tls: tuple[str, str, str] | None = None,
        persist: bool = False,
    ) -> RedisServer:
        """Start (again): on ``port``, or on a free one (retried if it was taken).

        :param tls: ``(certificate, key, CA)`` files: TLS only on the port.
        :param persist: keep the data in an append-only file in ``directory``, written
            before each reply, so that a restart finds it (as a production Redis would).
        """
        self.tls = tls
        for _attempt in range(5):
            self.port = port or free_port()
            listen = ["--port", str(self.port)]
            if tls:
                listen = ["--port", "0", "--tls-port", str(self.port), "--tls-cert-file", tls[0],
                          "--tls-key-file", tls[1], "--tls-ca-cert-file", tls[2],
                          "--tls-auth-clients", "no"]
            args = [
                self.binary, *listen, "--bind", "127.0.0.1",
                "--save", "", "--appendonly", "yes" if persist else "no",
                "--appendfsync", "always", "--dir", str(self.directory),
                "--unixsocket", self.socket_path, "--unixsocketperm", "700",
                "--daemonize", "no", "--loglevel", "warning",
            ]
            if password:
                args += ["--requirepass", password]
            log = open(self.directory / "redis.log", "ab")
            self.process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
            log.close()
            if self._wait_ready(password):
                return self
            self.stop()
            if port:
                break
        raise RuntimeError(f"redis-server did not start; see {self.directory / 'redis.log'}")

    def _wait_ready(self, password: str | None, timeout: float = 15.0) -> bool:
        assert self.process is not None
        deadline = time.monotonic() + timeout
        hello = (f"AUTH {password}\r\n" if password else "") + "PING\r\n"
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                return False
            try:
                with contextlib.ExitStack() as stack:
                    sock = stack.enter_context(
                        socket.create_connection(("127.0.0.1", self.port), timeout=1.0)
                    )
                    if self.tls:
                        context = ssl.create_default_context(cafile=self.tls[2])
                        sock = stack.enter_context(
                            context.wrap_socket(sock, server_hostname="127.0.0.1")
                        )
                    sock.sendall(hello.encode())
                    reply = b""
                    while b"PONG" not in reply and len(reply) < 200:
                        chunk = sock.recv(200)
                        if not chunk:
                            break
                        reply += chunk
                    if b"PONG" in reply:
                        return True
            except OSError:
                pass
            _pause(0.02)
        return False

    def stop(self) -> None:
        """Stop it (SIGTERM, then SIGKILL after 10 s); a stopped server is not resumed."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(process.pid, signal.SIGCONT)  # a paused server could not exit
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)

    def pause(self) -> None:
        """Freeze it (SIGSTOP): it accepts connections but never answers."""
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGSTOP)

    def resume(self) -> None:
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGCONT)

