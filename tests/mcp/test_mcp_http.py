"""``/mcp`` on a real ``botwire serve`` process, driven by the ``mcp`` SDK's own clients over a
real socket (streamable HTTP and SSE), on SQLite and PostgreSQL: the tools and what they store,
who may call, whose memory a call is bound to, and what a model's arguments cannot change."""

from __future__ import annotations

import asyncio
import secrets
import uuid

import httpx
import pytest

# a missing extra leaves tests/mcp itself for `import mcp` (a namespace package): ask for the SDK
pytest.importorskip("mcp.client.stdio", reason="the mcp extra is not installed")

from mcp.shared.exceptions import MCPError
from mcpkit import (
    MCP_POST,
    TOOLS,
    TRANSPORTS,
    UNLIMITED,
    VAPI_SECRET,
    VOICE,
    Served,
    bearer,
    caller_headers,
    ns_of,
    number,
    tool_call,
)

from servers import ServerProcess

pytestmark = pytest.mark.processes

EMPTY: dict[str, dict[str, list]] = {
    "keys": {},
    "logs": {"notes": [], "calls": [], "conversation": []},
}
UNKNOWN_CALL = (
    "This call is not known to botwire: its call-start webhook has not reached this server, "
    "so nothing is remembered in it."
)
NO_CALL = (
    "This request names no call, so botwire cannot tell whose memory to use: the client sends "
    "X-Call-Id (Vapi) or X-Botwire-Caller."
)
# one call of each tool, with arguments it accepts
EVERY_TOOL = [
    ("get_caller_context", {}),
    ("recall_memory", {"query": "plan"}),
    ("remember", {"key": "plan", "value": "gold"}),
    ("remember_fact", {"text": "Prefers email over SMS"}),
    ("forget", {"key": "plan"}),
    ("list_memories", {}),
]
WRITES = {"remember", "remember_fact", "forget"}


def token() -> str:
    return secrets.token_hex(5)


def leaves(exc: BaseException) -> list[BaseException]:
    """The exceptions inside (nested) exception groups."""
    inner = getattr(exc, "exceptions", None)  # an ExceptionGroup (3.11) or anyio's backport
    if inner is None:
        return [exc]
    return [leaf for one in inner for leaf in leaves(one)]


# -- the tools, listed and called ---------------------------------------------------------


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_initialize_lists_the_six_tools_none_taking_a_caller(served, admin, transport):
    async with served.tools(caller_headers(admin, number()), transport) as t:
        listed = (await t.session.list_tools()).tools
    assert t.init.server_info.name == "botwire"
    assert "cannot look up anyone else" in (t.init.instructions or "")
    assert [tool.name for tool in listed] == TOOLS
    schemas = {tool.name: tool.input_schema for tool in listed}
    for name, schema in schemas.items():
        assert schema["type"] == "object"
        assert "caller" not in schema["properties"], name
    assert {name: schema["required"] for name, schema in schemas.items()} == {
        "get_caller_context": [],
        "recall_memory": ["query"],
        "remember": ["key", "value"],
        "remember_fact": ["text"],
        "forget": ["key"],
        "list_memories": [],
    }
    assert all(tool.description for tool in listed)


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_each_tool_does_its_work_on_the_callers_storage(served, admin, transport):
    caller, call_id = number(), f"lk-{token()}"
    ns = ns_of(caller)
    headers = caller_headers(
        admin, caller, **{"X-Botwire-Platform": "livekit", "X-Botwire-Call-Id": call_id}
    )
    memory = served.memory(ns)
    async with served.tools(headers, transport) as t:
        assert await t.ok("list_memories") == "Nothing is stored about this caller yet."
        assert "first call" in await t.ok("get_caller_context")

        assert await t.ok("remember", {"key": "plan", "value": "gold"}) == "Remembered plan."
        order = {"number": "A-17", "status": "shipped"}
        assert await t.ok("remember", {"key": "order", "value": order}) == "Remembered order."
        assert await t.ok("remember", {"key": "open:refund", "value": "kettle lid"})
        assert memory.get("plan") == "gold"
        assert memory.get("order") == order
        assert memory.get("open:refund") == "kettle lid"
        plan = served.fact(ns, "plan")
        assert (plan.source, plan.platform, plan.call_id) == ("mcp", "livekit", call_id)

        assert await t.ok("remember_fact", {"text": "Prefers email over SMS"}) == "Noted."
        (note,) = served.notes(ns)
        assert (note["text"], note["call_id"]) == ("Prefers email over SMS", call_id)

        context = await t.ok("get_caller_context")
        assert "- plan: gold" in context
        assert "- refund: kettle lid" in context  # an open item, under "Still open:"
        assert "Prefers email over SMS" in context
        assert await t.ok("recall_memory", {"query": "plan"}) == "plan: gold"
        assert "A-17" in await t.ok("recall_memory", {"query": "shipped order"})
        assert sorted((await t.ok("list_memories")).splitlines()) == [
            "open:refund: kettle lid",
            'order: {"number":"A-17","status":"shipped"}',
            "plan: gold",
        ]

        assert await t.ok("forget", {"key": "plan"}) == "Forgot plan."
        assert memory.get("plan") is None
        removal = served.history(ns, "plan")[0]
        assert removal.deleted and (removal.source, removal.call_id) == ("mcp", call_id)
        assert await t.ok("forget", {"key": "plan"}) == "Nothing was stored under plan."
        assert "plan" not in await t.ok("list_memories")
        assert await t.ok("recall_memory", {"query": "plan"}) == (
            "Nothing stored about this caller matches 'plan'."
        )


