"""Vapi: what its end-of-call report extracts becomes the caller's memory at the next call, once;
and its HMAC signature of the body alone (``includeTimestamp: false``, ``x-vapi-signature:
sha256=<hex>``) is checked, and refused when forged or replayed."""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
import re
from pathlib import Path

import pytest

from botwire.errors import ConfigurationError
from botwire.voice.platforms.vapi import call_end, message, vapi_auth
from botwire.voice.settings import VoiceSettings
from botwire.voice.signatures import (
    SignatureError,
    VapiAuth,
    WebhookConfigError,
    sign_vapi_hmac,
    verify_vapi,
)

from voicekit import fixture, fixture_json

CALLER = "+14155550123"
NS = f"phone:{CALLER}"
EXTRACTED = "vapi/end-of-call-report.extracted.json"
ORDER = {"number": "ORDER-789", "item": "Gooseneck kettle", "status": "delivered"}
TICKET = {"issue": "Kettle lid does not close", "priority": "high"}
DOCS = Path(__file__).resolve().parents[2] / "docs" / "vapi.md"


def parse(body: dict | bytes):
    return call_end(message(body if isinstance(body, bytes) else json.dumps(body).encode()))


def documented() -> tuple[dict, str, dict]:
    """docs/vapi.md's example: the report, the memory's facts it leaves, the evaluation."""
    section = DOCS.read_text().split("## What Vapi extracts becomes memory")[1].split("\n## ")[0]
    blocks = re.findall(r"^```(\w+)\n(.*?)^```", section, re.S | re.M)
    report, evaluation = [json.loads(text) for lang, text in blocks if lang == "json"]
    (facts,) = [text.rstrip("\n") for lang, text in blocks if lang == "text"]
    return report, facts, evaluation


# -- the report parsed -------------------------------------------------------------------


def test_the_report_gives_every_extracted_field_and_the_evaluations():
    event = parse(fixture(EXTRACTED))
    assert event.extracted == {
        "customer_name": "Ana Souza",
        "preferred_contact": "email",
        "order": ORDER,
        "products_owned": ["Gooseneck kettle", "Tea infuser"],
        "callback_time": "N/A",  # kept: the core skips empty values, the parser does not
        "next_step": "Email a return label for ORDER-789",
        "Support Ticket": TICKET,
    }
    assert event.evaluation == {
        "success_evaluation": "true",
        "scorecards": {"Support QA Scorecard": {"score": 70, "score_normalized": 70}},
    }
    assert event.successful is True and event.call_id == "call_7f3a" and len(event.turns) == 3


def test_the_docs_example_is_the_fixture():
    report, _, evaluation = documented()
    assert parse(report).extracted == parse(fixture(EXTRACTED)).extracted
    assert parse(report).evaluation == evaluation == parse(fixture(EXTRACTED)).evaluation


def test_a_report_without_extraction_has_none():
    event = parse(fixture("vapi/end-of-call-report.json"))  # "structuredData": {}
    assert event.extracted is None
    assert event.evaluation == {"success_evaluation": "true"}


def test_a_structured_output_wins_over_a_structured_data_field_of_its_name():
    body = fixture_json(EXTRACTED)
    outputs = body["message"]["artifact"]["structuredOutputs"]
    outputs["extra"] = {"name": "customer_name", "result": "Ana S."}
    assert parse(body).extracted["customer_name"] == "Ana S."


def _set(body: dict, path: str, value) -> dict:
    out = copy.deepcopy(body)
    *parents, last = path.split(".")
    into = out["message"]
    for step in parents:
        into = into[step]
    into[last] = value
    return out


@pytest.mark.parametrize(
    "path, value",
    [
        ("analysis.structuredData", ["customer_name", "Ana"]),
        ("analysis.structuredData", "customer_name: Ana"),
        ("analysis", None),
        ("artifact.structuredOutputs", [{"name": "next_step", "result": "x"}]),
        ("artifact.structuredOutputs.0b7d6c1e-4f2a-4c3b-9a51-6e2f8d1c0a01", "x"),
        ("artifact.structuredOutputs.0b7d6c1e-4f2a-4c3b-9a51-6e2f8d1c0a01", {"result": "x"}),
        ("artifact.structuredOutputs.0b7d6c1e-4f2a-4c3b-9a51-6e2f8d1c0a01", {"name": 7}),
        ("artifact.scorecards", [70]),
        ("artifact.scorecards.c5bd0d4e-0c7f-4b0a-82e9-5d0baf6e4a01", {"name": "QA", "score": "A"}),
        ("analysis.successEvaluation", {"pass": True}),
        ("analysis.successEvaluation", " "),
    ],
)
def test_a_missing_or_wrong_typed_part_is_left_out(path, value):
    whole = parse(fixture(EXTRACTED))
    event = parse(_set(fixture_json(EXTRACTED), path, value))
    assert (event.extracted or {}).items() <= whole.extracted.items()
    assert (event.evaluation or {}).items() <= whole.evaluation.items()
    assert (event.extracted, event.evaluation) != (whole.extracted, whole.evaluation)


def test_numbers_and_flags_of_other_rubrics_are_kept_as_sent():
    body = fixture_json(EXTRACTED)
    for given, kept, successful in (("8", "8", None), (8, 8, None), (False, False, False)):
        event = parse(_set(body, "analysis.successEvaluation", given))
        assert event.evaluation["success_evaluation"] == kept and event.successful is successful


