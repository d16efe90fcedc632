"""The lifecycle registry: fork and exit hooks run in an explicit order of stages.

The process-level behaviour (the sampler stops before the pipelines close at exit, a
forked child starts over) is tested with real processes in test_sampler.py and
test_worker.py; here, the registry's own rules.
"""

from __future__ import annotations

import pytest

from flask_alerting import _lifecycle
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
    the sources stop before the pipelines flush and close; in a forked child the
    pipelines start over before the samplers restart and raise into them."""
    import flask_alerting  # noqa: F401

    exit_hooks = _lifecycle._exit_hooks
    fork_hooks = _lifecycle._fork_hooks
    assert [s for s in exit_hooks.stages if s in exit_hooks._hooks] == ["metrics", "delivery"]
    assert [s for s in fork_hooks.stages if s in fork_hooks._hooks] == [
        "delivery",
        "metrics",
        "timing",
    ]