MISTAKES = [
    ("recall_memory", {}, "missing argument 'query'"),
    ("recall_memory", {"query": "plan", "limit": "many"}, "argument 'limit' must be a whole"),
    ("remember", {"value": "gold"}, "missing argument 'key'"),
    ("remember", {"key": "plan"}, "missing argument 'value'"),
    ("remember", {"key": "plan", "value": ""}, "missing argument 'value'"),
    ("remember_fact", {}, "missing argument 'text'"),
    ("forget", {}, "missing argument 'key'"),
    ("remember", {"key": 7, "value": "gold"}, "argument 'key' must be a string"),
    ("remember", {"key": "last_call", "value": "forged"}, "'last_call' is kept by botwire"),
    ("forget", {"key": "last_call"}, "'last_call' is kept by botwire itself"),
    ("remember", {"key": "~fact/plan", "value": "forged"}, "'~fact/plan' is kept by botwire"),
    ("delete_everything", {}, "unknown tool 'delete_everything'; botwire answers"),
]


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_mistakes_are_tool_errors_that_store_nothing(served, admin, transport):
    caller = number()
    ns = ns_of(caller)
    memory = served.memory(ns)
    memory.set("last_call", {"call_id": "c-1", "summary": "asked about a refund"})
    memory.set("plan", "gold")
    before = served.snapshot(ns)
    async with served.tools(caller_headers(admin, caller), transport) as t:
        for name, args, said in MISTAKES:
            reply = await t.call(name, args)  # a protocol failure would raise here
            assert reply.is_error, (name, args, reply)
            assert said in reply.text, (name, args, reply)
        # the session is as good as before
        assert await t.ok("list_memories") == "plan: gold"
    assert served.snapshot(ns) == before


async def test_a_tool_call_needs_no_session_and_answers_a_tool_error(served, admin):
    """Stateless: one POST with ``tools/call``, no ``initialize`` before it; a mistake is a
    JSON-RPC *result* with ``isError``, never a JSON-RPC error."""
    caller = number()
    headers = {**caller_headers(admin, caller), **MCP_POST}
    async with httpx.AsyncClient(base_url=served.base, timeout=30) as http:
        wrong = await http.post("/mcp", json=tool_call("no_such_tool", {}), headers=headers)
        right = await http.post(
            "/mcp", json=tool_call("remember", {"key": "plan", "value": "gold"}, 2), headers=headers
        )
    assert wrong.status_code == 200 and "mcp-session-id" not in wrong.headers
    body = wrong.json()
    assert "error" not in body and body["result"]["isError"] is True
    assert "unknown tool 'no_such_tool'" in body["result"]["content"][0]["text"]
    assert right.json()["result"] == {
        "content": [{"type": "text", "text": "Remembered plan."}],
        "isError": False,
    }
    assert served.memory(ns_of(caller)).get("plan") == "gold"


