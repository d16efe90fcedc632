"""Scrubbing and bounding (pure code) and the ALERTING_SCRUB_FIELDS setting."""

from __future__ import annotations

import json
from typing import Any

import pytest
from flask import Flask

from flask_alerting import ConfigurationError, FlaskAlerting
from flask_alerting.config import load_config
from flask_alerting.scrub import (
    DEFAULT_FIELDS,
    FILTERED,
    JSON_BUDGET,
    Scrubber,
    bounded_copy,
    bounded_items,
    clean_text,
    cut,
    get_scrubber,
    normalise,
    safe_repr,
)


@pytest.mark.parametrize(
    "name",
    [
        "password",
        "PASSWORD",
        "user_password",
        "passwd",
        "pwd",
        "client_secret",
        "access_token",
        "X-Api-Key",
        "apiKey",
        "api_key",
        "ApiKey",
        "X-Auth-Token",
        "Authorization",
        "Proxy-Authorization",
        "Cookie",
        "sessionid",
        "Session-Id",
        "csrfmiddlewaretoken",
        "X-CSRFToken",
        "credentials",
        "private_key",
        "privateKey",
        "PRIVATE-KEY",
    ],
)
def test_sensitive_names_match_whatever_the_case_and_separators(name: str) -> None:
    assert Scrubber().is_sensitive(name)


@pytest.mark.parametrize("name", ["name", "page", "email", "q", "user", "X-Request-Id", "theme"])
def test_ordinary_names_do_not_match(name: str) -> None:
    assert not Scrubber().is_sensitive(name)


def test_every_default_field_is_sensitive_by_itself() -> None:
    scrubber = Scrubber()
    for field in DEFAULT_FIELDS:
        assert scrubber.is_sensitive(field)
        assert scrubber.is_sensitive(field.upper())


def test_extra_fields_add_to_the_defaults() -> None:
    scrubber = Scrubber(["iban", "Card-Number"])
    assert scrubber.is_sensitive("customer_IBAN")
    assert scrubber.is_sensitive("cardNumber")
    assert scrubber.is_sensitive("password")
    assert not Scrubber().is_sensitive("iban")


def test_verdicts_are_remembered_but_stay_correct() -> None:
    scrubber = Scrubber()
    for _ in range(3):
        assert scrubber.is_sensitive("Authorization")
        assert not scrubber.is_sensitive("page")


def test_normalise() -> None:
    assert normalise("X-Api-Key") == normalise("x_api.key") == "xapikey"


def test_scrub_filters_nested_keys_and_keeps_the_rest() -> None:
    data: dict[str, Any] = {
        "user": {"name": "bob", "credentials": {"private_key": "K", "kind": "rsa"}},
        "items": [{"id": 1, "token": "T"}, {"id": 2}],
        "password": ["a", "b"],
        "count": 3,
    }
    out = Scrubber().scrub(data)
    assert out == {
        "user": {"name": "bob", "credentials": FILTERED},
        "items": [{"id": 1, "token": FILTERED}, {"id": 2}],
        "password": FILTERED,
        "count": 3,
    }
    # A copy: the input is untouched.
    assert data["items"][0]["token"] == "T"


def test_scrub_headers_always_filters_cookie_and_authorization() -> None:
    headers = {"Cookie": "a=b", "authorization": "Basic eA==", "Accept": "text/html"}
    out = Scrubber().scrub_headers(headers)
    assert out == {"Cookie": FILTERED, "authorization": FILTERED, "Accept": "text/html"}


def test_scrub_query_keeps_the_raw_text_of_ordinary_values() -> None:
    scrubber = Scrubber()
    assert scrubber.scrub_query("") == ""
    assert (
        scrubber.scrub_query("q=a+b%20c&access_token=xyz&page=2;api%5Fkey=k&flag&token")
        == f"q=a+b%20c&access_token={FILTERED}&page=2;api%5Fkey={FILTERED}&flag&token"
    )


def test_scrub_url_filters_query_userinfo_fragment_and_path_secrets() -> None:
    scrubber = Scrubber()
    url = "https://bob:hunter2@example.com/reset/abc%20def/x?token=t1&q=1#access_token=t2"
    out = scrubber.scrub_url(url, secrets=["abc def", "x"])
    assert out == (
        f"https://bob:{FILTERED}@example.com/reset/{FILTERED}/x?token={FILTERED}&q=1#{FILTERED}"
    )
    # Too short to be replaced safely ("x" would blank out unrelated characters).
    assert "/x?" in out
    assert "hunter2" not in out and "t1" not in out and "t2" not in out


def test_scrub_url_without_scheme() -> None:
    assert Scrubber().scrub_url("/a?password=p") == f"/a?password={FILTERED}"


def test_cut() -> None:
    assert cut("abc", 5) == "abc"
    assert cut("abcdefgh", 3) == "abc\u2026 [5 more characters]"


