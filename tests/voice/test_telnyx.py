"""Telnyx AI Assistants through the real endpoints, on SQLite and PostgreSQL: Ed25519 signatures
(and agreement with Telnyx's own SDK verifier), replays, retries, call 1 -> call 2 with the
insights' fields as variables, the webhook tools, and the setting."""

from __future__ import annotations

import base64
import copy
import json
import os
import subprocess
import sys
import time

import pytest
from click.testing import CliRunner
from nacl.signing import SigningKey
from telnyx import Telnyx
from telnyx.lib.webhook_verification import WebhookVerificationError, verify_webhook_signature
from telnyx.types import (
    CallAnalyzedWebhookEvent,
    CallConversationEndedWebhookEvent,
    CallConversationInsightsGeneratedWebhookEvent,
)

from botwire.cli import main
from botwire.errors import ConfigurationError, MissingDependency
from botwire.voice import core, facts, merge_calls
from botwire.voice.platforms.telnyx import analysis, verify_telnyx
from botwire.voice.settings import VoiceSettings
from botwire.voice.signatures import SignatureError

from voicekit import fixture, fixture_json

KEY = SigningKey.generate()
PUBLIC_KEY = base64.b64encode(bytes(KEY.verify_key)).decode()
OTHER_KEY = SigningKey.generate()
CALLER = "+14155550123"
NS = f"phone:{CALLER}"
SUMMARY = (
    "Ana asked whether her kettle (ORDER-789) had shipped; "
    "it shipped on Monday and arrives tomorrow."
)
SENTIMENT = "9a0e2c7d-5f1b-4c3e-8d6a-2b7f4e1c9d05"
SDK_TYPES = {
    "call.conversation.ended.json": CallConversationEndedWebhookEvent,
    "call.analyzed.json": CallAnalyzedWebhookEvent,
    "call.conversation_insights.generated.json": CallConversationInsightsGeneratedWebhookEvent,
}


def sign(body: bytes, timestamp: int | None = None, key: SigningKey = KEY) -> dict[str, str]:
    """The headers Telnyx sends with ``body``: Ed25519 over ``"{timestamp}|{body}"``."""
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    signature = key.sign(stamp.encode() + b"|" + body).signature
    return {
        "telnyx-signature-ed25519": base64.b64encode(signature).decode(),
        "telnyx-timestamp": stamp,
    }


def raw(body) -> bytes:
    return body if isinstance(body, bytes) else json.dumps(body).encode()


async def history(platforms, key: str) -> list:
    return await core.arun(facts.history(key), platforms.memory(NS))


async def post(platforms, body, path="/voice/telnyx", headers=None, **signing):
    content = raw(body)
    given = sign(content, **signing) if headers is None else headers
    return await platforms.client.post(path, content=content, headers=given)


@pytest.fixture
async def telnyx(make_platforms):
    return await make_platforms(telnyx_public_key=PUBLIC_KEY)


# -- the fixtures are Telnyx's own shapes --------------------------------------------------


@pytest.mark.parametrize("name", SDK_TYPES)
def test_fixtures_are_the_sdk_types(name):
    event = SDK_TYPES[name].model_validate(fixture_json(f"telnyx/{name}"))
    assert event.data.event_type == name.removesuffix(".json")
    assert event.data.payload.call_control_id


# -- signatures, next to the SDK's verifier -------------------------------------------------


def requests() -> dict[str, tuple[bytes, dict[str, str]]]:
    body = fixture("telnyx/call.conversation.ended.json")
    good = sign(body)
    return {
        "good": (body, good),
        "forged": (
            body,
            {**good, "telnyx-signature-ed25519": base64.b64encode(b"x" * 64).decode()},
        ),
        "wrong key": (body, sign(body, key=OTHER_KEY)),
        "tampered body": (body.replace(b"Ana", b"Ann"), good),
        "stale": (body, sign(body, int(time.time()) - 301)),
        "from the future": (body, sign(body, int(time.time()) + 301)),
        "other timestamp": (body, {**good, "telnyx-timestamp": str(int(time.time()) - 1)}),
        "no signature": (body, {"telnyx-timestamp": good["telnyx-timestamp"]}),
        "no timestamp": (body, {"telnyx-signature-ed25519": good["telnyx-signature-ed25519"]}),
        "not base64": (body, {**good, "telnyx-signature-ed25519": "not base64!"}),
        "short signature": (body, {**good, "telnyx-signature-ed25519": "c2hvcnQ="}),
        "timestamp not a number": (body, {**good, "telnyx-timestamp": "soon"}),
    }


