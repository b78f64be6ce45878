"""An in-process server (the ASGI app, no socket) over a fresh SQLite file, and its admin key."""

from __future__ import annotations

import httpx
import pytest

from botwire.engines import open_engine
from botwire.server import Settings, create_app
from botwire.server.auth import bootstrap_op, new_key
from botwire.engines.base import SaveKey


class Api:
    """An httpx client on the app plus helpers to make keys."""

    def __init__(self, client: httpx.AsyncClient, engine, admin: str) -> None:
        self.client, self.engine, self.admin = client, engine, admin

    def make_key(self, prefixes, rights="write", **limits) -> str:
        secret, record = new_key("test", list(prefixes), rights, **limits)
        assert self.engine.execute(SaveKey(record))
        return secret

    async def call(self, method, path, key=None, **kw) -> httpx.Response:
        headers = kw.pop("headers", {})
        if key is not False:
            headers.setdefault("Authorization", f"Bearer {key or self.admin}")
        return await self.client.request(method, path, headers=headers, **kw)


async def start_api(tmp_path, **settings) -> tuple[Api, object]:
    tmp_path.mkdir(parents=True, exist_ok=True)
    url = f"sqlite:///{tmp_path}/server.db"
    engine = open_engine(url)
    secret, op = bootstrap_op()
    assert engine.execute(op)
    app = create_app(Settings(database=url, **settings), engine=engine)
    lifespan = app.router.lifespan_context(app)
    await lifespan.__aenter__()
    transport = httpx.ASGITransport(app=app, client=("10.0.0.1", 1234))
    client = httpx.AsyncClient(transport=transport, base_url="http://botwire.test")
    return Api(client, engine, secret), lifespan


@pytest.fixture
async def api(tmp_path):
    api, lifespan = await start_api(tmp_path)
    yield api
    await api.client.aclose()
    await lifespan.__aexit__(None, None, None)
    api.engine.close()


@pytest.fixture
async def make_api(tmp_path):
    """``await make_api(**settings)``: a server with other settings."""
    opened = []

    async def make(**settings):
        api, lifespan = await start_api(tmp_path / f"s{len(opened)}", **settings)
        opened.append((api, lifespan))
        return api

    yield make
    for api, lifespan in opened:
        await api.client.aclose()
        await lifespan.__aexit__(None, None, None)
        api.engine.close()
