"""A real ``botwire serve`` process for the MCP tests, the SDK's own clients against it, and
reads of what its tools stored, straight from the database it writes."""

from __future__ import annotations

import asyncio
import copy
import json
import random
import secrets
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import httpx2
from mcp import ClientSession
from mcp.client.sse import sse_client
from mcp.client.streamable_http import streamable_http_client
from mcp_types import TextContent

import botwire
from botwire.engines.base import Namespaces, SaveKey
from botwire.server import calls
from botwire.server.auth import new_key
from botwire.voice import core, facts
from botwire.voice.records import CALLS, CONVERSATION, NOTES
import servers

VAPI_SECRET = "vapi-mcp-secret"
ASSISTANT = "asst_mcp"
# unlimited writes and bytes: quotas have their own tests
UNLIMITED = {"writes_per_day": 0, "max_bytes": 0}
VOICE = {"vapi_secret": VAPI_SECRET, "vapi_assistant_id": ASSISTANT}
TOOLS = [
    "get_caller_context",
    "recall_memory",
    "remember",
    "remember_fact",
    "forget",
    "list_memories",
]
ASSISTANT_REQUEST = (
    Path(__file__).resolve().parents[1] / "voice" / "fixtures" / "vapi" / "assistant-request.json"
)
TRANSPORTS = ("http", "sse")


def number(area: str = "415") -> str:
    """A caller's number (``+1<area>...``) no other test uses."""
    return f"+1{area}{random.randrange(2_000_000, 9_999_999)}"


def ns_of(e164: str) -> str:
    return f"phone:{e164}"


class Reply:
    """One tool result: its text and whether it is a tool error."""

    def __init__(self, result: Any) -> None:
        self.is_error: bool = bool(result.is_error)
        self.text = "\n".join(c.text for c in result.content if isinstance(c, TextContent))

    def __repr__(self) -> str:
        return f"Reply(is_error={self.is_error}, text={self.text!r})"


class Tools:
    """An initialized ``ClientSession``, and its ``call_tool`` as a ``Reply``."""

    def __init__(self, session: ClientSession, init: Any) -> None:
        self.session, self.init = session, init

    async def call(self, name: str, args: dict[str, Any] | None = None) -> Reply:
        return Reply(await self.session.call_tool(name, args or {}))

    async def ok(self, name: str, args: dict[str, Any] | None = None) -> str:
        reply = await self.call(name, args)
        assert not reply.is_error, reply
        return reply.text

    async def error(self, name: str, args: dict[str, Any] | None = None) -> str:
        reply = await self.call(name, args)
        assert reply.is_error, reply
        return reply.text


