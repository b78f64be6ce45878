"""LiveKit Agents: BotWireAgent and the hooks in a real AgentSession, without a room.

``AgentSession.run`` drives the session with text (LiveKit's own way to test agents), the model
is scripted, and the participant is a real ``rtc.RemoteParticipant`` built from its protobuf.
"""

from __future__ import annotations

from frameworks import need

need("livekit.agents", "livekit")

import asyncio  # noqa: E402
import json  # noqa: E402
from typing import Any  # noqa: E402

import pytest  # noqa: E402
from livekit import rtc  # noqa: E402
from livekit.agents import Agent, AgentSession  # noqa: E402
from livekit.agents.llm import (  # noqa: E402
    LLM,
    ChatChunk,
    ChatContext,
    ChatMessage,
    ChoiceDelta,
    FunctionToolCall,
    LLMStream,
)
from livekit.agents.llm.tool_context import get_function_info  # noqa: E402
from livekit.agents.types import DEFAULT_API_CONNECT_OPTIONS  # noqa: E402
from livekit.rtc._proto import handle_pb2, participant_pb2  # noqa: E402

from botwire import InvalidInput, StorageUnavailable  # noqa: E402
from botwire.voice import AsyncCallMemory  # noqa: E402
from botwire.voice.context import FIRST_CALL  # noqa: E402
from botwire.voice.livekit import (  # noqa: E402
    MEMORY_HEADER,
    RECALL_HEADER,
    BotWireAgent,
    call_memory,
    caller_number,
    end_call,
    end_call_on_shutdown,
    load_memory,
    memory_tools,
    recall_into,
    record_conversation,
)

ANA = "+14155550123"


class ScriptedLLM(LLM):
    """A real ``LLM`` answering from a script: a reply text, or a tool call ``(name, args)``.
    Keeps the (role, text) of the messages of every chat context it is given."""

    def __init__(self, script: list[Any]) -> None:
        super().__init__()
        self.script = list(script)
        self.seen: list[list[tuple[str, str]]] = []

    def chat(self, *, chat_ctx, tools=None, conn_options=DEFAULT_API_CONNECT_OPTIONS, **_):
        self.seen.append(
            [(i.role, i.text_content or "") for i in chat_ctx.items if i.type == "message"]
        )
        return _Stream(
            self,
            self.script.pop(0),
            chat_ctx=chat_ctx,
            tools=tools or [],
            conn_options=conn_options,
        )


class _Stream(LLMStream):
    def __init__(self, llm: LLM, step: Any, **kwargs: Any) -> None:
        super().__init__(llm, **kwargs)
        self.step = step

    async def _run(self) -> None:
        if isinstance(self.step, tuple):
            name, args = self.step
            call = FunctionToolCall(name=name, arguments=json.dumps(args), call_id=f"call_{name}")
            delta = ChoiceDelta(role="assistant", tool_calls=[call])
        else:
            delta = ChoiceDelta(role="assistant", content=self.step)
        self._event_ch.send_nowait(ChatChunk(id="chunk", delta=delta))


def sip_participant(attributes: dict[str, str]) -> rtc.RemoteParticipant:
    info = participant_pb2.ParticipantInfo(
        sid="PA_1",
        identity="sip_caller",
        attributes=attributes,
        kind=participant_pb2.ParticipantKind.PARTICIPANT_KIND_SIP,
    )
    owned = participant_pb2.OwnedParticipant(handle=handle_pb2.FfiOwnedHandle(id=0), info=info)
    return rtc.RemoteParticipant(owned)


@pytest.fixture
def url(tmp_path) -> str:
    return f"sqlite:///{tmp_path}/m.db"


@pytest.fixture
async def ana_known(url) -> None:
    async with AsyncCallMemory(ANA, url=url, platform="retell") as call:
        await call.remember("customer_name", "Ana")
        await call.remember_fact("Ana is allergic to peanuts")
        await call.end_call(summary="Ana booked a table for two")


def texts(ctx: ChatContext) -> list[str]:
    return [i.text_content or "" for i in ctx.items if i.type == "message"]


def briefings(agent: Agent) -> list[str]:
    return [t for t in texts(agent.chat_ctx) if t.startswith(MEMORY_HEADER)]


async def stored(url: str, log: str) -> list[dict[str, Any]]:
    async with AsyncCallMemory(ANA, url=url) as call:
        return [e.value for e in await call.memory.log(log).read()]


