"""Retell: what ``call_analyzed`` extracts (``custom_analysis_data``) becomes the caller's memory
at the next call, once, with Retell's evaluations kept in the call record; an inbound SMS
(``chat_inbound``) is answered with the same variables as an inbound call."""

from __future__ import annotations

import json
import time

import pytest

from botwire.voice.platforms import load_json
from botwire.voice.platforms.retell import call_end
from botwire.voice.signatures import sign_retell

from voicekit import fixture, fixture_json

CALLER = "+14155550123"
NS = f"phone:{CALLER}"
EXTRACTED = "retell/call_analyzed.extracted.json"
ADDRESS = {"street": "742 Valencia St", "city": "San Francisco", "postal_code": "94110"}
ADDRESS_TEXT = '{"city":"San Francisco","postal_code":"94110","street":"742 Valencia St"}'
SUMMARY = (
    "Ana Silva's kettle from order KC-10482 has not arrived; it is to be re-sent with descaler "
    "tablets and she wants a call back when it ships."
)


def parse(body: dict | bytes):
    data = load_json(body if isinstance(body, bytes) else json.dumps(body).encode())
    return call_end(data, data["event"])


def with_analysis(**analysis) -> dict:
    body = fixture_json(EXTRACTED)
    body["call"]["call_analysis"] = analysis
    return body


# -- the webhook parsed ------------------------------------------------------------------


def test_call_analyzed_gives_every_extracted_field_and_the_evaluations():
    event = parse(fixture(EXTRACTED))
    assert event.extracted == {
        "customer_name": "Ana Silva",
        "order_number": "KC-10482",
        "callback_requested": True,
        "satisfaction_score": 4,
        "delivery_address": ADDRESS,
        "products_mentioned": ["Aurora kettle", "descaler tablets"],
        "preferred_callback_time": "N/A",  # kept: the core skips empty values, the parser does not
    }
    assert event.evaluation == {
        "user_sentiment": "Neutral",
        "call_successful": True,
        "in_voicemail": False,
    }
    assert (event.part, event.summary, event.successful) == ("analyzed", SUMMARY, True)
    assert event.caller == CALLER and len(event.turns) == 4


def test_without_analysis_data_there_is_nothing_extracted():
    analyzed = parse(fixture("retell/call_analyzed.json"))  # "custom_analysis_data": {}
    assert analyzed.extracted is None
    assert analyzed.evaluation == {
        "user_sentiment": "Positive",
        "call_successful": True,
        "in_voicemail": False,
    }
    ended = parse(fixture("retell/call_ended.json"))  # call_ended has no call_analysis
    assert (ended.extracted, ended.evaluation) == (None, None)


@pytest.mark.parametrize(
    "analysis",
    [
        {"custom_analysis_data": ["customer_name", "Ana"]},
        {"custom_analysis_data": "customer_name: Ana"},
        {"custom_analysis_data": None, "user_sentiment": None, "in_voicemail": None},
        {},
    ],
)
def test_analysis_of_another_shape_gives_nothing(analysis):
    event = parse(with_analysis(**analysis))
    assert (event.extracted, event.evaluation) == (None, None)


def test_call_analysis_that_is_not_an_object_gives_nothing():
    body = fixture_json(EXTRACTED)
    body["call"]["call_analysis"] = "done"
    event = parse(body)
    assert (event.extracted, event.evaluation, event.summary) == (None, None, None)


def test_only_the_evaluations_sent_are_kept():
    event = parse(with_analysis(user_sentiment="Negative", call_successful=False))
    assert event.evaluation == {"user_sentiment": "Negative", "call_successful": False}


# -- through the endpoint: call 1's extraction is call 2's memory --------------------------


async def start_variables(platforms, name: str = "call_inbound") -> dict[str, str]:
    r = await platforms.retell(fixture(f"retell/{name}.json"))
    assert r.status_code == 200, r.text
    answer = r.json()
    assert list(answer) == [name] and answer[name]["metadata"] == {"botwire_namespace": NS}
    return answer[name]["dynamic_variables"]


