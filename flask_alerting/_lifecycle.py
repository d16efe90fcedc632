"""The process around the app: :func:`guard`, thread starts, and one ordered registry of
fork and exit hooks, run at interpreter exit, on ``SIGTERM`` and at the end of a
:mod:`multiprocessing` child.

flask-alerting runs threads (each app's delivery pipeline, each app's metrics sampler)
and keeps locks that its hot paths never take but its slow paths do (the timing
registry). Two moments of the process concern them all, and their order matters:

* **when the process ends**, the sources stop first, so that nothing is raised into a
  pipeline that is closing: the metrics samplers stop; then the pipelines flush, emit
  their pending digests and close their notifiers (:data:`EXIT_ORDER`);
* **in a child after** ``fork()``, where the parent's threads do not exist and a lock
  may have been copied held: the pipelines start over first (never re-sending their
  parent's queue), then the samplers restart (and may raise at once, into the fresh
  pipelines), then the timing lock is renewed (:data:`FORK_ORDER`).

Each module registers its hook under a stage named there, with :func:`at_exit` or
:func:`after_fork`; the hooks run in the order of those tuples, whatever the order in
which the modules happened to be imported. This module registers itself with
:mod:`atexit` and :func:`os.register_at_fork` once, when first imported. Every hook runs
under :func:`guard`: one that fails is logged and never keeps the next from running.
Every exit hook is idempotent, and :func:`run_exit_hooks` runs them one caller at a
time, so the ways a process can end below may overlap.

A process can end in ways that skip :mod:`atexit`; :func:`install_process_hooks` (called
by ``init_app``) covers those it can:

* **SIGTERM** (process managers, ``docker stop``, ``Process.terminate()``): Python's
  default action ends the process at once. Where the handler of ``SIGTERM`` is still the
  default and ``init_app`` runs on the main thread (:func:`signal.signal` works nowhere
  else), :func:`install_sigterm` installs one that runs the exit hooks on a helper thread
  and waits for it at most :func:`exit_budget` seconds (the pipelines'
  ``ALERTING_SHUTDOWN_TIMEOUT``), then restores the default and sends itself the signal
  again, so that the process ends as it would have without flask-alerting (killed by
  ``SIGTERM``: status ``-15`` / ``143``). Where the kernel ignores that signal (the init
  process of a PID namespace: ``python app.py`` as a container's PID 1, which would
  otherwise run on until its ``SIGKILL``), it exits with status 143.

  The helper thread and the bound are what make it safe: the handler runs on the main
  thread between two bytecodes, possibly while that thread holds a lock the shutdown
  needs; the wait then ends at the bound instead of never. One such lock is known to be
  needed: the import system's, which the main thread holds while it imports (an
  application importing lazily, another exit hook), and without which the threads that
  deliver cannot import anything (the e-mail package imports lazily). A signal that
  stops the main thread there lets it go on: the exit hooks run on a helper thread, with
  the same bound, and the signal is then sent again to the main thread, whose handler
  ends the process (or, should it not take the signal within :data:`SIGTERM_GRACE`,
  the helper ends it with status 143). A signal that interrupts the exit hooks running
  on the main thread (at the interpreter's exit) lets them finish and is sent again
  after them; a second SIGTERM while flushing changes nothing.

  An application's or a server's own handler (gunicorn's workers, Werkzeug's reloader)
  is never replaced and still runs; those end through ``sys.exit()``, where :mod:`atexit`
  runs the same hooks. A handler the application installs after ``init_app`` replaces
  ours, and the same holds for it.
* **a multiprocessing child** started by ``fork`` or ``forkserver`` returns from its
  target and ends with :func:`os._exit`, after running :mod:`multiprocessing`'s own
  finalisers (a ``spawn`` child ends through ``sys.exit()``, after them too). A
  ``multiprocessing.util.Finalize`` runs the exit hooks there, in every child: when its
  work is done, before it waits for children of its own and before the interpreter's
  exit. ``init_app`` registers it at once in any process that uses
  :mod:`multiprocessing` (the parent too, where it runs at the interpreter's exit): a
  ``spawn`` or ``forkserver`` child builds the app before its bootstrap, which keeps the
  finalisers it finds. The bootstrap of a ``fork`` child clears the finalisers it
  inherited, then runs the hooks of ``multiprocessing.util.register_after_fork``, which
  register it again: this module's fork hook registers that in every forked child.
  :mod:`multiprocessing` is never imported for this, only looked up.
* **SIGKILL**, an OOM kill, a crash: nothing runs. The alert log, written by the
  dispatch thread as alerts come in, keeps what was raised until shortly before.

``SIGINT`` needs nothing: its ``KeyboardInterrupt`` ends the process through the
interpreter's exit, and :mod:`atexit` runs the hooks.
"""

