"""Alerting from a caller close to the recursion limit.

``capture_exception()``, ``alert()`` and the logging handler never raise into their
caller. But a caller a few frames below the recursion limit (a ``RecursionError``
handled where it happened, deep inside a recursive function) leaves no room for their own
calls (logging, werkzeug, formatting): they would fail with ``RecursionError``, and so
would the logging of that failure. :func:`call_with_headroom` checks for room first and,
when there is not enough, runs the work on a new thread's empty stack, in a copy of the
caller's context (Flask's app and request contexts are context variables), while the
caller waits.

Called with room for fewer than three calls (the entry point's frame, this helper's,
and a built-in call: built-in calls count against the limit too), nothing can be done,
not even logged: the work is skipped, silently, and nothing is raised.
"""

from __future__ import annotations

import _thread
import contextvars
from collections.abc import Callable
from typing import Any

#: Python frames flask-alerting's own work may need below its entry point. Measured:
#: about 25 (capture inside a request, with the logging of an internal error); the rest
#: is room for the app's logging handlers.
HEADROOM = 100


def _descend(frames: int) -> None:
    if frames > 1:
        _descend(frames - 1)


def has_headroom(frames: int = HEADROOM) -> bool:
    """Whether ``frames`` nested calls fit under the recursion limit from the caller.

    Tried, not computed: the recursion limit also counts calls from C code into Python,
    which no frame count shows. Costs about 2 µs.
    """
    try:
        _descend(frames)
    except RecursionError:
        return False
    return True


def call_with_headroom(func: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
    """``func(*args, **kwargs)``, on a fresh stack when the caller is close to the recursion
    limit (see the module's docstring), and never ``RecursionError``.

    ``func`` must report its own errors (the callers here run under
    :func:`~flask_alerting._lifecycle.guard`): on the fresh stack, what it raises is dropped.
    """
    try:
        room = has_headroom()
    except RecursionError:  # not even room to look
        room = False
    if room:
        try:
            func(*args, **kwargs)
        except RecursionError:  # deeper than HEADROOM after all: nothing could log it
            pass
        return
    # Built-in calls only from here: none of them needs a Python frame. The thread runs
    # in a copy of the caller's context (Flask's app and request contexts are context
    # variables) while the caller waits, so the request and the exception stay as they
    # are.
    context = contextvars.copy_context()
    done = _thread.allocate_lock()
    done.acquire()
    try:
        _thread.start_new_thread(_run, (context, done, func, args, kwargs))
    except RuntimeError:  # no thread can be started (resource limits, shutdown)
        return
    done.acquire()


def _run(
    context: contextvars.Context,
    done: Any,
    func: Callable[..., Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> None:
    try:
        context.run(func, *args, **kwargs)
    except BaseException:  # noqa: BLE001 - nowhere to raise it to
        pass
    finally:
        done.release()
