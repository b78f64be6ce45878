"""Every voice endpoint refuses missing, forged, stale and replayed signatures with 401, and then
nothing is read or written; a platform without a secret has no endpoint at all."""

from __future__ import annotations

import time

import pytest
from botwire.voice.platforms.elevenlabs import TOLERANCE_S
from botwire.voice.platforms.vapi import vapi_auth
from botwire.voice.signatures import (
    VapiAuth,
    sign_elevenlabs,
    sign_retell,
    sign_twilio,
    sign_vapi_hmac,
)
from voicekit import PUBLIC, fixture

CALLER = "+14155550123"
NS = f"phone:{CALLER}"
END_VAPI = fixture("vapi/end-of-call-report.json")
END_RETELL = fixture("retell/call_ended.json")
END_ELEVEN = fixture("elevenlabs/post_call_transcription.json")
STATUS = [("CallSid", "CA1"), ("From", CALLER), ("CallStatus", "completed"), ("CallDuration", "3")]


async def assert_nothing_stored(platforms):
    assert await platforms.namespaces() == []


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"x-vapi-secret": ""},
        {"x-vapi-secret": "vapi-secreT"},
        {"x-vapi-secret": "vapi-secret "},
        {"authorization": "Bearer vapi-secret"},
        {"X-VAPI-SECRET": "wrong"},
    ],
)
async def test_vapi_secret_refusals(platforms, headers):
    r = await platforms.vapi(END_VAPI, headers=headers)
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "unauthorized"
    assert "vapi-secret" not in r.text
    await assert_nothing_stored(platforms)


async def test_vapi_bearer_mode(make_platforms):
    platforms = await make_platforms(vapi_auth="bearer")
    assert (
        await platforms.vapi(END_VAPI, headers={"x-vapi-secret": "vapi-secret"})
    ).status_code == 401
    assert (
        await platforms.vapi(END_VAPI, headers={"authorization": "Bearer nope"})
    ).status_code == 401
    await assert_nothing_stored(platforms)
    r = await platforms.vapi(END_VAPI, headers={"authorization": "Bearer vapi-secret"})
    assert r.status_code == 200
    assert await platforms.memory(NS).log("calls").count() == 1


async def test_vapi_hmac_mode_with_its_replay_window(make_platforms):
    platforms = await make_platforms(vapi_auth="hmac", vapi_signature_prefix="sha256=")
    auth = vapi_auth(platforms.settings)
    assert isinstance(auth, VapiAuth)
    now = int(time.time() * 1000)
    stale = sign_vapi_hmac(END_VAPI, auth, now - 3_600_000)
    assert (await platforms.vapi(END_VAPI, headers=stale)).status_code == 401
    forged = dict(sign_vapi_hmac(END_VAPI, auth, now))
    forged[auth.signature_header] = "sha256=" + "0" * 64
    assert (await platforms.vapi(END_VAPI, headers=forged)).status_code == 401
    tampered = END_VAPI.replace(b"reschedule", b"rescheduLe")
    assert (
        await platforms.vapi(tampered, headers=sign_vapi_hmac(END_VAPI, auth, now))
    ).status_code == 401
    await assert_nothing_stored(platforms)
    good = sign_vapi_hmac(END_VAPI, auth, now)
    assert (await platforms.vapi(END_VAPI, headers=good)).status_code == 200
    replay = await platforms.vapi(END_VAPI, headers=good)
    assert replay.status_code == 401 and "replay" in replay.json()["error"]["message"]
    assert await platforms.memory(NS).log("calls").count() == 1


async def test_retell_refusals(platforms):
    now = int(time.time() * 1000)
    good = sign_retell(END_RETELL, "test-api-key", now)
    for header in (
        "",
        "v=1,d=zz",
        good.replace("d=", "d=0"),
        sign_retell(END_RETELL, "other", now),
        sign_retell(END_RETELL, "test-api-key", now - 301_000),
        sign_retell(END_RETELL, "test-api-key", now + 301_000),
    ):
        r = await platforms.retell(END_RETELL, signature=header or "x")
        assert r.status_code == 401, header
    r = await platforms.client.post("/voice/retell", content=END_RETELL)
    assert r.status_code == 401
    for path in ("/voice/retell/tools", "/voice/retell/tools/remember"):
        body = (
            b'{"name":"remember","args":{"key":"a","value":"b"},'
            b'"call":{"from_number":"+14155550123"}}'
        )
        r = await platforms.retell(body, path=path, signature=sign_retell(body, "wrong", now))
        assert r.status_code == 401
    await assert_nothing_stored(platforms)
    assert (await platforms.retell(END_RETELL, signature=good)).status_code == 204
    assert (await platforms.retell(END_RETELL, signature=good)).status_code == 401  # replayed


