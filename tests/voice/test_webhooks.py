"""The voice webhooks end to end: each platform's fixtures through its endpoints, call 1 -> call 2
memory, idempotency under retries, unknown events, and the answers' exact shapes."""

from __future__ import annotations

import asyncio
import copy
import json
import logging
import time

import pytest

from botwire.voice import merge_calls

from voicekit import fixture, fixture_json

CALLER = "+14155550123"
NS = f"phone:{CALLER}"


# -- every fixture through its endpoint ----------------------------------------------------


async def test_vapi_fixtures(platforms):
    r = await platforms.vapi(fixture("vapi/assistant-request.json"))
    assert r.status_code == 200
    answer = r.json()
    assert answer["assistantId"] == "asst_1"
    variables = answer["assistantOverrides"]["variableValues"]
    assert variables["memory"].startswith("This is the first call")
    assert variables["customer_name"] == ""
    assert all(isinstance(v, str) for v in variables.values())

    r = await platforms.vapi(fixture("vapi/tool-calls.json"))
    assert r.status_code == 200
    assert r.json() == {
        "results": [
            {
                "name": "recall_memory",
                "toolCallId": "toolu_01",
                "result": "Nothing stored about this caller matches 'allergies'.",
            }
        ]
    }

    r = await platforms.vapi(fixture("vapi/status-update.json"))
    assert (r.status_code, r.json()) == (200, {})
    assert await platforms.memory(NS).log("calls").count() == 0

    r = await platforms.vapi(fixture("vapi/end-of-call-report.json"))
    assert r.status_code == 200
    memory = platforms.memory(NS)
    turns = [e.value for e in await memory.log("conversation").read()]
    assert [(t["role"], t["text"]) for t in turns] == [
        ("assistant", "Hi, how can I help?"),
        ("user", "I need to reschedule."),
    ]
    assert all(t["call_id"] == "call_1" and t["platform"] == "vapi" for t in turns)
    (record,) = [e.value for e in await memory.log("calls").read()]
    assert record["summary"] == "Caller asked to reschedule."
    assert record["outcome"] == "customer-ended-call"
    assert record["successful"] is True
    assert record["duration_s"] == 300.0
    assert (await memory.get("last_call"))["call_id"] == "call_1"


async def test_retell_fixtures(platforms):
    r = await platforms.retell(fixture("retell/call_inbound.json"))
    assert r.status_code == 200
    inbound = r.json()["call_inbound"]
    assert inbound["dynamic_variables"]["memory"].startswith("This is the first call")
    assert all(isinstance(v, str) for v in inbound["dynamic_variables"].values())
    assert inbound["metadata"] == {"botwire_namespace": NS}

    for path in ("/voice/retell/tools", "/voice/retell/tools/recall_memory"):
        r = await platforms.retell(fixture("retell/function-call.json"), path=path)
        assert r.status_code == 200, r.text
        assert r.json() == {"result": "Nothing stored about this caller matches 'allergies'."}

    caller = "+12137771234"
    r = await platforms.retell(fixture("retell/call_ended.json"))
    assert r.status_code == 204
    r = await platforms.retell(fixture("retell/call_analyzed.json"))
    assert r.status_code == 204
    memory = platforms.memory(f"phone:{caller}")
    turns = [e.value for e in await memory.log("conversation").read()]
    assert [(t["role"], t["text"]) for t in turns] == [
        ("assistant", "hi how are you doing?"),
        ("user", "Doing pretty well."),
    ]
    calls = merge_calls([e.value for e in await memory.log("calls").read()])
    assert len(calls) == 1
    assert calls[0]["summary"] == "The user said they are doing well."
    assert calls[0]["outcome"] == "user_hangup" and calls[0]["successful"] is True
    assert calls[0]["duration_s"] == pytest.approx(15.791)
    last = await memory.get("last_call")
    assert last["summary"] == "The user said they are doing well."


