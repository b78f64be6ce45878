"""``botwire mcp`` over stdio, a real process driven by the ``mcp`` SDK's stdio client: on the
embedded SQLite file of a fresh ``BOTWIRE_HOME`` with one caller fixed (``--caller``) or named in
every call, and against a real ``botwire serve`` whose scoped key bounds what it reaches."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

# a missing extra leaves tests/mcp itself for `import mcp` (a namespace package): ask for the SDK
pytest.importorskip("mcp.client.stdio", reason="the mcp extra is not installed")

from mcp import ClientSession, StdioServerParameters, stdio_client
from mcpkit import TOOLS, UNLIMITED, Served, Tools, ns_of, number

import botwire
from botwire.voice import core, facts
from botwire.voice.records import NOTES

pytestmark = pytest.mark.processes

FIXED = "+14155550123"


def environment(home: Path, **settings: str) -> dict[str, str]:
    """Only what the child needs: its own ``BOTWIRE_HOME`` (and ``settings`` as ``BOTWIRE_*``),
    none of this process's settings."""
    env = {"BOTWIRE_HOME": str(home), "PATH": os.environ.get("PATH", "")}
    env.update({f"BOTWIRE_{name.upper()}": value for name, value in settings.items()})
    if os.environ.get("PYTHONPATH"):
        env["PYTHONPATH"] = os.environ["PYTHONPATH"]
    return env


@asynccontextmanager
async def desktop(home: Path, *args: str, **settings: str) -> AsyncIterator[Tools]:
    """``botwire mcp ARGS`` as a desktop client starts it, and an initialized session."""
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "botwire", "mcp", *args],
        env=environment(home, **settings),
    )
    async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
        yield Tools(session, await session.initialize())


def embedded(home: Path, ns: str) -> botwire.Memory:
    """The namespace in the embedded database file of ``home``, opened by this process."""
    return botwire.Memory(ns, url=f"sqlite:///{home}/botwire.db")


# -- one caller, fixed by the operator ------------------------------------------------------


async def test_a_fixed_caller_works_on_the_embedded_sqlite_file(tmp_path):
    home = tmp_path / "home"
    async with desktop(home, "--caller", "+1 (415) 555-0123") as t:
        listed = (await t.session.list_tools()).tools
        assert [tool.name for tool in listed] == TOOLS
        assert all("caller" not in tool.input_schema["properties"] for tool in listed)

        assert await t.ok("remember", {"key": "plan", "value": "gold"}) == "Remembered plan."
        assert await t.ok("remember_fact", {"text": "Prefers email over SMS"}) == "Noted."
        # the file, read by another process while the server runs
        with embedded(home, ns_of(FIXED)) as memory:
            assert memory.get("plan") == "gold"
            fact = core.run(facts.fact("plan"), memory)
            assert (fact.source, fact.platform, fact.call_id) == ("mcp", "desktop", None)
            assert [e.value["text"] for e in memory.log(NOTES).read(last=10)] == [
                "Prefers email over SMS"
            ]

        context = await t.ok("get_caller_context")
        assert "- plan: gold" in context and "Prefers email over SMS" in context
        assert await t.ok("recall_memory", {"query": "plan"}) == "plan: gold"
        assert await t.ok("list_memories") == "plan: gold"

        # a caller named in the arguments is not the fixed one's to choose
        other = "+12125550100"
        assert await t.ok("remember", {"key": "tier", "value": 2, "caller": other})
        assert await t.ok("list_memories", {"caller": other}) == "plan: gold\ntier: 2"

        for name, args, said in [
            ("remember", {"key": "last_call", "value": "x"}, "'last_call' is kept by botwire"),
            ("remember", {"key": "plan"}, "missing argument 'value'"),
            ("recall_memory", {}, "missing argument 'query'"),
            ("drop_tables", {}, "unknown tool 'drop_tables'"),
        ]:
            assert said in await t.error(name, args)

        assert await t.ok("forget", {"key": "plan"}) == "Forgot plan."
    with embedded(home, ns_of(FIXED)) as memory:
        assert dict(memory.items()) == {"tier": 2}
    with embedded(home, ns_of(other)) as memory:
        assert memory.count(include_internal=True) == 0
        assert memory.log(NOTES).count() == 0


def test_a_fixed_caller_without_a_country_code_is_refused_at_start(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "botwire", "mcp", "--caller", "4155550123"],
        env=environment(tmp_path / "home"),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2, done
    assert "--caller" in done.stderr and "country code" in done.stderr


# -- the operator's client names the caller in every call -----------------------------------