async def test_elevenlabs_post_call_refusals(platforms):
    now = int(time.time())
    for header in (
        "",
        "t=1,v0=00",
        sign_elevenlabs(END_ELEVEN, "wsec_other", now),
        sign_elevenlabs(END_ELEVEN, "wsec_test", now - TOLERANCE_S - 1),
        sign_elevenlabs(END_ELEVEN.replace(b"fun", b"fan"), "wsec_test", now),
    ):
        assert (await platforms.eleven_post(END_ELEVEN, signature=header or "x")).status_code == 401
    await assert_nothing_stored(platforms)
    good = sign_elevenlabs(END_ELEVEN, "wsec_test", now)
    assert (await platforms.eleven_post(END_ELEVEN, signature=good)).status_code == 200
    assert (await platforms.eleven_post(END_ELEVEN, signature=good)).status_code == 401


@pytest.mark.parametrize("path", ["initiation", "tools/remember"])
async def test_elevenlabs_secret_header_refusals(platforms, path):
    body = {"key": "a", "value": "b", "caller_id": CALLER}
    for secret in ("wrong", "el-tool-secret2", "EL-TOOL-SECRET"):
        assert (await platforms.eleven(path, body, secret=secret)).status_code == 401
    r = await platforms.client.post(f"/voice/elevenlabs/{path}", json=body)
    assert r.status_code == 401
    await assert_nothing_stored(platforms)
    assert (await platforms.eleven(path, body)).status_code == 200


@pytest.mark.parametrize("path", ["/voice/twilio", "/voice/twilio/status"])
async def test_twilio_refusals(platforms, path):
    internal = sign_twilio("http://botwire.test" + path, STATUS, "12345")  # not the public URL
    for header in (
        "",
        "abc=",
        sign_twilio(PUBLIC + path, STATUS, "54321"),
        internal,
        sign_twilio(PUBLIC + path, STATUS + [("Extra", "1")], "12345"),
    ):
        assert (await platforms.twilio(path, STATUS, signature=header or "x")).status_code == 401
    await assert_nothing_stored(platforms)
    good = sign_twilio(PUBLIC + path, STATUS, "12345")
    assert (await platforms.twilio(path, STATUS, signature=good)).status_code in (200, 204)
    assert (await platforms.twilio(path, STATUS, signature=good)).status_code == 401  # replayed


async def test_twilio_without_a_public_url_checks_the_url_it_was_called_at(make_platforms):
    platforms = await make_platforms(public_url="")
    seen = PUBLIC + "/voice/twilio/status?tenant=a"  # the client's base URL is PUBLIC
    ok = sign_twilio(seen, STATUS, "12345")
    r = await platforms.twilio("/voice/twilio/status?tenant=a", STATUS, signature=ok)
    assert r.status_code == 204


async def test_a_failed_request_does_not_burn_its_signature(make_platforms, monkeypatch):
    """A request that fails inside (storage down, say) may be retried with the same signature."""
    platforms = await make_platforms()
    from botwire.server import voice as server_voice

    calls = []
    original = server_voice.finish

    async def flaky(voice, event, *rest):
        calls.append(event)
        if len(calls) == 1:
            raise RuntimeError("the database went away")
        return await original(voice, event, *rest)

    monkeypatch.setattr(server_voice, "finish", flaky)
    good = sign_retell(END_RETELL, "test-api-key", int(time.time() * 1000))
    failed = await platforms.retell(END_RETELL, signature=good)
    assert failed.status_code == 500 and "database" not in failed.text  # no internals leak
    assert (await platforms.retell(END_RETELL, signature=good)).status_code == 204
    assert await platforms.memory("phone:+12137771234").log("calls").count() == 1


@pytest.mark.parametrize(
    "unset, path",
    [
        ("vapi_secret", "/voice/vapi"),
        ("retell_api_key", "/voice/retell"),
        ("retell_api_key", "/voice/retell/tools"),
        ("twilio_auth_token", "/voice/twilio"),
        ("elevenlabs_tool_secret", "/voice/elevenlabs/initiation"),
        ("elevenlabs_webhook_secret", "/voice/elevenlabs/post-call"),
    ],
)
async def test_unconfigured_platforms_have_no_endpoint(make_platforms, unset, path):
    platforms = await make_platforms(**{unset: ""})
    r = await platforms.client.post(path, content=b"{}")
    assert r.status_code == 404
    message = r.json()["error"]["message"]
    assert "not configured" in message and f"BOTWIRE_{unset.upper()}" in message


async def test_vapi_secret_in_a_header_of_another_name(make_platforms):
    platforms = await make_platforms(vapi_secret_header="X-Custom-Auth")
    assert (
        await platforms.vapi(END_VAPI, headers={"x-vapi-secret": "vapi-secret"})
    ).status_code == 401
    r = await platforms.vapi(END_VAPI, headers={"x-custom-auth": "vapi-secret"})
    assert r.status_code == 200
