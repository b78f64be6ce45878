"""Fixtures: a server with every voice platform configured, on SQLite and on PostgreSQL."""

from __future__ import annotations

import pytest
from voicekit import Platforms, start_platforms


@pytest.fixture(params=["sqlite", "postgres"])
def voice_db(request, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/voice.db"
    return request.getfixturevalue("fresh_postgres_url")  # a schema of its own: no shared callers


@pytest.fixture
async def make_platforms(voice_db):
    opened = []

    async def make(**overrides) -> Platforms:
        platforms, lifespan = await start_platforms(voice_db, **overrides)
        opened.append((platforms, lifespan))
        return platforms

    yield make
    for platforms, lifespan in opened:
        await platforms.client.aclose()
        await lifespan.__aexit__(None, None, None)
        await platforms.engine.aclose()
        platforms.engine.close()


@pytest.fixture
async def platforms(make_platforms) -> Platforms:
    return await make_platforms()