@pytest.mark.parametrize("version", [None, "2025-03-26", "2025-06-18", "2025-11-25"])
async def test_a_plain_tool_call_is_answered_as_the_sdk_answers_it(served, admin, version):
    """botwire answers a plain ``tools/call`` itself (server/mcp.py ``direct_call``); the same
    call with ``_meta`` goes to the SDK: both answers are the same, byte for byte in JSON."""
    caller = number()
    headers = {**caller_headers(admin, caller), **MCP_POST}
    if version is not None:
        headers["MCP-Protocol-Version"] = version
    answers = []
    async with httpx.AsyncClient(base_url=served.base, timeout=30) as http:
        await http.post("/mcp", json=remember("gold"), headers=headers)
        for name, args in [("list_memories", {}), ("forget", {}), ("nope", {})]:
            for meta in ({}, {"_meta": {"progressToken": 7}}):
                body = tool_call(name, args, 9)
                body["params"].update(meta)
                answers.append((await http.post("/mcp", json=body, headers=headers)).json())
    for ours, sdks in zip(answers[::2], answers[1::2], strict=True):
        assert ours == sdks
    assert answers[0]["result"]["content"][0]["text"] == "plan: gold"
    assert answers[2]["result"]["isError"] is True


# -- who may call -------------------------------------------------------------------------

REFUSED = {
    "no key": {},
    "a wrong key": {"Authorization": "Bearer bw_not-a-real-key"},
    "a wrong X-API-Key": {"X-API-Key": "bw_not-a-real-key"},
    "a wrong voice secret": {"Authorization": f"Bearer {VAPI_SECRET}-not"},
}


@pytest.mark.parametrize("auth", REFUSED.values(), ids=list(REFUSED))
async def test_without_a_valid_key_it_is_401_before_any_tool_runs(served, auth):
    caller = number()
    ns = ns_of(caller)
    headers = {**auth, "X-Botwire-Caller": caller, **MCP_POST}
    remember = tool_call("remember", {"key": "plan", "value": "gold"})
    async with httpx.AsyncClient(base_url=served.base, timeout=10) as http:
        answers = [
            await http.post("/mcp", json=remember, headers=headers),
            await http.get("/mcp/sse", headers=headers),
            await http.post(
                f"/mcp/messages/?session_id={uuid.uuid4().hex}", json=remember, headers=headers
            ),
        ]
    for answer in answers:
        assert answer.status_code == 401, (answer.request.url, answer.text)
        assert answer.headers["www-authenticate"] == 'Bearer realm="botwire"'
        assert answer.headers["content-type"].startswith("application/json")
        assert answer.json()["error"]["code"] == "unauthorized"
    # the SDK's client: the handshake itself fails; no tool ever answers
    for transport in TRANSPORTS:
        with pytest.raises(Exception) as raised:
            async with served.tools(headers, transport) as t:
                await t.call("remember", {"key": "plan", "value": "gold"})
        assert any("401" in str(e) or isinstance(e, MCPError) for e in leaves(raised.value))
    assert served.snapshot(ns) == EMPTY


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_a_read_only_key_reads_but_cannot_write(served, transport):
    caller = number("415")
    ns = ns_of(caller)
    served.memory(ns).set("plan", "gold")
    key = served.key(["phone:+1415"], "read")
    before = served.snapshot(ns)
    async with served.tools(caller_headers(key, caller), transport) as t:
        assert await t.ok("list_memories") == "plan: gold"
        assert "- plan: gold" in await t.ok("get_caller_context")
        assert await t.ok("recall_memory", {"query": "plan"}) == "plan: gold"
        for name, args in EVERY_TOOL:
            if name in WRITES:
                said = await t.error(name, args)
                assert said == "This API key may not write this caller's memory."
    assert served.snapshot(ns) == before


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_a_key_for_phone_1415_cannot_reach_a_1212_caller(served, transport):
    mine, theirs = number("415"), number("212")
    served.memory(ns_of(theirs)).set("pin", "pin-4321-theirs")
    before = served.snapshot(ns_of(theirs))
    key = served.key(["phone:+1415"], "write")
    async with served.tools(caller_headers(key, theirs), transport) as t:
        for name, args in EVERY_TOOL:
            right = "write" if name in WRITES else "read"
            said = await t.error(name, args)
            assert said == f"This API key may not {right} this caller's memory."
    assert served.snapshot(ns_of(theirs)) == before
    async with served.tools(caller_headers(key, mine), transport) as t:
        assert await t.ok("remember", {"key": "plan", "value": "gold"}) == "Remembered plan."
    assert served.memory(ns_of(mine)).get("plan") == "gold"


