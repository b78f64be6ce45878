"""Keys, namespace names and log names: 1-512 characters, no NUL, no lone surrogate."""

from __future__ import annotations

import pytest
from conformance_helpers import MISSING, json_strategies
from hypothesis import HealthCheck, given, settings

import botwire
from botwire import InvalidInput, InvalidKey

GOOD_NAMES = [
    pytest.param("a", id="one-char"),
    pytest.param("with space", id="space"),
    pytest.param(" ", id="only-space"),
    pytest.param(" leading and trailing ", id="padded"),
    pytest.param("user:42:profile", id="colon"),
    pytest.param("a/b/c", id="slash"),
    pytest.param("/", id="only-slash"),
    pytest.param("what?", id="question"),
    pytest.param("#hash", id="hash"),
    pytest.param("100%", id="percent"),
    pytest.param("%2F", id="percent-encoded-slash"),
    pytest.param("%00", id="percent-encoded-nul"),
    pytest.param("..", id="dotdot"),
    pytest.param("../../etc/passwd", id="path-traversal"),
    pytest.param(".", id="dot"),
    pytest.param("a_b", id="underscore"),
    pytest.param("a*b", id="star"),
    pytest.param("back\\slash", id="backslash"),
    pytest.param("quote'\"`", id="quotes"),
    pytest.param("tab\there\nnewline", id="control-chars"),
    pytest.param("\x01\x7f", id="low-control-chars"),
    pytest.param("ключ", id="cyrillic"),
    pytest.param("日本語のキー", id="cjk"),
    pytest.param("émoji 🎉👩‍👩‍👧", id="emoji"),
    pytest.param("\U0010ffff", id="max-code-point"),
    pytest.param("\ufeffbom", id="bom"),
    pytest.param("e\u0301", id="combining"),
    pytest.param("+1 (555) 010-9999", id="phone-number"),
    pytest.param("k" * 512, id="512-ascii"),
    pytest.param("é" * 512, id="512-two-byte"),
    pytest.param("🎉" * 512, id="512-emoji"),
    pytest.param("SELECT * FROM botwire_kv;--", id="sql-ish"),
]

BAD_NAMES = [
    pytest.param("", id="empty"),
    pytest.param("\x00", id="nul"),
    pytest.param("a\x00b", id="inner-nul"),
    pytest.param("a\x00", id="trailing-nul"),
    pytest.param("k" * 513, id="513-chars"),
    pytest.param("é" * 513, id="513-two-byte"),
    pytest.param("k" * 10_000, id="10000-chars"),
    pytest.param("\ud800", id="lone-surrogate"),
    pytest.param("ab\udc00", id="lone-low-surrogate"),
    pytest.param(1, id="int"),
    pytest.param(None, id="none"),
    pytest.param(b"x", id="bytes"),
    pytest.param(1.5, id="float"),
    pytest.param(("a",), id="tuple"),
    pytest.param(["a"], id="list"),
    pytest.param(True, id="bool"),
]


@pytest.mark.parametrize("key", GOOD_NAMES)
def test_good_keys_work_everywhere(memory, key):
    assert memory.get(key, MISSING) is MISSING
    assert memory.set(key, {"key": key}) >= 1
    assert memory.get(key) == {"key": key}
    assert memory[key] == {"key": key}
    assert memory.exists(key) and key in memory
    assert memory.get_many([key, "other"]) == {key: {"key": key}}
    assert list(memory.keys(include_internal=True)) == [key]
    assert list(memory.keys()) == ([] if key.startswith("~") else [key])  # "~": internal names
    assert list(memory.keys(prefix=key)) == [key]
    assert list(memory.items()) == [(key, {"key": key})]
    assert memory.info(key).key == key
    # no normalisation, no truncation: a near-identical key is a different key
    if len(key) < 512:
        assert not memory.exists(key + "x")
    if len(key) > 1:
        assert not memory.exists(key[:-1])
    assert memory.delete(key) is True
    assert not memory.exists(key)
    assert memory.incr(key, 5) == 5
    memory[key] = "via setitem"
    assert memory.get(key) == "via setitem"
    del memory[key]
    assert memory.count() == 0


def test_similar_keys_are_distinct(memory):
    keys = ["a", "A", "a ", " a", "é", "e\u0301", "a/b", "a%2Fb", "a:b", "a_b", "a%b", "ab"]
    for i, k in enumerate(keys):
        memory.set(k, i)
    assert memory.count() == len(keys)
    for i, k in enumerate(keys):
        assert memory.get(k) == i
    assert list(memory.keys()) == sorted(keys)


def test_keys_with_512_chars_are_not_truncated(memory):
    a = "k" * 511 + "a"
    b = "k" * 511 + "b"
    memory.set(a, 1)
    memory.set(b, 2)
    assert memory.get(a) == 1 and memory.get(b) == 2
    assert list(memory.keys()) == [a, b]