from __future__ import annotations

import atexit
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

logger = logging.getLogger("flask_alerting")

#: The stages of the exit hooks, in the order they run (interpreter exit, SIGTERM, the
#: end of a multiprocessing child).
EXIT_ORDER: tuple[str, ...] = ("metrics", "delivery")
#: The stages of the hooks run in a forked child, in the order they run.
FORK_ORDER: tuple[str, ...] = ("store", "delivery", "metrics", "timing")
#: The stages of the hooks run by the thread that forks, just before the fork and just
#: after it in the parent (see :func:`around_fork`), in the order they run.
AROUND_FORK_ORDER: tuple[str, ...] = ("store",)

#: Seconds the SIGTERM handler waits beyond the stages' budgets (log lines, joins).
SIGTERM_GRACE = 0.5
#: Priority of the exit hooks among a multiprocessing child's finalisers: with the
#: others of priority >= 0, before its own children are joined (see
#: ``multiprocessing.util._exit_function``).
MULTIPROCESSING_EXIT_PRIORITY = 0


@contextmanager
def guard(what: str) -> Iterator[None]:
    """Log and swallow any exception: a bug in alerting must never break the app."""
    try:
        yield
    except Exception:
        logger.exception("flask-alerting: internal error while %s", what)


def start_thread(thread: threading.Thread) -> bool:
    """Start ``thread``; False (logged) when Python refuses, as it does at exit (3.12)."""
    try:
        thread.start()
    except RuntimeError as exc:
        logger.warning("flask-alerting: could not start thread %s: %s", thread.name, exc)
        return False
    return True


class Hooks:
    """Hooks by stage, run in the order of ``stages`` whatever the order they came in.

    :param stages: the stages, in the order their hooks run.
    :param when: says when they run, in log lines (``"at exit"``).
    """

    def __init__(self, stages: tuple[str, ...], when: str) -> None:
        self.stages = stages
        self.when = when
        self._hooks: dict[str, Callable[[], object]] = {}
        self._budgets: dict[str, Callable[[], float]] = {}

    def register(
        self,
        stage: str,
        hook: Callable[[], object],
        budget: Callable[[], float] | None = None,
    ) -> None:
        """Run ``hook`` in the place of ``stage``; one hook per stage (registering again
        replaces it). ``budget()`` says how many seconds the hook may take now.

        :raises ValueError: for a stage that is not one of :attr:`stages`.
        """
        if stage not in self.stages:
            raise ValueError(f"unknown stage {stage!r}; known: {', '.join(self.stages)}")
        self._hooks[stage] = hook
        if budget is None:
            self._budgets.pop(stage, None)
        else:
            self._budgets[stage] = budget

    def run(self) -> None:
        """Run the hooks, stage by stage; one that raises is logged, the next still runs."""
        for stage in self.stages:
            hook = self._hooks.get(stage)
            if hook is not None:
                with guard(f"running the {stage} hook {self.when}"):
                    hook()

    def budget(self) -> float:
        """Seconds the hooks may take, in all, as their budgets say now."""
        total = 0.0
        for stage, budget in self._budgets.items():
            with guard(f"reckoning the time of the {stage} hook {self.when}"):
                total += max(0.0, float(budget()))
        return total


_exit_hooks = Hooks(EXIT_ORDER, "at exit")
_fork_hooks = Hooks(FORK_ORDER, "after fork")
_before_fork_hooks = Hooks(AROUND_FORK_ORDER, "before fork")
_parent_fork_hooks = Hooks(AROUND_FORK_ORDER, "after fork in the parent")


def at_exit(
    stage: str, hook: Callable[[], object], *, budget: Callable[[], float] | None = None
) -> None:
    """Run ``hook`` when the process ends (interpreter exit, SIGTERM, the end of a
    multiprocessing child), in the place of ``stage`` in :data:`EXIT_ORDER`. It must be
    idempotent. ``budget()``: the seconds it may take now (see :func:`exit_budget`)."""
    _exit_hooks.register(stage, hook, budget)


def after_fork(stage: str, hook: Callable[[], object]) -> None:
    """Run ``hook`` in a forked child, in the place of ``stage`` in :data:`FORK_ORDER`."""
    _fork_hooks.register(stage, hook)


