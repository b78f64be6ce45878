"""TTL: an expired key is absent to every read, every count and every conditional write."""

from __future__ import annotations

import time

import pytest
from conformance_helpers import MISSING

import botwire
from botwire import InvalidInput, NotFound, VersionConflict

TTL = 0.3
PAST = 0.4  # sleep this long to be sure TTL has passed


def test_key_visible_before_expiry_and_absent_after(memory):
    memory.set("k", "v", ttl=TTL)
    memory.set("stay", "v")
    assert memory.get("k") == "v"
    assert memory.exists("k") and "k" in memory
    assert memory["k"] == "v"
    assert list(memory.keys()) == ["k", "stay"]
    assert memory.count() == 2 and len(memory) == 2
    assert memory.get_many(["k", "stay"]) == {"k": "v", "stay": "v"}
    assert memory.info("k") is not None
    assert dict(memory.items()) == {"k": "v", "stay": "v"}

    time.sleep(PAST)

    assert memory.get("k", MISSING) is MISSING
    assert not memory.exists("k") and "k" not in memory
    with pytest.raises(NotFound):
        memory["k"]
    assert list(memory.keys()) == ["stay"]
    assert list(memory.keys(prefix="k")) == []
    assert memory.count() == 1 and len(memory) == 1
    assert memory.get_many(["k", "stay"]) == {"stay": "v"}
    assert memory.info("k") is None
    assert list(memory.items()) == [("stay", "v")]


def test_expired_key_delete_reports_absent(memory):
    memory.set("k", 1, ttl=TTL)
    time.sleep(PAST)
    assert memory.delete("k") is False
    with pytest.raises(NotFound):
        del memory["k"]


def test_info_expires_at(memory):
    before = time.time()
    memory.set("k", 1, ttl=60)
    after = time.time()
    info = memory.info("k")
    assert type(info.expires_at) is float
    assert before + 60 - 1 <= info.expires_at <= after + 60 + 1


def test_integer_ttl_is_accepted(memory):
    memory.set("k", 1, ttl=3600)
    assert memory.info("k").expires_at > time.time() + 3500


def test_set_without_ttl_clears_earlier_ttl(memory):
    memory.set("k", 1, ttl=TTL)
    memory.set("k", 2)
    memory.set("item", 1, ttl=TTL)
    memory["item"] = 2
    assert memory.info("k").expires_at is None
    assert memory.info("item").expires_at is None
    time.sleep(PAST)
    assert memory.get("k") == 2
    assert memory.get("item") == 2


def test_new_ttl_replaces_old_ttl(memory):
    memory.set("k", 1, ttl=TTL)
    memory.set("k", 2, ttl=60)
    time.sleep(PAST)
    assert memory.get("k") == 2
    memory.set("k", 3, ttl=TTL)
    time.sleep(PAST)
    assert not memory.exists("k")


@pytest.mark.parametrize(
    "ttl",
    [
        pytest.param(0, id="zero"),
        pytest.param(0.0, id="zero-float"),
        pytest.param(-1, id="negative"),
        pytest.param(-0.5, id="negative-float"),
        pytest.param("10", id="str"),
        pytest.param(True, id="true"),
        pytest.param(False, id="false"),
        pytest.param([10], id="list"),
        pytest.param(float("nan"), id="nan"),
    ],
)
def test_bad_ttl_raises_invalid_input_and_stores_nothing(memory, ttl):
    memory.set("existing", "old")
    with pytest.raises(InvalidInput) as err:
        memory.set("k", 1, ttl=ttl)
    assert isinstance(err.value, ValueError)
    with pytest.raises(InvalidInput):
        memory.set("existing", "new", ttl=ttl)
    assert memory.get("k", MISSING) is MISSING
    assert memory.get("existing") == "old"
    assert memory.info("existing").expires_at is None


def test_expired_key_is_absent_for_if_version_zero(memory):
    memory.set("k", "old", ttl=TTL)
    with pytest.raises(VersionConflict):
        memory.set("k", "new", if_version=0)
    time.sleep(PAST)
    memory.set("k", "new", if_version=0)
    assert memory.get("k") == "new"
    assert memory.info("k").expires_at is None


def test_expired_key_conflict_reports_version_zero(memory):
    v = memory.set("k", "old", ttl=TTL)
    time.sleep(PAST)
    with pytest.raises(VersionConflict) as err:
        memory.set("k", "new", if_version=v)
    assert err.value.current_version == 0
    assert memory.get("k", MISSING) is MISSING


def test_incr_on_expired_key_starts_from_zero(memory):
    memory.set("c", 41, ttl=TTL)
    memory.set("text", "not a number", ttl=TTL)
    assert memory.incr("c") == 42
    time.sleep(PAST)
    assert memory.incr("c") == 1
    assert memory.incr("text", 3) == 3  # the expired str is gone, not in the way
    # a key born from incr on an expired one does not inherit the dead TTL
    assert memory.info("c").expires_at is None
    assert memory.info("text").expires_at is None
    time.sleep(0.05)
    assert memory.get("c") == 1


def test_rewriting_an_expired_key_is_a_new_key(memory):
    memory.set("k", 1, ttl=TTL)
    old = memory.info("k")
    time.sleep(PAST)
    v = memory.set("k", 2)
    new = memory.info("k")
    assert v > old.version
    assert new.created_at > old.created_at
    assert new.expires_at is None


def test_expired_keys_do_not_hold_the_namespace(engine_url, ns):
    with botwire.Memory(ns, url=engine_url) as m:
        m.set("k", 1, ttl=TTL)
        assert list(botwire.namespaces(prefix=ns, url=engine_url)) == [ns]
        time.sleep(PAST)
        assert list(botwire.namespaces(prefix=ns, url=engine_url)) == []


def test_many_keys_expiring_at_once(memory):
    memory.set_many({f"k{i:03d}": i for i in range(300)}, ttl=TTL)
    memory.set("stay", 1)
    assert memory.count() == 301
    time.sleep(PAST)
    assert memory.count() == 1
    assert list(memory.keys()) == ["stay"]