@pytest.mark.parametrize("header", ["Authorization", "X-API-Key"])
@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_the_voice_platforms_secret_is_accepted(served, header, transport):
    caller = number()
    secret = f"Bearer {VAPI_SECRET}" if header == "Authorization" else VAPI_SECRET
    async with served.tools({header: secret, "X-Botwire-Caller": caller}, transport) as t:
        assert await t.ok("remember", {"key": "plan", "value": "gold"}) == "Remembered plan."
    assert served.memory(ns_of(caller)).get("plan") == "gold"


async def test_writes_are_charged_to_the_keys_daily_quota(served):
    caller = number()
    ns = ns_of(caller)
    key = served.key([""], "write", writes_per_day=2)
    full = "This caller's memory is full for today; nothing was stored."
    async with served.tools(caller_headers(key, caller)) as t:
        assert await t.ok("remember", {"key": "a", "value": 1}) == "Remembered a."
        assert await t.ok("remember_fact", {"text": "first note"}) == "Noted."
        assert await t.error("remember", {"key": "b", "value": 2}) == full
        assert await t.error("remember_fact", {"text": "second note"}) == full
        assert await t.ok("forget", {"key": "a"}) == "Forgot a."  # deletions are never refused
        assert await t.ok("list_memories") == "Nothing is stored about this caller yet."
    assert dict(served.memory(ns).items()) == {}
    assert [note["text"] for note in served.notes(ns)] == ["first note"]


async def test_writes_are_charged_to_the_keys_storage_quota(served):
    caller = number()
    key = served.key([""], "write", max_bytes=400)
    async with served.tools(caller_headers(key, caller)) as t:
        assert await t.ok("remember", {"key": "plan", "value": "gold"}) == "Remembered plan."
        said = await t.error("remember", {"key": "essay", "value": "x" * 500})
        assert said == "This caller's memory has no room left; nothing was stored."
    assert dict(served.memory(ns_of(caller)).items()) == {"plan": "gold"}


async def test_a_client_that_keeps_guessing_gets_429_and_keys_still_work(tmp_path):
    server = Served(
        f"sqlite:///{tmp_path}/botwire.db", tmp_path / "home", auth_failures=3, **VOICE
    ).start()
    try:
        key, caller = server.key(), number()
        body = tool_call("remember", {"key": "plan", "value": "gold"})
        headers = {"X-Botwire-Caller": caller, **MCP_POST}
        async with httpx.AsyncClient(base_url=server.base, timeout=10) as http:

            async def post(auth: dict[str, str]) -> httpx.Response:
                return await http.post("/mcp", json=body, headers={**headers, **auth})

            for _ in range(3):
                assert (await post(bearer("bw_guess"))).status_code == 401
            for auth in (bearer("bw_guess"), bearer("bw_another-guess"), {}):
                throttled = await post(auth)
                assert throttled.status_code == 429, throttled.text
                assert int(throttled.headers["retry-after"]) >= 1
                assert "www-authenticate" not in throttled.headers
            assert server.snapshot(ns_of(caller)) == EMPTY
            for auth in (bearer(key), bearer(VAPI_SECRET)):
                answer = await post(auth)
                assert answer.status_code == 200, answer.text
                assert answer.json()["result"]["isError"] is False
        assert server.memory(ns_of(caller)).get("plan") == "gold"
    finally:
        server.close()