def around_fork(
    stage: str, before: Callable[[], object], after_in_parent: Callable[[], object]
) -> None:
    """Run ``before`` in the thread that forks, just before the fork, and
    ``after_in_parent`` in that thread just after it, in the parent, in the place of
    ``stage`` in :data:`AROUND_FORK_ORDER` (the child runs its stage of
    :data:`FORK_ORDER`). For work that must not be under way on another thread while the
    process is copied: a C library's lock copied held stays held in the child for good.
    """
    _before_fork_hooks.register(stage, before)
    _parent_fork_hooks.register(stage, after_in_parent)


def exit_budget() -> float:
    """Seconds the exit hooks may take now: the sum of their stages' budgets."""
    return _exit_hooks.budget()


# -- running the exit hooks ------------------------------------------------------------

#: One run of the exit hooks at a time (atexit, the SIGTERM helper, a finaliser).
_exit_lock = threading.Lock()
#: The threads inside :func:`run_exit_hooks` (added before they take the lock).
_exit_runners: set[threading.Thread] = set()
#: Signals that arrived while the main thread ran the exit hooks; re-sent after them.
_deferred_signals: list[int] = []
#: Set once the flush of a signal that came while the main thread was importing is over
#: (it runs in the background: see :func:`_on_sigterm`); None when there is none.
_background_over: threading.Event | None = None
_background_signal = 0


def run_exit_hooks() -> None:
    """Run the exit hooks, stage by stage (see :data:`EXIT_ORDER`); one caller at a time.

    A termination signal that interrupted them on this thread (see :func:`install_sigterm`)
    is sent again once they are done, so that it still ends the process.
    """
    me = threading.current_thread()
    _exit_runners.add(me)
    try:
        with _exit_lock:
            _exit_hooks.run()
    finally:
        _exit_runners.discard(me)
    if me is threading.main_thread():
        over = _background_over
        if over is not None:  # a signal's flush ran meanwhile: it ends the process now
            over.wait(SIGTERM_GRACE)
            _resend(_background_signal)
        if _deferred_signals:
            _resend(_deferred_signals[0])


def run_fork_hooks() -> None:
    """Run the hooks of a forked child, stage by stage (see :data:`FORK_ORDER`)."""
    global _exit_lock, _handling, _background_over
    # A lock copied held, a run or a signal of the parent's: none of them is the child's.
    _exit_lock = threading.Lock()
    _exit_runners.clear()
    _handling = False
    _deferred_signals.clear()
    _background_over = None
    if _wanted:
        with guard("watching for the end of a multiprocessing child"):
            _watch_multiprocessing()
    _fork_hooks.run()


# -- SIGTERM ---------------------------------------------------------------------------

#: Whether init_app asked for the process hooks (SIGTERM, multiprocessing children).
_wanted = False
#: A SIGTERM is being handled: a second one changes nothing.
_handling = False
_told_not_main = False


def install_sigterm() -> bool:
    """Install the SIGTERM handler (see the module's docstring) when the current handler
    is the default one and this is the main thread. True when ours is in place.

    Never replaces another handler: an application's or a server's own keeps running.
    """
    global _told_not_main
    term = getattr(signal, "SIGTERM", None)
    if term is None or os.name != "posix":
        return False
    if threading.current_thread() is not threading.main_thread():
        if not _told_not_main:
            _told_not_main = True
            logger.info(
                "flask-alerting: init_app ran outside the main thread, so no SIGTERM "
                "handler was installed: a SIGTERM ends this process without flushing "
                "alerts unless the server's or the application's own handler exits "
                "through sys.exit()"
            )
        return False
    current = signal.getsignal(term)
    if current is _on_sigterm:
        return True
    if current is not signal.SIG_DFL:
        return False
    try:
        signal.signal(term, _on_sigterm)
    except ValueError:  # not the main interpreter
        return False
    return True


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    """Flush (bounded), then end the process with the signal, as its default would."""
    global _handling
    over = _background_over
    if over is not None and over.is_set():
        _resend(_background_signal)  # the flush that ran in the background is over
    if threading.current_thread() in _exit_runners:
        # The exit hooks run on this thread (at exit, or a multiprocessing finaliser) and
        # the signal interrupted them: they finish, then send it again.
        _deferred_signals.append(signum)
        return
    if _handling:
        return  # the first one is already flushing and then ends the process
    _handling = True
    budget = exit_budget() + SIGTERM_GRACE
    if _importing(frame) and _flush_in_background(signum, budget):
        # The main thread was stopped inside the import system, whose lock it may hold:
        # the threads that deliver could not import anything (the e-mail package does,
        # lazily) until it goes on. It goes on; the process ends after the flush.
        return
    _flush(signum, budget)
    _resend(signum)