async def test_elevenlabs_fixtures(platforms):
    r = await platforms.eleven("initiation", fixture("elevenlabs/conversation-initiation.json"))
    assert r.status_code == 200
    answer = r.json()
    assert answer["type"] == "conversation_initiation_client_data"
    assert set(answer["dynamic_variables"]) >= {"memory", "customer_name"}

    r = await platforms.eleven("tools/recall_memory", fixture("elevenlabs/server-tool.json"))
    assert r.status_code == 200
    assert r.json() == {"result": "Nothing stored about this caller matches 'allergies'."}

    r = await platforms.eleven_post(fixture("elevenlabs/post_call_transcription.json"))
    assert r.status_code == 200
    memory = platforms.memory(NS)
    turns = [e.value for e in await memory.log("conversation").read()]
    assert [(t["role"], t["text"]) for t in turns] == [
        ("assistant", "Hey there angelo."),
        ("user", "Tell me a fun fact."),
    ]
    assert turns[1]["ts"] == 1739537299
    (record,) = [e.value for e in await memory.log("calls").read()]
    assert record["call_id"] == "abc" and record["duration_s"] == 22
    assert record["summary"] == "The caller asked for a fun fact."
    assert record["successful"] is True


async def test_twilio_fixtures(platforms):
    form = fixture("twilio/voice-webhook.form").decode().strip()
    pairs = [tuple(p.split("=", 1)) for p in form.split("&")]
    from urllib.parse import unquote_plus

    params = [(k, unquote_plus(v)) for k, v in pairs]
    r = await platforms.twilio("/voice/twilio", params)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/xml")
    assert r.text.endswith("<Response><Say>Hello.</Say></Response>")

    status = [(k, v) for k, v in params if k != "CallStatus"] + [
        ("CallStatus", "completed"),
        ("CallDuration", "42"),
        ("Timestamp", "Tue, 18 Aug 2025 10:05:00 +0000"),
    ]
    r = await platforms.twilio("/voice/twilio/status", status)
    assert r.status_code == 204
    (record,) = [e.value for e in await platforms.memory(NS).log("calls").read()]
    assert record["call_id"] == "CA1234567890ABCDE"
    assert record["duration_s"] == 42 and record["outcome"] == "completed"
    assert record["ended_at"] - record["started_at"] == 42

    await platforms.memory(NS).set("customer_name", "Ana <&>")
    r = await platforms.twilio("/voice/twilio", params + [("Extra", "1")])
    assert "<Say>Welcome back, Ana &lt;&amp;&gt;.</Say>" in r.text


async def test_twilio_stream_carries_the_memory(make_platforms):
    platforms = await make_platforms(twilio_stream_url="wss://agent.example/media?x=1&y=2")
    await platforms.memory(NS).set("customer_name", 'Ana "A"')
    r = await platforms.twilio("/voice/twilio", {"CallSid": "CA1", "From": CALLER, "To": "+1"})
    assert '<Stream url="wss://agent.example/media?x=1&amp;y=2">' in r.text
    assert '<Parameter name="customer_name" value="Ana &quot;A&quot;"/>' in r.text
    assert '<Parameter name="memory" value="Known facts:' in r.text


# -- call 1, then call 2 remembers it, on every platform ------------------------------------


def vapi_msg(kind: str, number: str, call_id: str, **extra) -> dict:
    return {
        "message": {
            "type": kind,
            "timestamp": int(time.time() * 1000),
            "call": {"id": call_id, "customer": {"number": number}},
            "customer": {"number": number},
            **extra,
        }
    }


class Vapi:
    def __init__(self, p):
        self.p = p

    async def start(self, number):
        r = await self.p.vapi(vapi_msg("assistant-request", number, "c0"))
        return r.json()["assistantOverrides"]["variableValues"]

    async def tool(self, number, call_id, name, args):
        body = vapi_msg(
            "tool-calls",
            number,
            call_id,
            toolCallList=[
                {
                    "id": "t1",
                    "type": "function",
                    "function": {"name": name, "arguments": json.dumps(args)},
                }
            ],
        )
        (result,) = (await self.p.vapi(body)).json()["results"]
        return result.get("result", result.get("error"))

    async def end(self, number, call_id, summary):
        body = vapi_msg(
            "end-of-call-report",
            number,
            call_id,
            endedReason="customer-ended-call",
            analysis={"summary": summary},
            artifact={"messages": [{"role": "user", "message": f"about {summary}"}]},
        )
        assert (await self.p.vapi(body)).status_code == 200


