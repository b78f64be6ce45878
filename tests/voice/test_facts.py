"""Extracted fields become facts by their policies, once per call, and every fact write keeps
where it came from and its last values; on every engine."""

from __future__ import annotations

import logging
import time
import uuid

import pytest

from botwire import Memory
from botwire.errors import ConfigurationError
from botwire.voice import CallEnd, CallMemory, VoiceConfig, core
from botwire.voice.facts import HISTORY, Origin, Policies, is_empty
from botwire.voice.records import KEPT_VALUE

CALLER = "+14155550123"


def policies(text: str = "") -> Policies:
    return Policies.parse(text)


@pytest.fixture
def config() -> VoiceConfig:
    return VoiceConfig(
        namespace=f"t{uuid.uuid4().hex[:8]}-{{e164}}",
        facts=policies(
            "email=fill_if_empty, allergies=append, sentiment_score=ignore, "
            "Customer Name->customer_name"
        ),
    )


def ended(call_id: str, extracted: dict, platform: str = "vapi", **more) -> CallEnd:
    now = time.time()
    return CallEnd(
        platform, call_id, CALLER, started_at=now - 60, ended_at=now, extracted=extracted, **more
    )


def end(call: CallMemory, event: CallEnd) -> set[str]:
    return core.run(core.end_call(event, call.config.facts), call.memory)


# -- the policies ---------------------------------------------------------------------------


def test_policy_rules_parse_and_print_back():
    parsed = policies("*=fill_if_empty, tags=append, Customer Name->customer_name, x=ignore")
    assert parsed.default == "fill_if_empty"
    assert parsed.resolve("tags") == ("append", "tags")
    assert parsed.resolve("Customer Name") == ("overwrite", "customer_name")
    assert parsed.resolve("other") == ("fill_if_empty", "other")
    assert Policies.parse(str(parsed)) == parsed
    assert policies("") == Policies() and policies(" , ") == Policies()
    renamed = parsed.with_rule("tags", None, "labels")
    assert renamed.resolve("tags") == ("append", "labels")
    assert renamed.with_rule("tags", "overwrite").resolve("tags") == ("overwrite", "labels")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("tags=merge", "unknown policy 'merge'; use overwrite, fill_if_empty, append, ignore"),
        ("=append", "names no field"),
        ("a->~secret", "'~secret' is kept by botwire itself"),
        ("a->last_call", "'last_call' is kept by botwire itself"),
        ("a=append, a=ignore", "'a' has two rules"),
        ("*->x=append", "'\\*' takes a policy, not a new name"),
    ],
)
def test_a_bad_rule_is_refused_by_name(text, message):
    with pytest.raises(ConfigurationError, match=message):
        policies(text)


@pytest.mark.parametrize(
    "value", [None, "", "  ", "N/A", "n/a", "None", "unknown", "Not mentioned", [], {}, ["", None]]
)
def test_empty_values(value):
    assert is_empty(value)


@pytest.mark.parametrize("value", [0, False, "no", "Ana", [0], {"a": 1}])
def test_values_that_are_not_empty(value):
    assert not is_empty(value)


# -- call 1 -> call 2 -----------------------------------------------------------------------


def test_extracted_fields_become_facts_by_their_policies(engine_url, config):
    first = {
        "Customer Name": "Ana Lima",
        "plan": "basic",
        "email": "ana@example.com",
        "allergies": "peanuts",
        "address": {"city": "Lisbon", "zip": "1000-001"},
        "sentiment_score": 0.8,
        "order_id": "N/A",
        "callback": None,
    }
    with CallMemory(CALLER, url=engine_url, config=config) as call:
        assert end(call, ended("call-1", first)) == {"end", "facts"}

    second = {
        "plan": "premium",
        "email": "other@example.com",
        "allergies": ["shellfish", "peanuts"],
    }
    with CallMemory(CALLER, url=engine_url, config=config) as call:
        variables = call.variables()
        assert variables["customer_name"] == "Ana Lima"
        assert variables["plan"] == "basic"
        assert "- address: " in variables["memory"] and '"city":"Lisbon"' in variables["memory"]
        assert "- plan: basic" in variables["memory"]
        stored = dict(call.memory.items())
        for absent in ("sentiment_score", "order_id", "callback", "Customer Name"):
            assert absent not in stored
        assert stored["address"] == {"city": "Lisbon", "zip": "1000-001"}
        assert end(call, ended("call-2", second)) == {"end", "facts"}

    with CallMemory(CALLER, url=engine_url, config=config) as call:
        stored = dict(call.memory.items())
        assert stored["plan"] == "premium"  # overwrite
        assert stored["email"] == "ana@example.com"  # fill_if_empty kept the first
        assert stored["allergies"] == ["peanuts", "shellfish"]  # append, de-duplicated
        assert call.variables()["plan"] == "premium"


def test_a_redelivered_call_end_applies_its_policies_once(engine_url, config):
    event = ended("call-1", {"allergies": ["peanuts"], "plan": "basic"})
    with CallMemory(CALLER, url=engine_url, config=config) as call:
        end(call, event)
        call.memory.set("allergies", ["peanuts", "dust"])  # changed in between
        assert end(call, event) == set()
        assert end(call, ended("call-1", {"allergies": ["peanuts", "mould"]})) == set()
        assert call.memory.get("allergies") == ["peanuts", "dust"]
        assert len(call.history("allergies")) == 1
        assert len(call.history("plan")) == 1


