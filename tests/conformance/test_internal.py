"""Names starting with "~" are botwire's own bookkeeping: listings and search leave them out
unless asked for (``include_internal=True``, a prefix starting with "~", ``--all``)."""

from __future__ import annotations

import uuid

import pytest
from click.testing import CliRunner

import botwire
from botwire import InvalidInput
from botwire.cli import main
from botwire.engines.base import Namespaces, Scan

# "}" sorts just before "~" and U+007F just after the internal range: both are ordinary names.
VISIBLE = ["a", "}", "\x7f", "\x7fz", "é"]
INTERNAL = ["~", "~call/vapi/c1/end", "~~"]


def unique(tag: str) -> str:  # as tests/conftest.py's (a plain import of it is ambiguous)
    return f"{tag}-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def mixed(memory):
    memory.set_many({k: i for i, k in enumerate(VISIBLE + INTERNAL)})
    return memory


def test_keys_and_items_leave_internal_keys_out(mixed):
    assert list(mixed.keys()) == sorted(VISIBLE)
    assert [k for k, _ in mixed.items()] == sorted(VISIBLE)
    assert list(mixed) == sorted(VISIBLE)


def test_count_and_len_agree_with_the_listing(mixed):
    assert mixed.count() == len(mixed) == len(list(mixed)) == len(VISIBLE)
    assert mixed.count(include_internal=True) == len(VISIBLE + INTERNAL)


async def test_async_count_agrees_with_the_listing(amemory):
    await amemory.set_many({k: 1 for k in VISIBLE + INTERNAL})
    assert await amemory.count() == len(VISIBLE)
    assert await amemory.count(include_internal=True) == len(VISIBLE + INTERNAL)


def test_include_internal_lists_every_key(mixed):
    everything = sorted(VISIBLE + INTERNAL)
    assert list(mixed.keys(include_internal=True)) == everything
    assert [k for k, _ in mixed.items(include_internal=True)] == everything
    assert list(mixed.keys("~", include_internal=True)) == sorted(INTERNAL)


def test_a_prefix_starting_with_tilde_asks_for_internal_keys(mixed):
    assert list(mixed.keys(prefix="~call/")) == ["~call/vapi/c1/end"]
    assert list(mixed.keys("~")) == sorted(INTERNAL)
    assert dict(mixed.items("~~")) == {"~~": len(VISIBLE) + 2}


def test_limit_counts_only_listed_keys(memory):
    memory.set_many({f"b{i:04d}": i for i in range(600)})
    memory.set_many({f"~call/{i:04d}": i for i in range(1200)})  # between the b and é keys
    memory.set_many({f"é{i:04d}": i for i in range(600)})
    visible = [f"b{i:04d}" for i in range(600)] + [f"é{i:04d}" for i in range(600)]
    assert list(memory.keys()) == visible  # pages of 1000 cross the internal keys
    assert list(memory.keys(limit=601)) == visible[:601]
    assert [k for k, _ in memory.items(limit=1000)] == visible[:1000]
    (row,) = memory.engine.execute(Scan(memory.namespace, "", "b0599", 1))
    assert row.key == "é0000"


async def test_async_keys_items_and_search(amemory):
    await amemory.set_many({"note": "kettle", "~call/x": "kettle"})
    assert [k async for k in amemory.keys()] == ["note"]
    assert [k async for k in amemory.keys(include_internal=True)] == ["note", "~call/x"]
    assert [k async for k, _ in amemory.items("~")] == ["~call/x"]
    assert [h.key for h in await amemory.search("kettle")] == ["note"]
    hits = await amemory.search("kettle", include_internal=True)
    assert {h.key for h in hits} == {"note", "~call/x"}