class Retell:
    def __init__(self, p):
        self.p = p

    async def start(self, number):
        body = {
            "event": "call_inbound",
            "call_inbound": {"agent_id": "a", "from_number": number, "to_number": "+1"},
        }
        return (await self.p.retell(body)).json()["call_inbound"]["dynamic_variables"]

    async def tool(self, number, call_id, name, args):
        body = {"name": name, "args": args, "call": {"call_id": call_id, "from_number": number}}
        answer = (await self.p.retell(body, path="/voice/retell/tools")).json()
        return answer.get("result", answer.get("error"))

    async def end(self, number, call_id, summary):
        call = {
            "call_id": call_id,
            "from_number": number,
            "direction": "inbound",
            "start_timestamp": int(time.time() * 1000) - 60_000,
            "end_timestamp": int(time.time() * 1000),
            "transcript_object": [{"role": "user", "content": f"about {summary}"}],
        }
        assert (await self.p.retell({"event": "call_ended", "call": call})).status_code == 204
        call["call_analysis"] = {"call_summary": summary}
        assert (await self.p.retell({"event": "call_analyzed", "call": call})).status_code == 204


class ElevenLabs:
    def __init__(self, p):
        self.p = p

    async def start(self, number):
        body = {"caller_id": number, "agent_id": "a", "called_number": "+1", "call_sid": "CA"}
        return (await self.p.eleven("initiation", body)).json()["dynamic_variables"]

    async def tool(self, number, call_id, name, args):
        body = {**args, "caller_id": number, "conversation_id": call_id}
        answer = (await self.p.eleven(f"tools/{name}", body)).json()
        return answer.get("result", answer.get("error"))

    async def end(self, number, call_id, summary):
        body = {
            "type": "post_call_transcription",
            "event_timestamp": int(time.time()),
            "data": {
                "conversation_id": call_id,
                "transcript": [{"role": "user", "message": f"about {summary}"}],
                "metadata": {
                    "start_time_unix_secs": int(time.time()) - 60,
                    "call_duration_secs": 60,
                    "phone_call": {"external_number": number},
                },
                "analysis": {"transcript_summary": summary},
            },
        }
        assert (await self.p.eleven_post(body)).status_code == 200


DRIVERS = {"vapi": Vapi, "retell": Retell, "elevenlabs": ElevenLabs}


@pytest.mark.parametrize("platform", DRIVERS)
async def test_second_call_remembers_the_first(platforms, platform):
    drive = DRIVERS[platform](platforms)
    number = "+442079460958"
    first = await drive.start(number)
    assert first["memory"].startswith("This is the first call")

    assert (
        await drive.tool(number, "call-1", "remember", {"key": "customer_name", "value": "Ana"})
        == "Remembered customer_name."
    )
    assert (
        await drive.tool(number, "call-1", "remember_fact", {"text": "Allergic to peanuts"})
        == "Noted."
    )
    assert (
        await drive.tool(
            number, "call-1", "remember", {"key": "open:refund", "value": "Refund for ORDER-789"}
        )
        == "Remembered open:refund."
    )
    await drive.end(number, "call-1", "Ana asked to move her appointment")

    second = await drive.start(number)
    assert second["customer_name"] == "Ana"
    assert second["last_call_summary"] == "Ana asked to move her appointment"
    memory = second["memory"]
    assert "- customer_name: Ana" in memory
    assert "Still open:\n- refund: Refund for ORDER-789" in memory
    assert "Ana asked to move her appointment" in memory
    assert "- Allergic to peanuts" in memory

    recalled = await drive.tool(number, "call-2", "recall_memory", {"query": "peanut allergy"})
    assert "note: Allergic to peanuts" in recalled
    assert (
        await drive.tool(number, "call-2", "forget", {"key": "open:refund"})
        == "Forgot open:refund."
    )
    assert "Still open" not in (await drive.start(number))["memory"]