async def test_get_on_the_stateless_endpoint_is_405_not_a_stream(served, admin):
    async with httpx.AsyncClient(base_url=served.base, timeout=5) as http:
        answer = await http.get("/mcp", headers={**bearer(admin), "accept": "text/event-stream"})
    assert answer.status_code == 405


# -- whose memory: the call's caller, from the headers --------------------------------------


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_a_vapi_call_id_works_on_the_caller_its_call_start_named(served, transport):
    caller = number()
    ns = ns_of(caller)
    served.memory(ns).set("customer_name", "Ana Souza")  # from an earlier call
    call_id = await served.start_call(caller)
    # as Vapi's MCP tool sends it: its X-Call-Id, the secret in the tool's server headers
    async with served.tools(bearer(VAPI_SECRET, **{"X-Call-Id": call_id}), transport) as t:
        assert "- customer_name: Ana Souza" in await t.ok("get_caller_context")
        assert await t.ok("remember", {"key": "plan", "value": "gold"}) == "Remembered plan."
        assert await t.ok("remember_fact", {"text": "Calls back after 5pm"}) == "Noted."
        assert "plan: gold" in await t.ok("list_memories")
    assert served.memory(ns).get("plan") == "gold"
    plan = served.fact(ns, "plan")
    assert (plan.source, plan.platform, plan.call_id) == ("mcp", "vapi", call_id)
    assert served.notes(ns)[-1] == {**served.notes(ns)[-1], "text": "Calls back after 5pm"}
    assert served.notes(ns)[-1]["call_id"] == call_id


async def test_the_call_id_decides_over_a_caller_header(served, admin):
    caller, other = number(), number()
    call_id = await served.start_call(caller)
    headers = bearer(admin, **{"X-Call-Id": call_id, "X-Botwire-Caller": other})
    async with served.tools(headers) as t:
        await t.ok("remember", {"key": "plan", "value": "gold"})
    assert served.memory(ns_of(caller)).get("plan") == "gold"
    assert served.snapshot(ns_of(other)) == EMPTY


async def test_a_call_start_refused_binds_nothing(served, admin):
    caller, call_id = number(), f"call-{token()}"
    forged = await served.vapi_assistant_request(caller, call_id, secret="not-the-secret")
    assert forged.status_code == 401
    await asyncio.sleep(0.3)  # a recording would have landed by now
    async with served.tools(bearer(admin, **{"X-Call-Id": call_id})) as t:
        assert await t.error("remember", {"key": "plan", "value": "gold"}) == UNKNOWN_CALL
    assert served.snapshot(ns_of(caller)) == EMPTY


async def test_a_call_from_a_withheld_number_binds_no_one(served, admin):
    call_id = f"call-{token()}"
    before = served.namespaces()
    answer = await served.vapi_assistant_request(None, call_id)
    assert answer.status_code == 200 and answer.json()["assistantId"]
    await asyncio.sleep(0.3)  # a recording would have landed by now
    async with served.tools(bearer(VAPI_SECRET, **{"X-Call-Id": call_id})) as t:
        for name, args in EVERY_TOOL:
            said = await t.error(name, args)
            assert "withheld or was not sent, so nothing is remembered" in said, said
    assert served.namespaces() == before


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_an_unknown_call_id_is_a_tool_error_saying_so(served, admin, transport):
    before = served.namespaces()
    headers = bearer(admin, **{"X-Call-Id": f"call-never-started-{token()}"})
    async with served.tools(headers, transport) as t:
        for name, args in EVERY_TOOL:
            assert await t.error(name, args) == UNKNOWN_CALL
    assert served.namespaces() == before


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_a_request_naming_no_call_is_a_tool_error(served, admin, transport):
    before = served.namespaces()
    async with served.tools(bearer(admin), transport) as t:
        for name, args in EVERY_TOOL:
            assert await t.error(name, args) == NO_CALL
    assert served.namespaces() == before


