"""The process around the app: :func:`guard`, thread starts, and one ordered registry of
fork and exit hooks.

flask-alerting runs threads (each app's delivery pipeline, each app's metrics sampler)
and keeps locks that its hot paths never take but its slow paths do (the timing
registry). Two moments of the process concern them all, and their order matters:

* **at interpreter exit**, the sources stop first, so that nothing is raised into a
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

Adding a SIGTERM hook (issue 13) fits here without changing a stage: SIGTERM means "exit
now", so its handler runs :func:`run_exit_hooks`, the same ordered stages as the
interpreter's exit (every exit hook is idempotent, so the :mod:`atexit` run that may
follow finds nothing left to do). The plan:

* an ``install_sigterm()`` here, called by ``init_app``, that installs the handler only
  from the main thread (:func:`signal.signal` raises ``ValueError`` elsewhere) and only
  when ``signal.getsignal(signal.SIGTERM) is signal.SIG_DFL``: an application's or a
  server's own handler (gunicorn's, waitress's) is kept and still runs, and those servers
  end through the interpreter's exit, where the exit stages run anyway;
* the handler runs :func:`run_exit_hooks` (bounded by each pipeline's
  ``ALERTING_SHUTDOWN_TIMEOUT``), then restores ``SIG_DFL`` and sends itself the signal
  again (``os.kill(os.getpid(), signal.SIGTERM)``), so that the process ends with the
  signal's usual status (``-15`` / ``143``), as it would have without flask-alerting;
* a handler installed after ours by the application replaces ours and keeps the
  interpreter's exit path, so nothing is lost there either.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

logger = logging.getLogger("flask_alerting")

#: The stages of the exit hooks, in the order they run (interpreter exit; SIGTERM later).
EXIT_ORDER: tuple[str, ...] = ("metrics", "delivery")
#: The stages of the hooks run in a forked child, in the order they run.
FORK_ORDER: tuple[str, ...] = ("delivery", "metrics", "timing")


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

    def register(self, stage: str, hook: Callable[[], object]) -> None:
        """Run ``hook`` in the place of ``stage``; one hook per stage (registering again
        replaces it).

        :raises ValueError: for a stage that is not one of :attr:`stages`.
        """
        if stage not in self.stages:
            raise ValueError(f"unknown stage {stage!r}; known: {', '.join(self.stages)}")
        self._hooks[stage] = hook

    def run(self) -> None:
        """Run the hooks, stage by stage; one that raises is logged, the next still runs."""
        for stage in self.stages:
            hook = self._hooks.get(stage)
            if hook is not None:
                with guard(f"running the {stage} hook {self.when}"):
                    hook()


_exit_hooks = Hooks(EXIT_ORDER, "at exit")
_fork_hooks = Hooks(FORK_ORDER, "after fork")


def at_exit(stage: str, hook: Callable[[], object]) -> None:
    """Run ``hook`` at interpreter exit, in the place of ``stage`` in :data:`EXIT_ORDER`.
    It must be idempotent (see the SIGTERM plan above)."""
    _exit_hooks.register(stage, hook)


def after_fork(stage: str, hook: Callable[[], object]) -> None:
    """Run ``hook`` in a forked child, in the place of ``stage`` in :data:`FORK_ORDER`."""
    _fork_hooks.register(stage, hook)


def run_exit_hooks() -> None:
    """Run the exit hooks, stage by stage (see :data:`EXIT_ORDER`)."""
    _exit_hooks.run()


def run_fork_hooks() -> None:
    """Run the hooks of a forked child, stage by stage (see :data:`FORK_ORDER`)."""
    _fork_hooks.run()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=run_fork_hooks)
atexit.register(run_exit_hooks)