async def test_call_2_is_briefed_with_what_call_1_extracted(platforms):
    assert (await platforms.retell(fixture(EXTRACTED))).status_code == 204
    variables = await start_variables(platforms)
    memory = variables.pop("memory")
    for line in (
        "- customer_name: Ana Silva",
        "- order_number: KC-10482",
        "- callback_requested: true",
        "- satisfaction_score: 4",
        f"- delivery_address: {ADDRESS_TEXT}",
        '- products_mentioned: ["Aurora kettle","descaler tablets"]',
    ):
        assert line in memory.splitlines()
    assert "preferred_callback_time" not in memory
    assert variables == {
        "customer_name": "Ana Silva",
        "order_number": "KC-10482",
        "callback_requested": "true",
        "satisfaction_score": "4",
        "delivery_address": ADDRESS_TEXT,
        "products_mentioned": '["Aurora kettle","descaler tablets"]',
        "last_call_summary": SUMMARY,
        "last_call_date": "2025-12-03 10:42 UTC",
    }


async def test_the_call_record_keeps_the_extraction_and_the_evaluations(platforms):
    await platforms.retell(fixture(EXTRACTED))
    (record,) = [e.value for e in await platforms.memory(NS).log("calls").read()]
    assert record["part"] == "analyzed" and record["extracted"]["delivery_address"] == ADDRESS
    assert record["evaluation"] == parse(fixture(EXTRACTED)).evaluation


async def everything(platforms) -> tuple:
    memory = platforms.memory(NS)
    items = [item async for item in memory.items(include_internal=True)]
    logs = [await memory.log(name).count() for name in ("calls", "conversation", "notes")]
    return items, logs


async def test_a_webhook_delivered_again_changes_nothing(platforms):
    assert (await platforms.retell(fixture(EXTRACTED))).status_code == 204
    before = await everything(platforms)
    assert before[1] == [1, 4, 0]
    later = int(time.time() * 1000) + 1000  # Retell's retry: the same body, signed anew
    assert (await platforms.retell(fixture(EXTRACTED), ts_ms=later)).status_code == 204
    assert await everything(platforms) == before


async def test_the_same_signed_webhook_again_is_refused(platforms):
    body = fixture(EXTRACTED)
    signature = sign_retell(body, platforms.settings.retell_api_key, int(time.time() * 1000))
    assert (await platforms.retell(body, signature=signature)).status_code == 204
    before = await everything(platforms)
    replay = await platforms.retell(body, signature=signature)
    assert replay.status_code == 401 and "replay" in replay.json()["error"]["message"]
    assert await everything(platforms) == before


async def test_an_edited_extraction_of_the_same_call_is_not_stored_again(platforms):
    """Each (call, part) is written once: a second ``call_analyzed`` of the call changes nothing."""
    await platforms.retell(fixture(EXTRACTED))
    before = await everything(platforms)
    body = fixture_json(EXTRACTED)
    body["call"]["call_analysis"]["custom_analysis_data"]["customer_name"] = "Anna Silva"
    assert (await platforms.retell(body)).status_code == 204
    assert await everything(platforms) == before


# -- chat_inbound: an inbound SMS ----------------------------------------------------------


async def test_chat_inbound_is_answered_like_call_inbound(platforms):
    first = await start_variables(platforms, "chat_inbound")
    assert first["memory"].startswith("This is the first call")
    await platforms.retell(fixture(EXTRACTED))
    chat = await start_variables(platforms, "chat_inbound")
    call = await start_variables(platforms, "call_inbound")
    assert chat == call and chat["order_number"] == "KC-10482"
    assert all(isinstance(v, str) for v in chat.values())


async def test_chat_inbound_is_signed_like_every_retell_webhook(platforms):
    body = fixture("retell/chat_inbound.json")
    forged = sign_retell(body, "another-key", int(time.time() * 1000))
    assert (await platforms.retell(body, signature=forged)).status_code == 401
    stale = sign_retell(body, platforms.settings.retell_api_key, int(time.time() * 1000) - 301_000)
    assert (await platforms.retell(body, signature=stale)).status_code == 401


async def test_chat_inbound_without_its_object_is_refused(platforms):
    r = await platforms.retell({"event": "chat_inbound", "from_number": CALLER})
    assert r.status_code == 400 and "chat_inbound" in r.json()["error"]["message"]