@pytest.mark.parametrize("platform", DRIVERS)
async def test_tool_mistakes_are_answered_not_raised(platforms, platform):
    drive = DRIVERS[platform](platforms)
    assert "missing argument 'query'" in await drive.tool(CALLER, "c", "recall_memory", {})
    assert "unknown tool 'launch'" in await drive.tool(CALLER, "c", "launch", {"x": 1})
    assert "kept by botwire" in await drive.tool(
        CALLER, "c", "remember", {"key": "last_call", "value": "x"}
    )
    assert "kept by botwire" in await drive.tool(CALLER, "c", "forget", {"key": "~call/x"})
    assert await platforms.memory(NS).count() == 0


async def test_vapi_arguments_as_object_or_string_and_older_shapes(platforms):
    for raw in ({"key": "plan", "value": "gold"}, json.dumps({"key": "plan", "value": "gold"})):
        body = vapi_msg(
            "tool-calls",
            CALLER,
            "c1",
            toolCallList=[{"id": "a", "function": {"name": "remember", "arguments": raw}}],
        )
        assert (await platforms.vapi(body)).json()["results"][0]["result"] == "Remembered plan."
    older = vapi_msg(
        "tool-calls",
        CALLER,
        "c1",
        toolCalls=[
            {"id": "b", "function": {"name": "recall_memory", "arguments": {"query": "gold"}}}
        ],
    )
    (result,) = (await platforms.vapi(older)).json()["results"]
    assert result == {"name": "recall_memory", "toolCallId": "b", "result": "plan: gold"}
    nested = fixture_json("vapi/tool-calls.json")
    del nested["message"]["toolCallList"]
    assert (await platforms.vapi(nested)).json()["results"][0]["toolCallId"] == "toolu_01"


async def test_vapi_several_tool_calls_answer_in_order(platforms):
    body = vapi_msg(
        "tool-calls",
        CALLER,
        "c1",
        toolCallList=[
            {"id": "1", "function": {"name": "remember", "arguments": {"key": "a", "value": "x"}}},
            {"id": "2", "function": {"name": "nope", "arguments": {}}},
            {"id": "3", "function": {"name": "recall_memory", "arguments": {"query": "x"}}},
        ],
    )
    results = (await platforms.vapi(body)).json()["results"]
    assert [r["toolCallId"] for r in results] == ["1", "2", "3"]
    assert "error" in results[1] and "result" not in results[1]
    assert results[2]["result"] == "a: x"


async def test_retell_args_only_binds_the_caller_from_an_argument(platforms):
    body = {"key": "customer_name", "value": "Bo", "caller_id": CALLER}
    r = await platforms.retell(body, path="/voice/retell/tools/remember")
    assert r.json() == {"result": "Remembered customer_name."}
    assert await platforms.memory(NS).get("customer_name") == "Bo"
    r = await platforms.retell({"key": "k", "value": "v"}, path="/voice/retell/tools/remember")
    assert "number is withheld or was not sent" in r.json()["error"]


async def test_withheld_number_gets_an_answer_and_nothing_is_stored(platforms):
    body = vapi_msg("assistant-request", "anonymous", "c1")
    answer = (await platforms.vapi(body)).json()
    assert "withheld" in answer["assistantOverrides"]["variableValues"]["memory"]
    body = vapi_msg(
        "end-of-call-report", "", "c1", artifact={"messages": [{"role": "user", "message": "hi"}]}
    )
    assert (await platforms.vapi(body)).status_code == 200
    assert await platforms.namespaces() == []


