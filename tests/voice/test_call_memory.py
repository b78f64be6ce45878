"""``CallMemory`` / ``AsyncCallMemory`` on every engine, the summariser hook, and the crash
recovery of the idempotent call-end writes."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import uuid

import pytest

from botwire import Memory
from botwire.errors import InvalidInput
from botwire.voice import AsyncCallMemory, CallEnd, CallMemory, Turn, VoiceConfig, merge_calls
from botwire.voice import core


@pytest.fixture
def config() -> VoiceConfig:
    return VoiceConfig(namespace=f"t{uuid.uuid4().hex[:8]}-{{e164}}")


def test_a_call_in_process(engine_url, config):
    with CallMemory("+1 415 555 0123", url=engine_url, config=config) as call:
        assert call.number == "+14155550123"
        assert call.namespace == config.namespace.format(e164="+14155550123")
        assert call.context().startswith("This is the first call")
        call.record_turn("user", "Hi, I'm Ana, allergic to peanuts")
        call.record_turn("agent", "Noted, Ana.")
        assert call.remember("customer_name", "Ana") == "Remembered customer_name."
        assert call.remember_fact("Allergic to peanuts") == "Noted."
        assert "note: Allergic to peanuts" in call.recall("peanuts")
        call.end_call(summary="Ana introduced herself", outcome="resolved")
        call.end_call(summary="again")  # once only

    with CallMemory("+14155550123", url=engine_url, config=config) as call:
        variables = call.variables()
        assert variables["customer_name"] == "Ana"
        assert variables["last_call_summary"] == "Ana introduced herself"
        assert "Ana introduced herself (outcome: resolved)" in call.context()
        assert len(call.context(budget=40)) <= 40
        with Memory(call.namespace, url=engine_url) as memory:
            turns = [e.value for e in memory.log("conversation").read()]
            assert [(t["role"], t["text"]) for t in turns] == [
                ("user", "Hi, I'm Ana, allergic to peanuts"),
                ("assistant", "Noted, Ana."),
            ]
            assert memory.log("calls").count() == 1


async def test_a_call_in_process_async(engine_url, config):
    async with AsyncCallMemory("+14155550124", url=engine_url, config=config) as call:
        await call.record_turn("user", "Book me for Friday")
        assert await call.remember("appointment", "Friday 10:00") == "Remembered appointment."
        await call.end_call(summary="Booked Friday")
    async with AsyncCallMemory("+14155550124", url=engine_url, config=config) as call:
        text = await call.context()
        assert "- appointment: Friday 10:00" in text and "Booked Friday" in text
        assert (await call.variables())["appointment"] == "Friday 10:00"
        assert await call.forget("appointment") == "Forgot appointment."
        assert "appointment" not in await call.context()


def test_bad_input_stores_nothing(sqlite_url, config):
    with CallMemory("+14155550125", url=sqlite_url, config=config) as call:
        with pytest.raises(InvalidInput):
            call.record_turn("narrator", "text")
        with pytest.raises(InvalidInput):
            call.record_turn("user", b"bytes")
        with pytest.raises(InvalidInput):
            call.end_call(summary=42)
        with pytest.raises(core.ToolError):
            call.remember("~call/x", 1)
        with pytest.raises(InvalidInput):
            call.context(budget=-1)
        assert call.memory.count() == 0 and call.memory.log("conversation").count() == 0
    with pytest.raises(InvalidInput):
        CallMemory("anonymous", url=sqlite_url)


def test_the_summariser_runs_after_end_call_returns(sqlite_url):
    release, seen = threading.Event(), []

    def summarise(call: CallEnd) -> str:
        seen.append([t.text for t in call.turns])
        assert release.wait(10)
        return "  Summary by the hook  "

    config = VoiceConfig(summarizer=summarise)
    call = CallMemory("+14155550126", url=sqlite_url, config=config)
    call.record_turn("user", "hello")
    call.end_call()  # returns while the hook is still blocked
    assert call.memory.get("last_call")["summary"] is None
    release.set()
    call.close()  # waits for the hook
    assert seen == [["hello"]]
    with Memory(call.namespace, url=sqlite_url) as memory:
        assert memory.get("last_call")["summary"] == "Summary by the hook"
        (merged,) = merge_calls([e.value for e in memory.log("calls").read()])
        assert merged["summary"] == "Summary by the hook"


async def test_an_async_summariser_and_a_failing_one(sqlite_url, caplog):
    async def summarise(call: CallEnd) -> str:
        await asyncio.sleep(0)
        return f"{len(call.turns)} turns"

    async with AsyncCallMemory(
        "+14155550127", url=sqlite_url, config=VoiceConfig(summarizer=summarise)
    ) as call:
        await call.record_turn("user", "hi")
        await call.end_call()
    async with AsyncCallMemory("+14155550127", url=sqlite_url) as call:
        assert (await call.variables())["last_call_summary"] == "1 turns"

    def broken(call: CallEnd) -> str:
        raise RuntimeError("model down")

    with caplog.at_level(logging.ERROR, logger="botwire.voice"):
        async with AsyncCallMemory(
            "+14155550128", url=sqlite_url, config=VoiceConfig(summarizer=broken)
        ) as call:
            await call.end_call(summary="kept")
    async with AsyncCallMemory("+14155550128", url=sqlite_url) as call:
        assert (await call.variables())["last_call_summary"] == "kept"
    assert "summariser failed" in caplog.text


def test_a_dead_writers_claim_is_taken_over_without_duplicates(sqlite_url):
    ns = f"t-{uuid.uuid4().hex[:8]}"
    event = CallEnd(
        "vapi",
        "call_9",
        "+1",
        ended_at=time.time(),
        summary="s",
        turns=(Turn("user", "a"), Turn("assistant", "b")),
    )
    with Memory(ns, url=sqlite_url) as memory:
        # a writer claimed the transcript, wrote it, and died before marking it done
        memory.set("~call/vapi/call_9/transcript", {"state": "pending", "at": time.time() - 600})
        memory.log("conversation").extend([core._turn_entry(t, event) for t in event.turns])
        assert core.run(core.end_call(event), memory) == {"transcript", "end"}
        assert memory.log("conversation").count() == 2  # not written again
        assert memory.log("calls").count() == 1
        assert memory.get("~call/vapi/call_9/transcript")["state"] == "done"
        # a live writer's fresh claim is left alone
        memory.set("~call/vapi/call_10/end", {"state": "pending", "at": time.time()})
        fresh = CallEnd("vapi", "call_10", "+1", summary="x")
        assert core.run(core.end_call(fresh), memory) == set()
        assert memory.log("calls").count() == 1