@pytest.mark.parametrize(
    ("given", "said"),
    [
        ("4155550123", "no country code"),
        ("anonymous", "withheld"),
        ("+1 555", "not a usable phone number"),
    ],
)
async def test_a_caller_header_that_is_no_number_is_a_tool_error(served, admin, given, said):
    before = served.namespaces()
    async with served.tools(caller_headers(admin, given)) as t:
        assert said in await t.error("remember", {"key": "plan", "value": "gold"})
    assert served.namespaces() == before


async def test_a_scoped_key_with_another_callers_call_id_is_refused(served):
    theirs = number("212")
    served.memory(ns_of(theirs)).set("pin", "pin-9876-theirs")
    call_id = await served.start_call(theirs)
    before = served.snapshot(ns_of(theirs))
    key = served.key(["phone:+1415"], "write")
    async with served.tools(bearer(key, **{"X-Call-Id": call_id})) as t:
        for name, args in EVERY_TOOL:
            said = await t.error(name, args)
            assert said.startswith("This API key may not") and "9876" not in said
    assert served.snapshot(ns_of(theirs)) == before


ROUNDS = 4


class Lockstep:
    """``asyncio.Barrier`` (Python 3.11) for 3.10: ``wait`` returns once every party waits."""

    def __init__(self, parties: int) -> None:
        self.parties, self.waiting, self.round = parties, 0, 0
        self.changed = asyncio.Condition()

    async def wait(self) -> None:
        async with self.changed:
            mine = self.round
            self.waiting += 1
            if self.waiting == self.parties:
                self.waiting, self.round = 0, self.round + 1
                self.changed.notify_all()
            else:
                await self.changed.wait_for(lambda: self.round != mine)


@pytest.mark.parametrize("transports", [("http", "http"), ("sse", "http"), ("sse", "sse")])
async def test_two_concurrent_sessions_never_see_each_others_memory(served, admin, transports):
    callers = (number("415"), number("212"))
    marks = (f"alpha{token()}", f"beta{token()}")
    call_id = await served.start_call(callers[0])
    headers = (bearer(admin, **{"X-Call-Id": call_id}), caller_headers(admin, callers[1]))
    turn = Lockstep(2)  # every step of one session between two steps of the other

    async def talk(i: int) -> None:
        mine, theirs = marks[i], marks[1 - i]
        async with served.tools(headers[i], transports[i]) as t:
            for n in range(ROUNDS):
                await turn.wait()
                await t.ok("remember", {"key": f"item{n}", "value": f"{mine} {n}"})
                await turn.wait()
                await t.ok("remember_fact", {"text": f"said {mine} in round {n}"})
                await turn.wait()
                answers = [
                    await t.ok("list_memories"),
                    await t.ok("recall_memory", {"query": f"{mine} {theirs}", "limit": 20}),
                    await t.ok("get_caller_context"),
                ]
                for answer in answers:
                    assert theirs not in answer
                    assert f"{mine} {n}" in answer

    await asyncio.gather(talk(0), talk(1))
    for caller, mine, theirs in ((callers[0], *marks), (callers[1], *reversed(marks))):
        memory = served.memory(ns_of(caller))
        assert dict(memory.items()) == {f"item{n}": f"{mine} {n}" for n in range(ROUNDS)}
        notes = [note["text"] for note in served.notes(ns_of(caller))]
        assert notes == [f"said {mine} in round {n}" for n in range(ROUNDS)]
        assert theirs not in repr(served.snapshot(ns_of(caller)))


# -- one caller's fact, written by concurrent requests --------------------------------------
# (a model may call tools in parallel; Vapi opens a connection per tool call)