def _bad_key_calls(memory, key):
    return {
        "get": lambda: memory.get(key),
        "set": lambda: memory.set(key, 1),
        "setitem": lambda: memory.__setitem__(key, 1),
        "getitem": lambda: memory[key],
        "delitem": lambda: memory.__delitem__(key),
        "delete": lambda: memory.delete(key),
        "exists": lambda: memory.exists(key),
        "contains": lambda: key in memory,
        "incr": lambda: memory.incr(key),
        "info": lambda: memory.info(key),
        "get_many": lambda: memory.get_many(["ok", key]),
        "set_many": lambda: memory.set_many({"ok": 1, key: 2}),
    }


@pytest.mark.parametrize("key", BAD_NAMES)
def test_bad_keys_raise_invalid_key_and_store_nothing(memory, key):
    memory.set("existing", 1)
    for name, call in _bad_key_calls(memory, key).items():
        if name == "set_many" and isinstance(key, list):
            continue  # unhashable: cannot even build the dict
        with pytest.raises(InvalidKey) as err:
            call()
        assert isinstance(err.value, InvalidInput), name
        assert isinstance(err.value, ValueError), name
    assert memory.count() == 1
    assert list(memory.keys()) == ["existing"]
    assert memory.get("ok", MISSING) is MISSING
    assert memory.get("existing") == 1


def test_unhashable_key_in_set_many_is_refused(memory):
    with pytest.raises((InvalidKey, TypeError)):
        memory.set_many({("a",): 1})
    assert memory.count() == 0


# --- namespaces ---------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", GOOD_NAMES)
def test_good_namespace_names(keep_engine_open, engine_url, ns, suffix):
    name = (ns + suffix)[:512] if isinstance(suffix, str) else suffix
    with botwire.Memory(name, url=engine_url) as m:
        assert m.namespace == name
        m.set("k", suffix)
        m.log("l").append(1)
    with botwire.Memory(name, url=engine_url) as m:
        assert m.get("k") == suffix
        assert m.log("l").count() == 1
    with botwire.Memory(name + "x" if len(name) < 512 else name[:-1], url=engine_url) as other:
        assert other.get("k", MISSING) is MISSING
    assert list(botwire.namespaces(prefix=name, url=engine_url)) == [name]
    assert botwire.forget(name, url=engine_url) is True


def test_namespace_of_exactly_512_chars(keep_engine_open, engine_url, ns):
    name = ns + "n" * (512 - len(ns))
    assert len(name) == 512
    with botwire.Memory(name, url=engine_url) as m:
        m.set("k", 1)
        assert m.get("k") == 1
    assert list(botwire.namespaces(prefix=ns, url=engine_url)) == [name]


@pytest.mark.parametrize("name", BAD_NAMES)
def test_bad_namespace_names_raise_invalid_key(keep_engine_open, engine_url, name):
    with pytest.raises(InvalidKey) as err:
        m = botwire.Memory(name, url=engine_url)
        try:
            m.set("k", 1)
        finally:
            m.close()
    assert isinstance(err.value, ValueError)
    with pytest.raises(InvalidKey):
        botwire.forget(name, url=engine_url)


def test_namespaces_do_not_collide(engine_url, ns):
    a = botwire.Memory(ns + "a", url=engine_url)
    b = botwire.Memory(ns + "b", url=engine_url)
    try:
        a.set("k", "from a")
        b.set("k", "from b")
        a.log("l").append("a1")
        assert a.get("k") == "from a"
        assert b.get("k") == "from b"
        assert b.log("l").read() == []
        assert b.log("l").append("b1") == 1
        assert a.count() == 1 and b.count() == 1
        assert a.clear() == 1
        assert b.get("k") == "from b"
    finally:
        a.close()
        b.close()


# --- log names ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", GOOD_NAMES)
def test_good_log_names(memory, name):
    log = memory.log(name)
    assert log.name == name
    assert log.append({"n": name}) == 1
    assert memory.log(name).read()[0].value == {"n": name}
    assert memory.log(name[:-1] + "x" if len(name) == 512 else name + "x").count() == 0


@pytest.mark.parametrize("name", BAD_NAMES)
def test_bad_log_names_raise_invalid_key(memory, engine_url, name):
    with pytest.raises(InvalidKey):
        memory.log(name).append(1)
    with pytest.raises(InvalidKey):
        memory.log(name).extend([1, 2])
    with pytest.raises(InvalidKey):
        memory.log(name).read()
    assert memory.count() == 0
    assert list(botwire.namespaces(prefix=memory.namespace, url=engine_url)) == []


# --- property test --------------------------------------------------------------------------------

_, KEYS = json_strategies()


@settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(key=KEYS)
def test_any_valid_key_round_trips(memory, key):
    memory.clear()
    memory.set(key, key)
    assert memory.get(key) == key
    assert list(memory.keys(include_internal=True)) == [key]
    assert list(memory.keys()) == ([] if key.startswith("~") else [key])  # "~": internal names
    assert list(memory.keys(prefix=key)) == [key]
    assert list(memory.items(prefix=key[:1])) == [(key, key)]