@pytest.mark.parametrize("case", requests())
def test_our_verifier_agrees_with_the_sdks(case):
    body, headers = requests()[case]
    try:
        verify_webhook_signature(body, headers, PUBLIC_KEY)
        sdk = True
    except WebhookVerificationError:
        sdk = False
    try:
        token = verify_telnyx(body, headers, PUBLIC_KEY)
        ours = True
    except SignatureError:
        ours = False
    assert ours is sdk is (case == "good")
    if ours:
        assert token == "telnyx:" + base64.b64decode(headers["telnyx-signature-ed25519"]).hex()
        event = Telnyx(api_key="unused", public_key=PUBLIC_KEY).webhooks.unwrap(
            body.decode(), headers=headers
        )
        assert event.data.event_type == "call.conversation.ended"


@pytest.mark.parametrize("case", [c for c in requests() if c != "good"])
async def test_a_bad_signature_is_401_and_nothing_is_stored(telnyx, case):
    body, headers = requests()[case]
    r = await telnyx.client.post("/voice/telnyx", content=body, headers=headers)
    assert r.status_code == 401, r.text
    assert r.json()["error"]["code"] == "unauthorized"
    assert await telnyx.namespaces() == []


async def test_a_bad_signature_on_a_tool_is_401_and_nothing_is_stored(telnyx):
    body = raw({"key": "customer_name", "value": "Ana", "caller_id": CALLER})
    r = await post(telnyx, body, "/voice/telnyx/tools/remember", key=OTHER_KEY)
    assert r.status_code == 401
    assert await telnyx.namespaces() == []


async def test_a_replayed_request_is_refused(telnyx):
    body = fixture("telnyx/call.conversation.ended.json")
    headers = sign(body)
    first = await telnyx.client.post("/voice/telnyx", content=body, headers=headers)
    again = await telnyx.client.post("/voice/telnyx", content=body, headers=headers)
    assert (first.status_code, again.status_code) == (200, 401)
    assert "replay" in again.json()["error"]["message"]


async def test_unconfigured_telnyx_answers_404(platforms):
    for path in ("/voice/telnyx", "/voice/telnyx/tools/recall_memory"):
        r = await post(platforms, fixture("telnyx/webhook-tool.json"), path)
        assert r.status_code == 404
        assert "botwire voice configure telnyx" in r.json()["error"]["message"]


# -- every fixture through the endpoint -----------------------------------------------------


async def test_fixtures(telnyx):
    r = await post(telnyx, fixture("telnyx/assistant.initialization.json"))
    assert r.status_code == 200
    assert list(r.json()) == ["dynamic_variables"]
    variables = r.json()["dynamic_variables"]
    assert variables["memory"].startswith("This is the first call")
    assert variables["customer_name"] == ""
    assert all(isinstance(v, str) for v in variables.values())

    r = await post(telnyx, fixture("telnyx/webhook-tool.json"), "/voice/telnyx/tools/recall_memory")
    assert r.json() == {"result": "Nothing stored about this caller matches 'allergies'."}

    r = await post(telnyx, fixture("telnyx/call.conversation_insights.generated.json"))
    assert (r.status_code, r.json()) == (200, {})
    assert await telnyx.namespaces() == []

    assert (await post(telnyx, fixture("telnyx/call.conversation.ended.json"))).json() == {}
    assert (await post(telnyx, fixture("telnyx/call.analyzed.json"))).json() == {}
    memory = telnyx.memory(NS)
    turns = [e.value for e in await memory.log("conversation").read()]
    assert [(t["role"], t["text"]) for t in turns] == [
        ("assistant", "Hi, this is Kettle & Co. How can I help?"),
        ("user", "Hi, it's Ana. Has my kettle shipped? The order is ORDER-789."),
        ("assistant", "It shipped on Monday, Ana. It should arrive tomorrow."),
    ]
    assert turns[1]["ts"] == pytest.approx(1755511266.87)
    conversation = "0424805b-adc1-4ff8-9f95-e1de6883ecbe"
    assert {(t["call_id"], t["platform"]) for t in turns} == {(conversation, "telnyx")}
    (call,) = merge_calls([e.value for e in await memory.log("calls").read()])
    assert call["summary"] == SUMMARY
    assert call["duration_s"] == 252.0
    assert call["started_at"] == pytest.approx(1755511260.481)
    assert call["extracted"] == {"customer_name": "Ana", "last_order": "ORDER-789"}
    assert call["evaluation"] == {SENTIMENT: "positive"}
    assert await memory.get("customer_name") == "Ana"
    assert (await memory.get("last_call"))["summary"] == SUMMARY


