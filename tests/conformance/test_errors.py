"""The error tree, and errors raised by storage trouble."""

from __future__ import annotations

import os
import sqlite3
import threading
import time

import pytest

import botwire
from botwire import (
    BotWireError,
    ConfigurationError,
    InvalidInput,
    InvalidKey,
    NotFound,
    QuotaExceeded,
    StorageUnavailable,
    UnsupportedValue,
    ValueTooLarge,
    VersionConflict,
)

HIERARCHY = [
    (InvalidInput, (BotWireError, ValueError)),
    (InvalidKey, (InvalidInput, BotWireError, ValueError)),
    (ValueTooLarge, (InvalidInput, BotWireError, ValueError)),
    (UnsupportedValue, (BotWireError, TypeError)),
    (NotFound, (BotWireError, KeyError)),
    (VersionConflict, (BotWireError,)),
    (QuotaExceeded, (BotWireError,)),
    (StorageUnavailable, (BotWireError,)),
    (ConfigurationError, (BotWireError,)),
    (BotWireError, (Exception,)),
]


@pytest.mark.parametrize("cls, parents", HIERARCHY, ids=[c.__name__ for c, _ in HIERARCHY])
def test_hierarchy(cls, parents):
    for parent in parents:
        assert issubclass(cls, parent), f"{cls.__name__} should subclass {parent.__name__}"


@pytest.mark.parametrize(
    "cls, not_parents",
    [
        (InvalidInput, (TypeError, KeyError)),
        (UnsupportedValue, (ValueError, KeyError)),
        (NotFound, (ValueError, TypeError)),
        (VersionConflict, (ValueError, TypeError, KeyError)),
        (StorageUnavailable, (InvalidInput, UnsupportedValue)),
        (ConfigurationError, (InvalidInput, StorageUnavailable)),
        (ValueTooLarge, (InvalidKey,)),
        (InvalidKey, (ValueTooLarge,)),
    ],
    ids=lambda v: v.__name__ if isinstance(v, type) else None,
)
def test_hierarchy_is_not_wider_than_specified(cls, not_parents):
    for other in not_parents:
        assert not issubclass(cls, other), f"{cls.__name__} should not subclass {other.__name__}"


def test_version_conflict_carries_current_version(memory):
    memory.set("k", 1)
    current = memory.set("k", 2)
    with pytest.raises(VersionConflict) as err:
        memory.set("k", 3, if_version=current - 1 if current > 1 else current + 1)
    assert err.value.current_version == current
    assert type(err.value.current_version) is int


def test_quota_exceeded_retry_after_attribute():
    err = QuotaExceeded("slow down", retry_after=1.5)
    assert err.retry_after == 1.5
    assert QuotaExceeded("no hint").retry_after is None


def test_value_errors_caught_as_builtins(memory):
    with pytest.raises(ValueError):
        memory.set("", 1)
    with pytest.raises(ValueError):
        memory.set("k", float("nan"))
    with pytest.raises(TypeError):
        memory.set("k", {1, 2})
    with pytest.raises(KeyError):
        memory["missing"]
    with pytest.raises(BotWireError):
        memory.set("k", 1, ttl=-1)


# --- storage trouble ---------------------------------------------------------------------------


def test_sqlite_waits_out_a_short_lock(tmp_path, ns, monkeypatch):
    for name in ("BOTWIRE_URL", "BOTWIRE_DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)
    path = tmp_path / "locked.db"
    with botwire.Memory(ns, url=f"sqlite:///{path}") as m:
        m.set("k", "before")
        blocker = sqlite3.connect(path, isolation_level=None, timeout=5, check_same_thread=False)
        blocker.execute("BEGIN EXCLUSIVE")
        release = threading.Timer(0.5, lambda: blocker.execute("ROLLBACK"))
        release.start()
        try:
            started = time.monotonic()
            m.set("k", "after")  # another writer holds the lock: wait for it, do not fail
            waited = time.monotonic() - started
        finally:
            release.join()
            blocker.close()
        assert waited >= 0.3
        assert m.get("k") == "after"


def test_sqlite_file_that_is_not_a_database(tmp_path, ns):
    path = tmp_path / "garbage.db"
    path.write_bytes(b"this is not a SQLite database" * 100)
    with pytest.raises((StorageUnavailable, ConfigurationError)) as err:
        m = botwire.Memory(ns, url=f"sqlite:///{path}")
        try:
            m.set("k", 1)
        finally:
            m.close()
    assert not isinstance(err.value, sqlite3.Error)


def test_sqlite_path_that_cannot_be_created(tmp_path, ns):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    with pytest.raises((StorageUnavailable, ConfigurationError)):
        m = botwire.Memory(ns, url=f"sqlite:///{blocker}/sub/botwire.db")
        try:
            m.set("k", 1)
        finally:
            m.close()


def test_postgres_unreachable_raises_storage_unavailable(postgres_url, ns):
    # a port nothing listens on
    url = "postgresql://postgres@127.0.0.1:9/test?connect_timeout=2"
    started = time.monotonic()
    with pytest.raises(StorageUnavailable) as err:
        m = botwire.Memory(ns, url=url)
        try:
            m.set("k", 1)
        finally:
            m.close()
    assert type(err.value).__module__.startswith("botwire")
    assert time.monotonic() - started < 60


def test_driver_errors_do_not_escape(memory, engine_url):
    # nothing a caller can do through the API should surface a raw driver exception
    drivers: tuple[type, ...] = (sqlite3.Error,)
    try:
        import psycopg

        drivers += (psycopg.Error,)
    except ImportError:  # pragma: no cover
        pass
    calls = [
        lambda: memory.set("k" * 512, "x" * 1000),
        lambda: memory.set("k", "\x00" * 1000),
        lambda: memory.set("k", {"\x00": "\x00"}),
        lambda: memory.log("l" * 512).append({"\x00": 1}),
        lambda: memory.get_many([f"k{i}" for i in range(5000)]),
        lambda: memory.incr("big", 2**200),
        lambda: list(memory.keys(prefix="\U0010ffff" * 10)),
    ]
    for call in calls:
        try:
            call()
        except drivers as exc:  # pragma: no cover - the failure being tested
            pytest.fail(f"a driver error escaped: {exc!r}")
    assert memory.get("big") == 2**200
    assert memory.get("k") == {"\x00": "\x00"}


def test_no_storage_error_after_many_memories_opened_and_closed(engine_url, ns):
    for i in range(30):
        with botwire.Memory(f"{ns}-{i}", url=engine_url) as m:
            m.set("k", i)
    for i in range(30):
        with botwire.Memory(f"{ns}-{i}", url=engine_url) as m:
            assert m.get("k") == i


@pytest.mark.skipif(not hasattr(os, "getuid") or os.getuid() == 0, reason="root ignores file modes")
def test_sqlite_read_only_directory(tmp_path, ns):  # pragma: no cover - only as non-root
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        with pytest.raises((StorageUnavailable, ConfigurationError)):
            m = botwire.Memory(ns, url=f"sqlite:///{ro}/botwire.db")
            try:
                m.set("k", 1)
            finally:
                m.close()
    finally:
        ro.chmod(0o700)
