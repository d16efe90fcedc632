"""The lifecycle registry: fork and exit hooks run in an explicit order of stages.

The process-level behaviour (the sampler stops before the pipelines close at exit, a
forked child starts over, SIGTERM and multiprocessing children) is tested with real
processes in test_sampler.py, test_worker.py and test_process_end.py; here, the
registry's own rules and where the SIGTERM handler is installed.
"""

from __future__ import annotations

import gc
import logging
import os
import signal
import threading
from collections.abc import Callable, Iterator
from types import FrameType
from typing import Any

import pytest
from flask import Flask

from flask_alerting import FlaskAlerting, MemoryNotifier, _lifecycle
from flask_alerting._lifecycle import Hooks


def test_hooks_run_in_the_order_of_their_stages_not_of_their_registration() -> None:
    ran: list[str] = []
    hooks = Hooks(("samplers", "pipelines", "timing"), "in a test")
    hooks.register("timing", lambda: ran.append("timing"))
    hooks.register("pipelines", lambda: ran.append("pipelines"))
    hooks.register("samplers", lambda: ran.append("samplers"))
    hooks.run()
    assert ran == ["samplers", "pipelines", "timing"]
    hooks.register("pipelines", lambda: ran.append("pipelines again"))  # replaces
    ran.clear()
    hooks.run()
    assert ran == ["samplers", "pipelines again", "timing"]


def test_a_failing_hook_is_logged_and_the_next_one_still_runs(
    caplog: pytest.LogCaptureFixture,
) -> None:
    ran: list[str] = []
    hooks = Hooks(("first", "second"), "at exit")

    def broken() -> None:
        raise RuntimeError("bug in a hook")

    hooks.register("first", broken)
    hooks.register("second", lambda: ran.append("second"))
    hooks.run()
    assert ran == ["second"]
    [record] = [r for r in caplog.records if "first hook at exit" in r.getMessage()]
    assert record.exc_info is not None and "bug in a hook" in str(record.exc_info[1])


def test_an_unknown_stage_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown stage 'signals'; known: metrics, delivery"):
        _lifecycle.at_exit("signals", lambda: None)
    with pytest.raises(ValueError, match="unknown stage 'sampler'"):
        _lifecycle.after_fork("sampler", lambda: None)


def test_every_stage_has_its_hook_in_the_documented_order() -> None:
    """The modules registered their hooks (importing flask_alerting is enough). At exit
    the sources stop before the pipelines flush and close; in a forked child the store
    takes its own locks, then the pipelines start over before the samplers restart and
    raise into them. Around a fork, the store waits for the operations under way."""
    import flask_alerting  # noqa: F401

    exit_hooks = _lifecycle._exit_hooks
    fork_hooks = _lifecycle._fork_hooks
    assert [s for s in exit_hooks.stages if s in exit_hooks._hooks] == ["metrics", "delivery"]
    assert [s for s in fork_hooks.stages if s in fork_hooks._hooks] == [
        "store",
        "delivery",
        "metrics",
        "timing",
    ]
    for around in (_lifecycle._before_fork_hooks, _lifecycle._parent_fork_hooks):
        assert [s for s in around.stages if s in around._hooks] == ["store"]


# -- the SIGTERM handler: where it is installed, and where not ------------------------------

needs_posix = pytest.mark.skipif(os.name != "posix", reason="POSIX signals")


@pytest.fixture
def sigterm() -> Iterator[None]:
    """The test process's SIGTERM handler is set to the default, and restored after."""
    before = signal.getsignal(signal.SIGTERM)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    yield
    signal.signal(signal.SIGTERM, before)


def own_handler(signum: int, frame: FrameType | None) -> None:  # pragma: no cover
    raise SystemExit(0)


@needs_posix
def test_init_app_installs_the_handler_where_sigterm_has_the_default_one(
    sigterm: None, make_alerting: Callable[..., FlaskAlerting], app: Flask
) -> None:
    make_alerting(app, notifiers=[MemoryNotifier()])
    assert signal.getsignal(signal.SIGTERM) is _lifecycle._on_sigterm
    assert _lifecycle.install_sigterm() is True  # idempotent


@needs_posix
@pytest.mark.parametrize("existing", [own_handler, signal.SIG_IGN], ids=["own", "SIG_IGN"])
def test_an_existing_sigterm_handler_is_never_replaced(
    sigterm: None, make_alerting: Callable[..., FlaskAlerting], app: Flask, existing: Any
) -> None:
    signal.signal(signal.SIGTERM, existing)
    make_alerting(app, notifiers=[MemoryNotifier()])
    assert signal.getsignal(signal.SIGTERM) is existing


@needs_posix
def test_no_handler_is_installed_from_another_thread(
    sigterm: None,
    make_alerting: Callable[..., FlaskAlerting],
    app: Flask,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    caplog.set_level(logging.INFO, logger="flask_alerting")
    monkeypatch.setattr(_lifecycle, "_told_not_main", False)  # said once per process
    errors: list[BaseException] = []

    def init() -> None:
        try:
            make_alerting(app, notifiers=[MemoryNotifier()])
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    thread = threading.Thread(target=init)
    thread.start()
    thread.join(30)
    assert errors == []
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
    assert "init_app ran outside the main thread" in caplog.text


@needs_posix
def test_a_disabled_app_installs_nothing(
    sigterm: None, make_alerting: Callable[..., FlaskAlerting], app: Flask
) -> None:
    make_alerting(app, notifiers=[MemoryNotifier()], enabled=False)
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL


def test_the_exit_budget_is_the_open_pipelines_shutdown_timeouts(
    make_alerting: Callable[..., FlaskAlerting], app: Flask
) -> None:
    # Apps of earlier tests that the collector frees meanwhile would close their
    # pipelines and change the sum: not during this test.
    gc.collect()
    gc.disable()
    try:
        before = _lifecycle.exit_budget()
        alerting = make_alerting(app, notifiers=[MemoryNotifier()], shutdown_timeout=7.0)
        # 7 s, and the short floor of its joins (dispatch thread and one notifier).
        assert _lifecycle.exit_budget() == pytest.approx(before + 7.0 + 0.1)
        alerting.shutdown(timeout=2.0)
        assert _lifecycle.exit_budget() == pytest.approx(before)
    finally:
        gc.enable()


def test_a_failing_budget_is_logged_and_counts_nothing(
    caplog: pytest.LogCaptureFixture,
) -> None:
    hooks = Hooks(("first", "second"), "at exit")

    def broken() -> float:
        raise RuntimeError("bug in a budget")

    hooks.register("first", lambda: None, broken)
    hooks.register("second", lambda: None, lambda: 2.5)
    assert hooks.budget() == 2.5
    assert "reckoning the time of the first hook at exit" in caplog.text
