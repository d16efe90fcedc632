"""The JSON codec of alerts: every field round-trips; details become plain JSON; bounded."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Mapping
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from flask import Flask, request

from flask_alerting.alert import Alert
from flask_alerting.capture import RequestDetails, snapshot_request
from flask_alerting.scrub import Scrubber
from flask_alerting.store import CodecError, StoreError, decode_alert, encode_alert
from flask_alerting.store.codec import MAX_ITEMS, MAX_STRING

T0 = datetime(2026, 5, 1, 12, 30, 15, 123456, tzinfo=timezone.utc)


def full_alert(**changes: Any) -> Alert:
    fields: dict[str, Any] = dict(
        title="ZeroDivisionError: division by zero",
        message="line one\nline two \u00e9\u4e2d",
        kind="timing",
        severity="critical",
        labels={"app": "shop", "endpoint": "cart.pay"},
        fingerprint="abc123",
        status="resolved",
        occurrences=17,
        value=2.5,
        threshold=1.0,
        timestamp=T0,
        first_seen=T0 - timedelta(minutes=3),
        last_seen=T0 - timedelta(seconds=1),
        details={"request": {"path": "/pay", "args": [1, "two", None, True, 0.5]}, "n": 3},
        traceback="Traceback (most recent call last):\n  ...\nZeroDivisionError",
        dropped=4,
    )
    fields.update(changes)
    return Alert(**fields)


def test_every_field_round_trips() -> None:
    alert = full_alert()
    assert decode_alert(encode_alert(alert)) == alert


def test_defaults_and_empty_fields_round_trip() -> None:
    alert = Alert(title="x", timestamp=T0)
    assert decode_alert(encode_alert(alert)) == alert


def test_other_time_zones_keep_their_instant() -> None:
    paris = timezone(timedelta(hours=2))
    alert = full_alert(timestamp=T0.astimezone(paris))
    decoded = decode_alert(encode_alert(alert))
    assert decoded.timestamp == T0 and decoded.timestamp.utcoffset() == timedelta(hours=2)


class Lazy(Mapping[str, Any]):
    """A mapping that renders on first use, like the request section of error alerts."""

    def __init__(self) -> None:
        self.rendered = 0

    def _data(self) -> dict[str, Any]:
        self.rendered += 1
        return {"path": "/x", "when": T0, "tags": {"b", "a"}, "raw": b"\xff\x00ok"}

    def __getitem__(self, key: str) -> Any:
        return self._data()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data())

    def __len__(self) -> int:
        return len(self._data())


def test_details_are_rendered_to_plain_json() -> None:
    alert = full_alert(
        details={"request": Lazy(), "nan": math.nan, "inf": -math.inf, "obj": object,
                 "tuple": (1, 2), 3: "int key"}
    )
    data = json.loads(encode_alert(alert))["details"]
    assert data["request"]["path"] == "/x" and data["request"]["when"] == T0.isoformat()
    assert sorted(data["request"]["tags"]) == ["a", "b"]
    assert data["request"]["raw"] == "\\xff\x00ok"
    assert (data["nan"], data["inf"], data["tuple"], data["3"]) == ("nan", "-inf", [1, 2],
                                                                    "int key")
    assert data["obj"] == str(object)
    assert isinstance(decode_alert(encode_alert(alert)).details["request"], dict)


def test_the_request_details_of_error_alerts_are_rendered_scrubbed() -> None:
    app = Flask("codec")
    with app.test_request_context(
        "/login?password=hunter2&x=1", method="POST",
        headers={"Authorization": "Bearer secret-token"},
    ):
        details = RequestDetails(snapshot_request(request), Scrubber())
    text = encode_alert(full_alert(details={"request": details}))
    assert "hunter2" not in text and "secret-token" not in text
    request_json = json.loads(text)["details"]["request"]
    assert request_json["method"] == "POST" and "/login" in request_json["url"]
    assert request_json == json.loads(json.dumps(dict(details)))


def test_a_mapping_that_cannot_render_is_said_so() -> None:
    class Broken(Lazy):
        def _data(self) -> dict[str, Any]:
            raise RuntimeError("no")

    data = json.loads(encode_alert(full_alert(details={"request": Broken()})))["details"]
    assert "could not be rendered" in data["request"]["unavailable"]


def test_details_are_bounded_and_every_cut_is_marked() -> None:
    deep: dict[str, Any] = {}
    node = deep
    for _ in range(20):
        node["next"] = {}
        node = node["next"]
    details = {"long": "x" * (MAX_STRING + 10), "many": list(range(MAX_ITEMS + 5)), "deep": deep}
    data = json.loads(encode_alert(full_alert(details=details)))["details"]
    assert data["long"].startswith("x" * MAX_STRING) and "10 characters cut" in data["long"]
    assert len(data["many"]) == MAX_ITEMS + 1 and "5 more items cut" in data["many"][-1]
    depth, node = 0, data["deep"]
    while isinstance(node, dict):
        node, depth = node["next"], depth + 1
    assert depth < 20 and isinstance(node, str)


def test_a_huge_alert_is_cut_to_the_bound_keeping_the_end_of_its_traceback() -> None:
    traceback = "Traceback (most recent call last):\n" + "  frame\n" * 50_000 + "KeyError: 'k'"
    alert = full_alert(traceback=traceback, message="m" * 100_000)
    text = encode_alert(alert, max_bytes=16 * 1024)
    assert len(text.encode("utf-8")) <= 16 * 1024
    decoded = decode_alert(text)
    assert decoded.traceback is not None and decoded.traceback.endswith("KeyError: 'k'")
    assert decoded.traceback.startswith("Traceback") and "characters cut" in decoded.traceback
    assert "characters cut" in decoded.message
    assert decoded.title == alert.title and decoded.labels == alert.labels


def test_an_alert_that_cannot_fit_is_a_store_error() -> None:
    with pytest.raises(StoreError):
        encode_alert(full_alert(title="t" * 150), max_bytes=100)


@pytest.mark.parametrize(
    "text",
    ["", "[]", "{}", '{"v": 2, "title": "x"}', '{"v": 1}',
     '{"v": 1, "title": "x", "timestamp": 5}', '{"v": 1, "title": "x", "kind": "nope",'
     ' "timestamp": "2026-01-01T00:00:00+00:00"}', "{not json"],
)
def test_anything_else_is_a_codec_error(text: str) -> None:
    with pytest.raises(CodecError):
        decode_alert(text)