def test_search_leaves_internal_keys_and_logs_out(memory):
    memory.set_many({f"~call/{i}": "the kettle order" for i in range(5)})
    memory.set_many({f"k{i}": "kettle" for i in range(3)})
    memory.log("~replay").extend(["kettle"] * 5)
    memory.log("calls").append("asked about the kettle")
    hits = memory.search("kettle", limit=4)  # the limit counts only what is shown
    assert sorted((h.key, h.log) for h in hits if h.key) == [("k0", None), ("k1", None),
                                                            ("k2", None)]
    assert [(h.log, h.seq) for h in hits if h.log] == [("calls", 1)]
    every = memory.search("kettle", limit=100, include_internal=True)
    assert len(every) == 14
    assert {h.log for h in every} == {None, "~replay", "calls"}


def test_namespaces_leave_internal_ones_out(keep_engine_open, engine_url):
    tag = unique("ns")
    before, hidden, after = "}" + tag, "~" + tag, "é" + tag
    for name in (before, hidden, after):
        with botwire.Memory(name, url=engine_url) as m:
            m.set("k", 1)
    listed = list(botwire.namespaces(url=engine_url))
    assert before in listed and after in listed
    assert not [n for n in listed if n.startswith("~")]
    assert hidden in list(botwire.namespaces(url=engine_url, include_internal=True))
    assert list(botwire.namespaces("~" + tag, url=engine_url)) == [hidden]
    # The limit counts only namespaces listed: the one after `before` is visible.
    (nxt,) = keep_engine_open.engine.execute(Namespaces("", before, 1))
    assert not nxt.startswith("~") and nxt > before
    internal = keep_engine_open.engine.execute(Namespaces("", before, 1000, internal=True))
    assert hidden in internal


def test_namespace_of_internal_logs_only_is_hidden(keep_engine_open, engine_url):
    name = "~" + unique("logs")
    with botwire.Memory(name, url=engine_url) as m:
        m.log("l").append(1)
    assert name not in list(botwire.namespaces(url=engine_url))
    assert list(botwire.namespaces(name, url=engine_url)) == [name]


async def test_async_namespaces(keep_engine_open, engine_url):
    name = "~" + unique("async")
    with botwire.Memory(name, url=engine_url) as m:
        m.set("k", 1)
    assert name not in [n async for n in botwire.anamespaces(url=engine_url)]
    listed = [n async for n in botwire.anamespaces(url=engine_url, include_internal=True)]
    assert name in listed


@pytest.mark.parametrize("flag", ["yes", 1, None])
def test_include_internal_must_be_a_bool(memory, flag):
    with pytest.raises(InvalidInput, match="include_internal must be True or False"):
        list(memory.keys(include_internal=flag))
    with pytest.raises(InvalidInput, match="include_internal must be True or False"):
        memory.search("x", include_internal=flag)
    with pytest.raises(InvalidInput, match="include_internal must be True or False"):
        memory.count(include_internal=flag)
    with pytest.raises(InvalidInput, match="include_internal must be True or False"):
        list(botwire.namespaces(include_internal=flag, url=memory.engine.url))


def test_cli_ls_and_namespaces_show_internal_names_with_all(keep_engine_open, engine_url):
    ns = unique("cli")
    with botwire.Memory(ns, url=engine_url) as m:
        m.set_many({"name": "Ann", "~call/vapi/c1/end": {"state": "done"}})
    with botwire.Memory("~" + ns, url=engine_url) as m:
        m.set("token", 1)
    cli = CliRunner()

    def run(*args: str) -> list[str]:
        done = cli.invoke(main, [*args, "--url", engine_url], catch_exceptions=False)
        assert done.exit_code == 0, done.output
        return done.output.splitlines()

    assert run("ls", ns) == ["name"]
    assert run("ls", ns, "--all") == ["name", "~call/vapi/c1/end"]
    assert run("ls", ns, "--prefix", "~call/") == ["~call/vapi/c1/end"]
    assert "~" + ns not in run("namespaces")
    assert ns in run("namespaces")
    assert "~" + ns in run("namespaces", "--all")
    assert run("namespaces", "--prefix", "~" + ns) == ["~" + ns]
