"""One exception-to-text helper for logs, the CLI, notifiers and metric rules."""

from __future__ import annotations

from collections.abc import Callable

from flask import Flask

from flask_alerting import FlaskAlerting, MemoryNotifier
from flask_alerting._text import describe_exception, exception_text


class Unprintable(Exception):
    def __str__(self) -> str:
        raise RuntimeError("no str() for you")


def test_describe_exception_is_one_line_with_the_class_name() -> None:
    assert describe_exception(KeyError("k")) == "KeyError: 'k'"
    assert describe_exception(ValueError("first line\n  second\tline ")) == (
        "ValueError: first line second line"
    )
    assert describe_exception(TimeoutError()) == "TimeoutError"
    assert describe_exception(ValueError("  \n ")) == "ValueError"


def test_an_exception_whose_str_raises_is_described_as_traceback_does() -> None:
    assert exception_text(Unprintable()) == "<exception str() failed>"
    assert describe_exception(Unprintable()) == "Unprintable: <exception str() failed>"
    assert MemoryNotifier().describe_error(Unprintable()) == (
        "Unprintable: <exception str() failed>"
    )


def test_a_probe_error_is_one_line_and_never_breaks_check(
    app: Flask, make_alerting: Callable[..., FlaskAlerting]
) -> None:
    app.config.update(ALERTING_CPU_THRESHOLD=None, ALERTING_MEMORY_THRESHOLD=None)
    alerting = make_alerting(app, notifiers=[MemoryNotifier()])

    def multi_line() -> float:
        raise ConnectionError("refused\nby 127.0.0.1:6379")

    def unprintable() -> float:
        raise Unprintable()

    alerting.add_rule("multi-line", multi_line, threshold=1)
    alerting.add_rule("unprintable", unprintable, threshold=1)
    errors = {result.name: result.error for result in alerting.check(app)}
    assert errors == {
        "multi-line": "ConnectionError: refused by 127.0.0.1:6379",
        "unprintable": "Unprintable: <exception str() failed>",
    }