def remember(value: str, id_: int = 1) -> dict:
    return tool_call("remember", {"key": "plan", "value": value}, id_)


def agree(served: Served, ns: str) -> bool:
    """The fact and its provenance's newest entry say the same: there with that value, or
    gone with a removal recorded last."""
    fact, newest = served.fact(ns, "plan"), served.history(ns, "plan")[0]
    if fact is None:
        return newest.deleted
    return not newest.deleted and newest.value == fact.value


async def test_concurrent_remembers_of_one_key_each_leave_a_history_entry(served, admin):
    async with httpx.AsyncClient(base_url=served.base, timeout=30) as http:
        for _ in range(20):
            caller = number()
            headers = {**caller_headers(admin, caller), **MCP_POST}
            values = [f"v{i}" for i in range(10)]  # facts.HISTORY: every one is kept
            answers = await asyncio.gather(
                *(
                    http.post("/mcp", json=remember(v, i), headers=headers)
                    for i, v in enumerate(values)
                )
            )
            for answer in answers:
                assert answer.json()["result"]["content"][0]["text"] == "Remembered plan."
            assert agree(served, ns_of(caller))
            kept = served.history(ns_of(caller), "plan")
            assert sorted(f.value for f in kept) == values


async def test_a_forget_racing_a_remember_leaves_fact_and_history_agreeing(served, admin):
    if served.database.startswith("sqlite"):
        pytest.skip("on SQLite the two requests rarely interleave (1-3 pairs in 50)")
    async with httpx.AsyncClient(base_url=served.base, timeout=30) as http:
        for _ in range(5):
            callers = [number() for _ in range(10)]
            headers = [{**caller_headers(admin, c), **MCP_POST} for c in callers]
            await asyncio.gather(
                *(http.post("/mcp", json=remember("old"), headers=h) for h in headers)
            )
            forget = tool_call("forget", {"key": "plan"})
            await asyncio.gather(
                *(
                    request
                    for h in headers
                    for request in (
                        http.post("/mcp", json=forget, headers=h),
                        http.post("/mcp", json=remember("new", 2), headers=h),
                    )
                )
            )
            for caller in callers:
                assert agree(served, ns_of(caller)), served.history(ns_of(caller), "plan")


# -- a model's arguments never choose the caller --------------------------------------------

OTHER = "+15550100"  # caller B, whom the model names
OTHERS_FACTS = {"pin": "pin-5150-bee", "passphrase": "blue heron bee", "open:claim": "claim-77bee"}