async def test_a_number_without_country_code_says_to_set_default_country(platforms, caplog):
    national = "4155550123"
    answer = (await platforms.vapi(vapi_msg("assistant-request", national, "c1"))).json()
    memory = answer["assistantOverrides"]["variableValues"]["memory"]
    assert "no country code" in memory and "withheld" not in memory
    assert "default_country" in memory and "BOTWIRE_VOICE_DEFAULT_COUNTRY" in memory
    warned = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert any("no country code" in m and "default_country" in m for m in warned), warned
    assert "no country code" in await Vapi(platforms).tool(
        national, "c1", "remember", {"key": "a", "value": 1}
    )
    body = vapi_msg(
        "end-of-call-report",
        national,
        "c1",
        artifact={"messages": [{"role": "user", "message": "hi"}]},
    )
    assert (await platforms.vapi(body)).status_code == 200
    assert await platforms.namespaces() == []


async def test_with_default_country_a_national_number_is_the_caller(make_platforms):
    platforms = await make_platforms(default_country="1")
    await Vapi(platforms).tool("4155550123", "c1", "remember", {"key": "a", "value": 1})
    assert await platforms.namespaces() == [NS]


# -- idempotency ---------------------------------------------------------------------------


async def test_retried_end_of_call_is_written_once(platforms):
    body = fixture("vapi/end-of-call-report.json")
    for _ in range(3):
        assert (await platforms.vapi(body)).status_code == 200
    memory = platforms.memory(NS)
    assert await memory.log("conversation").count() == 2
    assert await memory.log("calls").count() == 1


async def test_concurrent_duplicates_are_written_once(platforms):
    body = fixture_json("retell/call_ended.json")
    now = int(time.time() * 1000)  # each delivery signed anew, as a platform's retries are
    answers = await asyncio.gather(*(platforms.retell(body, ts_ms=now - i) for i in range(8)))
    assert {a.status_code for a in answers} == {204}
    memory = platforms.memory("phone:+12137771234")
    assert await memory.log("conversation").count() == 2
    assert await memory.log("calls").count() == 1


async def test_retell_parts_merge_and_repeat_safely(platforms):
    ended, analyzed = (
        fixture_json("retell/call_ended.json"),
        fixture_json("retell/call_analyzed.json"),
    )
    for body in (analyzed, ended, analyzed, ended):  # out of order and repeated
        assert (await platforms.retell(body)).status_code == 204
    memory = platforms.memory("phone:+12137771234")
    assert await memory.log("conversation").count() == 2
    entries = [e.value for e in await memory.log("calls").read()]
    assert sorted(e["part"] for e in entries) == ["analyzed", "ended"]
    (merged,) = merge_calls(entries)
    assert merged["summary"] == "The user said they are doing well."


async def test_a_late_webhook_of_an_older_call_keeps_last_call(platforms):
    new = fixture_json("vapi/end-of-call-report.json")
    old = copy.deepcopy(new)
    old["message"]["call"]["id"] = "call_0"
    old["message"]["startedAt"], old["message"]["endedAt"] = (
        "2025-08-01T10:00:00Z",
        "2025-08-01T10:01:00Z",
    )
    old["message"]["analysis"]["summary"] = "An older call."
    await platforms.vapi(new)
    await platforms.vapi(old)
    memory = platforms.memory(NS)
    assert (await memory.get("last_call"))["call_id"] == "call_1"
    calls = merge_calls([e.value for e in await memory.log("calls").read()])
    assert [c["call_id"] for c in calls] == ["call_1", "call_0"]  # newest first


# -- unknown events and bad bodies ----------------------------------------------------------


async def test_unknown_events_are_acknowledged_and_ignored(platforms):
    assert (
        await platforms.vapi({"message": {"type": "speech-update", "status": "started"}})
    ).status_code == 200
    assert (await platforms.vapi({"message": {"type": "hang", "call": {"id": "x"}}})).json() == {}
    assert (
        await platforms.retell({"event": "call_started", "call": {"call_id": "x"}})
    ).status_code == 204
    assert (await platforms.retell({"event": "something_new"})).status_code == 204
    assert (await platforms.retell({"event_type": "call_started"})).status_code == 204
    for kind in ("post_call_audio", "call_initiation_failure", "something_new"):
        r = await platforms.eleven_post({"type": kind, "data": {}})
        assert (r.status_code, r.json()) == (200, {})  # "must return a 200", ElevenLabs says
    ringing = {"CallSid": "CA9", "From": CALLER, "CallStatus": "ringing"}
    assert (await platforms.twilio("/voice/twilio/status", ringing)).status_code == 204
    assert await platforms.memory(NS).log("calls").count() == 0


