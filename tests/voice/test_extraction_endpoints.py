"""Every platform that extracts: its populated fixture through its real endpoint, on SQLite and
PostgreSQL. Call 1 ends with extracted fields -> call 2's start answer carries them, by each
policy; a re-delivered or retried end applies nothing twice; provenance names the call."""

from __future__ import annotations

import base64
import copy
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest
from nacl.signing import SigningKey

from botwire.voice import core, facts
from botwire.voice.platforms import Inbound
from botwire.voice.platforms.registry import BY_NAME
from voicekit import PUBLIC, Platforms, fixture_json

CALLER = "+14155550123"
NS = f"phone:{CALLER}"
RULES = (
    "allergies=append, email=fill_if_empty, sentiment_score=ignore, Customer Name->customer_name"
)
TELNYX_KEY = SigningKey.generate()

FIRST = {
    "Customer Name": "Ana Silva",
    "plan": "basic",
    "email": "ana@example.com",
    "allergies": ["peanuts"],
    "address": {"city": "Lisbon", "zip": "1000-001"},
    "sentiment_score": 0.8,
    "order_id": "N/A",
}
SECOND = {"plan": "premium", "email": "other@example.com", "allergies": ["shellfish", "peanuts"]}


# -- each platform: where its extraction, call id and caller go, and how it is sent ----------


def vapi_end(fields: dict, call_id: str) -> dict:
    body = fixture_json("vapi/end-of-call-report.extracted.json")
    msg = body["message"]
    msg["analysis"]["structuredData"] = fields
    msg["artifact"].pop("structuredOutputs", None)
    msg["call"]["id"] = call_id
    msg["call"]["customer"]["number"] = CALLER
    return body


def retell_end(fields: dict, call_id: str) -> dict:
    body = fixture_json("retell/call_analyzed.extracted.json")
    body["call"]["call_analysis"]["custom_analysis_data"] = fields
    body["call"]["call_id"], body["call"]["from_number"] = call_id, CALLER
    return body


def eleven_end(fields: dict, call_id: str) -> dict:
    body = fixture_json("elevenlabs/post_call_transcription.extracted.json")
    results = {
        k: {"data_collection_id": k, "value": v, "rationale": "said so"} for k, v in fields.items()
    }
    body["data"]["analysis"]["data_collection_results"] = results
    body["data"].pop("data_collection_results_list", None)
    body["data"]["conversation_id"] = call_id
    body["data"]["metadata"]["phone_call"]["external_number"] = CALLER
    return body


def telnyx_end(fields: dict, call_id: str) -> dict:
    body = fixture_json("telnyx/call.analyzed.json")
    payload = body["data"]["payload"]
    group = {"conversation_insights": [{"insight_id": "fields", "result": json.dumps(fields)}]}
    payload["conversation_insights"] = [group]
    payload["conversation_id"], payload["from"] = call_id, CALLER
    return body


def telnyx_headers(raw: bytes, ago: int = 0) -> dict[str, str]:
    stamp = str(int(time.time()) - ago)
    signature = TELNYX_KEY.sign(stamp.encode() + b"|" + raw).signature
    return {
        "telnyx-signature-ed25519": base64.b64encode(signature).decode(),
        "telnyx-timestamp": stamp,
    }


async def telnyx_post(platforms: Platforms, body: dict, ago: int = 0) -> Any:
    raw = json.dumps(body).encode()
    headers = telnyx_headers(raw, ago)
    return await platforms.client.post("/voice/telnyx", content=raw, headers=headers)


def start_body(path: str, *where: str) -> dict:
    body = fixture_json(path)
    into = body
    for step in where[:-1]:
        into = into[step]
    into[where[-1]] = CALLER
    return body


@dataclass(frozen=True)
class Case:
    name: str
    end: Callable[[dict, str], dict]
    send_end: Callable[[Platforms, dict, int], Awaitable[Any]]  # signed ``ago`` seconds back
    send_start: Callable[[Platforms], Awaitable[dict[str, str]]]
    route: str  # the route that takes the end


async def _vapi_start(p: Platforms) -> dict[str, str]:
    body = start_body("vapi/assistant-request.json", "message", "call", "customer", "number")
    r = await p.vapi(body)
    return r.json()["assistantOverrides"]["variableValues"]


async def _retell_start(p: Platforms) -> dict[str, str]:
    r = await p.retell(start_body("retell/call_inbound.json", "call_inbound", "from_number"))
    return r.json()["call_inbound"]["dynamic_variables"]


async def _eleven_start(p: Platforms) -> dict[str, str]:
    body = start_body("elevenlabs/conversation-initiation.json", "caller_id")
    return (await p.eleven("initiation", body)).json()["dynamic_variables"]


