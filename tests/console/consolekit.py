"""Helpers for the /console tests: an httpx client on the app that signs in and posts forms,
Chromium's whereabouts, and callers with facts and calls written as the voice webhooks write
them (``core`` plans)."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import httpx
import pytest
import servers

from botwire import Memory
from botwire.engines import open_engine
from botwire.engines.base import SaveKey
from botwire.server import Settings, create_app
from botwire.server.auth import bootstrap_op, new_key
from botwire.voice import core, facts
from botwire.voice.records import CallEnd, Turn
from botwire.voice.settings import VoiceSettings

REQUIRE_BROWSER_ENV = "BOTWIRE_TEST_REQUIRE_BROWSER"
CHROMIUM_ENV = "BOTWIRE_TEST_CHROMIUM"
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "console"
VAPI = {"vapi_secret": "console-test-secret"}


def browser_required() -> bool:
    return os.environ.get(REQUIRE_BROWSER_ENV, "").strip() not in ("", "0", "false", "no")


def no_browser(reason: str):
    if browser_required():
        pytest.fail(
            f"{reason} (and {REQUIRE_BROWSER_ENV}=1: browser tests must run)", pytrace=False
        )
    pytest.skip(reason)


def chromium_path() -> str | None:
    given = os.environ.get(CHROMIUM_ENV, "").strip()
    if given:
        return given if os.access(given, os.X_OK) else None
    for path in ("/usr/bin/chromium", shutil.which("chromium") or ""):
        if path and os.access(path, os.X_OK):
            return path
    return None


# -- in process ----------------------------------------------------------------------------------


class Console:
    """An httpx client on the app, signed in or not, and helpers to read its pages."""

    def __init__(self, app, engine, admin: str, base_url: str = "http://botwire.test") -> None:
        self.app, self.engine, self.admin = app, engine, admin
        self.base_url = base_url
        self.client = self.new_client()

    def new_client(self, client_ip: str = "10.0.0.1") -> httpx.AsyncClient:
        transport = httpx.ASGITransport(app=self.app, client=(client_ip, 1234))
        return httpx.AsyncClient(transport=transport, base_url=self.base_url)

    def make_key(self, prefixes, rights="write", **limits) -> str:
        secret, record = new_key("test key", list(prefixes), rights, **limits)
        assert self.engine.execute(SaveKey(record))
        return secret

    async def sign_in(self, key: str | None = None, client: httpx.AsyncClient | None = None):
        client = client or self.client
        form = await client.get("/console/sign-in")
        token = field(form.text, "sign_in_token")
        return await client.post(
            "/console/sign-in", data={"sign_in_token": token, "api_key": key or self.admin}
        )

    async def page(self, path: str, client: httpx.AsyncClient | None = None) -> httpx.Response:
        return await (client or self.client).get(path)

    async def csrf(self, client: httpx.AsyncClient | None = None) -> str:
        return field((await self.page("/console/callers", client)).text, "csrf")

    async def post(self, path: str, data: dict, client=None, csrf: bool = True) -> httpx.Response:
        client = client or self.client
        if csrf:
            data = {"csrf": await self.csrf(client), **data}
        return await client.post(path, data=data)


def field(html: str, name: str) -> str:
    """The value of the first hidden input named ``name``."""
    found = re.search(rf'name="{name}" value="([^"]*)"', html)
    assert found, f"no field {name!r} in the page"
    return found.group(1)


async def start_console(tmp_path, voice: dict | None = None, base_url=None, **settings):
    tmp_path.mkdir(parents=True, exist_ok=True)
    url = f"sqlite:///{tmp_path}/console.db"
    engine = open_engine(url)
    secret, op = bootstrap_op()
    assert engine.execute(op)
    app = create_app(
        Settings(database=url, **settings),
        engine=engine,
        voice_settings=VoiceSettings(**(voice or {})),
    )
    lifespan = app.router.lifespan_context(app)
    await lifespan.__aenter__()
    console = Console(app, engine, secret, **({"base_url": base_url} if base_url else {}))
    return console, lifespan


# -- callers ---------------------------------------------------------------------------------------

START = 1_760_000_000.0


def call(n: int, platform: str = "vapi", caller: str = "+14155550123") -> CallEnd:
    """Call number ``n``: an hour after call ``n - 1``, two turns, one extracted field."""
    ended = START + n * 3600
    return CallEnd(
        platform,
        f"call-{n:04d}",
        caller,
        started_at=ended - 95,
        ended_at=ended,
        summary=f"Call {n}: asked about order A-{n}",
        outcome="resolved" if n % 3 else "callback",
        successful=n % 7 != 0,
        turns=(
            Turn("user", f"Where is order A-{n}?", ended - 90),
            Turn("assistant", f"Order A-{n} ships tomorrow.", ended - 80),
        ),
        extracted={"last_order": f"A-{n}"},
        evaluation={"sentiment": "positive"},
    )


def fill(memory: Memory, calls: int = 3, facts_n: int = 0, platform: str = "vapi") -> None:
    for n in range(1, calls + 1):
        core.run(core.end_call(call(n, platform)), memory)
    if facts_n:
        origin = facts.Origin("tool", platform, "call-0001")
        values = {f"fact_{i:03d}": f"value {i}" for i in range(facts_n)}
        for start in range(0, facts_n, 50):
            chunk = dict(list(values.items())[start : start + 50])
            core.run(facts.write(chunk, origin), memory)


# -- a real server -------------------------------------------------------------------------------


class Served(servers.Served):
    """``botwire serve`` over ``database`` (Vapi configured) and the test's own engine on it."""

    def __init__(self, database: str, home: Path, **settings: object) -> None:
        super().__init__(
            database, home, **{"writes_per_day": 0, "max_bytes": 0, **VAPI, **settings}
        )

    @property
    def admin(self) -> str:
        return self.process.admin_key

    def key(self, prefixes, rights="write", name="console tests") -> str:
        secret, record = new_key(name, list(prefixes), rights)
        assert self.engine.execute(SaveKey(record))
        return secret

    def memory(self, ns: str) -> Memory:
        return Memory(ns, engine=self.engine)