MALFORMED_JSON = [
    b"",
    b"not json",
    b"[1,2]",
    b'"text"',
    b"null",
    b"\xff\xfe",
    b'{"message": 1}',
    b'{"message": {"type": 5}}',
    b'{"message": {"type": "tool-calls"}}',
    b'{"message": {"type": "tool-calls", "toolCallList": [{"id": "1"}]}}',
    b'{"message": {"type": "tool-calls", "toolCallList": '
    b'[{"id": "1", "function": {"name": "x", "arguments": "{bad"}}]}}',
    b'{"message": {"type": "tool-calls", "toolCallList": '
    b'[{"id": "1", "function": {"name": "x", "arguments": [1]}}]}}',
    b'{"message": {"type": "end-of-call-report", "call": {}}}',
]


@pytest.mark.parametrize("body", MALFORMED_JSON)
async def test_malformed_vapi_bodies_are_400(platforms, body):
    r = await platforms.vapi(body)
    assert r.status_code == 400, r.text
    assert r.json()["error"]["code"] == "invalid_input"


@pytest.mark.parametrize(
    "body",
    [
        b"{",
        b"[]",
        b"{}",
        b'{"event": "call_inbound"}',
        b'{"event": "call_inbound", "call_inbound": 3}',
        b'{"event": "call_ended"}',
        b'{"event": "call_analyzed", "call": {"from_number": "+1"}}',
    ],
)
async def test_malformed_retell_bodies_are_400(platforms, body):
    assert (await platforms.retell(body)).status_code == 400


async def test_malformed_bodies_elsewhere_are_400(platforms):
    assert (await platforms.retell(b"[]", path="/voice/retell/tools/remember")).status_code == 400
    assert (await platforms.retell(b'{"args": {}}', path="/voice/retell/tools")).status_code == 400
    assert (await platforms.eleven("initiation", b"nope")).status_code == 400
    assert (await platforms.eleven("tools/remember", b"[1]")).status_code == 400
    assert (await platforms.eleven_post(b'{"type": "post_call_transcription"}')).status_code == 400
    assert (await platforms.eleven_post(b"{")).status_code == 400
    r = await platforms.twilio("/voice/twilio/status", {"From": CALLER, "CallStatus": "completed"})
    assert r.status_code == 400


def _mutations(value, rng, depth=0):
    """Variants of a fixture with one field replaced by a value of another type, or removed."""
    if isinstance(value, dict) and value:
        out = copy.deepcopy(value)
        key = rng.choice(sorted(out))
        if rng.random() < 0.5 and depth < 4 and isinstance(out[key], (dict, list)):
            out[key] = _mutations(out[key], rng, depth + 1)
        elif rng.random() < 0.3:
            del out[key]
        else:
            out[key] = rng.choice([None, 0, -1, 1.5, True, "", "x" * 50, [], {}, [1], {"a": None}])
        return out
    if isinstance(value, list) and value:
        out = copy.deepcopy(value)
        i = rng.randrange(len(out))
        out[i] = (
            _mutations(out[i], rng, depth + 1) if rng.random() < 0.6 else rng.choice([None, 7, "s"])
        )
        return out
    return value


async def test_mutated_fixtures_never_get_a_5xx(platforms):
    import random

    rng = random.Random(20261124)
    sends = {
        "vapi/assistant-request.json": platforms.vapi,
        "vapi/tool-calls.json": platforms.vapi,
        "vapi/end-of-call-report.json": platforms.vapi,
        "retell/call_inbound.json": platforms.retell,
        "retell/call_analyzed.json": platforms.retell,
        "retell/function-call.json": lambda b: platforms.retell(b, path="/voice/retell/tools"),
        "elevenlabs/post_call_transcription.json": platforms.eleven_post,
        "elevenlabs/conversation-initiation.json": lambda b: platforms.eleven("initiation", b),
        "elevenlabs/server-tool.json": lambda b: platforms.eleven("tools/remember", b),
    }
    statuses = set()
    for name, send in sends.items():
        original = fixture_json(name)
        for _ in range(40):
            r = await send(_mutations(original, rng))
            assert r.status_code < 500, (name, r.status_code, r.text)
            statuses.add(r.status_code)
    assert 200 in statuses and 400 in statuses  # both accepted and refused variants were sent


