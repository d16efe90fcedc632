"""AlertmanagerNotifier against a real Prometheus Alertmanager (tests/servers.py).

The server is the Debian package's binary, started once for the session on a free port of
127.0.0.1 with the docs' example configuration (examples/alertmanager/alertmanager.yml)
and no clustering. Each test uses its own app name, so the alerts of one test are told
apart from the others' by the ``app`` label. Alertmanager's state is read back through its
API; where its answer must change, it is polled with a bound (nothing can signal us).
"""

from __future__ import annotations

import os
import socket
import threading
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from flask import Flask

from flask_alerting import Alert, AlertmanagerNotifier, FlaskAlerting, alert_failed
from flask_alerting.notifiers.alertmanager import alert_name, label_name
from tests.conftest import FakeClock
from tests.forking import wait_child
from tests.servers import Alertmanager, HTTPRecorder, Reply, free_port
from tests.smtp_server import SMTPServer

HOST = socket.gethostname()


def parse_time(text: str) -> datetime:
    """Alertmanager's RFC 3339 timestamps (nanoseconds cut to microseconds)."""
    date, _, rest = text.rstrip("Z").partition(".")
    micros = (rest + "000000")[:6] if rest else "0"
    return datetime.fromisoformat(date).replace(microsecond=int(micros), tzinfo=timezone.utc)


@pytest.fixture
def shop() -> Flask:
    app = Flask(f"shop-{uuid.uuid4().hex[:10]}")
    app.config["PROPAGATE_EXCEPTIONS"] = False
    app.config["ALERTING_METRICS_ENABLED"] = False

    @app.route("/checkout/<int:cart>")
    def checkout(cart: int) -> str:
        return str(cart / 0)

    return app


class WallClock:
    """Real UTC time plus an offset that the test moves (for ``endsAt``)."""

    def __init__(self) -> None:
        self.offset = timedelta()

    def __call__(self) -> datetime:
        return datetime.now(timezone.utc) + self.offset