def test_bounded_items_collects_repeats_and_bounds_names_and_values() -> None:
    pairs = [("a", "1"), ("a", "2"), ("b", "x" * 5000)]
    out = bounded_items(pairs)
    assert out["a"] == ["1", "2"]
    assert out["b"].startswith("x" * 100) and out["b"].endswith("[2952 more characters]")
    many = bounded_items((f"k{i}", str(i)) for i in range(150))
    assert len(many) == 101
    assert many["[truncated]"] == "50 more"


def test_bounded_copy_keeps_small_values_whole() -> None:
    data: dict[str, Any] = {"a": [1, 2.5, None, True], "b": {"c": "d"}}
    copy, truncated = bounded_copy(data)
    assert copy == data and not truncated
    copy["b"]["c"] = "changed"
    assert data["b"]["c"] == "d"


def test_bounded_copy_cuts_large_values_near_the_budget() -> None:
    data = {"rows": [{"id": i, "name": f"row {i}" * 10} for i in range(2000)], "end": 1}
    assert len(json.dumps(data)) > 10 * JSON_BUDGET
    copy, truncated = bounded_copy(data)
    assert truncated
    size = len(json.dumps(copy))
    assert JSON_BUDGET * 0.8 < size < JSON_BUDGET * 1.3
    assert copy["rows"][-1].startswith("[truncated]")
    long_string, truncated = bounded_copy("x" * 50_000)
    assert truncated and len(long_string) < JSON_BUDGET + 100


def test_bounded_copy_turns_other_objects_into_text_and_stops_deep_nesting() -> None:
    deep: Any = "leaf"
    for _ in range(50):
        deep = [deep]
    copy, truncated = bounded_copy({"obj": object(), "deep": deep})
    assert copy["obj"].startswith("<object object")
    assert truncated
    assert "leaf" not in json.dumps(copy)


class _Unprintable:
    def __repr__(self) -> str:
        raise LookupError("detached")

    __str__ = __repr__


class _Tagged(str):
    def __str__(self) -> str:
        raise LookupError("never called")


def test_bounded_copy_never_raises_on_objects_whose_repr_or_str_fail() -> None:
    value = {"obj": _Unprintable(), _Unprintable(): 1, "list": [_Unprintable(), "ok"]}
    copy, truncated = bounded_copy({**value, "tag": _Tagged("sku-1")})
    assert copy == {
        "obj": "[repr() failed: LookupError]",
        "[repr() failed: LookupError]": 1,
        "list": ["[repr() failed: LookupError]", "ok"],
        "tag": "sku-1",
    }
    assert type(copy["tag"]) is str and not truncated
    assert safe_repr(_Unprintable()) == "[repr() failed: LookupError]"
    assert safe_repr([1, "a"]) == "[1, 'a']"


def test_clean_text_makes_lone_surrogates_encodable() -> None:
    text = "caf\udce9 ok \u00e9\u6f22"
    cleaned = clean_text(text)
    cleaned.encode("utf-8")
    assert cleaned == "caf\\udce9 ok \u00e9\u6f22"
    assert clean_text("plain") == "plain"


def test_get_scrubber_is_shared_per_field_set() -> None:
    assert get_scrubber(("a",)) is get_scrubber(("a",))
    assert get_scrubber(("a",)) is not get_scrubber(())


# -- ALERTING_SCRUB_FIELDS ------------------------------------------------------------------


def _load(value: Any) -> Any:
    return load_config(
        {"ALERTING_SCRUB_FIELDS": value}, {}, app_name="t", testing=True
    ).scrub_fields


def test_scrub_fields_default_is_empty() -> None:
    assert load_config({}, {}, app_name="t", testing=True).scrub_fields == ()


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("iban, card_number", ("card_number", "iban")),
        (["iban", "iban", "ssn"], ("iban", "ssn")),
        (("ssn",), ("ssn",)),
        (None, ()),
        ("", ()),
    ],
)
def test_scrub_fields_accepts_lists_and_comma_separated_strings(
    value: Any, expected: tuple[str, ...]
) -> None:
    assert _load(value) == expected


@pytest.mark.parametrize("value", [42, ["ok", 3], {"a": 1}, [""]])
def test_scrub_fields_rejects_other_values_naming_the_key(value: Any) -> None:
    with pytest.raises(ConfigurationError, match="ALERTING_SCRUB_FIELDS"):
        _load(value)


def test_scrub_fields_constructor_option_wins(app: Flask, make_alerting: Any) -> None:
    app.config["ALERTING_SCRUB_FIELDS"] = "iban"
    ext: FlaskAlerting = make_alerting(app, scrub_fields=["ssn"])
    assert app.extensions["alerting"].config.scrub_fields == ("ssn",)
    assert ext is not None
