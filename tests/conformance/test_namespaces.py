"""botwire.namespaces() and botwire.forget()."""

from __future__ import annotations

import collections.abc

import pytest
from conformance_helpers import MISSING

import botwire


def _fill(url, name, *, key=True, log=False, value="v"):
    with botwire.Memory(name, url=url) as m:
        if key:
            m.set("k", value)
        if log:
            m.log("l").append(value)


def test_namespaces_lists_those_with_keys_or_log_entries(keep_engine_open, engine_url, ns):
    _fill(engine_url, ns + ":keys")
    _fill(engine_url, ns + ":logs", key=False, log=True)
    _fill(engine_url, ns + ":both", log=True)
    with botwire.Memory(ns + ":empty", url=engine_url) as m:
        m.set("k", 1)
        m.delete("k")
        m.log("l").append(1)
        m.log("l").clear()
    with botwire.Memory(ns + ":cleared", url=engine_url) as m:
        m.set("k", 1)
        m.clear()
    with botwire.Memory(ns + ":untouched", url=engine_url) as m:
        m.get("k")
        m.log("l").read()
    listed = botwire.namespaces(prefix=ns, url=engine_url)
    assert isinstance(listed, collections.abc.Iterator)
    assert list(listed) == [ns + ":both", ns + ":keys", ns + ":logs"]


def test_namespaces_ordering_and_prefix(keep_engine_open, engine_url, ns):
    suffixes = ["b", "a", "B", "é", "🎉", "\uffff", "a_", "a%", "ab", "10", "9", "a b", "~"]
    names = [f"{ns}/{suffix}" for suffix in suffixes]
    names += [f"{ns}/n{i:03d}" for i in range(30)]
    for name in names:
        _fill(engine_url, name)
    assert list(botwire.namespaces(prefix=ns + "/", url=engine_url)) == sorted(names)
    assert list(botwire.namespaces(ns + "/", url=engine_url)) == sorted(names)
    assert list(botwire.namespaces(prefix=ns + "/a_", url=engine_url)) == [ns + "/a_"]
    assert list(botwire.namespaces(prefix=ns + "/a%", url=engine_url)) == [ns + "/a%"]
    assert list(botwire.namespaces(prefix=ns + "/n01", url=engine_url)) == [
        f"{ns}/n{i:03d}" for i in range(10, 20)
    ]
    assert list(botwire.namespaces(prefix=ns + "/zzz", url=engine_url)) == []


def test_namespaces_without_prefix_includes_ours(engine_url, ns):
    _fill(engine_url, ns)
    everything = list(botwire.namespaces(url=engine_url))
    assert ns in everything
    assert everything == sorted(everything)
    assert len(everything) == len(set(everything))


def test_namespaces_beyond_one_page(keep_engine_open, engine_url, ns):
    names = [f"{ns}:{i:04d}" for i in range(1100)]
    for name in names:
        _fill(engine_url, name)
    assert list(botwire.namespaces(prefix=ns + ":", url=engine_url)) == names


def test_forget_deletes_keys_and_logs(keep_engine_open, engine_url, ns):
    with botwire.Memory(ns, url=engine_url) as m:
        m.set_many({"a": 1, "b": 2})
        m.set("t", 1, ttl=60)
        m.log("calls").extend([1, 2, 3])
        m.log("notes").append("x")
    with botwire.Memory(ns + "-neighbour", url=engine_url) as n:
        n.set("a", "stays")
        n.log("calls").append("stays")
    with botwire.Memory(ns[:-1], url=engine_url) as p:  # a namespace that is a prefix of ours
        p.set("a", "stays too")

    assert botwire.forget(ns, url=engine_url) is True

    with botwire.Memory(ns, url=engine_url) as m:
        assert m.count() == 0
        assert list(m.keys()) == []
        assert m.get("a", MISSING) is MISSING
        assert m.log("calls").read() == []
        assert m.log("calls").count() == 0
        assert m.log("notes").count() == 0
    assert list(botwire.namespaces(prefix=ns, url=engine_url)) == [ns + "-neighbour"]
    with botwire.Memory(ns + "-neighbour", url=engine_url) as n:
        assert n.get("a") == "stays"
        assert [e.value for e in n.log("calls").read()] == ["stays"]
    with botwire.Memory(ns[:-1], url=engine_url) as p:
        assert p.get("a") == "stays too"

    assert botwire.forget(ns, url=engine_url) is False


def test_forget_of_unknown_namespace(engine_url, ns):
    assert botwire.forget(ns, url=engine_url) is False


def test_forget_namespace_with_only_a_log(keep_engine_open, engine_url, ns):
    _fill(engine_url, ns, key=False, log=True)
    assert botwire.forget(ns, url=engine_url) is True
    assert list(botwire.namespaces(prefix=ns, url=engine_url)) == []


def test_namespace_is_usable_after_forget(engine_url, ns):
    with botwire.Memory(ns, url=engine_url) as m:
        m.set("k", 1)
        m.log("l").append("old")
        assert botwire.forget(ns, url=engine_url) is True
        # the same open Memory keeps working
        m.set("k", 2)
        assert m.get("k") == 2
        m.log("l").append("new")
        assert [e.value for e in m.log("l").read()] == ["new"]
        assert m.incr("c") == 1
    assert list(botwire.namespaces(prefix=ns, url=engine_url)) == [ns]


def test_forget_is_seen_by_an_open_memory(memory, engine_url, ns):
    memory.set("k", 1)
    assert botwire.forget(ns, url=engine_url) is True
    assert memory.get("k", MISSING) is MISSING
    assert len(memory) == 0


@pytest.mark.parametrize("bad", ["", "a\x00", 1, None])
def test_forget_bad_name(engine_url, bad):
    with pytest.raises(botwire.InvalidKey):
        botwire.forget(bad, url=engine_url)


def test_namespaces_and_forget_use_the_environment_by_default(monkeypatch, tmp_path, ns):
    for name in ("BOTWIRE_URL", "BOTWIRE_DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("BOTWIRE_HOME", str(tmp_path))
    with botwire.Memory(ns) as m:
        m.set("k", 1)
    assert list(botwire.namespaces(prefix=ns)) == [ns]
    assert botwire.forget(ns) is True
    assert list(botwire.namespaces(prefix=ns)) == []