class Refreshes(AlertmanagerNotifier):
    """Says when a refresh is done (the delivery thread calls it; nothing else tells)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.refreshes = 0
        self.refreshed = threading.Condition()

    def refresh(self) -> None:
        super().refresh()
        with self.refreshed:
            self.refreshes += 1
            self.refreshed.notify_all()

    def wait_refreshes(self, count: int, timeout: float = 10.0) -> None:
        with self.refreshed:
            assert self.refreshed.wait_for(lambda: self.refreshes >= count, timeout)


# -- an error alert -----------------------------------------------------------------------------


def test_error_alert_is_read_back_with_its_labels(
    shop: Flask, alertmanager: Alertmanager, make_alerting: Callable[..., FlaskAlerting]
) -> None:
    shop.config["ALERTING_ALERTMANAGER_URL"] = alertmanager.url
    alerting = make_alerting(shop)
    before = datetime.now(timezone.utc) - timedelta(seconds=1)
    response = shop.test_client().get("/checkout/7?api_key=hunter2-secret&page=2")
    assert response.status_code == 500
    assert alerting.flush(10)

    alerts = alertmanager.alerts(f'app="{shop.name}"')
    assert len(alerts) == 1
    got = alerts[0]
    assert got["labels"] == {
        "alertname": "ZeroDivisionError",
        "severity": "error",
        "kind": "error",
        "app": shop.name,
        "host": HOST,
        "exception": "ZeroDivisionError",
        "endpoint": "checkout",
    }
    assert got["annotations"]["summary"] == "ZeroDivisionError: division by zero in checkout"
    description = got["annotations"]["description"]
    assert "Traceback" in description and "cart / 0" in description
    assert got["annotations"]["fingerprint"]
    assert got["status"]["state"] == "active"
    # The request's URL, scrubbed: the API key never reaches Alertmanager.
    assert got["generatorURL"].startswith("http://localhost/checkout/7?")
    assert "hunter2" not in got["generatorURL"] and "page=2" in got["generatorURL"]
    # An error has no "resolved": it stays active for event_lifetime (5 min) after it.
    starts, ends = parse_time(got["startsAt"]), parse_time(got["endsAt"])
    assert before <= starts <= datetime.now(timezone.utc)
    assert timedelta(seconds=299) <= ends - starts <= timedelta(seconds=310)


def test_cli_test_sends_through_it_and_masks_the_credentials(
    shop: Flask, alertmanager: Alertmanager, make_alerting: Callable[..., FlaskAlerting]
) -> None:
    secret = "am-pa55-w0rd"
    shop.config["ALERTING_ALERTMANAGER_URL"] = (
        f"http://flask:{secret}@127.0.0.1:{alertmanager.port}/"  # Alertmanager ignores it
    )
    make_alerting(shop)
    result = shop.test_cli_runner().invoke(args=["alerting", "test"])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [
        f"OK      alertmanager: Alertmanager API v2 at http://***@127.0.0.1:{alertmanager.port}/"
    ]
    [got] = alertmanager.alerts(f'app="{shop.name}"')
    assert got["labels"]["alertname"] == "Test alert from flask-alerting"
    assert got["labels"]["severity"] == "info"
    status = shop.test_cli_runner().invoke(args=["alerting", "status"]).output
    assert f"http://***@127.0.0.1:{alertmanager.port}/" in status
    assert secret not in result.output + status


def test_error_digest_extends_the_alert_instead_of_adding_one(
    shop: Flask, alertmanager: Alertmanager, make_alerting: Callable[..., FlaskAlerting]
) -> None:
    wall = WallClock()
    notifier = AlertmanagerNotifier(alertmanager.url, wall_clock=wall)
    alerting = make_alerting(shop, notifiers=[notifier], throttle_seconds=60)
    client = shop.test_client()
    for _ in range(3):
        assert client.get("/checkout/1").status_code == 500
    assert alerting.flush(10)
    first = alertmanager.alerts(f'app="{shop.name}"')
    assert len(first) == 1 and "occurrences" not in first[0]["annotations"]

    wall.offset = timedelta(seconds=60)
    alerting.shutdown(10)  # sends the pending digest (2 more occurrences) now
    alerts = alertmanager.alerts(f'app="{shop.name}"')
    assert len(alerts) == 1, alerts  # the same label set: one alert, updated
    assert alerts[0]["annotations"]["occurrences"] == "2"
    assert parse_time(alerts[0]["endsAt"]) - parse_time(first[0]["endsAt"]) >= timedelta(
        seconds=59
    )
    assert alerts[0]["startsAt"] == first[0]["startsAt"]


# -- a metric rule: fires, is re-sent, resolves -------------------------------------------------


def test_metric_rule_fires_is_resent_resolves_and_disappears(
    shop: Flask,
    alertmanager: Alertmanager,
    make_alerting: Callable[..., FlaskAlerting],
    clock: FakeClock,
    smtp_server: SMTPServer,
    smtp_config: dict[str, Any],
) -> None:
    """Alertmanager hears of the firing rule again every resend interval; e-mail
    (the SMTP notifier next to it) does not."""
    wall = WallClock()
    notifier = Refreshes(alertmanager.url, resend_interval=60, wall_clock=wall)
    shop.config.update(smtp_config)
    alerting = make_alerting(shop, notifiers=[notifier], clock=clock)
    depth = [0.0]
    alerting.add_rule("queue-depth", lambda: depth[0], threshold=100, for_=0)
    state = shop.extensions["alerting"]
    sampler = state.sampler
    [worker] = [w for w in state.pipeline.workers if w.notifier is notifier]
    matcher = f'app="{shop.name}"'

    depth[0] = 250
    assert [a.status for a in sampler.sample()] == ["firing"]
    assert alerting.flush(10)
    alerts = alertmanager.alerts(matcher)
    assert [a["labels"] for a in alerts] == [
        {
            "alertname": "queue-depth",
            "severity": "warning",
            "kind": "metric",
            "metric": "queue-depth",
            "app": shop.name,
            "host": HOST,
        }
    ]
    fired = alerts[0]
    assert fired["annotations"]["value"] == "250" and fired["annotations"]["threshold"] == "100"
    # Valid for four resend intervals: it expires by itself if this process dies.
    lifetime = parse_time(fired["endsAt"]) - datetime.now(timezone.utc)
    assert timedelta(seconds=200) < lifetime <= timedelta(seconds=240)
    assert notifier.pending_refresh()

    # One resend interval later (the delivery thread's clock), while the rule fires, the
    # notifier re-sends it with endsAt moved ahead; no new alert is raised for that.
    clock.advance(59)
    wall.offset = timedelta(seconds=59)
    worker.nudge()
    assert notifier.refreshes == 0  # not due yet
    clock.advance(1)
    wall.offset = timedelta(seconds=60)
    worker.nudge()
    notifier.wait_refreshes(1)
    resent = alertmanager.alerts(matcher)
    assert len(resent) == 1
    assert parse_time(resent[0]["endsAt"]) - parse_time(fired["endsAt"]) >= timedelta(
        seconds=59
    )
    assert resent[0]["startsAt"] == fired["startsAt"]
    assert state.pipeline.stats()["raised"] == 1  # the re-send is no new alert
    assert len(smtp_server.messages) == 1  # and no e-mail

    # The rule resolves: sent with endsAt, it leaves Alertmanager's alerts at once.
    depth[0] = 3
    assert [a.status for a in sampler.sample()] == ["resolved"]
    assert alerting.flush(10)
    assert alertmanager.alerts(matcher) == []
    assert not notifier.pending_refresh() and notifier.firing() == []
    # And nothing is re-sent any more, however long the process lives.
    clock.advance(3600)
    worker.nudge()
    assert alerting.flush(10)
    assert notifier.refreshes == 1
    subjects = [m["Subject"] for m in smtp_server.wait_for(2)]
    assert len(subjects) == 2 and "RESOLVED" in subjects[1]


def test_metric_alert_from_another_rule_state_keeps_its_start(
    alertmanager: Alertmanager, local_only: None
) -> None:
    """A resolved alert sent by a process that did not send the firing one (the sampling
    process changed) still resolves it: the label set is the same, the start recomputed."""
    app = f"shop-{uuid.uuid4().hex[:10]}"
    labels = {"app": app, "host": "web-3", "metric": "cpu"}
    started = datetime.now(timezone.utc) - timedelta(seconds=90)
    firing = Alert(
        title="CPU Usage has exceeded the threshold",
        kind="metric",
        labels=labels,
        value=93.0,
        threshold=80.0,
        timestamp=started + timedelta(seconds=30),
        details={"display_name": "CPU Usage", "breach_seconds": 30.0},
    )
    AlertmanagerNotifier(alertmanager.url).send(firing)
    [got] = alertmanager.alerts(f'app="{app}"')
    assert got["labels"]["alertname"] == "CPU Usage"
    assert abs(parse_time(got["startsAt"]) - started) < timedelta(milliseconds=5)

    resolved = firing.replace(
        status="resolved",
        timestamp=started + timedelta(seconds=80),
        details={"display_name": "CPU Usage", "breach_seconds": 80.0},
    )
    other_process = AlertmanagerNotifier(alertmanager.url)
    other_process.send(resolved)
    assert alertmanager.alerts(f'app="{app}"') == []


def test_forked_child_does_not_keep_its_parents_alerts_alive(
    alertmanager: Alertmanager,
) -> None:
    notifier = AlertmanagerNotifier(alertmanager.url)
    app = f"shop-{uuid.uuid4().hex[:10]}"
    notifier.send(
        Alert(
            title="Memory Usage has exceeded the threshold",
            kind="metric",
            labels={"app": app, "host": HOST, "metric": "memory"},
            details={"display_name": "Memory Usage", "breach_seconds": 0.0},
        )
    )
    assert notifier.pending_refresh()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        os._exit(0 if not notifier.pending_refresh() and notifier.firing() == [] else 1)
    assert wait_child(pid, 10) == 0
    assert notifier.pending_refresh()  # the parent still refreshes it


# -- grouping and deduplication -----------------------------------------------------------------


def test_one_group_for_many_hosts_and_one_alert_for_many_processes(
    alertmanager: Alertmanager, local_only: None
) -> None:
    """With the docs' route (group_by alertname, app), CPU Usage on three hosts is one
    group, that is one notification; the same alert from two processes of one host is
    one alert."""
    app = f"shop-{uuid.uuid4().hex[:10]}"

    def cpu(host: str) -> Alert:
        return Alert(
            title="CPU Usage has exceeded the threshold",
            kind="metric",
            labels={"app": app, "host": host, "metric": "cpu"},
            details={"display_name": "CPU Usage", "breach_seconds": 0.0},
        )

    for host in ("web-1", "web-2", "web-3"):
        AlertmanagerNotifier(alertmanager.url).send(cpu(host))
    AlertmanagerNotifier(alertmanager.url).send(cpu("web-1"))  # a second worker process

    alerts = alertmanager.alerts(f'app="{app}"')
    assert sorted(a["labels"]["host"] for a in alerts) == ["web-1", "web-2", "web-3"]
    groups = alertmanager.groups(f'app="{app}"')
    assert len(groups) == 1
    assert groups[0]["labels"] == {"alertname": "CPU Usage", "app": app}
    assert groups[0]["receiver"]["name"] == "oncall"
    assert len(groups[0]["alerts"]) == 3


def test_odd_text_is_still_accepted(alertmanager: Alertmanager, local_only: None) -> None:
    """Unicode, undecodable bytes and a raw URL that is not a valid URI never make
    Alertmanager refuse the alert."""
    app = f"shop-{uuid.uuid4().hex[:10]}"
    AlertmanagerNotifier(alertmanager.url).send(
        Alert(
            title="\u00dcberlast \u2615",
            message="undecodable \udcff byte",
            labels={"app": app, "host": HOST, "path": "/caf\u00e9 \udcfe"},
            details={"request": {"url": "http://localhost/a b?q=100%&f=[Filtered]&e=%41"}},
        )
    )
    [got] = alertmanager.alerts(f'app="{app}"')
    assert got["annotations"]["summary"] == "\u00dcberlast \u2615"
    assert got["labels"]["path"] == "/caf\u00e9 \ufffd"
    assert got["generatorURL"] == "http://localhost/a%20b?q=100%25&f=%5BFiltered%5D&e=%41"


# -- failures -----------------------------------------------------------------------------------


def test_alertmanager_refusing_an_alert_is_permanent(http_recorder: HTTPRecorder) -> None:
    http_recorder.default = Reply(400, body=b'{"message":"start time must be before end time"}')
    notifier = AlertmanagerNotifier(f"http://am:sEcReT-pw@127.0.0.1:{http_recorder.port}")
    with pytest.raises(Exception) as failure:
        notifier.send(Alert(title="x", labels={"app": "a", "host": "h"}))
    assert not notifier.is_transient(failure.value)
    text = notifier.describe_error(failure.value)
    assert "HTTP 400" in text and "start time must be before end time" in text
    assert "sEcReT" not in text and "sEcReT" not in str(failure.value)
    [request] = http_recorder.requests
    assert request.path == "/api/v2/alerts"
    assert request.headers["Authorization"].startswith("Basic ")  # urllib sends user info


def test_alertmanager_unreachable_is_transient(
    shop: Flask, make_alerting: Callable[..., FlaskAlerting], local_only: None
) -> None:
    down = AlertmanagerNotifier(f"http://127.0.0.1:{free_port()}")
    failures: list[dict[str, Any]] = []
    with alert_failed.connected_to(lambda sender, **kw: failures.append(kw), shop):
        alerting = make_alerting(shop, notifiers=[down], retry_seconds=0)
        with shop.app_context():
            alerting.alert("Stock feed stalled")
            assert alerting.flush(10)
    [failure] = failures
    assert down.is_transient(failure["exception"]) and not failure["will_retry"]
    assert "cannot reach http://127.0.0.1:" in down.describe_error(failure["exception"])


# -- pure parts ---------------------------------------------------------------------------------


def test_label_names_are_made_valid() -> None:
    assert label_name("endpoint") == "endpoint"
    assert label_name("disk-path") == "disk_path"
    assert label_name("9lives") == "_9lives"
    assert label_name("") == "_"
    assert label_name("caf\u00e9.name") == "caf__name"


def test_alertname_is_what_went_wrong() -> None:
    labels = {"app": "a", "host": "h"}
    assert alert_name(Alert(title="t", kind="error", labels={**labels, "exception": "E"})) == "E"
    assert alert_name(Alert(title="t", kind="timing", labels={**labels, "function": "f"})) == (
        "Slow f"
    )
    assert alert_name(Alert(title="t", kind="metric", labels={**labels, "metric": "m"})) == "m"
    assert alert_name(Alert(title="Disk full", labels=labels)) == "Disk full"


def test_labels_of_the_alert_never_replace_the_identity_ones() -> None:
    notifier = AlertmanagerNotifier("http://127.0.0.1:9")
    alert = Alert(
        title="t",
        severity="critical",
        labels={"app": "a", "host": "h", "severity": "low", "team-name": "ops", "empty": ""},
    )
    assert notifier.labels(alert) == {
        "alertname": "t",
        "severity": "critical",
        "kind": "custom",
        "app": "a",
        "host": "h",
        "team_name": "ops",
    }


def test_invalid_arguments_are_refused_without_showing_the_url() -> None:
    with pytest.raises(ValueError, match="http:// or https://") as bad:
        AlertmanagerNotifier("ftp://user:pw-secret@am/x")
    assert "pw-secret" not in str(bad.value)
    with pytest.raises(ValueError, match="resend_interval"):
        AlertmanagerNotifier("http://am:9093", resend_interval=0)
    notifier = AlertmanagerNotifier("https://user:pw-secret@am.example.com:9093/")
    assert notifier.describe() == "Alertmanager API v2 at https://***@am.example.com:9093/"
    assert "pw-secret" not in repr(notifier)