def _flush(signum: int, budget: float) -> None:
    """Run the exit hooks on a helper thread and wait for them at most ``budget`` s."""
    helper = threading.Thread(target=run_exit_hooks, name="flask-alerting-sigterm", daemon=True)
    if start_thread(helper):
        helper.join(budget)
        if helper.is_alive():
            logger.error(
                "flask-alerting: flushing alerts on signal %d took more than %.1f s; "
                "the process ends without waiting longer",
                signum,
                budget,
            )
    else:  # no thread can start (the interpreter is exiting): flush here
        with guard("flushing alerts on a signal"):
            run_exit_hooks()


#: The modules of the import system (frozen in every Python 3).
_IMPORT_SYSTEM = frozenset({"importlib._bootstrap", "importlib._bootstrap_external"})


def _importing(frame: FrameType | None) -> bool:
    """Whether the main thread, stopped at ``frame``, is inside the import system (in a
    finder, a loader, or the body of a module being imported)."""
    while frame is not None:
        if frame.f_globals.get("__name__") in _IMPORT_SYSTEM:
            return True
        frame = frame.f_back
    return False


def _flush_in_background(signum: int, budget: float) -> bool:
    """:func:`_flush` on a thread of its own, which then has the main thread end the
    process (see :func:`_end_after_flush`). False when no thread can start."""
    global _background_over, _background_signal
    over = threading.Event()
    _background_over, _background_signal = over, signum

    def flush_then_end() -> None:
        _flush(signum, budget)
        over.set()
        _end_after_flush(signum)

    thread = threading.Thread(target=flush_then_end, name="flask-alerting-sigterm-wait",
                              daemon=True)  # fmt: skip
    if start_thread(thread):
        return True
    _background_over = None
    return False


def _end_after_flush(signum: int) -> None:
    """After a flush in the background: the signal again, to the main thread, whose
    handler (this module's) then ends the process as the default action would. Should
    the main thread not take it within :data:`SIGTERM_GRACE` (it runs C code that
    signals do not interrupt, or it blocks them), the process ends here, with the status
    a shell reports for the signal."""
    with guard("ending the process after a signal"):
        signal.pthread_kill(threading.main_thread().ident or 0, signum)
    threading.Event().wait(SIGTERM_GRACE)
    os._exit(128 + signum)


def _resend(signum: int) -> None:
    """End the process with ``signum``'s default action, as without flask-alerting."""
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)
    # Still here: the kernel ignored it, as it ignores a default action sent to the
    # init process of a PID namespace (``python app.py`` as PID 1 of a container), or
    # every thread blocks it. Never swallow a termination: end with the status a shell
    # reports for it (143 for SIGTERM) rather than run on until a SIGKILL.
    os._exit(128 + signum)


# -- multiprocessing children ----------------------------------------------------------


class _Token:
    """What ``multiprocessing.util.register_after_fork`` holds (weakly) for us."""


_TOKEN = _Token()
#: The finaliser of this process (a ``multiprocessing.util.Finalize``), and its pid.
_finalizer: Any = None
_finalizer_pid = 0
_watching_pid = 0


def _watch_multiprocessing() -> None:
    """In a process that uses :mod:`multiprocessing` (looked up, never imported): have
    its children run the exit hooks before they end (see the module's docstring)."""
    global _watching_pid
    util = sys.modules.get("multiprocessing.util")
    if util is None:
        return
    if _watching_pid != os.getpid():
        _watching_pid = os.getpid()
        util.register_after_fork(_TOKEN, _finalize_here)
    _finalize_here(_TOKEN)


def _finalize_here(token: object) -> None:
    """Register the finaliser that runs the exit hooks at the end of this process, as
    :mod:`multiprocessing` ends it (once; again after a fork child's bootstrap cleared
    it)."""
    global _finalizer, _finalizer_pid
    util = sys.modules.get("multiprocessing.util")
    if util is None:
        return
    if _finalizer is not None and _finalizer_pid == os.getpid() and _finalizer.still_active():
        return
    _finalizer = util.Finalize(None, run_exit_hooks, exitpriority=MULTIPROCESSING_EXIT_PRIORITY)
    _finalizer_pid = os.getpid()


def install_process_hooks() -> None:
    """What ``init_app`` calls: the SIGTERM handler (where it may be installed) and the
    finaliser of multiprocessing children. Idempotent."""
    global _wanted
    _wanted = True
    with guard("installing the SIGTERM handler"):
        install_sigterm()
    with guard("watching for the end of a multiprocessing child"):
        _watch_multiprocessing()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(
        before=_before_fork_hooks.run,
        after_in_parent=_parent_fork_hooks.run,
        after_in_child=run_fork_hooks,
    )
atexit.register(run_exit_hooks)