async def test_other_events_are_acknowledged_and_ignored(telnyx):
    for name in ("call.conversation.created", "call.hangup", "some.future.event"):
        r = await post(telnyx, {"data": {"event_type": name, "payload": {"from": CALLER}}})
        assert (r.status_code, r.json()) == (200, {})
    assert await telnyx.namespaces() == []


@pytest.mark.parametrize(
    "body",
    [b"not json", b"[]", {"event_type": "call.analyzed"}, {"data": {"payload": {}}}],
    ids=["not json", "a list", "no data", "no event_type"],
)
async def test_malformed_bodies_are_400(telnyx, body):
    assert (await post(telnyx, body)).status_code == 400


async def test_a_call_end_without_an_id_is_400(telnyx):
    body = fixture_json("telnyx/call.conversation.ended.json")
    for name in ("conversation_id", "call_control_id"):
        del body["data"]["payload"][name]
    assert (await post(telnyx, body)).status_code == 400
    assert await telnyx.namespaces() == []


def paths(value, at=()):
    """Every place in a JSON value, as a path of keys and indexes."""
    items = value.items() if isinstance(value, dict) else enumerate(value)
    for key, inner in items:
        yield (*at, key)
        if isinstance(inner, (dict, list)):
            yield from paths(inner, (*at, key))


def replaced(value, path, new):
    out = copy.deepcopy(value)
    into = out
    for key in path[:-1]:
        into = into[key]
    into[path[-1]] = new
    return out


@pytest.mark.parametrize("name", [*SDK_TYPES, "assistant.initialization.json"])
async def test_any_field_of_any_type_never_gets_a_5xx(telnyx, name):
    original = fixture_json(f"telnyx/{name}")
    statuses = set()
    for path in paths(original["data"], ("data",)):
        for odd in (None, 7, "s", {"x": [1]}):
            r = await post(telnyx, replaced(original, path, odd))
            assert r.status_code < 500, (path, odd, r.text)
            statuses.add(r.status_code)
    assert 200 in statuses


# -- retries and the second call ----------------------------------------------------------


async def test_a_redelivered_call_end_stores_nothing_twice(telnyx):
    ended, analyzed = (
        fixture("telnyx/call.conversation.ended.json"),
        fixture("telnyx/call.analyzed.json"),
    )
    now = int(time.time())
    for i, body in enumerate((analyzed, ended, analyzed, ended, ended)):  # each signed anew
        assert (await post(telnyx, body, timestamp=now - i)).status_code == 200
    memory = telnyx.memory(NS)
    assert await memory.log("conversation").count() == 3
    entries = [e.value for e in await memory.log("calls").read()]
    assert sorted(e["part"] for e in entries) == ["analyzed", "ended"]
    assert [h.value for h in await history(telnyx, "customer_name")] == ["Ana"]


async def test_the_second_call_carries_the_first_and_its_insights(telnyx):
    first = (await post(telnyx, fixture("telnyx/assistant.initialization.json"))).json()
    assert first["dynamic_variables"]["memory"].startswith("This is the first call")
    await post(telnyx, fixture("telnyx/call.conversation.ended.json"))
    await post(telnyx, fixture("telnyx/call.analyzed.json"))

    start = fixture_json("telnyx/assistant.initialization.json")
    start["data"]["id"] = "second-call"
    second = (await post(telnyx, start)).json()["dynamic_variables"]
    assert second["customer_name"] == "Ana"
    assert second["last_order"] == "ORDER-789"
    assert second["last_call_summary"] == SUMMARY
    assert "- customer_name: Ana" in second["memory"]
    assert "- last_order: ORDER-789" in second["memory"]
    assert SUMMARY in second["memory"]
    assert all(isinstance(v, str) for v in second.values())


async def test_the_summary_insight_setting_picks_the_summary(make_platforms):
    telnyx = await make_platforms(telnyx_public_key=PUBLIC_KEY, telnyx_summary_insight=SENTIMENT)
    await post(telnyx, fixture("telnyx/call.analyzed.json"))
    (call,) = [e.value for e in await telnyx.memory(NS).log("calls").read()]
    assert call["summary"] == "positive"
    assert list(call["evaluation"].values()) == [SUMMARY]


