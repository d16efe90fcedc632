"""The metrics sampler: one named daemon thread per app, one sampling process per host.

Every ``interval`` seconds the thread reads each rule's probe (:mod:`.reading`), advances
the rule's state machine (:mod:`.machine`) and submits the alerts of its transitions
(:mod:`.alerts`); an alert about a breach lists the top processes by CPU and by memory.

Only one process of a host samples an app (:mod:`.election`): the others retry every
interval. The one that samples records its rules' states in the lock file
(:mod:`.shared`), so the next one continues the same breaches instead of alerting about
them again, and ``flask alerting status`` in any process can show them, saying whether
they are current (:mod:`.status`).

A "resolved" alert is only sent for a breach whose "firing" alert someone was told of:
the sampler hears what became of its "firing" alerts (:mod:`.notices`) and records it, so
the process that takes over continues "firing" only when that alert was delivered or
recorded in the durable outbox of a shared store (then it is delivered, marked as
recovered, by whoever takes the record over).

The reloader's parent process never samples; after ``fork()`` the child gets a fresh
thread (the parent's thread does not exist there) and never unlocks the parent's lock.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime

from .. import _lifecycle
from .._flask import in_reloader_parent
from .._text import describe_exception
from ..alert import Alert, utcnow
from ..dispatch import Clock
from .alerts import metric_alert
from .election import Election
from .machine import Event, RuleStatus
from .notices import NoticedMachine, Notices
from .processes import ProcessTable, TopProcess
from .reading import CheckResult, check, log_failure, prime, read
from .rules import Rule, check_new_name
from .shared import SharedStates
from .status import SamplingStatus, own_start_time, own_status, recorded_status

logger = logging.getLogger("flask_alerting")

#: Seconds over which "top processes by CPU" is measured when a rule fires without a
#: recent baseline (``for_ = 0``). Waited on the sampler thread, never on a request.
TOP_WINDOW = 0.5


class _Machine(NoticedMachine):
    """A rule's machine as the sampler keeps it (see :class:`.reading.Probed`)."""

    primed = False
    last_error_log: float | None = None


_samplers: weakref.WeakSet[Sampler] = weakref.WeakSet()