async def _telnyx_start(p: Platforms) -> dict[str, str]:
    body = start_body(
        "telnyx/assistant.initialization.json", "data", "payload", "telnyx_end_user_target"
    )
    return (await telnyx_post(p, body)).json()["dynamic_variables"]


CASES = [
    Case("vapi", vapi_end, lambda p, b, ago: p.vapi(b), _vapi_start, "/voice/vapi"),
    Case(
        "retell",
        retell_end,
        lambda p, b, ago: p.retell(b, ts_ms=int((time.time() - ago) * 1000)),
        _retell_start,
        "/voice/retell",
    ),
    Case(
        "elevenlabs",
        eleven_end,
        lambda p, b, ago: p.eleven_post(b, ts=int(time.time()) - ago),
        _eleven_start,
        "/voice/elevenlabs/post-call",
    ),
    Case("telnyx", telnyx_end, telnyx_post, _telnyx_start, "/voice/telnyx"),
]


@pytest.fixture(params=CASES, ids=lambda c: c.name)
def case(request) -> Case:
    return request.param


@pytest.fixture
async def platforms(make_platforms) -> Platforms:
    key = base64.b64encode(bytes(TELNYX_KEY.verify_key)).decode()
    return await make_platforms(facts=RULES, telnyx_public_key=key)


def parsed(case: Case, platforms: Platforms, body: dict):
    """The end as the platform's own parser reads it (the suite's bodies are what it takes)."""
    platform = BY_NAME[case.name]
    (route,) = [r for r in platform.routes if r.path == case.route]
    inbound = Inbound(route, {}, json.dumps(body).encode(), PUBLIC + case.route)
    return platform.parse(platforms.settings, inbound)


async def ends(case: Case, platforms: Platforms, fields: dict, call_id: str, ago: int = 0) -> None:
    body = case.end(copy.deepcopy(fields), call_id)
    event = parsed(case, platforms, body)
    assert (event.caller, event.call_id, event.extracted) == (CALLER, call_id, fields)
    r = await case.send_end(platforms, body, ago)
    assert r.status_code in (200, 204), r.text


async def history(platforms: Platforms, key: str) -> list[facts.Fact]:
    return await core.arun(facts.history(key), platforms.memory(NS))


async def stored(platforms: Platforms) -> dict[str, Any]:
    return {k: v async for k, v in platforms.memory(NS).items()}


# -- the suite --------------------------------------------------------------------------------


async def test_call_2_starts_with_what_call_1_extracted(case, platforms):
    await ends(case, platforms, FIRST, "call-1")
    variables = await case.send_start(platforms)
    assert variables["customer_name"] == "Ana Silva"  # renamed
    assert variables["plan"] == "basic"
    assert variables["allergies"] == '["peanuts"]'
    assert variables["address"] == '{"city":"Lisbon","zip":"1000-001"}'
    assert "- plan: basic" in variables["memory"]
    assert "- customer_name: Ana Silva" in variables["memory"]
    for absent in ("sentiment_score", "order_id", "Customer Name"):  # ignored, empty, renamed
        assert absent not in variables and absent not in await stored(platforms)


async def test_each_policy_holds_on_the_next_call(case, platforms):
    await ends(case, platforms, FIRST, "call-1")
    await ends(case, platforms, SECOND, "call-2")
    variables = await case.send_start(platforms)
    assert variables["plan"] == "premium"  # overwrite
    assert variables["email"] == "ana@example.com"  # fill_if_empty
    assert json.loads(variables["allergies"]) == ["peanuts", "shellfish"]  # append, once each


async def test_a_redelivered_end_applies_nothing_twice(case, platforms):
    await ends(case, platforms, FIRST, "call-1")
    await ends(case, platforms, SECOND, "call-2")
    await ends(case, platforms, SECOND, "call-2", ago=30)  # the platform's retry: signed anew
    await ends(case, platforms, {**SECOND, "allergies": ["dust"]}, "call-2", ago=60)  # same call
    assert (await stored(platforms))["allergies"] == ["peanuts", "shellfish"]
    assert [f.value for f in await history(platforms, "allergies")] == [
        ["peanuts", "shellfish"],
        ["peanuts"],
    ]
    assert len(await history(platforms, "plan")) == 2


async def test_provenance_names_the_call(case, platforms):
    before = time.time()
    await ends(case, platforms, FIRST, "call-1")
    await ends(case, platforms, SECOND, "call-2")
    fact = await core.arun(facts.fact("plan"), platforms.memory(NS))
    assert (fact.value, fact.source, fact.platform, fact.call_id) == (
        "premium",
        "analysis",
        case.name,
        "call-2",
    )
    assert before <= fact.at <= time.time()
    (email,) = await history(platforms, "email")  # fill_if_empty wrote once
    assert (email.value, email.call_id) == ("ana@example.com", "call-1")
