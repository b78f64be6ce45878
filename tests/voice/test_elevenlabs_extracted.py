"""ElevenLabs: what the post-call webhook's data collection extracts becomes the caller's memory
at the next call, once, with the evaluation criteria kept in the call record; a retry within
ElevenLabs' retry schedule is accepted, signed anew or not, and stores nothing twice."""

from __future__ import annotations

import json
import time

import pytest

from botwire.voice.platforms.elevenlabs import TOLERANCE_S, ElevenLabs, post_call
from botwire.voice.signatures import sign_elevenlabs

from voicekit import fixture, fixture_json

CALLER = "+14155550123"
NS = f"phone:{CALLER}"
EXTRACTED = "elevenlabs/post_call_transcription.extracted.json"
ADDRESS = {"street": "742 Valencia St", "city": "San Francisco", "postal_code": "94110"}
ADDRESS_TEXT = '{"city":"San Francisco","postal_code":"94110","street":"742 Valencia St"}'
SUMMARY = (
    "Ana Silva's kettle from order KC-10482 has not arrived; it is to be re-sent with descaler "
    "tablets and she wants a call back when it ships."
)
CRITERIA = {
    "issue_resolved": {
        "result": "success",
        "rationale": "The agent arranged for the kettle to be re-sent to the caller's address.",
    },
    "offered_alternatives": {
        "result": "failure",
        "rationale": "The agent did not offer a refund or a replacement model.",
    },
}
# the retry schedule: 30 s, 2, 8 and 30 min apart, each delay up to 10 % longer
LAST_RETRY_S = 1.1 * (30 + 2 * 60 + 8 * 60 + 30 * 60)


def parse(body: dict | bytes):
    return post_call(json.loads(body) if isinstance(body, bytes) else body)


def with_analysis(**analysis) -> dict:
    body = fixture_json(EXTRACTED)
    body["data"]["analysis"] = analysis
    return body


# -- the webhook parsed ------------------------------------------------------------------


def test_the_data_collection_results_and_the_evaluations():
    event = parse(fixture(EXTRACTED))
    assert event.extracted == {
        "customer_name": "Ana Silva",
        "order_number": "KC-10482",
        "callback_requested": True,
        "satisfaction_score": 4,
        "delivery_address": ADDRESS,
        "products_mentioned": ["Aurora kettle", "descaler tablets"],
        "preferred_callback_time": None,  # kept: the core skips empty values, the parser does not
    }
    assert event.evaluation == {"call_successful": "success", "criteria": CRITERIA}
    assert (event.call_id, event.caller) == ("conv_01jz8k9q3w5e7r9t1y3u5i7o9p", CALLER)
    assert (event.summary, event.successful, event.duration_s) == (SUMMARY, True, 137)


def test_without_results_there_is_nothing_extracted():
    event = parse(fixture("elevenlabs/post_call_transcription.json"))  # both results {}
    assert event.extracted is None
    assert event.evaluation == {"call_successful": "success"}


def test_the_list_forms_of_the_results_are_read_too():
    analysis = fixture_json(EXTRACTED)["data"]["analysis"]
    listed = with_analysis(
        call_successful="success",
        data_collection_results_list=list(analysis["data_collection_results"].values()),
        evaluation_criteria_results_list=list(analysis["evaluation_criteria_results"].values()),
    )
    whole = parse(fixture(EXTRACTED))
    event = parse(listed)
    assert (event.extracted, event.evaluation) == (whole.extracted, whole.evaluation)


def test_a_numeric_criterion_keeps_its_score():
    criterion = {"criteria_id": "tone", "result": "success", "rationale": "Calm.", "score": 4}
    event = parse(with_analysis(evaluation_criteria_results={"tone": criterion}))
    assert event.evaluation == {
        "criteria": {"tone": {"result": "success", "rationale": "Calm.", "score": 4}}
    }


@pytest.mark.parametrize(
    "analysis",
    [
        {"data_collection_results": ["customer_name"], "evaluation_criteria_results": "x"},
        {"data_collection_results": {"customer_name": "Ana"}},
        {"data_collection_results_list": [{"value": "Ana"}, "customer_name"]},
        {"call_successful": None},
        {},
    ],
)
def test_results_of_another_shape_give_nothing(analysis):
    event = parse(with_analysis(**analysis))
    assert (event.extracted, event.evaluation) == (None, None)


def test_analysis_that_is_not_an_object_gives_nothing():
    body = fixture_json(EXTRACTED)
    body["data"]["analysis"] = "done"
    event = parse(body)
    assert (event.extracted, event.evaluation, event.summary) == (None, None, None)


# -- through the endpoint: call 1's extraction is call 2's memory --------------------------


async def initiation_variables(platforms) -> dict[str, str]:
    r = await platforms.eleven("initiation", fixture("elevenlabs/conversation-initiation.json"))
    assert r.status_code == 200, r.text
    assert r.json()["type"] == "conversation_initiation_client_data"
    return r.json()["dynamic_variables"]


async def test_call_2_is_briefed_with_what_call_1_extracted(platforms):
    r = await platforms.eleven_post(fixture(EXTRACTED))
    assert (r.status_code, r.json()) == (200, {})
    variables = await initiation_variables(platforms)
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
    await platforms.eleven_post(fixture(EXTRACTED))
    (record,) = [e.value for e in await platforms.memory(NS).log("calls").read()]
    assert record["extracted"]["delivery_address"] == ADDRESS
    assert record["evaluation"] == {"call_successful": "success", "criteria": CRITERIA}


# -- retries ------------------------------------------------------------------------------


async def everything(platforms) -> tuple:
    memory = platforms.memory(NS)
    items = [item async for item in memory.items(include_internal=True)]
    logs = [await memory.log(name).count() for name in ("calls", "conversation", "notes")]
    return items, logs


def test_the_signature_window_covers_the_last_retry():
    assert LAST_RETRY_S < TOLERANCE_S


async def test_a_retry_39_minutes_later_signed_anew_stores_nothing_twice(platforms):
    body, now = fixture(EXTRACTED), int(time.time())
    assert (await platforms.eleven_post(body, ts=now - 39 * 60)).status_code == 200
    before = await everything(platforms)
    assert before[1] == [1, 4, 0]
    r = await platforms.eleven_post(body, ts=now)
    assert (r.status_code, r.json()) == (200, {})
    assert await everything(platforms) == before


async def test_the_same_signed_bytes_again_are_a_replay(platforms):
    body = fixture(EXTRACTED)
    signature = sign_elevenlabs(body, "wsec_test", int(time.time()) - 39 * 60)
    assert (await platforms.eleven_post(body, signature=signature)).status_code == 200
    before = await everything(platforms)
    replay = await platforms.eleven_post(body, signature=signature)
    assert replay.status_code == 401 and "replay" in replay.json()["error"]["message"]
    assert await everything(platforms) == before


async def test_a_first_signature_is_accepted_until_the_last_retry(platforms):
    """A retry that carries the first attempt's signature (the docs do not say it is signed
    anew) is still accepted at the last retry, and refused as stale after the window."""
    body, now = fixture(EXTRACTED), int(time.time())
    assert (await platforms.eleven_post(body, ts=now - TOLERANCE_S - 1)).status_code == 401
    assert await platforms.namespaces() == []
    assert (await platforms.eleven_post(body, ts=now - int(LAST_RETRY_S))).status_code == 200
    assert await platforms.memory(NS).log("calls").count() == 1


def test_a_signature_is_remembered_as_long_as_it_can_be_accepted():
    assert ElevenLabs.replay_ttl >= 2 * TOLERANCE_S  # a timestamp is accepted up to ± the window
