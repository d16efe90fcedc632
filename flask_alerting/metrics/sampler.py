"""The metrics sampler: one named daemon thread per app, one sampling process per host.

Every ``interval`` seconds the thread takes one sample of each rule's probe, advances the
rule's state machine (:mod:`.rules`) and submits the alerts of its transitions.

Several processes serving the same app on one host (gunicorn workers, the Werkzeug
reloader's parent and child) would each alert about the same host. So only the process
holding an exclusive ``fcntl.flock`` on a lock file samples; the others retry the
non-blocking lock every interval and take over within one interval when the holder dies
(the kernel releases a dead process's locks). The holder writes its rules' states into the
lock file after each sample, so the next holder continues the same breaches instead of
alerting about them again, and ``flask alerting status`` in any process can show them.

The reloader's parent process never samples; after ``fork()`` the child gets a fresh
thread (the parent's thread does not exist there) and never unlocks the parent's lock.

Another local user must not be able to silence the alerts through that file (by locking
it, or by writing a forged state into it), so it is opened as :mod:`flask_alerting._files`
says: by default in a directory only this user can use (``$XDG_RUNTIME_DIR``, else
``<temp dir>/flask-alerting-<uid>/``, created ``0700``), created ``0600``, never through
a symbolic link, and used only when it is a regular file of ours with one link. Any other
file is refused with an error naming it; the process then samples on its own (alerts
still flow, possibly once per process). A configured ``ALERTING_METRICS_LOCK_FILE`` that
is a symbolic link is a :class:`~flask_alerting.ConfigurationError`. The state is one
JSON document padded with spaces to the file's size, written with one ``pwrite`` and
never truncated, so the file is always readable whole; readers also ignore whatever
follows the document.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import re
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, NamedTuple

from .. import _lifecycle
from .._files import UnsafeFileError, default_directory, open_private, private_directory
from .._flask import in_reloader_parent
from .._text import describe_exception
from ..alert import Alert, utcnow
from ..config import ConfigurationError, ConfigVars
from ..dispatch import Clock
from .probes import (
    CPUPercent,
    DiskPercent,
    LoadPerCore,
    MemoryPercent,
    ProcessRSS,
    ProcessTable,
    SwapPercent,
)
from .rules import (
    Event,
    Rule,
    RuleMachine,
    RuleSpec,
    RuleStatus,
    default_hysteresis,
    metric_alert,
)

try:  # pragma: no cover - always there on POSIX
    import fcntl
except ImportError:  # pragma: no cover - Windows: every process samples
    fcntl = None  # type: ignore[assignment]

logger = logging.getLogger("flask_alerting")

#: Seconds over which "top processes by CPU" is measured when a rule fires without a
#: recent baseline (``for_ = 0``). Waited on the sampler thread, never on a request.
TOP_WINDOW = 0.5
#: How many processes the alerts list, by CPU and by memory.
TOP_N = 5
#: The sampling process writes its rules' states into the lock file when one changes and
#: at least this often (seconds), for the process that takes over and for status displays.
SHARE_EVERY = 10.0
#: Errors of one probe are logged again at most this often (seconds).
ERROR_LOG_INTERVAL = 600.0


class CheckResult(NamedTuple):
    """One rule sampled once by :meth:`Sampler.check`."""

    name: str
    value: float | None
    threshold: float
    breached: bool
    error: str | None = None


def default_lock_path(app_name: str) -> str:
    """``<dir>/flask-alerting-<uid>-<app>-<hash>.lock`` in a directory only this user can
    use: ``$XDG_RUNTIME_DIR``, else ``<temp dir>/flask-alerting-<uid>`` (see
    :func:`~flask_alerting._files.default_directory`; created when the lock is first
    taken)."""
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", app_name)[:60] or "app"
    digest = hashlib.sha1(app_name.encode("utf-8", "backslashreplace"), usedforsecurity=False)
    uid = os.getuid() if hasattr(os, "getuid") else 0
    name = f"flask-alerting-{uid}-{slug}-{digest.hexdigest()[:8]}.lock"
    return os.path.join(default_directory(), name)


def _boot_time() -> float | None:
    try:
        import psutil

        return float(psutil.boot_time())
    except Exception:  # pragma: no cover - exotic platforms
        return None


def default_rules(config: Any) -> list[Rule]:
    """The built-in rules enabled by ``config`` (a :class:`~flask_alerting.config.Config`).

    CPU and memory percent by default; disk, swap, process RSS and load per core when
    their threshold is set. RSS (MiB) and load per core are not percentages: for them
    ``ALERTING_METRICS_HYSTERESIS`` is read as a percentage of the threshold. Either way
    the hysteresis is at most half the threshold (:func:`.rules.default_hysteresis`), so
    a low threshold (``ALERTING_CPU_THRESHOLD = 3``) still resolves.
    """
    common = {
        "for_": config.metrics_for,
        "repeat_seconds": config.metrics_repeat_seconds,
    }
    points = config.metrics_hysteresis
    rules: list[Rule] = []

    def add(name: str, probe: Any, threshold: float | None, relative: bool = False) -> None:
        if threshold is None:
            return
        hysteresis = default_hysteresis(threshold, points, relative=relative)
        rules.append(
            Rule(
                name=name,
                probe=probe,
                threshold=threshold,
                hysteresis=hysteresis,
                display_name=probe.display_name,
                unit=getattr(probe, "unit", ""),
                **common,
            )
        )

    add("cpu", CPUPercent(), config.cpu_threshold)
    add("memory", MemoryPercent(), config.memory_threshold)
    if config.disk_threshold is not None:
        add("disk", DiskPercent(config.disk_path), config.disk_threshold)
    add("swap", SwapPercent(), config.swap_threshold)
    add("rss", ProcessRSS(), config.rss_threshold, relative=True)
    add("load", LoadPerCore(), config.load_threshold, relative=True)
    return rules


def build_sampler(
    config: Any,
    *,
    app_name: str,
    specs: Iterable[RuleSpec],
    submit: Callable[[Alert], None],
    labels: Mapping[str, str],
    clock: Clock = time.monotonic,
) -> Sampler:
    """The sampler of one app: built-in rules from ``config``, then the ``add_rule`` ones.

    :raises ValueError: when two rules have the same name.
    :raises ConfigurationError: when ``ALERTING_METRICS_LOCK_FILE`` is a symbolic link.
    """
    if config.metrics_lock_file is not None and os.path.islink(config.metrics_lock_file):
        raise ConfigurationError(
            ConfigVars.METRICS_LOCK_FILE,
            "a path that is not a symbolic link (the lock file is never followed)",
            config.metrics_lock_file,
        )
    return Sampler(
        name=app_name,
        rules=[*default_rules(config), *(resolve_spec(spec, config) for spec in specs)],
        submit=submit,
        labels=labels,
        interval=config.metrics_interval,
        lock_path=config.metrics_lock_file or default_lock_path(app_name),
        private_dir=config.metrics_lock_file is None,
        clock=clock,
        processes=ProcessTable(),
    )


def resolve_spec(spec: RuleSpec, config: Any) -> Rule:
    """``spec`` with the app's ``ALERTING_METRICS_*`` defaults where it has None.

    A custom rule's unit is unknown (jobs, errors per second...), so without an explicit
    ``hysteresis`` it gets ``ALERTING_METRICS_HYSTERESIS`` percent of its threshold (at
    most half of it): ``threshold=1.0`` resolves below 0.95, ``threshold=100`` below 95.
    """
    return spec.build(
        for_=config.metrics_for,
        hysteresis=default_hysteresis(spec.threshold, config.metrics_hysteresis, relative=True),
        repeat_seconds=config.metrics_repeat_seconds,
    )


class _Machine(RuleMachine):
    primed = False
    last_error_log: float | None = None


_samplers: weakref.WeakSet[Sampler] = weakref.WeakSet()


class Sampler:
    """Samples rules on a background thread and submits the alerts of their transitions.

    :param name: app name, for the thread name and log lines.
    :param rules: the rules (more can be added with :meth:`add`).
    :param submit: hands an alert to the delivery pipeline.
    :param labels: ``app`` and ``host`` labels of the alerts.
    :param interval: seconds between samples.
    :param lock_path: the lock file electing the one sampling process; None: no election.
    :param private_dir: the lock file's directory is ours to create (``0700``) and must
        be closed to other users (the default path's directory).
    :param clock: monotonic seconds for the rules (shared by processes on one host).
    :param wall_clock: aware UTC time of the alerts.
    :param processes: the process table for "top processes"; None: no such lists.
    :param reloader_parent: tells whether this process is the reloader's parent.
    """

    def __init__(
        self,
        *,
        name: str,
        rules: Iterable[Rule],
        submit: Callable[[Alert], None],
        labels: Mapping[str, str],
        interval: float,
        lock_path: str | None,
        private_dir: bool = False,
        clock: Clock = time.monotonic,
        wall_clock: Callable[[], datetime] = utcnow,
        processes: ProcessTable | None = None,
        reloader_parent: Callable[[], bool] = in_reloader_parent,
        top_window: float = TOP_WINDOW,
    ) -> None:
        if not (interval > 0 and math.isfinite(interval)):
            raise ValueError("interval must be > 0")
        self.name = name
        self.submit = submit
        self.labels = dict(labels)
        self.interval = float(interval)
        self.lock_path = lock_path
        self.private_dir = private_dir
        self.clock = clock
        self.wall_clock = wall_clock
        self.processes = processes
        self.reloader_parent = reloader_parent
        self.top_window = top_window
        self._rules: list[Rule] = []
        for rule in rules:
            if any(r.name == rule.name for r in self._rules):
                raise ValueError(f"a metric rule named {rule.name!r} already exists")
            self._rules.append(rule)
        self._boot = _boot_time()
        self.closed = False
        self._reset()
        _samplers.add(self)

    def _reset(self) -> None:
        """Fresh locks, thread, election and rule states: at creation and after fork."""
        self._lock = threading.Lock()
        self._machines = [_Machine(rule, self.clock) for rule in self._rules]
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._fd: int | None = None
        self._warned_lock = False
        self._standing_by = False
        self.leader = self.lock_path is None or fcntl is None
        self.retired = False
        self.samples = 0
        self._primed_at: float | None = None
        self._written_at: float | None = None

    # -- rules --------------------------------------------------------------------------------

    def add(self, rule: Rule) -> None:
        """Sample ``rule`` too, from the next sample on.

        :raises ValueError: when a rule of that name exists.
        """
        with self._lock:
            if any(r.name == rule.name for r in self._rules):
                raise ValueError(f"a metric rule named {rule.name!r} already exists")
            self._rules.append(rule)
            self._machines = [*self._machines, _Machine(rule, self.clock)]

    @property
    def rules(self) -> list[Rule]:
        """The rules, in the order they were added."""
        return list(self._rules)

    def status(self) -> list[RuleStatus]:
        """Each rule's state, as seen by the sampling process.

        A process that does not sample reads the states the sampling one wrote into the
        lock file (a fresh ``ok`` where it has none).
        """
        machines = self._machines
        if not self.leader and self.lock_path is not None:
            shared = self._read_shared()
            if shared:
                copies = []
                for machine in machines:
                    copy = RuleMachine(machine.rule, self.clock)
                    data = shared.get(machine.rule.name)
                    if isinstance(data, Mapping):
                        copy.restore(data)
                    copies.append(copy)
                return [m.status() for m in copies]
        return [m.status() for m in machines]

    def check(self, window: float = TOP_WINDOW) -> list[CheckResult]:
        """Sample every rule once, now, without changing any state or sending anything.

        Probes that need a measurement window (CPU percent) are primed on the calling
        thread, then read after ``window`` seconds (one wait for all of them).
        """
        rules = list(self._rules)
        primed = False
        for rule in rules:
            prime = getattr(rule.probe, "prime", None)
            if callable(prime):
                try:
                    prime()
                    primed = True
                except Exception:  # the read below reports it
                    pass
        if primed and window > 0:
            time.sleep(window)
        results = []
        for rule in rules:
            try:
                value = float(rule.probe())
            except Exception as exc:
                results.append(
                    CheckResult(rule.name, None, rule.threshold, False, describe_exception(exc))
                )
                continue
            breached = value > rule.threshold
            results.append(CheckResult(rule.name, value, rule.threshold, breached))
        return results

    # -- thread -------------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        """True while the sampling thread of this process is alive."""
        thread = self._thread
        return thread is not None and thread.is_alive()

    def start(self) -> None:
        """Start the thread (once per process; no-op when running or closed)."""
        with self._lock:
            if self.closed or self.retired or self.running:
                return
            self._thread = threading.Thread(
                target=self._run, name=f"flask-alerting-{self.name}-metrics", daemon=True
            )
            self._thread.start()

    def stop(self, timeout: float = 2.0) -> None:
        """Stop at once (the thread waits on an event) and hand the lock to another process."""
        with self._lock:
            self.closed = True
            self._stop.set()
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
        with self._lock:
            self._release()

    def close_soon(self) -> None:
        """Like :meth:`stop`, without waiting: the thread ends at once (or after the
        sample it is taking) and gives the lock back itself. For when the app was freed:
        that may happen on any thread, which must not be held up."""
        with self._lock:
            self.closed = True
            self._stop.set()
            thread = self._thread
            if thread is None or not thread.is_alive():
                self._release()

    def retire_for_reloader(self) -> None:
        """This process is the Werkzeug reloader's parent: never sample here (the serving
        child does). Releases the lock if this process held it; the thread ends."""
        if not self.retired:
            logger.info(
                "flask-alerting: pid %d is the reloader's parent; the serving child "
                "samples the metrics of app %r",
                os.getpid(),
                self.name,
            )
        self.retired = True
        with self._lock:
            self._release()

    def _run(self) -> None:
        stop = self._stop
        # Prime CPU-style counters now, so that the first sample, one interval later,
        # is a real reading. The first election waits that interval too: by then the
        # reloader's parent is recognisable as such and never takes the lock.
        self._prime_all()
        while not stop.wait(self.interval):
            try:
                self.tick()
            except Exception:
                logger.exception("flask-alerting: internal error in the metrics sampler")
            if self.retired:
                return
        if self.closed:  # close_soon() left the lock to this thread
            with self._lock:
                self._release()

    def _prime_all(self) -> None:
        """Prime every probe that has a ``prime()`` (on the calling thread)."""
        for machine in self._machines:
            prime = getattr(machine.rule.probe, "prime", None)
            if callable(prime):
                try:
                    prime()
                    machine.primed = True
                except Exception as exc:
                    self._probe_failed(machine, exc, self.clock())
            else:
                machine.primed = True
        self._primed_at = self.clock()

    # -- one step -----------------------------------------------------------------------------

    def tick(self) -> bool:
        """What the thread does every interval: elect, then sample. True when it sampled."""
        if self.reloader_parent():
            self.retire_for_reloader()
            return False
        if not self.leader and not self._elect():
            return False
        self.sample()
        return True

    def sample(self) -> list[Alert]:
        """Sample every rule once and submit the alerts of their transitions."""
        now = self.clock()
        events: list[Event] = []
        newly_breaching = changed = False
        for machine in self._machines:
            probe = machine.rule.probe
            if not machine.primed:
                machine.primed = True
                prime = getattr(probe, "prime", None)
                if callable(prime):
                    try:
                        prime()
                    except Exception as exc:
                        self._probe_failed(machine, exc, now)
                    continue  # its first reading needs one interval
            try:
                value = float(probe())
            except Exception as exc:
                self._probe_failed(machine, exc, now)
                continue
            if math.isnan(value):
                self._probe_failed(machine, ValueError("the probe returned NaN"), now)
                continue
            before = machine.state
            event = machine.observe(value)
            if machine.state != before:
                changed = True
                if before == "ok":
                    newly_breaching = True
            if event is not None:
                events.append(event)
        if newly_breaching and self.processes is not None and not events:
            # Baseline for "top processes by CPU" over the breach; a value flapping
            # around the threshold must not list every process at every sample.
            age = self.processes.baseline_age()
            longest = max((m.rule.for_ for m in self._machines), default=0.0)
            if age is None or age > longest + 3 * self.interval:
                self._guarded(self.processes.baseline)
        alerts = [self._alert(event) for event in events]
        for alert in alerts:
            self.submit(alert)
        self.samples += 1
        logger.debug(
            "flask-alerting: pid %d sampled %d rule(s) of app %r",
            os.getpid(),
            len(self._machines),
            self.name,
        )
        last = self._written_at
        if changed or last is None or not 0 <= now - last < SHARE_EVERY:
            self._write_shared()
            self._written_at = now
        return alerts

    def _probe_failed(self, machine: _Machine, exc: BaseException, now: float) -> None:
        machine.failed(describe_exception(exc))
        if machine.last_error_log is None or now - machine.last_error_log >= ERROR_LOG_INTERVAL:
            machine.last_error_log = now
            logger.error(
                "flask-alerting: probe of metric rule %r failed: %s (logged again at most "
                "every %d s while it keeps failing)",
                machine.rule.name,
                describe_exception(exc),
                ERROR_LOG_INTERVAL,
                exc_info=exc,
            )

    def _guarded(self, fn: Callable[[], Any]) -> Any:
        try:
            return fn()
        except Exception:
            logger.exception("flask-alerting: could not list the top processes")
            return None

    def _alert(self, event: Event) -> Alert:
        top_cpu: Sequence[Any] = ()
        top_memory: Sequence[Any] = ()
        if event.kind != "resolved" and self.processes is not None:
            table = self.processes
            age = table.baseline_age()
            if (age is None or age > event.rule.for_ + 3 * self.interval) and self.top_window > 0:
                self._guarded(table.baseline)
                self._stop.wait(self.top_window)
            top = self._guarded(lambda: table.top(TOP_N))
            if top is not None:
                top_cpu, top_memory = top
        return metric_alert(
            event,
            labels=self.labels,
            now=self.wall_clock(),
            top_cpu=top_cpu,
            top_memory=top_memory,
        )

    # -- election -----------------------------------------------------------------------------

    def _elect(self) -> bool:
        """Try the lock once (never blocks). True when this process now samples."""
        assert self.lock_path is not None and fcntl is not None
        with self._lock:
            if self.closed:
                return False
            if self._fd is None:
                try:
                    if self.private_dir:
                        private_directory(os.path.dirname(self.lock_path))
                    self._fd = open_private(self.lock_path)
                except UnsafeFileError as exc:
                    self._refuse(exc)
                    self.leader = True
                    return True
                except OSError as exc:
                    if not self._warned_lock:
                        self._warned_lock = True
                        logger.warning(
                            "flask-alerting: cannot open the metrics lock file %s (%s); "
                            "sampling without it, so each process of app %r may alert "
                            "(set ALERTING_METRICS_LOCK_FILE to a writable path)",
                            self.lock_path,
                            exc,
                            self.name,
                        )
                    self.leader = True
                    return True
            try:
                fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                if not self._standing_by:
                    self._standing_by = True
                    logger.info(
                        "flask-alerting: pid %d stands by: another process samples the "
                        "metrics of app %r (lock %s)",
                        os.getpid(),
                        self.name,
                        self.lock_path,
                    )
                logger.debug(
                    "flask-alerting: pid %d: metrics lock of app %r busy, retrying in %g s",
                    os.getpid(),
                    self.name,
                    self.interval,
                )
                return False
            self.leader = True
            primed_at = self._primed_at
            if primed_at is None or self.clock() - primed_at > 1.5 * self.interval:
                # Counters primed long ago would give an average over all that time:
                # prime again at the first sample, read at the next.
                for machine in self._machines:
                    machine.primed = False
        restored = self._restore_shared()
        logger.info(
            "flask-alerting: pid %d samples the metrics of app %r every %g s (lock %s%s)",
            os.getpid(),
            self.name,
            self.interval,
            self.lock_path,
            f"; continuing the state of {restored} rule(s) from pid {self._previous_pid}"
            if restored
            else "",
        )
        return True

    def _refuse(self, exc: UnsafeFileError) -> None:
        """Say (once) that the lock file is not used, and why."""
        if self._warned_lock:
            return
        self._warned_lock = True
        logger.error(
            "flask-alerting: refusing the metrics lock file %s: %s; it could be another "
            "user's, so it is neither locked, read nor written, and each process of app %r "
            "samples on its own (remove it, or set ALERTING_METRICS_LOCK_FILE to a path in "
            "a directory only this user can write)",
            self.lock_path,
            exc.strerror or exc,
            self.name,
        )

    def _release(self) -> None:
        """Give the lock back (called with ``self._lock`` held)."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            if self.leader and fcntl is not None:
                fcntl.flock(fd, fcntl.LOCK_UN)
        except OSError:  # pragma: no cover
            pass
        finally:
            os.close(fd)
            self.leader = self.lock_path is None

    # -- state shared through the lock file ---------------------------------------------------

    _previous_pid: int | None = None

    def _write_shared(self) -> None:
        fd = self._fd
        if fd is None or not self.leader:
            return
        data = {
            "pid": os.getpid(),
            "boot": self._boot,
            "clock": self.clock(),
            "interval": self.interval,
            "rules": {m.rule.name: m.snapshot() for m in self._machines},
        }
        payload = json.dumps(data, separators=(",", ":")).encode() + b"\n"
        try:
            # Padded with spaces over what a longer earlier state left, in one write and
            # without a truncate: no moment (and no crash) leaves a file that is not one
            # JSON document. The file stays at its largest size, a few KiB.
            size = os.fstat(fd).st_size
            if size > len(payload):
                payload += b" " * (size - len(payload))
            view = memoryview(payload)
            offset = 0
            while offset < len(view):
                written = os.pwrite(fd, view[offset:], offset)
                if written <= 0:  # pragma: no cover - a regular file never does this
                    raise OSError("the lock file accepted no bytes")
                offset += written
        except OSError as exc:  # pragma: no cover - disk full and the like
            logger.debug("flask-alerting: could not write the metrics state: %s", exc)

    def _load_shared(self, fd: int) -> dict[str, Any] | None:
        try:
            raw = os.pread(fd, 1 << 20, 0)
            # raw_decode: the document, whatever follows it (the stale tail that an
            # interrupted write-then-truncate of an earlier version could leave).
            text = raw.decode("utf-8", "replace").lstrip()
            data = json.JSONDecoder().raw_decode(text)[0] if text else None
        except (OSError, ValueError):
            return None
        if not isinstance(data, dict) or data.get("boot") != self._boot:
            return None
        return data

    def _read_shared(self) -> dict[str, Any] | None:
        """Rule name -> saved state, as the sampling process last wrote it."""
        assert self.lock_path is not None
        try:
            fd = open_private(self.lock_path, os.O_RDONLY, create=False)
        except UnsafeFileError as exc:
            self._refuse(exc)
            return None
        except OSError:
            return None
        try:
            data = self._load_shared(fd)
        finally:
            os.close(fd)
        if not data or not self._fresh(data):
            return None
        rules = data.get("rules")
        return rules if isinstance(rules, dict) else None

    def _fresh(self, data: Mapping[str, Any]) -> bool:
        """Whether saved states are recent enough to be continued or shown.

        A sampling process writes after every sample; older states belong to a breach
        nobody watched since (or to another clock).
        """
        try:
            age = self.clock() - float(data["clock"])
            interval = max(self.interval, float(data.get("interval") or 0))
        except (KeyError, TypeError, ValueError):
            return False
        return 0 <= age <= 3 * interval + SHARE_EVERY + 60

    def _restore_shared(self) -> int:
        """Continue the previous sampler's breaches (a crash must not re-alert them)."""
        fd = self._fd
        if fd is None:
            return 0
        data = self._load_shared(fd)
        if not data or not isinstance(data.get("rules"), dict) or not self._fresh(data):
            return 0
        pid = data.get("pid")
        self._previous_pid = pid if isinstance(pid, int) else None
        restored = 0
        for machine in self._machines:
            saved = data["rules"].get(machine.rule.name)
            if isinstance(saved, Mapping) and machine.restore(saved):
                restored += machine.state != "ok"
        return restored

    # -- fork ---------------------------------------------------------------------------------

    def _after_fork(self) -> None:
        fd = self._fd
        if fd is not None:
            # Close our copy only: unlocking would release the parent's lock (flock
            # locks belong to the open file, which parent and child share).
            try:
                os.close(fd)
            except OSError:  # pragma: no cover
                pass
        was_running = self._thread is not None and not self.closed and not self.retired
        self._reset()
        if was_running:
            self.start()


def _err(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _after_fork_in_child() -> None:
    for sampler in list(_samplers):
        try:
            sampler._after_fork()
        except Exception:  # pragma: no cover - never break a fork
            logger.exception("flask-alerting: could not restart the metrics sampler after fork")


def _stop_all() -> None:
    for sampler in list(_samplers):
        try:
            sampler.stop(timeout=1.0)
        except Exception:  # pragma: no cover
            logger.exception("flask-alerting: could not stop the metrics sampler at exit")


def _stop_budget() -> float:
    """Seconds :func:`_stop_all` may take: its join of each running sampler thread."""
    return sum(1.0 for sampler in list(_samplers) if sampler.running)


_lifecycle.after_fork("metrics", _after_fork_in_child)
_lifecycle.at_exit("metrics", _stop_all, budget=_stop_budget)