def test_the_caller_number_comes_from_the_sip_attributes(url):
    ana = sip_participant({"sip.phoneNumber": "+1 (415) 555-0123", "sip.callID": "SCL_1"})
    assert caller_number(ana) == ANA
    assert caller_number(sip_participant({"sip.phoneNumber": "anonymous"})) is None
    assert caller_number(sip_participant({})) is None  # a web or app participant
    assert caller_number(sip_participant({"sip.phoneNumber": "415 555 0123"})) is None
    assert caller_number(sip_participant({"sip.phoneNumber": "415 555 0123"}), "1") == ANA

    memory = call_memory(ana, url=url)
    assert (memory.number, memory.platform, memory.call_id) == (ANA, "livekit", "SCL_1")
    assert call_memory(sip_participant({}), url=url) is None


async def test_a_session_is_briefed_records_every_message_and_ends(url, ana_known):
    memory = AsyncCallMemory(ANA, url=url, platform="livekit", call_id="SCL_1")
    llm = ScriptedLLM(["Hello Ana!", "A table for two again?"])
    agent = BotWireAgent(memory=memory, instructions="You take bookings.")
    await agent.load_memory()
    async with AgentSession(llm=llm) as session:
        await session.start(agent)
        await session.run(user_input="hi, it's Ana")
        await session.run(user_input="I'd like to book")
    await end_call(memory, summary="Ana booked again")
    await memory.aclose()

    first, second = llm.seen
    assert first[0] == ("system", "You take bookings.")
    assert first[1][0] == "system" and first[1][1].startswith(MEMORY_HEADER + "\n")
    assert "customer_name: Ana" in first[1][1] and "table for two" in first[1][1]
    assert [m for m in second if m[1].startswith(MEMORY_HEADER)] == [first[1]]  # kept, once

    turns = await stored(url, "conversation")
    assert [(t["role"], t["text"]) for t in turns] == [
        ("user", "hi, it's Ana"),
        ("assistant", "Hello Ana!"),
        ("user", "I'd like to book"),
        ("assistant", "A table for two again?"),
    ]
    assert {(t["platform"], t["call_id"]) for t in turns} == {("livekit", "SCL_1")}
    calls = await stored(url, "calls")
    assert [(c["platform"], c.get("summary")) for c in calls] == [
        ("retell", "Ana booked a table for two"),
        ("livekit", "Ana booked again"),
    ]


async def test_on_enter_loads_the_memory_by_itself(url, ana_known):
    async with AsyncCallMemory(ANA, url=url) as memory:
        agent = BotWireAgent(memory=memory, instructions="Be brief.")
        async with AgentSession(llm=ScriptedLLM([])) as session:
            await session.start(agent)
            for _ in range(200):  # on_enter runs as a task of the session
                if briefings(agent):
                    break
                await asyncio.sleep(0.01)
            else:
                pytest.fail("on_enter did not load the memory")
            assert await agent.load_memory() == ""  # loaded already: not added twice
        (briefing,) = briefings(agent)
        assert "customer_name: Ana" in briefing


async def test_the_user_turn_hook_adds_recall_for_this_reply_only(url, ana_known):
    async with AsyncCallMemory(ANA, url=url) as memory:
        agent = BotWireAgent(memory=memory, instructions="Be brief.", recall_limit=2)
        await load_memory(agent, memory)
        turn_ctx = agent.chat_ctx.copy()
        question = ChatMessage(role="user", content=["is there peanuts in the pesto?"])
        await agent.on_user_turn_completed(turn_ctx, question)

        recall = texts(turn_ctx)[-1]
        assert recall.startswith(RECALL_HEADER + "\n")
        assert "Ana is allergic to peanuts" in recall
        assert not [t for t in texts(agent.chat_ctx) if RECALL_HEADER in t]

        nothing = ChatContext.empty()
        assert (
            await recall_into(nothing, ChatMessage(role="user", content=["zebra"]), memory) is None
        )
        assert nothing.items == []  # nothing matched: nothing added


async def test_a_first_caller_is_told_so(url):
    async with AsyncCallMemory(ANA, url=url) as memory:
        ctx = ChatContext.empty()
        text = await load_memory(ctx, memory, role="developer")
        await load_memory(ctx, memory, role="developer")  # once, however often it is called
        assert [(i.role, i.text_content) for i in ctx.items] == [("developer", text)]
        assert text == f"{MEMORY_HEADER}\n{FIRST_CALL}"


async def test_tools_are_called_by_the_session_and_store(url, ana_known):
    async with AsyncCallMemory(ANA, url=url, platform="livekit") as memory:
        llm = ScriptedLLM(
            [
                ("remember", {"key": "table_preference", "value": "by the window"}),
                "Noted: by the window.",
                ("forget", {"key": "~call/livekit/x"}),
                "I cannot do that.",
            ]
        )
        agent = BotWireAgent(memory=memory, instructions="Be brief.", recall_limit=0)
        assert {"recall_memory", "remember", "remember_fact", "forget"} <= {
            get_function_info(t).name for t in agent.tools
        }
        async with AgentSession(llm=llm) as session:
            await session.start(agent)
            result = await session.run(user_input="I always sit by the window")
            result.expect.next_event().is_function_call(name="remember")
            saved = result.expect.next_event().is_function_call_output().event().item.output
            assert saved == "Remembered table_preference."
            result.expect.next_event().is_message(role="assistant")
            result = await session.run(user_input="forget the internal key")
            result.expect.next_event().is_function_call(name="forget")
            output = result.expect.next_event().is_function_call_output().event().item.output
            assert "kept by botwire itself" in output
        assert await memory.memory.get("table_preference") == "by the window"