def test_each_part_of_a_call_is_its_own_extraction(engine_url, config):
    with CallMemory(CALLER, url=engine_url, config=config) as call:
        end(call, ended("c", {"plan": "basic"}, part="ended"))
        end(call, ended("c", {"plan": "premium"}, part="analyzed"))
        assert call.memory.get("plan") == "premium"
        assert [f.value for f in call.history("plan")] == ["premium", "basic"]


def test_a_field_that_fails_its_policy_is_logged_and_skipped(engine_url, config, caplog):
    with CallMemory(CALLER, url=engine_url, config=config) as call:
        call.memory.set("allergies", "peanuts")  # not a list
        extracted = {"allergies": "dust", "~call/x": "y", "last_call": "z", "plan": "basic"}
        with caplog.at_level(logging.WARNING, logger="botwire.voice"):
            assert end(call, ended("c", extracted)) == {"end", "facts"}
        assert call.memory.get("allergies") == "peanuts"
        assert call.memory.get("plan") == "basic"
        assert call.memory.get("~call/x") is None
        said = caplog.text
        assert "'allergies' is not stored: append needs a list at 'allergies'" in said
        assert "'~call/x' cannot be a fact's key" in said
        assert "'last_call' cannot be a fact's key" in said


def test_a_value_too_large_to_store_skips_that_field_only(engine_url, caplog):
    config = VoiceConfig(namespace=f"t{uuid.uuid4().hex[:8]}-{{e164}}")
    with CallMemory(CALLER, url=engine_url, config=config) as call:
        huge = "x" * (call.memory.max_value_bytes + 10)
        with caplog.at_level(logging.WARNING, logger="botwire.voice"):
            end(call, ended("c", {"notes": huge, "plan": "basic"}))
        assert call.memory.get("plan") == "basic"
        assert call.memory.get("notes") is None
        assert "extracted field for 'notes' is not stored" in caplog.text


def test_evaluations_go_into_the_call_record_not_the_facts(engine_url, config):
    evaluation = {"call_successful": True, "user_sentiment": "Positive"}
    with CallMemory(CALLER, url=engine_url, config=config) as call:
        end(call, ended("c", {"plan": "basic"}, evaluation=evaluation))
        (record,) = [e.value for e in call.memory.log("calls").read()]
        assert record["evaluation"] == evaluation
        assert record["extracted"] == {"plan": "basic"}
        assert "user_sentiment" not in dict(call.memory.items())


# -- provenance and history -----------------------------------------------------------------


def test_every_fact_write_says_where_it_came_from(engine_url, config):
    with CallMemory(CALLER, url=engine_url, config=config, call_id="app-1") as call:
        before = time.time()
        end(call, ended("call-9", {"plan": "basic"}, platform="retell"))
        fact = call.fact("plan")
        assert (fact.value, fact.source, fact.platform, fact.call_id) == (
            "basic",
            "analysis",
            "retell",
            "call-9",
        )
        assert before <= fact.at <= time.time()

        tool = Origin("tool", "vapi", "call-10")
        core.run(core.tool("remember", {"key": "plan", "value": "gold"}, tool), call.memory)
        assert (call.fact("plan").source, call.fact("plan").call_id) == ("tool", "call-10")

        call.remember("plan", "silver")
        fact = call.fact("plan")
        assert (fact.source, fact.platform, fact.call_id) == ("api", "app", "app-1")

        with Memory(call.namespace, url=engine_url) as direct:
            direct.set("plan", "platinum")  # no provenance of its own
            updated = direct.info("plan").updated_at
        fact = call.fact("plan")
        assert (fact.value, fact.source, fact.platform, fact.at) == (
            "platinum",
            "api",
            None,
            updated,
        )
        history = call.history("plan")
        assert [(f.value, f.source) for f in history] == [
            ("silver", "api"),
            ("gold", "tool"),
            ("basic", "analysis"),
        ]
        assert set(call.facts()) == {"plan"}
        assert call.facts()["plan"].value == "platinum"


def test_a_forgotten_fact_keeps_its_history(engine_url, config):
    with CallMemory(CALLER, url=engine_url, config=config) as call:
        end(call, ended("c", {"plan": "basic"}))
        assert call.forget("plan") == "Forgot plan."
        assert call.fact("plan") is None and call.memory.get("plan") is None
        newest, first = call.history("plan")
        assert (newest.deleted, newest.value, newest.source) == (True, None, "api")
        assert (first.value, first.source) == ("basic", "analysis")
        assert call.forget("plan") == "Nothing was stored under plan."
        assert len(call.history("plan")) == 2


def test_history_is_bounded_and_keeps_long_values_shortened(engine_url, config):
    with CallMemory(CALLER, url=engine_url, config=config) as call:
        for n in range(HISTORY + 5):
            call.remember("counter", n)
        assert [f.value for f in call.history("counter")] == list(range(HISTORY + 4, 4, -1))
        long = "y" * (KEPT_VALUE * 2)
        call.remember("essay", long)
        assert call.fact("essay").value == long and not call.fact("essay").truncated
        (kept,) = call.history("essay")
        assert kept.truncated and len(kept.value) == KEPT_VALUE


def test_provenance_is_bookkeeping_the_agent_never_sees(engine_url, config):
    with CallMemory(CALLER, url=engine_url, config=config) as call:
        end(call, ended("c", {"plan": "basic"}))
        assert "~fact" not in call.context()
        assert "~fact" not in call.recall("plan basic")
        assert list(call.memory.keys()) == ["last_call", "plan"]
        assert all(not k.startswith("~") for k in call.variables())
