"""Storage URIs: each form names its store, bad ones fail clearly, passwords never show."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from flask_alerting.store import (
    InvalidStorageURI,
    MemoryStore,
    SQLiteStore,
    StoreError,
    default_namespace,
    default_sqlite_path,
    mask_uri,
    parse_storage_uri,
)
from flask_alerting.store.redis import RedisStore
from flask_alerting.store.sqlite import TIMEOUT


def test_memory() -> None:
    store = parse_storage_uri("memory://")
    assert isinstance(store, MemoryStore) and not store.shared and store.uri == "memory://"


def test_sqlite_takes_an_absolute_path(tmp_path: Path) -> None:
    store = parse_storage_uri(f"sqlite:///{tmp_path}/a b.sqlite3".replace("///", "//", 1))
    assert isinstance(store, SQLiteStore) and store.path == f"{tmp_path}/a b.sqlite3"
    same = parse_storage_uri(f"sqlite:///{str(tmp_path).lstrip('/')}/a%20b.sqlite3")
    assert isinstance(same, SQLiteStore) and same.path == store.path
    assert same.timeout == TIMEOUT and store.shared


def test_the_default_is_a_per_host_sqlite_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    path = default_sqlite_path("my app/ü")
    assert os.path.dirname(path) == str(tmp_path)
    name = os.path.basename(path)
    assert name.startswith(f"flask-alerting-{os.getuid()}-my_app_") and name.endswith(".sqlite3")
    assert default_sqlite_path("my app/ü") == path != default_sqlite_path("other")
    store = parse_storage_uri(None, app_name="my app/ü")
    assert isinstance(store, SQLiteStore) and store.path == path
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "missing"))
    assert os.path.dirname(default_sqlite_path("x")) != str(tmp_path / "missing")


@pytest.mark.parametrize(
    "uri",
    ["redis://127.0.0.1:6379/0", "redis://:pw@localhost:1/2", "rediss://u:pw@example.com:6380/0",
     "unix:///run/redis.sock?db=3", "redis://localhost"],
)
def test_redis_forms(uri: str) -> None:
    store = parse_storage_uri(uri, app_name="shop", timeout=0.2)
    assert isinstance(store, RedisStore) and store.timeout == 0.2
    assert store.prefix == f"flask-alerting:{{{default_namespace('shop')}}}:"
    assert "pw" not in repr(store) and "pw" not in store.uri


def test_a_namespace_can_be_chosen_and_is_checked() -> None:
    store = parse_storage_uri("redis://localhost/0", namespace="prod:shop")
    assert isinstance(store, RedisStore) and store.prefix == "flask-alerting:{prod:shop}:"
    with pytest.raises(InvalidStorageURI, match="namespace"):
        parse_storage_uri("redis://localhost/0", namespace="a{b}")


@pytest.mark.parametrize(
    ("uri", "needle"),
    [
        ("mysql://u:hunter2@db/x", "not a storage URI"),
        ("sqlite://relative/path.db", "three slashes"),
        ("sqlite:///", "absolute file path"),
        ("sqlite:///tmp/x.db?mode=ro", "no query"),
        ("memory://somewhere", "takes nothing"),
        ("redis://:hunter2@localhost:notaport/0", "not a Redis URI"),
        ("redis://:hunter2@localhost:6379/notadb", "not a Redis URI"),
        ("just words", "not a storage URI"),
    ],
)
def test_bad_uris_say_what_was_expected_without_the_password(uri: str, needle: str) -> None:
    with pytest.raises(InvalidStorageURI, match=needle) as info:
        parse_storage_uri(uri)
    assert "hunter2" not in str(info.value)
    assert isinstance(info.value, ValueError) and not isinstance(info.value, StoreError)


@pytest.mark.parametrize(
    ("uri", "masked"),
    [
        ("redis://:hunter2@host:1/0", "redis://:***@host:1/0"),
        ("redis://user:hunter2@host/0", "redis://user:***@host/0"),
        ("rediss://token@host", "rediss://***@host"),
        ("redis://:hun/ter@2@host:1/0", "redis://:***@host:1/0"),
        ("unix:///run/r@dis.sock?db=0&password=hunter2", "unix:///run/r@dis.sock?db=0&password=***"),
        ("unix://:hunter2@/run/redis.sock", "unix://:***@/run/redis.sock"),
        ("sqlite:///tmp/x.sqlite3", "sqlite:///tmp/x.sqlite3"),
        ("memory://", "memory://"),
        ("no scheme at all", "no scheme at all"),
    ],
)
def test_mask_uri(uri: str, masked: str) -> None:
    assert mask_uri(uri) == masked


def test_redis_without_the_redis_package_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "redis", None)  # as if it were not installed
    with pytest.raises(InvalidStorageURI, match=r"pip install flask-alerting\[redis\]") as info:
        parse_storage_uri("redis://:hunter2@localhost/0")
    assert "hunter2" not in str(info.value)
    assert isinstance(parse_storage_uri("memory://"), MemoryStore)