# -- through the endpoint: call 1's extraction is call 2's memory --------------------------


async def test_call_2_is_briefed_with_what_call_1_extracted(platforms):
    r = await platforms.vapi(fixture(EXTRACTED))
    assert (r.status_code, r.json()) == (200, {})
    r = await platforms.vapi(fixture("vapi/assistant-request.json"))
    variables = r.json()["assistantOverrides"]["variableValues"]
    memory = variables.pop("memory")
    facts = memory.split("\nRecent calls")[0]
    assert facts == documented()[1]
    assert '- order: {"item":"Gooseneck kettle","number":"ORDER-789","status":"delivered"}' in facts
    assert "callback_time" not in memory
    assert variables == {
        "customer_name": "Ana Souza",
        "preferred_contact": "email",
        "order": '{"item":"Gooseneck kettle","number":"ORDER-789","status":"delivered"}',
        "products_owned": '["Gooseneck kettle","Tea infuser"]',
        "next_step": "Email a return label for ORDER-789",
        "last_call_summary": (
            "Ana Souza reported that the lid of her kettle (ORDER-789) does not close; "
            "a return label will be emailed."
        ),
        "last_call_date": "2025-08-22 09:59 UTC",
    }


async def test_the_call_record_keeps_the_extraction_and_the_evaluations(platforms):
    await platforms.vapi(fixture(EXTRACTED))
    (record,) = [e.value for e in await platforms.memory(NS).log("calls").read()]
    assert record["extracted"]["order"] == ORDER
    assert record["evaluation"] == parse(fixture(EXTRACTED)).evaluation
    assert record["successful"] is True and record["duration_s"] == 270.0


async def _everything(platforms) -> tuple:
    memory = platforms.memory(NS)
    items = [item async for item in memory.items(include_internal=True)]
    logs = [await memory.log(name).count() for name in ("calls", "conversation", "notes")]
    return items, logs


async def test_a_report_delivered_again_changes_nothing(platforms):
    assert (await platforms.vapi(fixture(EXTRACTED))).status_code == 200
    before = await _everything(platforms)
    assert before[1] == [1, 3, 0]
    assert (await platforms.vapi(fixture(EXTRACTED))).status_code == 200
    assert await _everything(platforms) == before


# -- HMAC over the body alone -------------------------------------------------------------


BODY_ONLY = {
    "vapi_auth": "hmac",
    "vapi_include_timestamp": "false",
    "vapi_signature_header": "x-vapi-signature",
    "vapi_signature_prefix": "sha256=",
}


def vapi_signature(body: bytes, secret: str = "vapi-secret") -> str:
    """``x-vapi-signature`` as Vapi's docs compute it: ``sha256=`` + hex HMAC-SHA256(body)."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def test_body_only_signature_is_the_documented_one():
    auth = vapi_auth(VoiceSettings(vapi_secret="vapi-secret", **BODY_ONLY))
    assert auth.include_timestamp is False
    body = fixture(EXTRACTED)
    signature = vapi_signature(body)
    assert sign_vapi_hmac(body, auth) == {"x-vapi-signature": signature}
    token = verify_vapi(body, {"X-Vapi-Signature": signature}, auth, now=0)
    assert token == f"vapi:{signature[len('sha256=') :]}"
    stamped = sign_vapi_hmac(body, VapiAuth("hmac", "vapi-secret", prefix="sha256="), 1755856771)
    with pytest.raises(SignatureError) as refused:
        verify_vapi(body, {"x-vapi-signature": stamped["x-signature"]}, auth, now=0)
    assert refused.value.reason == "forged"


async def test_body_only_signatures_through_the_endpoint(make_platforms):
    platforms = await make_platforms(**BODY_ONLY)
    body = fixture(EXTRACTED)
    good = vapi_signature(body)
    for headers in (
        {},
        {"x-vapi-signature": "sha256=" + "0" * 64},
        {"x-vapi-signature": vapi_signature(body, "other-secret")},
        {"x-vapi-signature": vapi_signature(body.replace(b"Ana Souza", b"Ana Sousa"))},
        {"x-signature": good},
    ):
        r = await platforms.vapi(body, headers=headers)
        assert r.status_code == 401 and r.json()["error"]["code"] == "unauthorized", headers
    assert await platforms.namespaces() == []
    r = await platforms.vapi(body, headers={"x-vapi-signature": good, "x-timestamp": "1"})
    assert r.status_code == 200  # an unsigned timestamp is not read
    replay = await platforms.vapi(body, headers={"x-vapi-signature": good})
    assert replay.status_code == 401 and "replay" in replay.json()["error"]["message"]
    assert await platforms.memory(NS).log("calls").count() == 1


@pytest.mark.parametrize("value", ["no", "False", "0", ""])
def test_an_unknown_include_timestamp_is_refused_at_load(value):
    with pytest.raises(
        ConfigurationError, match=f"vapi_include_timestamp is {value!r}; it takes true, false"
    ):
        VoiceSettings(vapi_secret="s", vapi_auth="hmac", vapi_include_timestamp=value)


def test_include_timestamp_is_a_bool_and_a_timestamp_is_needed_when_signed():
    with pytest.raises(WebhookConfigError, match="include_timestamp must be True or False"):
        VapiAuth("hmac", "s", include_timestamp="false")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="timestamp must be a non-negative int"):
        sign_vapi_hmac(b"{}", VapiAuth("hmac", "s"))
