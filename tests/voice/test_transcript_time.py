"""Each stored transcript line carries the call's own time: the call's start plus the platform's
per-line offset (Vapi ``secondsFromStart``, Retell ``transcript_object[].words[].start``,
ElevenLabs ``time_in_call_secs``), else the call's end; never the time it was stored."""

from __future__ import annotations

import pytest
from voicekit import fixture, fixture_json

CALLER = "+14155550123"
STARTED = 1755511200.0  # 2025-08-18T10:00:00Z, the Vapi fixture's startedAt


async def turns(platforms, ns):
    return [e.value for e in await platforms.memory(ns).log("conversation").read()]


async def test_vapi_lines_are_the_calls_start_plus_seconds_from_start(platforms):
    assert (await platforms.vapi(fixture("vapi/end-of-call-report.json"))).status_code == 200
    stored = await turns(platforms, f"phone:{CALLER}")
    assert [t["ts"] for t in stored] == [pytest.approx(STARTED + 0.5), pytest.approx(STARTED + 3.1)]


async def test_vapi_lines_without_an_offset_take_their_time_or_the_calls_end(platforms):
    body = fixture_json("vapi/end-of-call-report.json")
    first, second = body["message"]["artifact"]["messages"]
    del first["secondsFromStart"]
    del second["secondsFromStart"], second["time"]
    await platforms.vapi(body)
    stored = await turns(platforms, f"phone:{CALLER}")
    assert [t["ts"] for t in stored] == [first["time"] / 1000, STARTED + 300]


async def test_retell_lines_are_the_calls_start_plus_the_first_words_start(platforms):
    assert (await platforms.retell(fixture("retell/call_ended.json"))).status_code == 204
    agent, user = await turns(platforms, "phone:+12137771234")
    assert agent["ts"] == pytest.approx(1714608475.945 + 0.7)
    assert user["ts"] == pytest.approx(1714608491.736)  # no words: the call's end


async def test_recall_says_when_a_line_was_said_not_when_it_was_stored(platforms):
    await platforms.vapi(fixture("vapi/end-of-call-report.json"))
    body = {
        "message": {
            "type": "tool-calls",
            "call": {"id": "call_2", "customer": {"number": CALLER}},
            "toolCallList": [
                {"id": "t", "name": "recall_memory", "parameters": {"query": "reschedule"}}
            ],
        }
    }
    (result,) = (await platforms.vapi(body)).json()["results"]
    assert "user said (2025-08-18 10:00 UTC): I need to reschedule." in result["result"]
    assert "call 2025-08-18 10:05 UTC" in result["result"]