@pytest.mark.parametrize("binding", ["X-Call-Id", "X-Botwire-Caller"])
@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_a_model_naming_another_caller_reaches_only_its_own(
    served, admin, transport, binding
):
    caller = number("415")
    mine, theirs = ns_of(caller), ns_of(OTHER)
    other_call = await served.start_call(OTHER)
    async with served.tools(caller_headers(admin, OTHER), transport) as t:  # B's own call
        for key, value in OTHERS_FACTS.items():
            await t.ok("remember", {"key": key, "value": value})
        await t.ok("remember_fact", {"text": "bee note: allergic to penicillin"})
    before_other, before_spaces = served.snapshot(theirs), served.namespaces()

    if binding == "X-Call-Id":
        call_id, platform = await served.start_call(caller), "vapi"
        headers = bearer(VAPI_SECRET, **{"X-Call-Id": call_id})
    else:
        call_id, platform = f"lk-{token()}", "livekit"
        headers = caller_headers(
            VAPI_SECRET,
            caller,
            **{"X-Botwire-Platform": platform, "X-Botwire-Call-Id": call_id},
        )
    named = {"caller": OTHER, "namespace": theirs, "X-Call-Id": other_call, "call_id": other_call}
    attempts = [
        ("get_caller_context", {"caller": OTHER}),
        ("get_caller_context", named),
        ("list_memories", {"caller": "+1 555 0100"}),
        ("list_memories", named),
        ("recall_memory", {"query": "look up +1 555 0100"}),
        ("recall_memory", {"query": f"{OTHER} {theirs} pin passphrase claim", **named}),
        ("recall_memory", {"query": "penicillin allergic bee", "caller": OTHER, "limit": 20}),
        ("remember", {"key": "pin", "value": "pin-0000-mine", **named}),
        ("remember", {"key": "plan", "value": "gold", "caller": OTHER, "ns": theirs}),
        ("remember_fact", {"text": "Wants a refund", **named}),
        ("forget", {"key": "passphrase", **named}),
        ("forget", {"key": "open:claim", "caller": OTHER}),
    ]
    async with served.tools(headers, transport) as t:
        replies = [(name, args, await t.call(name, args)) for name, args in attempts]
        listed = await t.ok("list_memories")
    for name, args, reply in replies:
        for value in [*OTHERS_FACTS.values(), "allergic to penicillin"]:
            assert value not in reply.text, (name, args, reply)
    assert not any(reply.is_error for _, _, reply in replies), replies

    assert served.snapshot(theirs) == before_other
    assert served.namespaces() - before_spaces == {mine}  # nothing new but the bound caller's
    memory = served.memory(mine)
    assert dict(memory.items()) == {"pin": "pin-0000-mine", "plan": "gold"}
    assert sorted(listed.splitlines()) == ["pin: pin-0000-mine", "plan: gold"]
    assert [note["text"] for note in served.notes(mine)] == ["Wants a refund"]
    pin = served.fact(mine, "pin")
    assert (pin.source, pin.platform, pin.call_id) == ("mcp", platform, call_id)


# -- a restart between two requests ---------------------------------------------------------


async def test_a_client_goes_on_after_the_server_restarts(mcp_db, tmp_path):
    server = Served(mcp_db, tmp_path / "restarted", **VOICE).start()
    try:
        key = server.key(["phone:+1"], "write")
        caller = number()
        async with server.tools(caller_headers(key, caller)) as t:
            assert await t.ok("remember", {"key": "plan", "value": "gold"}) == "Remembered plan."
            first = server.process.proc.pid
            server.restart()
            assert server.process.proc.pid != first
            # the same client, its next request to the new process: no session to lose
            assert await t.ok("list_memories") == "plan: gold"
            assert await t.ok("remember", {"key": "tier", "value": 2}) == "Remembered tier."
        assert dict(server.memory(ns_of(caller)).items()) == {"plan": "gold", "tier": 2}
    finally:
        server.close()


# -- no voice secret configured, no key ---------------------------------------------------


@pytest.fixture(scope="module")
def bare(tmp_path_factory):
    """A server with no voice platform configured (no secret that could stand for a key)."""
    home = tmp_path_factory.mktemp("mcp-bare")
    server = ServerProcess(f"sqlite:///{home}/botwire.db", home, **UNLIMITED).start()
    yield server
    server.stop()


NOT_A_KEY = {
    "no header": {},
    "an empty bearer": {"Authorization": "Bearer"},
    "an empty basic user and password": {"Authorization": "Basic Og=="},
    "an empty X-API-Key": {"X-API-Key": ""},
    "what would be a Vapi secret": {"Authorization": f"Bearer {VAPI_SECRET}"},
}


@pytest.mark.parametrize("auth", NOT_A_KEY.values(), ids=list(NOT_A_KEY))
def test_without_a_voice_secret_or_a_key_mcp_is_401_json(bare, auth):
    headers = {**auth, "X-Botwire-Caller": number(), **MCP_POST}
    for method, path in (("POST", "/mcp"), ("GET", "/mcp/sse")):
        answer = httpx.request(
            method, bare.base + path, headers=headers, json=tool_call("list_memories", {})
        )
        assert answer.status_code == 401, (path, answer.text)
        assert answer.headers["www-authenticate"] == 'Bearer realm="botwire"'
        assert answer.headers["content-type"].startswith("application/json")
        error = answer.json()["error"]
        assert error["code"] == "unauthorized" and error["message"]