async def test_memory_tools_answer_like_the_webhooks(url, ana_known):
    async with AsyncCallMemory(ANA, url=url) as memory:
        tools = {get_function_info(t).name: t for t in memory_tools(memory)}
        assert "Ana is allergic to peanuts" in await tools["recall_memory"]("peanuts")
        assert await tools["remember_fact"]("prefers mornings") == "Noted."
        assert await tools["forget"]("customer_name") == "Forgot customer_name."
        assert await tools["forget"]("customer_name") == "Nothing was stored under customer_name."
        assert await tools["remember"]("", "x") == "missing argument 'key'"


async def test_shutdown_ends_the_call_and_closes_the_memory(url):
    testing = pytest.importorskip("livekit.agents.testing")
    memory = AsyncCallMemory(ANA, url=url, platform="livekit", call_id="SCL_9")
    with testing.fake_job_context() as ctx:
        end_call_on_shutdown(ctx, memory)
        end_call_on_shutdown(ctx, None)  # a caller without a number: nothing to do
        llm = ScriptedLLM(["Bye!"])
        async with AgentSession(llm=llm) as session:
            record_conversation(session, memory)
            record_conversation(session, memory)  # once per session
            await session.start(Agent(instructions="Be brief."))
            await session.run(user_input="that's all, thanks")
        for callback in ctx._shutdown_callbacks:  # what the job runs when it shuts down
            await callback("room closed")
    assert [c["call_id"] for c in await stored(url, "calls")] == ["SCL_9"]
    assert [t["text"] for t in await stored(url, "conversation")] == ["that's all, thanks", "Bye!"]


async def test_a_storage_outage_leaves_a_plain_agent(caplog):
    memory = AsyncCallMemory(ANA, url="http://127.0.0.1:9?retries=0")
    llm = ScriptedLLM(["Hello!"])
    async with AgentSession(llm=llm) as session:
        await session.start(BotWireAgent(memory=memory, instructions="Be brief."))
        result = await session.run(user_input="hi")
        result.expect.next_event().is_message(role="assistant")
    with pytest.raises(StorageUnavailable):  # said to whoever ends the call by hand
        await end_call(memory)
    await memory.aclose()
    assert llm.seen == [[("system", "Be brief."), ("user", "hi")]]
    assert "botwire: cannot read the memory" in caplog.text
    assert "botwire: cannot record" in caplog.text


async def test_without_a_number_the_agent_is_a_plain_agent():
    llm = ScriptedLLM(["Hello!"])
    async with AgentSession(llm=llm) as session:
        await session.start(BotWireAgent(memory=None, instructions="Be brief."))
        await session.run(user_input="hi")
    assert llm.seen == [[("system", "Be brief."), ("user", "hi")]]


async def test_bad_arguments_are_refused(url):
    async with AsyncCallMemory(ANA, url=url) as memory:
        with pytest.raises(InvalidInput, match="recall_limit"):
            BotWireAgent(memory=memory, instructions="x", recall_limit=21)
        with pytest.raises(InvalidInput, match="AsyncCallMemory"):
            BotWireAgent(memory=ANA, instructions="x")  # type: ignore[arg-type]
        with pytest.raises(InvalidInput, match="role"):
            await load_memory(ChatContext.empty(), memory, role="assistant")
        with pytest.raises(InvalidInput, match="budget"):
            await load_memory(ChatContext.empty(), memory, budget="2000")  # type: ignore[arg-type]
        with pytest.raises(InvalidInput, match="budget"):
            BotWireAgent(memory=memory, instructions="x", budget=-1)
        with pytest.raises(InvalidInput, match="target"):
            await load_memory([], memory)  # type: ignore[arg-type]
        with pytest.raises(InvalidInput, match="limit"):
            await recall_into(
                ChatContext.empty(), ChatMessage(role="user", content=["x"]), memory, limit=0
            )
        async with (
            AgentSession(llm=ScriptedLLM([])) as one,
            AgentSession(llm=ScriptedLLM([])) as two,
        ):
            record_conversation(one, memory)
            with pytest.raises(InvalidInput, match="another session"):
                record_conversation(two, memory)
            await end_call(memory)