def test_insights_become_a_summary_fields_and_evaluations():
    results = [("s", "Summary."), ("x", {"name": "Ana"}), ("e", "positive"), ("y", {"n": 1})]
    assert analysis(results, "") == ("Summary.", {"name": "Ana", "n": 1}, {"e": "positive"})
    assert analysis(results, "e") == ("positive", {"name": "Ana", "n": 1}, {"s": "Summary."})
    assert analysis(results, "missing") == (None, {"name": "Ana", "n": 1}, dict(results[::2]))
    assert analysis([], "") == (None, {}, {})


# -- the tools ---------------------------------------------------------------------------


async def test_tools_remember_and_recall(telnyx):
    async def tool(name, args):
        r = await post(telnyx, {**args, "caller_id": CALLER}, f"/voice/telnyx/tools/{name}")
        assert r.status_code == 200, r.text
        return r.json()

    assert await tool("remember", {"key": "customer_name", "value": "Ana"}) == {
        "result": "Remembered customer_name."
    }
    assert await tool("recall_memory", {"query": "Ana"}) == {"result": "customer_name: Ana"}
    assert await tool("recall_memory", {}) == {"error": "missing argument 'query'"}
    assert "unknown tool 'launch'" in (await tool("launch", {"x": 1}))["error"]
    (write,) = await history(telnyx, "customer_name")
    assert (write.source, write.platform, write.call_id) == ("tool", "telnyx", None)
    await tool("remember", {"key": "customer_name", "value": "Anna", "call_id": "conv_2"})
    assert (await history(telnyx, "customer_name"))[0].call_id == "conv_2"


async def test_a_tool_without_the_caller_says_so_and_stores_nothing(telnyx):
    r = await post(telnyx, {"key": "customer_name", "value": "Ana"}, "/voice/telnyx/tools/remember")
    assert "withheld" in r.json()["error"]
    assert await telnyx.namespaces() == []


async def test_a_web_call_without_a_number_is_not_remembered(telnyx):
    body = fixture_json("telnyx/assistant.initialization.json")
    payload = body["data"]["payload"]
    payload.update(telnyx_conversation_channel="web_call", telnyx_end_user_target="")
    variables = (await post(telnyx, body)).json()["dynamic_variables"]
    assert "withheld" in variables["memory"]
    ended = copy.deepcopy(fixture_json("telnyx/call.conversation.ended.json"))
    ended["data"]["payload"]["from"] = ""
    assert (await post(telnyx, ended)).status_code == 200
    assert await telnyx.namespaces() == []


# -- the setting -------------------------------------------------------------------------


def test_configure_writes_the_public_key(tmp_path):
    path = tmp_path / "voice.json"
    env = {"BOTWIRE_VOICE_CONFIG": str(path), "BOTWIRE_HOME": str(tmp_path)}
    args = ["voice", "configure", "telnyx", "--public-key", PUBLIC_KEY]
    done = CliRunner().invoke(main, [*args, "--summary-insight", SENTIMENT], env=env)
    assert done.exit_code == 0, done.output
    assert PUBLIC_KEY not in done.output
    stored = json.loads(path.read_text())
    assert stored == {"telnyx_public_key": PUBLIC_KEY, "telnyx_summary_insight": SENTIMENT}

    refused = CliRunner().invoke(main, [*args[:-1], "c2hvcnQ="], env=env)
    assert refused.exit_code != 0 and "32" in refused.output
    assert json.loads(path.read_text()) == stored


@pytest.mark.parametrize("key", ["not base64!", "c2hvcnQ=", PUBLIC_KEY[:-4]])
def test_a_key_that_cannot_verify_is_refused_at_load(key):
    with pytest.raises(ConfigurationError, match="telnyx_public_key"):
        VoiceSettings(telnyx_public_key=key)


def test_without_pynacl_the_setting_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "nacl.signing", None)
    with pytest.raises(MissingDependency, match=r"botwire\[telnyx\]"):
        VoiceSettings(telnyx_public_key=PUBLIC_KEY)


def test_botwire_and_its_server_need_no_pynacl(tmp_path):
    code = (
        "import sys; sys.modules['nacl'] = None\n"
        "import botwire, botwire.server.voice\n"
        "from botwire.server import Settings, create_app\n"
        "create_app(Settings(database='sqlite:///:memory:'))\n"
        "print('ok')\n"
    )
    env = {"PATH": os.environ.get("PATH", ""), "BOTWIRE_HOME": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=env
    )
    assert done.stdout.strip() == "ok", done.stderr