class Served(servers.Served):
    """A ``botwire serve`` process over ``database`` with the Vapi secret configured, and the
    test's own engine on the same database (keys made, storage read)."""

    def __init__(self, database: str, home: Path, **settings: object) -> None:
        super().__init__(database, home, **{**UNLIMITED, **settings})

    # -- keys and storage --------------------------------------------------------------

    def key(
        self,
        prefixes: list[str] | None = None,
        rights: str = "write",
        writes_per_day: int | None = None,
        max_bytes: int | None = None,
    ) -> str:
        """A new API key (its own quotas, or the server's), stored directly."""
        secret, record = new_key(
            "mcp tests",
            prefixes or [""],
            rights,
            writes_per_day=writes_per_day,
            max_bytes=max_bytes,
        )
        assert self.engine.execute(SaveKey(record))
        return secret

    def memory(self, ns: str) -> botwire.Memory:
        return botwire.Memory(ns, engine=self.engine)

    def fact(self, ns: str, key: str) -> facts.Fact | None:
        return core.run(facts.fact(key), self.memory(ns))

    def history(self, ns: str, key: str) -> list[facts.Fact]:
        return core.run(facts.history(key), self.memory(ns))

    def notes(self, ns: str) -> list[Any]:
        return [e.value for e in self.memory(ns).log(NOTES).read(last=1000)]

    def snapshot(self, ns: str) -> dict[str, Any]:
        """Everything a namespace holds: every key (botwire's own too) with its version, and
        the voice logs' entries."""
        memory = self.memory(ns)
        keys = {}
        for key, value in memory.items(include_internal=True):
            info = memory.info(key)
            keys[key] = (value, info.version if info else None)
        logs = {
            name: [(e.seq, e.value) for e in memory.log(name).read(last=1000)]
            for name in (NOTES, CALLS, CONVERSATION)
        }
        return {"keys": keys, "logs": logs}

    def namespaces(self) -> set[str]:
        """Every namespace holding something, botwire's own bookkeeping left out."""
        return set(self.engine.execute(Namespaces("", None, 100_000)))

    # -- the platform's side: a verified call start -------------------------------------

    async def vapi_assistant_request(
        self, caller: str | None, call_id: str, secret: str = VAPI_SECRET
    ) -> httpx.Response:
        """Vapi's ``assistant-request`` (the fixture, for this caller and call; ``None``: the
        number withheld), with the secret Vapi sends in its default mode."""
        body = copy.deepcopy(json.loads(ASSISTANT_REQUEST.read_text()))
        message = body["message"]
        message["call"]["id"] = call_id
        for customer in (message["call"]["customer"], message["customer"]):
            if caller is None:
                del customer["number"]
            else:
                customer["number"] = caller
        raw = json.dumps(body, separators=(",", ":")).encode()
        async with httpx.AsyncClient(base_url=self.base, timeout=30) as client:
            return await client.post(
                "/voice/vapi",
                content=raw,
                headers={"x-vapi-secret": secret, "content-type": "application/json"},
            )

    async def start_call(self, caller: str, call_id: str | None = None) -> str:
        """A call from ``caller`` started on Vapi: its id, once the server has recorded which
        caller it is (it does so after answering the webhook)."""
        call_id = call_id or f"call-{secrets.token_hex(6)}"
        answer = await self.vapi_assistant_request(caller, call_id)
        assert answer.status_code == 200, answer.text
        assert answer.json()["assistantId"] == ASSISTANT
        recorded = self.memory(calls.CALLS_NS)
        deadline = time.monotonic() + 10
        while recorded.get(call_id) is None:
            assert time.monotonic() < deadline, "the call's caller was never recorded"
            await asyncio.sleep(0.02)
        assert recorded.get(call_id) == {"ns": ns_of(caller), "platform": "vapi", "why": ""}
        return call_id

    # -- the SDK's clients -------------------------------------------------------------

    @asynccontextmanager
    async def tools(self, headers: dict[str, str], transport: str = "http") -> AsyncIterator[Tools]:
        """An initialized MCP session over ``transport`` ("http": streamable HTTP at
        ``/mcp``; "sse": ``/mcp/sse``), sending ``headers`` with every request."""
        if transport == "http":
            async with (
                httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(30)) as http,
                streamable_http_client(self.base + "/mcp", http_client=http) as (read, write),
                ClientSession(read, write) as session,
            ):
                yield Tools(session, await session.initialize())
        elif transport == "sse":
            async with (
                sse_client(self.base + "/mcp/sse", headers=headers) as (read, write),
                ClientSession(read, write) as session,
            ):
                yield Tools(session, await session.initialize())
        else:
            raise ValueError(transport)


def bearer(secret: str, **more: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}", **more}


def caller_headers(secret: str, caller: str, **more: str) -> dict[str, str]:
    return bearer(secret, **{"X-Botwire-Caller": caller, **more})


def tool_call(name: str, args: dict[str, Any], id_: int = 1) -> dict[str, Any]:
    """A JSON-RPC ``tools/call`` request as a client would POST it, no session needed."""
    return {
        "jsonrpc": "2.0",
        "id": id_,
        "method": "tools/call",
        "params": {"name": name, "arguments": args},
    }


MCP_POST = {
    "content-type": "application/json",
    "accept": "application/json, text/event-stream",
    "mcp-protocol-version": "2025-11-25",
}
