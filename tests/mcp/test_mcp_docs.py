"""docs/mcp.md is true: each client's settings, taken from the page, drive a real
``botwire serve`` process on a real socket with the client each section names.

- The install block's ``botwire keys create`` line makes the key every example uses.
- The tools table names exactly the tools the server lists, with arguments their schemas take,
  and a new caller gets the answers it shows, row after row; the ``curl`` block answers the JSON
  shown after it.
- Vapi: the MCP tool's ``server.url`` and ``server.headers`` with the ``X-Call-Id`` Vapi adds,
  after an HMAC-signed ``assistant-request`` (the fixture) named the call's caller.
- ElevenLabs: the MCP server config (transport, URL, request headers with the workspace secret
  and the dynamic variables filled in as ElevenLabs fills them), over both transports.
- LiveKit: the page's Python run as written, its ``MCPServerHTTP`` calling the tools.
- Claude Desktop and Cursor: the ``mcpServers`` entry's command, args and env launched with the
  SDK's ``stdio_client``, on the server and on the local database.

Each write's provenance is checked to be what the page says: source ``mcp``, the platform, the
call id.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import httpx2
import pytest
from mcp import ClientSession, StdioServerParameters, stdio_client
from mcp.client.sse import sse_client
from mcp.client.streamable_http import streamable_http_client
from mcp_types import TextContent
from servers import ServerProcess

from botwire import Memory
from botwire.voice import AsyncCallMemory

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "mcp.md"
FIXTURE = ROOT / "tests" / "voice" / "fixtures" / "vapi" / "assistant-request.json"
FENCE = re.compile(r"^```(\w*)\n(.*?)^```[ \t]*$", re.S | re.M)
HOST = "https://<your-server>"
KEY = "<BOTWIRE_API_KEY>"
VAPI_SECRET = "vapi-docs-secret"
ASSISTANT = "asst_docs"
BIN = Path(sys.executable).parent  # the virtualenv's bin: python, botwire
SHELL = all(shutil.which(tool) for tool in ("bash", "curl"))

pytestmark = pytest.mark.processes


@dataclass(frozen=True)
class Block:
    index: int
    lang: str
    text: str


def blocks() -> list[Block]:
    text = PAGE.read_text(encoding="utf-8")
    return [Block(i, m[1], m[2]) for i, m in enumerate(FENCE.finditer(text))]


def json_block(test) -> dict[str, Any]:
    """The page's one JSON block for which ``test(data)`` holds."""
    found = [json.loads(b.text) for b in blocks() if b.lang == "json"]
    (data,) = [d for d in found if isinstance(d, dict) and test(d)]
    return data


def python_block() -> str:
    (block,) = [b for b in blocks() if b.lang == "python"]
    return block.text


def text_of(result: Any) -> str:
    return "\n".join(c.text for c in result.content if isinstance(c, TextContent))


# -- the server, and the key the install block makes ------------------------------------------


