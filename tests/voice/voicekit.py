"""A server with every voice platform configured, and a client that signs like each platform."""

from __future__ import annotations

import json
import time
from pathlib import Path
from urllib.parse import urlencode

import httpx

from botwire import AsyncMemory
from botwire.engines import open_engine
from botwire.server import Settings, create_app
from botwire.voice.settings import VoiceSettings
from botwire.voice.signatures import sign_elevenlabs, sign_retell, sign_twilio

FIXTURES = Path(__file__).parent / "fixtures"
PUBLIC = "https://mem.example"
SECRETS = {
    "vapi_secret": "vapi-secret",
    "vapi_assistant_id": "asst_1",
    "retell_api_key": "test-api-key",
    "elevenlabs_webhook_secret": "wsec_test",
    "elevenlabs_tool_secret": "el-tool-secret",
    "twilio_auth_token": "12345",
    "public_url": PUBLIC,
}


def fixture(path: str) -> bytes:
    return (FIXTURES / path).read_bytes()


def fixture_json(path: str) -> dict:
    return json.loads(fixture(path))


class Platforms:
    """Sends webhooks as each platform does: raw bodies, correctly signed."""

    def __init__(
        self, client: httpx.AsyncClient, engine, settings: VoiceSettings, app=None
    ) -> None:
        self.client, self.engine, self.settings, self.app = client, engine, settings, app

    def memory(self, ns: str) -> AsyncMemory:
        return AsyncMemory(ns, engine=self.engine)

    def quota_rejections(self, kind: str) -> float:
        """The server's ``botwire_quota_rejections_total{kind=...}`` so far."""
        value = self.app.state.ctx.metrics.registry.get_sample_value(
            "botwire_quota_rejections_total", {"kind": kind}
        )
        return value or 0.0

    async def namespaces(self) -> list[str]:
        """Every namespace holding something, but the server's own replay bookkeeping."""
        from botwire.engines.base import Namespaces

        names = await self.engine.aexecute(Namespaces("", None, 1000))
        return [n for n in names if not n.startswith("~botwire:")]

    async def vapi(self, body, headers=None) -> httpx.Response:
        given = {"x-vapi-secret": self.settings.vapi_secret} if headers is None else headers
        return await self.client.post("/voice/vapi", content=_raw(body), headers=given)

    async def retell(
        self, body, path="/voice/retell", ts_ms=None, signature=None
    ) -> httpx.Response:
        raw = _raw(body)
        ts_ms = int(time.time() * 1000) if ts_ms is None else ts_ms
        header = signature or sign_retell(raw, self.settings.retell_api_key, ts_ms)
        return await self.client.post(path, content=raw, headers={"x-retell-signature": header})

    async def eleven_post(self, body, ts=None, signature=None) -> httpx.Response:
        raw = _raw(body)
        ts = int(time.time()) if ts is None else ts
        header = signature or sign_elevenlabs(raw, self.settings.elevenlabs_webhook_secret, ts)
        return await self.client.post(
            "/voice/elevenlabs/post-call", content=raw, headers={"elevenlabs-signature": header}
        )

    async def eleven(self, path, body, secret=None) -> httpx.Response:
        headers = {
            self.settings.elevenlabs_secret_header: secret or self.settings.elevenlabs_tool_secret
        }
        return await self.client.post(
            f"/voice/elevenlabs/{path}", content=_raw(body), headers=headers
        )

    async def twilio(self, path, params, signature=None) -> httpx.Response:
        pairs = list(params.items()) if isinstance(params, dict) else list(params)
        header = signature or sign_twilio(PUBLIC + path, pairs, self.settings.twilio_auth_token)
        return await self.client.post(
            path,
            content=urlencode(pairs).encode(),
            headers={
                "x-twilio-signature": header,
                "content-type": "application/x-www-form-urlencoded",
            },
        )


def _raw(body) -> bytes:
    if isinstance(body, bytes):
        return body
    return json.dumps(body, separators=(",", ":")).encode()


async def start_platforms(database: str, server=None, **overrides) -> tuple[Platforms, object]:
    engine = open_engine(database)
    settings = VoiceSettings(**{**SECRETS, **overrides})
    app = create_app(
        Settings(database=database, **(server or {})), engine=engine, voice_settings=settings
    )
    lifespan = app.router.lifespan_context(app)
    await lifespan.__aenter__()
    transport = httpx.ASGITransport(app=app, client=("10.0.0.1", 1234))
    client = httpx.AsyncClient(transport=transport, base_url=PUBLIC)
    return Platforms(client, engine, settings, app), lifespan


def count_turns(call) -> str:
    """A summariser for tests (``summarizer="voicekit:count_turns"``)."""
    return f"hook: {len(call.turns)} turns"