class Sampler(Notices):
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
        self._shared = SharedStates(clock, self.interval)
        self.closed = False
        self._reset()
        for rule in rules:
            self.add(rule)
        _samplers.add(self)

    def _reset(self) -> None:
        """Fresh locks, thread, election and rule states: at creation and after fork."""
        self._lock = threading.Lock()
        self._machines: list[_Machine] = [_Machine(rule, self.clock) for rule in self._rules]
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._election = Election(
            self.lock_path,
            app_name=self.name,
            interval=self.interval,
            private_dir=self.private_dir,
        )
        self.retired = False
        self.samples = 0
        self._primed_at: float | None = None
        self._sampled_at: float | None = None

    # -- rules --------------------------------------------------------------------------------

    def add(self, rule: Rule) -> None:
        """Sample ``rule`` too, from the next sample on.

        :raises ValueError: when a rule of that name exists.
        """
        with self._lock:
            check_new_name(rule.name, self._rules)
            self._rules.append(rule)
            self._machines = [*self._machines, _Machine(rule, self.clock)]

    @property
    def leader(self) -> bool:
        """True when this process samples (it holds the lock, or there is none to take)."""
        return self._election.leader

    @property
    def rules(self) -> list[Rule]:
        """The rules, in the order they were added."""
        return list(self._rules)

    def status(self) -> list[RuleStatus]:
        """Each rule's state, as seen by the sampling process (see :meth:`sampling`):
        ``"unknown"`` where it is not current."""
        return self.sampling().rules

    def sampling(self) -> SamplingStatus:
        """Who samples, whether alive, when last, and each rule's status.

        A process that does not sample reads the states the sampling process wrote into
        the lock file, and shows them only when they are current (:mod:`.status`).
        """
        machines = self._machines
        election = self._election
        if election.leader or self.lock_path is None:
            return own_status(
                machines,
                clock=self.clock,
                interval=self.interval,
                sampled_at=self._sampled_at,
                stopped="is stopped" if self.closed else "retired" if self.retired else None,
                lock_path=self.lock_path,
                locked=election.locked,
            )
        recorded = self._shared.read(election.peek())
        return recorded_status(
            recorded,
            [m.rule for m in machines],
            clock=self.clock,
            interval=self.interval,
            lock_path=self.lock_path,
            lock_held=election.held(),
            standing_by=election.standing_by and not self.closed,
        )

    def check(self, window: float = TOP_WINDOW) -> list[CheckResult]:
        """Sample every rule once, now, without changing any state or sending anything
        (:func:`.reading.check`: probes with a window are read ``window`` s after priming)."""
        return check(self._rules, window)

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
            self._election.release()

    def close_soon(self) -> None:
        """Like :meth:`stop`, without waiting: the thread ends at once (or after the
        sample it is taking) and gives the lock back itself. For when the app was freed:
        that may happen on any thread, which must not be held up."""
        with self._lock:
            self.closed = True
            self._stop.set()
            thread = self._thread
            if thread is None or not thread.is_alive():
                self._election.release()

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
            self._election.release()

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
                self._election.release()

    def _prime_all(self) -> None:
        """Prime every probe that has a ``prime()`` (on the calling thread)."""
        for machine in self._machines:
            try:
                prime(machine.rule.probe)
                machine.primed = True
            except Exception as exc:
                with self._lock:
                    machine.failed(describe_exception(exc))
                log_failure(machine, exc, self.clock())
        self._primed_at = self.clock()

    # -- one step -----------------------------------------------------------------------------

    def tick(self) -> bool:
        """What the thread does every interval: elect, then sample. True when it sampled."""
        if self.reloader_parent():
            self.retire_for_reloader()
            return False
        if not self._election.leader and not self._elect():
            return False
        self.sample()
        return True

    def sample(self) -> list[Alert]:
        """Sample every rule once, submit the alerts of their transitions and record the
        states in the lock file."""
        now = self.clock()
        machines = self._machines
        # The probes run outside the lock (a slow one must not hold up a status or
        # a delivery confirmation); the states move under it.
        readings = [(m, reading) for m in machines if (reading := read(m)) is not None]
        events: list[tuple[_Machine, Event]] = []
        failures: list[tuple[_Machine, BaseException]] = []
        newly_breaching = False
        with self._lock:
            for machine, reading in readings:
                if isinstance(reading, BaseException):
                    machine.failed(describe_exception(reading))
                    failures.append((machine, reading))
                    continue
                before = machine.state
                event = machine.observe(reading)
                if before == "ok" and machine.state != "ok":
                    newly_breaching = True
                if event is not None:
                    events.append((machine, event))
        for machine, failure in failures:
            log_failure(machine, failure, now)
        if newly_breaching and self.processes is not None and not events:
            longest = max((m.rule.for_ for m in machines), default=0.0)
            self.processes.breach_began(fresh_for=longest + 3 * self.interval)
        alerts = []
        for machine, event in events:
            if event.kind == "resolved" and not event.notified:
                logger.info(
                    "flask-alerting: metric rule %r of app %r is back under its threshold; "
                    "no 'resolved' alert, as its 'firing' alert was never delivered",
                    event.rule.name,
                    self.name,
                )
                continue
            alert = self._alert(event)
            if event.kind == "firing":
                machine.notice_at = alert.timestamp
            alerts.append(alert)
        for alert in alerts:
            self.submit(alert)
        self.samples += 1
        logger.debug(
            "flask-alerting: pid %d sampled %d rule(s) of app %r",
            os.getpid(),
            len(machines),
            self.name,
        )
        with self._lock:
            self._sampled_at = now
            self._record()
        return alerts

    def _record(self) -> None:
        """Write the states into the lock file, when this process holds it (with
        :attr:`_lock` held)."""
        if self._election.locked:
            self._election.write(
                self._shared.encode(
                    os.getpid(),
                    self._machines,
                    started=own_start_time(),
                    sampled=self._sampled_at,
                )
            )

    def _alert(self, event: Event) -> Alert:
        top_cpu: Sequence[TopProcess] = ()
        top_memory: Sequence[TopProcess] = ()
        if event.kind != "resolved" and self.processes is not None:
            top_cpu, top_memory = self.processes.for_alert(
                fresh_for=event.rule.for_ + 3 * self.interval,
                window=self.top_window,
                wait=self._stop.wait,
            )
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
        election = self._election
        with self._lock:
            if self.closed or not election.elect():
                return False
            if not election.locked:
                return True  # no usable lock file: sampling on its own
            primed_at = self._primed_at
            if primed_at is None or self.clock() - primed_at > 1.5 * self.interval:
                # Counters primed long ago would give an average over all that time:
                # prime again at the first sample, read at the next.
                for machine in self._machines:
                    machine.primed = False
        # Continue the previous sampler's breaches (a crash must not re-alert them), as
        # far as that misleads nobody (RuleMachine.restore).
        recorded = self._shared.decode(election.read())
        with self._lock:
            restored = recorded.restore(self._machines) if recorded is not None else 0
        if recorded is not None:
            for machine in self._machines:
                if machine.dropped:
                    logger.info(
                        "flask-alerting: pid %d does not continue the state of metric rule "
                        "%r of app %r recorded by pid %s: %s",
                        os.getpid(),
                        machine.rule.name,
                        self.name,
                        recorded.pid,
                        machine.dropped,
                    )
        logger.info(
            "flask-alerting: pid %d samples the metrics of app %r every %g s (lock %s%s)",
            os.getpid(),
            self.name,
            self.interval,
            self.lock_path,
            f"; continuing the state of {restored} rule(s) from pid {recorded.pid}"
            if recorded is not None and restored
            else "",
        )
        return True

    # -- fork ---------------------------------------------------------------------------------

    def _after_fork(self) -> None:
        self._election.forget()
        was_running = self._thread is not None and not self.closed and not self.retired
        self._reset()
        if was_running:
            self.start()


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
