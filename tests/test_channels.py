"""Channels beyond e-mail from configuration, and the two general worker hooks they use:
a minimum retry delay asked by the failure (``retry_after``) and idle-time ``refresh``."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from flask import Flask

from flask_alerting import (
    Alert,
    AlertmanagerNotifier,
    AppriseNotifier,
    ConfigurationError,
    ConfigVars,
    FlaskAlerting,
    LogNotifier,
    MemoryNotifier,
    Notifier,
    RetryPolicy,
    SMTPNotifier,
    TransientError,
    WebhookNotifier,
)
from flask_alerting.config import load_config
from flask_alerting.delivery import NotifierWorker
from tests.conftest import FakeClock

SECRET = "pw-5ecret-9931"

# -- configuration ------------------------------------------------------------------------------


def test_each_key_builds_its_notifier_next_to_smtp(
    app: Flask, smtp_config: dict[str, Any], make_alerting: Callable[..., FlaskAlerting]
) -> None:
    memory = MemoryNotifier()
    app.config.update(
        smtp_config,
        ALERTING_ALERTMANAGER_URL="http://127.0.0.1:9093",
        ALERTING_WEBHOOK_URL="https://hooks.example.com/in",
        ALERTING_WEBHOOK_FORMAT="Slack",
        ALERTING_APPRISE_URLS="json://127.0.0.1/a, json://127.0.0.1/b",
    )
    make_alerting(app, notifiers=[memory])
    notifiers = app.extensions["alerting"].notifiers
    assert [type(n) for n in notifiers] == [
        SMTPNotifier,
        AlertmanagerNotifier,
        WebhookNotifier,
        AppriseNotifier,
        MemoryNotifier,
    ]
    assert notifiers[2].format == "slack"
    assert notifiers[3].describe() == "Apprise: JSON (json://***), JSON (json://***)"


@pytest.mark.parametrize(
    "key", [ConfigVars.ALERTMANAGER_URL, ConfigVars.WEBHOOK_URL, ConfigVars.APPRISE_URLS]
)
def test_a_channel_alone_replaces_the_log_fallback(
    app: Flask, make_alerting: Callable[..., FlaskAlerting], key: str
) -> None:
    app.config[key] = "json://127.0.0.1/x" if key == ConfigVars.APPRISE_URLS else "http://h/x"
    make_alerting(app)
    [notifier] = app.extensions["alerting"].notifiers
    assert not isinstance(notifier, LogNotifier)


def test_without_any_channel_alerts_are_logged(
    app: Flask, make_alerting: Callable[..., FlaskAlerting]
) -> None:
    app.config.update(ALERTING_APPRISE_URLS=[], ALERTING_WEBHOOK_FORMAT="slack")
    make_alerting(app)
    [notifier] = app.extensions["alerting"].notifiers
    assert isinstance(notifier, LogNotifier)


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        (ConfigVars.ALERTMANAGER_URL, f"ftp://am:{SECRET}@host/x", "an http:// or https:// URL"),
        (ConfigVars.ALERTMANAGER_URL, "http://", "an http:// or https:// URL"),
        (ConfigVars.ALERTMANAGER_URL, "http://host:99999", "an http:// or https:// URL"),
        (ConfigVars.WEBHOOK_URL, f"hooks.example.com/{SECRET}", "an http:// or https:// URL"),
        (ConfigVars.WEBHOOK_URL, 42, "an http:// or https:// URL"),
        (ConfigVars.WEBHOOK_FORMAT, "xml", "'json' or 'slack'"),
        (ConfigVars.APPRISE_URLS, 42, "a list of URLs or a string"),
        (ConfigVars.APPRISE_URLS, ["json://h/x", 3], "a list of URLs or a string"),
        (ConfigVars.APPRISE_URLS, f"slack-{SECRET}", "URLs like slack://"),
    ],
)
def test_invalid_values_name_the_key_and_hide_secrets(key: str, value: Any, expected: str) -> None:
    with pytest.raises(ConfigurationError) as error:
        load_config({key: value}, {}, app_name="shop", testing=True)
    assert error.value.key == key and expected in str(error.value)
    assert SECRET not in str(error.value)


def test_config_repr_and_status_values_hide_the_urls() -> None:
    config = load_config(
        {
            ConfigVars.ALERTMANAGER_URL: f"https://am:{SECRET}@am.example.com",
            ConfigVars.WEBHOOK_URL: f"https://hooks.example.com/services/{SECRET}",
            ConfigVars.APPRISE_URLS: f"slack://{SECRET}/B0/C0",
        },
        {},
        app_name="shop",
        testing=True,
    )
    assert SECRET not in repr(config)
    public = config.as_public_dict()
    assert public[ConfigVars.ALERTMANAGER_URL] == "https://***@am.example.com"
    assert public[ConfigVars.WEBHOOK_URL] == "https://hooks.example.com/***"
    assert public[ConfigVars.APPRISE_URLS] == ("slack://***",)
    assert public[ConfigVars.WEBHOOK_FORMAT] == "json"
    assert SECRET not in repr(public)


def test_cli_status_lists_the_channels_masked(
    app: Flask, make_alerting: Callable[..., FlaskAlerting]
) -> None:
    app.config.update(
        ALERTING_ALERTMANAGER_URL=f"https://am:{SECRET}@am.example.com:9093",
        ALERTING_WEBHOOK_URL=f"https://hooks.example.com/services/{SECRET}",
    )
    make_alerting(app)
    output = app.test_cli_runner().invoke(args=["alerting", "status"]).output
    notifiers = output[output.index("Notifiers:") :].splitlines()[1:3]
    assert notifiers == [
        "  alertmanager  Alertmanager API v2 at https://***@am.example.com:9093",
        "  webhook       json POST to https://hooks.example.com/***",
    ]
    assert SECRET not in output


# -- the worker: a minimum delay asked by the failure ----------------------------------------


class Scripted(Notifier):
    name = "scripted"

    def __init__(self, *failures: BaseException) -> None:
        self.failures = list(failures)
        self.sent: list[Alert] = []

    def send(self, alert: Alert) -> None:
        if self.failures:
            raise self.failures.pop(0)
        self.sent.append(alert)


class RateLimited(OSError):
    """Any exception may carry ``retry_after``, not only TransientError."""

    retry_after = 45


@pytest.fixture
def make_worker(clock: FakeClock) -> Iterator[Callable[..., tuple[NotifierWorker, list[float]]]]:
    made: list[NotifierWorker] = []
    sender = Flask("channels-test")

    def make(notifier: Notifier, **retry: Any) -> tuple[NotifierWorker, list[float]]:
        waits: list[float] = []

        def wait(seconds: float) -> None:
            waits.append(seconds)
            clock.advance(seconds)

        worker = NotifierWorker(
            notifier,
            sender=sender,
            queue_size=10,
            retry=RetryPolicy(**retry),
            clock=clock,
            wait=wait,
            thread_name="flask-alerting-test-channels",
        )
        made.append(worker)
        return worker, waits

    yield make
    for worker in made:
        worker.stop(5.0)


def test_retry_after_is_a_minimum_delay(
    make_worker: Callable[..., tuple[NotifierWorker, list[float]]],
) -> None:
    notifier = Scripted(
        TransientError("busy", retry_after=10),
        RateLimited("slow down"),
        TransientError("busy", retry_after=0.5),  # less than the backoff (4 s)
        TransientError("no hint"),
    )
    worker, waits = make_worker(notifier)
    assert worker.put(Alert(title="t"))
    assert worker.wait_idle(10)
    assert waits == [10.0, 45.0, 4.0, 8.0]
    assert len(notifier.sent) == 1
    assert TransientError("x").retry_after is None


# -- the worker: refresh while idle ---------------------------------------------------------------


class Standing(Notifier):
    """Has something to refresh once an alert was delivered; records refreshes."""

    name = "standing"
    refresh_interval = 30.0

    def __init__(self, fail: int = 0) -> None:
        self.delivered: list[Alert] = []
        self.fail = fail
        self.calls = 0
        self.cond = threading.Condition()

    def send(self, alert: Alert) -> None:
        self.delivered.append(alert)

    def pending_refresh(self) -> bool:
        return bool(self.delivered)

    def refresh(self) -> None:
        with self.cond:
            self.calls += 1
            self.cond.notify_all()
        if self.calls <= self.fail:
            raise TransientError(f"refresh failed ({self.calls})")

    def wait_calls(self, count: int) -> None:
        with self.cond:
            assert self.cond.wait_for(lambda: self.calls >= count, 10)


def test_refresh_runs_every_interval_while_pending(
    make_worker: Callable[..., tuple[NotifierWorker, list[float]]],
    clock: FakeClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    notifier = Standing(fail=2)
    worker, _ = make_worker(notifier)
    assert worker.put(Alert(title="t"))
    assert worker.wait_idle(10)
    with caplog.at_level(logging.WARNING, logger="flask_alerting"):
        for count in (1, 2, 3):
            clock.advance(30)
            worker.nudge()
            notifier.wait_calls(count)
        assert worker.wait_idle(10)
    # Failures are logged once, and once more when it works again.
    messages = [r.getMessage() for r in caplog.records]
    assert messages == [
        "flask-alerting: standing could not refresh what it delivered: TransientError: "
        "refresh failed (1) (tried again every 30 s)",
        "flask-alerting: standing refreshes again",
    ]
    assert worker.refreshed == 1 and len(notifier.delivered) == 1


def test_no_refresh_before_its_time(
    make_worker: Callable[..., tuple[NotifierWorker, list[float]]],
    clock: FakeClock,
) -> None:
    notifier = Standing()
    worker, _ = make_worker(notifier)
    assert worker.put(Alert(title="t")) and worker.wait_idle(10)
    clock.advance(29)
    worker.nudge()
    # Proof the thread went round its loop since: a new alert, delivered.
    assert worker.put(Alert(title="u")) and worker.wait_idle(10)
    assert notifier.calls == 0 and worker.refreshed == 0


def test_no_refresh_without_anything_pending(
    make_worker: Callable[..., tuple[NotifierWorker, list[float]]],
    clock: FakeClock,
) -> None:
    class Nothing(Standing):
        def pending_refresh(self) -> bool:
            return False

    notifier = Nothing()
    worker, _ = make_worker(notifier)
    assert worker.put(Alert(title="t")) and worker.wait_idle(10)
    clock.advance(1000)
    worker.nudge()
    assert worker.put(Alert(title="u")) and worker.wait_idle(10)
    assert notifier.calls == 0 and worker.refreshed == 0