@dataclass
class Server:
    proc: ServerProcess
    key: str  # made by the page's `botwire keys create` line

    @property
    def base(self) -> str:
        return self.proc.base

    def resolve(self, value: Any) -> Any:
        """``value`` with ``https://<your-server>`` and ``<BOTWIRE_API_KEY>`` filled in."""
        if isinstance(value, dict):
            return {k: self.resolve(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.resolve(v) for v in value]
        if isinstance(value, str):
            return value.replace(HOST, self.base).replace(KEY, self.key)
        return value

    async def fact(self, number: str, key: str) -> Any:
        async with AsyncCallMemory(number, url=self.proc.url()) as call:
            return await call.fact(key)


def install_block() -> str:
    (block,) = [b for b in blocks() if b.lang == "bash" and "pip install" in b.text]
    return block.text


def made_key(proc: ServerProcess) -> str:
    """Run the page's ``export BOTWIRE_API_KEY=...`` line where the server keeps its admin key."""
    (line,) = [
        ln for ln in install_block().splitlines() if ln.startswith("export BOTWIRE_API_KEY=")
    ]
    env = {k: v for k, v in os.environ.items() if not k.startswith("BOTWIRE_")}
    env.update(PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}", BOTWIRE_HOME=str(proc.home))
    env["BOTWIRE_URL"] = proc.base  # where `botwire keys` finds the server
    done = subprocess.run(
        ["bash", "-c", f'set -e\n{line}\nprintf %s "$BOTWIRE_API_KEY"'],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("bw_"), done.stdout
    return done.stdout


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Server:
    """``botwire serve`` with Vapi set up as docs/vapi.md says (HMAC-signed requests)."""
    if not shutil.which("bash"):
        pytest.skip("needs bash")
    home = tmp_path_factory.mktemp("mcp-docs")
    proc = ServerProcess(
        f"sqlite:///{home}/botwire.db",
        home,
        vapi_secret=VAPI_SECRET,
        vapi_auth="hmac",
        vapi_assistant_id=ASSISTANT,
    ).start()
    try:
        yield Server(proc, made_key(proc))
    finally:
        proc.stop()


@asynccontextmanager
async def session(url: str, headers: dict[str, str]) -> AsyncIterator[ClientSession]:
    """The SDK's client on ``url``: streamable HTTP for ``/mcp``, SSE for ``/mcp/sse``."""
    if url.endswith("/mcp/sse"):
        async with (
            sse_client(url, headers=headers) as (read, write),
            ClientSession(read, write) as client,
        ):
            await client.initialize()
            yield client
        return
    assert url.endswith("/mcp"), url
    async with (
        httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(30)) as http,
        streamable_http_client(url, http_client=http) as (read, write),
        ClientSession(read, write) as client,
    ):
        await client.initialize()
        yield client


async def answer(client: ClientSession, name: str, args: dict[str, Any]) -> str:
    result = await client.call_tool(name, args)
    assert not result.is_error, text_of(result)
    return text_of(result)


# -- the page itself -------------------------------------------------------------------------


def test_every_json_block_parses_and_the_install_line_is_the_checkout():
    for block in blocks():
        if block.lang == "json":
            json.loads(block.text)
    assert 'pip install "./botwire[server,mcp]"' in install_block()


def table_rows() -> list[list[str]]:
    rows = []
    for line in PAGE.read_text(encoding="utf-8").splitlines():
        if line.startswith("|") and not re.match(r"\|\s*-", line):
            rows.append([c.strip() for c in line.strip().strip("|").split(" | ")])
    return rows


def code(cell: str) -> str | None:
    found = re.search(r"`([^`]*)`", cell)
    return found[1] if found else None


def tool_rows() -> list[tuple[str, dict[str, Any], str]]:
    """(tool, example arguments, answer) of the tools table, in its order."""
    return [
        (code(r[0]), json.loads(code(r[2])), code(r[3]))
        for r in table_rows()
        if len(r) == 4 and code(r[0]) and (code(r[2]) or "").startswith("{")
    ]


async def test_tools_table_is_what_the_server_lists_and_answers(server):
    rows = tool_rows()
    headers = {"Authorization": f"Bearer {server.key}", "X-Botwire-Caller": "+14155550160"}
    async with session(server.base + "/mcp", headers) as client:
        listed = {t.name: t for t in (await client.list_tools()).tools}
        assert sorted(name for name, _, _ in rows) == sorted(listed)
        for name, args, shown in rows:
            schema = listed[name].input_schema
            assert set(args) <= set(schema["properties"]), name
            assert set(schema.get("required", ())) <= set(args), name
            assert "caller" not in schema["properties"], f"{name} takes a caller over HTTP"
            assert await answer(client, name, args) == shown, f"{name}({args})"
        mistake = await client.call_tool("recall_memory", {})
        assert mistake.is_error and text_of(mistake) == quoted("missing argument")
    async with session(server.base + "/mcp", {"Authorization": f"Bearer {server.key}"}) as client:
        nobody = await client.call_tool("list_memories", {})
    assert nobody.is_error and text_of(nobody).startswith(quoted("This request names no call"))


def quoted(sentence_start: str) -> str:
    """The page's quoted tool error that starts with ``sentence_start``, joined onto one line."""
    text = " ".join(PAGE.read_text(encoding="utf-8").split())
    found = re.search(r"`(" + re.escape(sentence_start) + r"[^`]*)`", text)
    assert found, f"docs/mcp.md does not quote {sentence_start!r}"
    return found[1]


@pytest.mark.skipif(not SHELL, reason="needs bash and curl")
def test_curl_example_answers_what_the_page_shows(server):
    found = blocks()
    i = next(i for i, b in enumerate(found) if b.lang == "bash" and "curl " in b.text)
    shown = json.loads(found[i + 1].text)
    env = {k: v for k, v in os.environ.items() if not k.startswith("BOTWIRE_")}
    done = subprocess.run(
        ["bash", "-c", "set -eo pipefail\n" + found[i].text.replace(HOST, server.base)],
        env={**env, "BOTWIRE_API_KEY": server.key},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == shown, done.stdout


async def test_over_quota_a_tool_answers_what_the_page_says(tmp_path):
    proc = ServerProcess(f"sqlite:///{tmp_path}/quota.db", tmp_path, writes_per_day=3).start()
    try:
        headers = {"Authorization": f"Bearer {proc.admin_key}", "X-Botwire-Caller": "+14155550171"}
        async with session(proc.base + "/mcp", headers) as client:
            for i in range(10):
                result = await client.call_tool("remember", {"key": f"k{i}", "value": i})
                if result.is_error:
                    break
    finally:
        proc.stop()
    assert result.is_error and text_of(result) == quoted("This caller's memory is full")


def test_no_key_is_refused_before_any_mcp_code(server):
    r = httpx.post(server.base + "/mcp", json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"})
    assert r.status_code == 401
    assert r.headers["www-authenticate"] == 'Bearer realm="botwire"'


async def test_the_model_cannot_choose_another_caller(server):
    """A ``caller`` argument is ignored, and a key's prefixes bound the header's caller."""
    mine, other = "+14155550163", "+14155550164"
    headers = {"Authorization": f"Bearer {server.key}", "X-Botwire-Caller": mine}
    async with session(server.base + "/mcp", headers) as client:
        args = {"key": "pet", "value": "cat", "caller": other}
        assert await answer(client, "remember", args) == "Remembered pet."
    assert (await server.fact(mine, "pet")).value == "cat"
    assert await server.fact(other, "pet") is None

    narrow = made_narrow_key(server, "phone:+1415")
    headers = {"Authorization": f"Bearer {narrow}", "X-Botwire-Caller": "+442071234567"}
    async with session(server.base + "/mcp", headers) as client:
        result = await client.call_tool("list_memories", {})
    assert result.is_error
    assert text_of(result) == quoted("This API key may not read")


def made_narrow_key(server: Server, prefix: str) -> str:
    r = httpx.post(
        server.base + "/v1/keys",
        headers={"Authorization": f"Bearer {server.proc.admin_key}"},
        json={"prefixes": [prefix], "rights": "write", "name": "narrow"},
        timeout=10,
    )
    assert r.status_code == 201, r.text
    return r.json()["key"]


# -- Vapi ----------------------------------------------------------------------------------------


def vapi_tool() -> dict[str, Any]:
    return json_block(lambda d: d.get("type") == "mcp")


def signed_assistant_request(server: Server) -> httpx.Response:
    """The fixture, signed as a Vapi HMAC credential signs it (docs/vapi.md)."""
    body = FIXTURE.read_bytes()
    ts = str(int(time.time()))
    sig = hmac.new(VAPI_SECRET.encode(), f"{ts}.".encode() + body, hashlib.sha256).hexdigest()
    return httpx.post(
        server.base + "/voice/vapi",
        content=body,
        headers={"x-timestamp": ts, "x-signature": sig, "content-type": "application/json"},
        timeout=10,
    )


async def test_vapi_mcp_tool_works_on_the_caller_of_the_call(server):
    tool = vapi_tool()
    assert tool["metadata"] == {"protocol": "shttp"}  # streamable HTTP
    target = server.resolve(tool["server"])
    fixture = json.loads(FIXTURE.read_text())["message"]["call"]
    call_id, caller = fixture["id"], fixture["customer"]["number"]

    # before the call starts, botwire does not know the call
    headers = {**target["headers"], "X-Call-Id": call_id}  # Vapi adds X-Call-Id itself
    async with session(target["url"], headers) as client:
        result = await client.call_tool("get_caller_context", {})
    assert result.is_error and text_of(result) == quoted("This call is not known")

    started = signed_assistant_request(server)
    assert started.status_code == 200, started.text
    assert started.json()["assistantId"] == ASSISTANT

    async with session(target["url"], headers) as client:
        deadline = time.monotonic() + 10  # the call is recorded after the webhook's answer
        while (await client.call_tool("list_memories", {})).is_error:
            assert time.monotonic() < deadline, "the call never became known"
        args = {"key": "last_order", "value": "ORDER-789"}
        assert await answer(client, "remember", args) == "Remembered last_order."
        assert "last_order: ORDER-789" in await answer(client, "get_caller_context", {})
    fact = await server.fact(caller, "last_order")
    assert (fact.source, fact.platform, fact.call_id) == ("mcp", "vapi", call_id)


async def test_vapi_secret_authenticates_too(server):
    target = server.resolve(vapi_tool()["server"])
    headers = {"Authorization": f"Bearer {VAPI_SECRET}", "X-Botwire-Caller": "+14155550165"}
    async with session(target["url"], headers) as client:
        assert len((await client.list_tools()).tools) == 6
        assert (
            await answer(client, "list_memories", {}) == "Nothing is stored about this caller yet."
        )


# -- ElevenLabs -------------------------------------------------------------------------------


def elevenlabs_headers(
    config: dict[str, Any], server: Server, variables: dict[str, str]
) -> dict[str, str]:
    """The request headers as ElevenLabs sends them: the workspace secret's value, the
    dynamic variables' values for this conversation."""
    out = {}
    for name, value in config["request_headers"].items():
        if isinstance(value, str):
            out[name] = value
        elif "secret_id" in value:
            out[name] = server.key  # the workspace secret holds the key
        else:
            out[name] = variables[value["variable_name"]]
    return out


@pytest.mark.parametrize("transport", ["STREAMABLE_HTTP", "SSE"])
async def test_elevenlabs_mcp_server_works_on_the_caller_of_the_conversation(server, transport):
    config = json_block(lambda d: "config" in d)["config"]
    assert config["transport"] == "STREAMABLE_HTTP"
    url = server.resolve(config["url"])
    if transport == "SSE":  # as the page says: "SSE" with https://<your-server>/mcp/sse
        assert '`"transport": "SSE"` with `https://<your-server>/mcp/sse`' in PAGE.read_text()
        url += "/sse"
    caller = "+14155550166" if transport == "SSE" else "+14155550167"
    conversation = f"conv_docs_{transport.lower()}"
    variables = {"system__caller_id": caller, "system__conversation_id": conversation}
    headers = elevenlabs_headers(config, server, variables)
    assert "Authorization" not in headers  # the Secret Token stays empty
    async with session(url, headers) as client:
        args = {"key": "customer_name", "value": "Ana"}
        assert await answer(client, "remember", args) == "Remembered customer_name."
        assert await answer(client, "list_memories", {}) == "customer_name: Ana"
    fact = await server.fact(caller, "customer_name")
    assert (fact.source, fact.platform, fact.call_id) == ("mcp", "elevenlabs", conversation)


# -- LiveKit ------------------------------------------------------------------------------------


def sip_participant(attributes: dict[str, str]) -> Any:
    """A real ``rtc.RemoteParticipant``, built from its protobuf (as tests/voice does)."""
    from livekit import rtc
    from livekit.rtc._proto import handle_pb2, participant_pb2

    info = participant_pb2.ParticipantInfo(
        sid="PA_docs",
        identity="sip_caller",
        attributes=attributes,
        kind=participant_pb2.ParticipantKind.PARTICIPANT_KIND_SIP,
    )
    owned = participant_pb2.OwnedParticipant(handle=handle_pb2.FfiOwnedHandle(id=0), info=info)
    return rtc.RemoteParticipant(owned)


async def test_livekit_example_calls_the_tools_through_mcpserverhttp(server, monkeypatch):
    pytest.importorskip("livekit.agents.llm.mcp", reason="livekit-agents is not installed")
    monkeypatch.setenv("BOTWIRE_API_KEY", server.key)
    scope: dict[str, Any] = {"__name__": "docs_mcp"}
    source = python_block().replace(HOST, server.base)
    exec(compile(source, "docs/mcp.md (LiveKit)", "exec"), scope)

    assert scope["botwire_mcp"](sip_participant({})) is None  # no number, no memory
    caller, call_id = "+14155550168", "SCL_docs_1"
    attributes = {"sip.phoneNumber": caller, "sip.callID": call_id}
    mcp_server = scope["botwire_mcp"](sip_participant(attributes))
    assert "transport=streamable_http" in repr(mcp_server)  # chosen by the URL
    await mcp_server.initialize()
    try:
        tools = {t.info.name: t for t in await mcp_server.list_tools()}
        assert sorted(tools) == sorted(name for name, _, _ in tool_rows())
        await tools["remember"]({"key": "pizza", "value": "margherita"})
        shown = json.loads(await tools["list_memories"]({}))
        assert shown["text"] == "pizza: margherita"
    finally:
        await mcp_server.aclose()
    fact = await server.fact(caller, "pizza")
    assert (fact.source, fact.platform, fact.call_id) == ("mcp", "livekit", call_id)


# -- Claude Desktop and Cursor -------------------------------------------------------------------


def desktop_entry() -> dict[str, Any]:
    return json_block(lambda d: "mcpServers" in d)["mcpServers"]["botwire"]


def launch(entry: dict[str, Any], home: Path, env: dict[str, str] | None) -> StdioServerParameters:
    """The entry as a desktop client starts it: its command (here, this virtualenv's
    ``botwire``), args and env, with a home of the test's own."""
    assert Path(entry["command"]).name == "botwire" and Path(entry["command"]).is_absolute()
    return StdioServerParameters(
        command=str(BIN / "botwire"),
        args=entry["args"],
        env={**(env or {}), "BOTWIRE_HOME": str(home)},
    )


@asynccontextmanager
async def desktop(params: StdioServerParameters) -> AsyncIterator[ClientSession]:
    async with (
        stdio_client(params) as (read, write),
        ClientSession(read, write) as client,
    ):
        await client.initialize()
        yield client


async def test_desktop_entry_runs_botwire_mcp_on_the_server(server, tmp_path):
    entry = desktop_entry()
    assert entry["args"] == ["mcp"]
    params = launch(entry, tmp_path, server.resolve(entry["env"]))
    caller = "+14155550169"
    async with desktop(params) as client:
        tools = (await client.list_tools()).tools
        assert sorted(t.name for t in tools) == sorted(name for name, _, _ in tool_rows())
        assert all("caller" in t.input_schema["required"] for t in tools)  # no --caller
        args = {"caller": caller, "key": "customer_name", "value": "Ana"}
        assert await answer(client, "remember", args) == "Remembered customer_name."
        assert await answer(client, "list_memories", {"caller": caller}) == "customer_name: Ana"
    fact = await server.fact(caller, "customer_name")
    assert (fact.source, fact.platform) == ("mcp", "desktop")


async def test_desktop_entry_without_env_uses_this_machines_database(tmp_path):
    params = launch(desktop_entry(), tmp_path, None)
    async with desktop(params) as client:
        args = {"caller": "+14155550170", "key": "customer_name", "value": "Ana"}
        assert await answer(client, "remember", args) == "Remembered customer_name."
    with Memory("phone:+14155550170", url=f"sqlite:///{tmp_path}/botwire.db") as memory:
        assert memory.get("customer_name") == "Ana"


async def test_desktop_entry_with_caller_fixes_one_caller(tmp_path):
    """``--caller +14155550123`` fixes one, as the page says."""
    (fixed,) = re.findall(r"`--caller (\+\d+)` fixes one", " ".join(PAGE.read_text().split()))
    entry = {**desktop_entry(), "args": ["mcp", "--caller", fixed]}
    async with desktop(launch(entry, tmp_path, None)) as client:
        tools = (await client.list_tools()).tools
        assert not any("caller" in t.input_schema["properties"] for t in tools)
        args = {"key": "customer_name", "value": "Ana", "caller": "+14155550172"}
        assert await answer(client, "remember", args) == "Remembered customer_name."
    with Memory(f"phone:{fixed}", url=f"sqlite:///{tmp_path}/botwire.db") as memory:
        assert memory.get("customer_name") == "Ana"
    with Memory("phone:+14155550172", url=f"sqlite:///{tmp_path}/botwire.db") as memory:
        assert memory.get("customer_name") is None