async def test_quota_refusals_are_answered_to_the_agent(make_platforms):
    # the end-of-call report stores 2 turns, the call record and last_call: 4 writes
    platforms = await make_platforms(server={"writes_per_day": 4})
    drive = Vapi(platforms)
    for key in "abc":
        assert (
            await drive.tool(CALLER, "c", "remember", {"key": key, "value": 1})
            == f"Remembered {key}."
        )
    assert await drive.tool(CALLER, "c", "forget", {"key": "c"})  # deletions are not charged
    assert await drive.tool(CALLER, "c", "remember", {"key": "d", "value": 1}) == "Remembered d."
    assert "full for today" in await drive.tool(CALLER, "c", "remember", {"key": "e", "value": 1})
    assert await drive.tool(CALLER, "c", "recall_memory", {"query": "a"})  # reads are not charged
    assert sorted([k async for k in platforms.memory(NS).keys()]) == ["a", "b", "d"]
    r = await platforms.vapi(fixture("vapi/end-of-call-report.json"))
    assert (r.status_code, r.json()) == (200, {})  # acknowledged (below); nothing half-written
    assert await platforms.memory(NS).log("calls").count() == 0
    assert await platforms.memory(NS).log("conversation").count() == 0


# -- a finished call a quota refuses is acknowledged, logged and counted, not stored ---------
# Vapi sends an end-of-call-report once and does not retry it (docs.vapi.ai/server-url/
# end-of-call-report); Retell retries a call event up to 3 times within seconds when no 2xx
# comes (docs.retellai.com/features/webhook-overview: "We expect a successful status code
# (2xx)... No body is expected"); ElevenLabs' post-call webhook "must return a 200" and
# auto-disables a webhook after 10 consecutive failures. A quota full until midnight is no
# reason to fail any of them.

RETELL_CALLER, RETELL_CALL = "+12137771234", "Jabr9TXYYJHfvl6Syypi88rdAHYHmcq6"
ENDS = {
    "vapi end-of-call-report": (
        lambda p: p.vapi(fixture("vapi/end-of-call-report.json")),
        ("vapi", "call_1", CALLER),
        (200, {}),
    ),
    "retell call_ended": (
        lambda p: p.retell(fixture("retell/call_ended.json")),
        ("retell", RETELL_CALL, RETELL_CALLER),
        (204, None),
    ),
    "retell call_analyzed": (
        lambda p: p.retell(fixture("retell/call_analyzed.json")),
        ("retell", RETELL_CALL, RETELL_CALLER),
        (204, None),
    ),
    "elevenlabs post_call_transcription": (
        lambda p: p.eleven_post(fixture("elevenlabs/post_call_transcription.json")),
        ("elevenlabs", "abc", CALLER),
        (200, {}),
    ),
}


async def _refused_end(platforms, caplog, case, kind, why):
    send, (platform, call_id, caller), (status, body) = ENDS[case]
    before = platforms.quota_rejections(kind)
    with caplog.at_level(logging.WARNING, logger="botwire.voice"):
        r = await send(platforms)
    assert r.status_code == status, r.text
    assert (r.json() if body is not None else r.content) == (body if body is not None else b"")
    memory = platforms.memory(f"phone:{caller}")
    assert await memory.log("conversation").count() == 0
    assert await memory.log("calls").count() == 0
    assert await memory.get("last_call") is None
    # not even the call's claim: a later delivery (another day) is stored whole
    assert [k async for k in memory.keys("~call/", include_internal=True)] == []
    assert platforms.quota_rejections(kind) == before + 1
    (line,) = [r.getMessage() for r in caplog.records if r.name == "botwire.voice"]
    assert line.startswith(f"{platform} call {call_id} ")
    assert f"the caller's {kind} quota {why}" in line
    assert caller[1:] not in line  # like every other log line: no caller number in clear
    return memory