async def test_without_caller_every_tool_requires_one(tmp_path):
    home = tmp_path / "home"
    first, second = "+14155550123", "+442079460958"
    async with desktop(home) as t:
        listed = (await t.session.list_tools()).tools
        assert [tool.name for tool in listed] == TOOLS
        for tool in listed:
            assert tool.input_schema["properties"]["caller"]["type"] == "string", tool.name
            assert tool.input_schema["required"][0] == "caller", tool.name

        assert await t.error("list_memories") == (
            "missing argument 'caller': the caller's phone number, like +14155550123"
        )
        assert "missing argument 'caller'" in await t.error("remember", {"key": "a", "value": 1})
        national = await t.error("remember", {"caller": "5550123", "key": "a", "value": 1})
        assert "'5550123'" in national and "country code" in national
        assert "not a phone number" in await t.error("list_memories", {"caller": "+12"})

        await t.ok("remember", {"caller": first, "key": "plan", "value": "gold"})
        await t.ok("remember", {"caller": "0044 20 7946 0958", "key": "plan", "value": "silver"})
        assert await t.ok("list_memories", {"caller": "+1 415-555-0123"}) == "plan: gold"
        assert await t.ok("list_memories", {"caller": second}) == "plan: silver"
    with embedded(home, ns_of(first)) as memory:
        assert dict(memory.items()) == {"plan": "gold"}
    with embedded(home, ns_of(second)) as memory:
        assert dict(memory.items()) == {"plan": "silver"}
    with embedded(home, ns_of("+15550123")) as memory:  # what a guessed country would file
        assert memory.count(include_internal=True) == 0


async def test_a_default_country_completes_national_numbers(tmp_path):
    home = tmp_path / "home"
    async with desktop(home, voice_default_country="1") as t:
        await t.ok("remember", {"caller": "(415) 555-0123", "key": "plan", "value": "gold"})
        assert await t.ok("list_memories", {"caller": "+14155550123"}) == "plan: gold"
    with embedded(home, ns_of("+14155550123")) as memory:
        assert dict(memory.items()) == {"plan": "gold"}


async def test_a_caller_given_as_a_number_is_not_called_missing(tmp_path):
    home = tmp_path / "home"
    async with desktop(home) as t:
        said = await t.error("remember", {"caller": 14155550123, "key": "plan", "value": "gold"})
    assert said == "argument 'caller' must be a string, like \"+14155550123\"", said
    if (home / "botwire.db").exists():  # nothing stored, if the file was made at all
        with embedded(home, ns_of("+14155550123")) as memory:
            assert memory.count(include_internal=True) == 0


# -- against a botwire server: its key bounds what is reached --------------------------------


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """``botwire serve`` on SQLite, no voice platform configured."""
    home = tmp_path_factory.mktemp("mcp-stdio-server")
    served = Served(f"sqlite:///{home}/botwire.db", home, **UNLIMITED).start()
    yield served
    served.close()


@pytest.mark.parametrize("given", ["url", "api-key"])
async def test_a_server_url_with_a_scoped_key_refuses_other_callers(server, tmp_path, given):
    key = server.key(["phone:+1415"], "write")
    mine, theirs = number("415"), number("212")
    server.memory(ns_of(theirs)).set("pin", "pin-xyzzy-theirs")
    before = server.snapshot(ns_of(theirs))
    host = f"127.0.0.1:{server.process.port}"
    args = ["--url", f"http://{key}@{host}"] if given == "url" else ["--url", f"http://{host}"]
    if given == "api-key":
        args += ["--api-key", key]
    async with desktop(tmp_path / "home", *args) as t:
        assert await t.ok("remember", {"caller": mine, "key": "plan", "value": "gold"})
        assert await t.ok("list_memories", {"caller": mine}) == "plan: gold"
        for name, args_ in [
            ("list_memories", {}),
            ("get_caller_context", {}),
            ("recall_memory", {"query": "pin"}),
            ("remember", {"key": "pin", "value": "0000"}),
            ("forget", {"key": "pin"}),
        ]:
            said = await t.error(name, {"caller": theirs, **args_})
            assert said.startswith("this API key has no "), said
            assert "access to namespace" in said and "xyzzy" not in said
    assert server.memory(ns_of(mine)).get("plan") == "gold"
    plan = server.fact(ns_of(mine), "plan")
    assert (plan.source, plan.platform) == ("mcp", "desktop")
    assert server.snapshot(ns_of(theirs)) == before
    assert not (tmp_path / "home" / "botwire.db").exists()  # the server's database, not a file


async def test_a_fixed_caller_outside_the_keys_scope_is_refused(server, tmp_path):
    key = server.key(["phone:+1415"], "write")
    theirs = number("212")
    url = f"http://{key}@127.0.0.1:{server.process.port}"
    async with desktop(tmp_path / "home", "--url", url, "--caller", theirs) as t:
        assert "access" in await t.error("remember", {"key": "plan", "value": "gold"})
        assert "access" in await t.error("list_memories")
    assert server.snapshot(ns_of(theirs)) == {
        "keys": {},
        "logs": {"notes": [], "calls": [], "conversation": []},
    }
