"""Payload shapes from the platforms' current docs, and what webhook writes charge.

- Vapi tool calls as the server-url docs show them (docs.vapi.ai/server-url/events):
  ``toolCallList: [{"id", "name", "parameters"}]`` and
  ``toolWithToolCallList: [{"name", "toolCall": {"id", "parameters"}}]``.
- ElevenLabs post-call webhooks (elevenlabs.io/docs/.../post-call-webhooks): every type answered
  200 ("must return a 200 status code"); ``post_call_audio`` is base64 audio of the whole call,
  sent chunked and larger than the server's body limit at times: verified, answered, not kept.
"""

from __future__ import annotations

import json
import time
import tracemalloc

import pytest
from voicekit import fixture, fixture_json

from botwire.voice.signatures import sign_elevenlabs

CALLER = "+14155550123"
NS = f"phone:{CALLER}"
LIMIT = 64 * 1024  # the server's max_body_bytes in these tests
SECRET = "wsec_test"


def tool_calls(**lists) -> dict:
    call = {"id": "call_1", "customer": {"number": CALLER}}
    return {"message": {"type": "tool-calls", "call": call, **lists}}


async def test_vapi_tool_call_list_with_parameters(platforms):
    body = tool_calls(
        toolCallList=[
            {"id": "a", "name": "remember", "parameters": {"key": "plan", "value": "gold"}}
        ]
    )
    (result,) = (await platforms.vapi(body)).json()["results"]
    assert result == {"name": "remember", "toolCallId": "a", "result": "Remembered plan."}
    assert await platforms.memory(NS).get("plan") == "gold"


async def test_vapi_tool_with_tool_call_list_with_parameters(platforms):
    await platforms.memory(NS).set("plan", "gold")
    body = tool_calls(
        toolWithToolCallList=[
            {
                "type": "function",
                "name": "recall_memory",
                "function": {"name": "recall_memory", "parameters": {"type": "object"}},
                "toolCall": {"id": "b", "parameters": {"query": "gold"}},
            }
        ]
    )
    (result,) = (await platforms.vapi(body)).json()["results"]
    assert result == {"name": "recall_memory", "toolCallId": "b", "result": "plan: gold"}


def audio_body(size: int) -> bytes:
    head = b'{"type":"post_call_audio","event_timestamp":1739537297,'
    head += b'"data":{"agent_id":"a","conversation_id":"abc","full_audio":"'
    return head + b"QUFB" * (size // 4) + b'"}}'


async def pieces(body: bytes, size: int = 16 * 1024):
    for start in range(0, len(body), size):
        yield body[start : start + size]


async def send_post_call(platforms, body: bytes, signature: str | None = None, chunked=True):
    header = signature or sign_elevenlabs(body, SECRET, int(time.time()))
    return await platforms.client.post(
        "/voice/elevenlabs/post-call",
        content=pieces(body) if chunked else body,
        headers={"elevenlabs-signature": header},
    )


@pytest.fixture
async def small_limit(make_platforms):
    return await make_platforms(server={"max_body_bytes": LIMIT})


@pytest.mark.parametrize("chunked", [True, False], ids=["chunked", "content-length"])
async def test_post_call_audio_over_the_body_limit_is_verified_and_acknowledged(
    small_limit, chunked
):
    body = audio_body(16 * LIMIT)
    r = await send_post_call(small_limit, body, chunked=chunked)
    assert (r.status_code, r.json()) == (200, {})
    assert await small_limit.namespaces() == []


async def test_post_call_audio_is_not_kept_in_memory(small_limit):
    body = audio_body(64 * LIMIT)  # 4 MiB
    header = sign_elevenlabs(body, SECRET, int(time.time()))
    tracemalloc.start()
    try:
        r = await send_post_call(small_limit, body, header)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert r.status_code == 200
    assert peak < len(body) // 4, peak


async def test_forged_post_call_audio_is_401(small_limit):
    body = audio_body(16 * LIMIT)
    forged = sign_elevenlabs(body + b" ", SECRET, int(time.time()))
    r = await send_post_call(small_limit, body, forged)
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "unauthorized"


async def test_a_transcription_over_the_body_limit_is_413_and_nothing_stored(small_limit):
    data = fixture_json("elevenlabs/post_call_transcription.json")
    data["data"]["transcript"] *= 2000
    r = await send_post_call(small_limit, json.dumps(data).encode())
    assert r.status_code == 413
    assert r.json()["error"]["code"] == "body_too_large"
    assert await small_limit.namespaces() == []


async def test_a_transcription_under_the_limit_still_stores(small_limit):
    r = await send_post_call(small_limit, fixture("elevenlabs/post_call_transcription.json"))
    assert r.status_code == 200
    assert await small_limit.memory(NS).log("conversation").count() == 2


# -- quotas: a webhook's writes are charged as /v1's are ------------------------------------


async def test_end_of_call_is_refused_when_its_bytes_do_not_fit(make_platforms):
    platforms = await make_platforms(server={"max_bytes": 400})
    r = await platforms.vapi(fixture("vapi/end-of-call-report.json"))
    assert (r.status_code, r.json()) == (200, {})  # refused whole, acknowledged (test_webhooks)
    assert await platforms.memory(NS).log("conversation").count() == 0
    assert await platforms.memory(NS).log("calls").count() == 0


async def test_a_remembered_value_is_refused_when_its_bytes_do_not_fit(make_platforms):
    platforms = await make_platforms(server={"max_bytes": 1000})
    body = tool_calls(
        toolCallList=[
            {"id": "a", "name": "remember", "parameters": {"key": "big", "value": "x" * 2000}}
        ]
    )
    (result,) = (await platforms.vapi(body)).json()["results"]
    assert result["error"] == "This caller's memory has no room left; nothing was stored."
    assert await platforms.memory(NS).get("big") is None


async def test_a_repeated_transcript_is_not_charged_twice(make_platforms):
    # call_ended stores 2 turns + the record + last_call (4 writes); call_analyzed repeats the
    # transcript, which is not stored again: 2 more. 9 a day leaves 3 for tools.
    platforms = await make_platforms(server={"writes_per_day": 9})
    for name in ("retell/call_ended.json", "retell/call_analyzed.json"):
        assert (await platforms.retell(fixture(name))).status_code == 204
    caller = "+12137771234"
    answers = []
    for key in "abcd":
        call = {"call_id": "c", "from_number": caller}
        body = {"name": "remember", "args": {"key": key, "value": 1}, "call": call}
        r = await platforms.retell(body, path="/voice/retell/tools")
        answers.append(r.json())
    assert answers[:3] == [{"result": f"Remembered {k}."} for k in "abc"]
    assert "full for today" in answers[3]["error"]