@pytest.mark.parametrize("case", list(ENDS))
async def test_a_finished_call_over_the_write_quota_is_acknowledged(make_platforms, caplog, case):
    platforms = await make_platforms(server={"writes_per_day": 5})
    caller = ENDS[case][1][2]
    for key in "ab":  # 2 of 5 used: the call's 4 writes do not fit today
        assert await Vapi(platforms).tool(caller, "t", "remember", {"key": key, "value": 1})
    memory = await _refused_end(platforms, caplog, case, "write", "is used up for today (UTC)")
    assert sorted([k async for k in memory.keys()]) == ["a", "b"]
    # the refusal charged nothing; tools still tell the agent when the quota is full
    drive = Vapi(platforms)
    for key in "cde":
        assert await drive.tool(caller, "t", "remember", {"key": key, "value": 1})
    assert "full for today" in await drive.tool(caller, "t", "remember", {"key": "f", "value": 1})


@pytest.mark.parametrize("case", list(ENDS))
async def test_a_finished_call_larger_than_a_days_write_quota_is_acknowledged(
    make_platforms, caplog, case
):
    # the call stores 2 turns, its record and last_call: 4 writes, and 3 are all a day has.
    # An API client is told to send fewer at a time (400); a platform cannot.
    platforms = await make_platforms(server={"writes_per_day": 3})
    await _refused_end(platforms, caplog, case, "write", "is smaller than this call alone")


@pytest.mark.parametrize("case", list(ENDS))
async def test_a_finished_call_over_the_storage_quota_is_acknowledged(make_platforms, caplog, case):
    platforms = await make_platforms(server={"max_bytes": 300})
    await _refused_end(platforms, caplog, case, "storage", "has no room for it")


async def test_a_summary_over_the_write_quota_is_a_warning(make_platforms, caplog):
    # the call's 4 writes fit exactly; the summariser's part (record + last_call) does not
    platforms = await make_platforms(
        summarizer="voicekit:count_turns", server={"writes_per_day": 4}
    )
    with caplog.at_level(logging.WARNING, logger="botwire.voice"):
        r = await platforms.vapi(fixture("vapi/end-of-call-report.json"))
    assert (r.status_code, r.json()) == (200, {})
    memory = platforms.memory(NS)
    assert [e.value["part"] for e in await memory.log("calls").read()] == ["end"]
    lines = [r.getMessage() for r in caplog.records if r.name.startswith("botwire")]
    assert lines == [
        "vapi call call_1 (summary): not stored, the caller's write quota is used up for today "
        "(UTC); the webhook is acknowledged"
    ]
    assert platforms.quota_rejections("write") == 1


async def test_vapi_without_an_assistant_id_says_so(make_platforms):
    platforms = await make_platforms(vapi_assistant_id="")
    answer = (await platforms.vapi(fixture("vapi/assistant-request.json"))).json()
    assert set(answer) == {"error"}


async def test_the_summariser_runs_once_per_call_and_its_summary_wins(make_platforms):
    platforms = await make_platforms(summarizer="voicekit:count_turns")
    ended, analyzed = (
        fixture_json("retell/call_ended.json"),
        fixture_json("retell/call_analyzed.json"),
    )
    for body in (ended, analyzed, ended):
        assert (await platforms.retell(body)).status_code == 204
    memory = platforms.memory("phone:+12137771234")
    entries = [e.value for e in await memory.log("calls").read()]
    assert sorted(e["part"] for e in entries) == ["analyzed", "ended", "summary"]
    (merged,) = merge_calls(entries)
    assert merged["summary"] == "hook: 2 turns"
    assert merged["successful"] is True  # the platform's other fields still merge in
    last = await memory.get("last_call")
    assert last["summary"] == "hook: 2 turns" and last["outcome"] == "user_hangup"
