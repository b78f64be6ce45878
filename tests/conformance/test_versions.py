"""Versions and compare-and-set."""

from __future__ import annotations

import time

import pytest
from conformance_helpers import MISSING

import botwire
from botwire import InvalidInput, VersionConflict


def test_version_increases_on_every_write(memory):
    seen = [memory.set("k", 0)]
    for i in range(1, 10):
        seen.append(memory.set("k", i))
    seen.append(memory.set_many({"k": "many"})["k"])
    memory.incr("n")
    memory.set("k", 5)
    seen.append(memory.info("k").version)
    assert seen == sorted(seen)
    assert len(set(seen)) == len(seen)


def test_incr_bumps_the_version(memory):
    v = memory.set("n", 1)
    memory.incr("n")
    v2 = memory.info("n").version
    assert v2 > v
    memory.incr("n", 0)
    assert memory.info("n").version > v2


def test_set_returns_the_stored_version(memory):
    v = memory.set("k", "x")
    assert memory.info("k").version == v
    v2 = memory.set("k", "y", ttl=60)
    assert v2 > v
    assert memory.info("k").version == v2


def test_writing_the_same_value_still_bumps(memory):
    v = memory.set("k", "same")
    assert memory.set("k", "same") > v


def test_if_version_match_writes(memory):
    v = memory.set("k", "a")
    v2 = memory.set("k", "b", if_version=v)
    assert v2 > v
    assert memory.get("k") == "b"
    assert memory.info("k").version == v2


def test_if_version_mismatch_raises_and_writes_nothing(memory):
    v1 = memory.set("k", "a")
    v2 = memory.set("k", "b")
    with pytest.raises(VersionConflict) as err:
        memory.set("k", "c", if_version=v1)
    assert err.value.current_version == v2
    assert isinstance(err.value, botwire.BotWireError)
    assert memory.get("k") == "b"
    assert memory.info("k").version == v2
    with pytest.raises(VersionConflict) as err:
        memory.set("k", "c", if_version=v2 + 1000)
    assert err.value.current_version == v2
    assert memory.get("k") == "b"


def test_if_version_conflict_keeps_ttl(memory):
    v = memory.set("k", "a", ttl=60)
    expires = memory.info("k").expires_at
    with pytest.raises(VersionConflict):
        memory.set("k", "b", if_version=v + 1)
    assert memory.info("k").expires_at == expires


def test_if_version_zero_only_if_absent(memory):
    v = memory.set("k", "first", if_version=0)
    assert v >= 1
    assert memory.get("k") == "first"
    with pytest.raises(VersionConflict) as err:
        memory.set("k", "second", if_version=0)
    assert err.value.current_version == v
    assert memory.get("k") == "first"


def test_if_version_zero_after_delete(memory):
    memory.set("k", 1)
    memory.delete("k")
    memory.set("k", 2, if_version=0)
    assert memory.get("k") == 2


def test_if_version_on_absent_key_reports_zero(memory):
    with pytest.raises(VersionConflict) as err:
        memory.set("k", 1, if_version=5)
    assert err.value.current_version == 0
    assert memory.get("k", MISSING) is MISSING


def test_if_version_with_ttl(memory):
    v = memory.set("k", 1)
    memory.set("k", 2, ttl=60, if_version=v)
    assert memory.info("k").expires_at is not None


@pytest.mark.parametrize("bad", ["1", 1.0, 1.5, [1]])
def test_if_version_must_be_an_int(memory, bad):
    memory.set("k", "a")
    with pytest.raises(InvalidInput):
        memory.set("k", "b", if_version=bad)
    assert memory.get("k") == "a"


def test_delete_then_set_gives_a_higher_version(memory):
    v1 = memory.set("k", 1)
    memory.set("k", 2)
    v2 = memory.info("k").version
    memory.delete("k")
    v3 = memory.set("k", 3)
    assert v3 > v2 > v1
    # a reader holding the old version cannot sneak a write in
    with pytest.raises(VersionConflict):
        memory.set("k", "stale", if_version=v2)


def test_stale_reader_cannot_write_after_delete_and_rewrite(memory):
    v = memory.set("k", "seen by the reader")
    memory.delete("k")
    memory.set("k", "written by someone else")
    with pytest.raises(VersionConflict):
        memory.set("k", "stale write", if_version=v)
    assert memory.get("k") == "written by someone else"


def test_stale_reader_cannot_write_after_expiry_and_rewrite(memory):
    v = memory.set("k", "seen by the reader", ttl=0.2)
    time.sleep(0.3)
    memory.set("k", "written by someone else")
    with pytest.raises(VersionConflict):
        memory.set("k", "stale write", if_version=v)
    assert memory.get("k") == "written by someone else"


def test_clear_then_set_gives_a_higher_version(memory):
    v = memory.set("k", 1)
    memory.clear()
    assert memory.set("k", 2) > v


def test_forget_erases_the_version_history_too(engine_url, ns):
    # forget leaves no trace of a namespace (its name is often a phone number), so the floor that
    # keeps versions rising across deletes goes with it: versions start again at 1.
    with botwire.Memory(ns, url=engine_url) as m:
        m.set("k", 1)
        m.delete("k")
        assert m.set("k", 2) == 2
        assert botwire.forget(ns, url=engine_url) is True
        assert m.set("k", 3) == 1
        assert m.get("k") == 3


def test_versions_are_per_namespace_counters_not_per_key(memory):
    # writing another key and deleting/recreating this one never repeats a version
    seen = set()
    for i in range(5):
        seen.add(memory.set("a", i))
        memory.set("b", i)
        memory.delete("a")
    assert len(seen) == 5


def test_conflict_error_is_not_a_value_or_key_error():
    assert not issubclass(VersionConflict, (ValueError, KeyError, TypeError))


# -- delete(..., if_version=v) ------------------------------------------------------------------


def test_delete_if_version_match_deletes(memory):
    v = memory.set("k", "a")
    assert memory.delete("k", if_version=v) is True
    assert memory.get("k", MISSING) is MISSING
    assert memory.set("k", "again") > v  # the deleted version is never handed out again


def test_delete_if_version_mismatch_raises_and_deletes_nothing(memory):
    v1 = memory.set("k", "a")
    v2 = memory.set("k", "b")
    with pytest.raises(VersionConflict) as err:
        memory.delete("k", if_version=v1)
    assert err.value.current_version == v2
    assert err.value.expected == v1
    assert memory.get("k") == "b"
    assert memory.info("k").version == v2


def test_delete_if_version_of_a_missing_key_reports_zero(memory):
    with pytest.raises(VersionConflict) as err:
        memory.delete("absent", if_version=3)
    assert err.value.current_version == 0


def test_delete_if_version_of_an_expired_key_reports_zero(memory):
    v = memory.set("k", "short", ttl=0.05)
    time.sleep(0.15)
    with pytest.raises(VersionConflict) as err:
        memory.delete("k", if_version=v)
    assert err.value.current_version == 0


@pytest.mark.parametrize("bad", [0, -1, "1", 1.0, True])
def test_delete_if_version_must_be_a_positive_int(memory, bad):
    v = memory.set("k", "a")
    with pytest.raises(InvalidInput, match="if_version"):
        memory.delete("k", if_version=bad)
    assert memory.info("k").version == v
