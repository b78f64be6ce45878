"""A running server follows ``botwire voice configure``: no restart, and the 404 of a platform
that is not configured says how to turn it on."""

from __future__ import annotations

import asyncio
import json
import time

import httpx
import pytest
from click.testing import CliRunner
from voicekit import fixture

from botwire.server import Settings, create_app
from botwire.voice.settings import RELOAD_SECONDS, SECRETS, env_name
from botwire.voice_cli import voice

BODY = fixture("vapi/assistant-request.json")


@pytest.fixture
async def server(tmp_path, monkeypatch, voice_db):
    monkeypatch.setenv("BOTWIRE_HOME", str(tmp_path))
    monkeypatch.delenv("BOTWIRE_VOICE_CONFIG", raising=False)
    for name in (*SECRETS, "vapi_assistant_id", "vapi_auth"):
        monkeypatch.delenv(env_name(name), raising=False)
    app = create_app(Settings(database=voice_db))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, client=("10.0.0.1", 1234))
        async with httpx.AsyncClient(transport=transport, base_url="https://mem.example") as c:
            yield c


async def answered_within(client, seconds: float, headers: dict) -> httpx.Response:
    deadline = time.monotonic() + seconds
    while True:
        r = await client.post("/voice/vapi", content=BODY, headers=headers)
        if r.status_code != 404 or time.monotonic() > deadline:
            return r
        await asyncio.sleep(0.05)


def configure(*args: str) -> None:
    done = CliRunner().invoke(voice, ["configure", *args])
    assert done.exit_code == 0, done.output
    assert "restart" not in done.output


async def test_configure_takes_effect_without_a_restart(server):
    r = await server.post("/voice/vapi", content=BODY, headers={"x-vapi-secret": "s3"})
    assert r.status_code == 404
    message = r.json()["error"]["message"]
    assert "botwire voice configure vapi" in message and "no restart" in message
    assert "BOTWIRE_VAPI_SECRET" in message

    configure("vapi", "--secret", "s3", "--assistant-id", "asst_9")
    r = await answered_within(server, RELOAD_SECONDS + 2, {"x-vapi-secret": "s3"})
    assert r.status_code == 200, r.text
    assert r.json()["assistantId"] == "asst_9"
    assert (await server.post("/voice/vapi", content=BODY)).status_code == 401


async def test_environment_still_wins_and_a_broken_file_keeps_what_works(
    server, tmp_path, monkeypatch
):
    monkeypatch.setenv("BOTWIRE_VAPI_ASSISTANT_ID", "asst_env")
    configure("vapi", "--secret", "s3", "--assistant-id", "asst_file")
    r = await answered_within(server, RELOAD_SECONDS + 2, {"x-vapi-secret": "s3"})
    assert r.json()["assistantId"] == "asst_env"

    (tmp_path / "voice.json").write_text(json.dumps({"vapi_secret": "s4", "nonsense": 1}))
    await asyncio.sleep(RELOAD_SECONDS + 0.1)
    r = await server.post("/voice/vapi", content=BODY, headers={"x-vapi-secret": "s3"})
    assert r.status_code == 200  # the settings in effect stay; the error is logged
