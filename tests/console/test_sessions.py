"""Console sessions on every database engine: kept hashed, shared by replicas, kept across a
restart, ended by idleness, age, sign-out or the key's revocation."""

from __future__ import annotations

import asyncio
import hashlib
import time

import pytest

from botwire import Memory
from botwire.engines import open_engine
from botwire.engines.base import RevokeKey, SaveKey
from botwire.server.auth import new_key
from botwire.server.console.sessions import NAMESPACE, Sessions


@pytest.fixture(params=["sqlite", "postgres"])
def database(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/sessions.db"
    return request.getfixturevalue("fresh_postgres_url")


@pytest.fixture
async def engines(database):
    """``engines()``: another engine on the same database (a replica, or a restart)."""
    opened = []

    def make():
        engine = open_engine(database)
        opened.append(engine)
        return engine

    yield make
    for engine in opened:  # the async pools belong to this test's event loop
        await engine.aclose()
        engine.close()


def saved_key(engine):
    _, record = new_key("console", ["acme:"], "write")
    assert engine.execute(SaveKey(record))
    return record


async def test_a_session_is_kept_under_its_ids_hash(engines):
    engine = engines()
    key = saved_key(engine)
    session_id = await Sessions(engine, 60, 600).open(key)
    stored = dict(Memory(NAMESPACE, engine=engine).items())
    assert list(stored) == [hashlib.sha256(session_id.encode()).hexdigest()]
    record = next(iter(stored.values()))
    assert record["key_hash"] == key.hash and session_id not in str(record)
    assert Memory(NAMESPACE, engine=engine).info(next(iter(stored))).expires_at is not None


async def test_every_replica_and_a_restart_know_a_session(engines):
    first = engines()
    key = saved_key(first)
    session_id = await Sessions(first, 60, 600).open(key)
    replica = Sessions(engines(), 60, 600)
    found = await replica.find(session_id)
    assert found is not None and found[1].id == key.id
    await first.aclose()
    first.close()
    restarted = Sessions(engines(), 60, 600)
    assert (await restarted.find(session_id)) is not None
    await restarted.close(session_id)
    assert (await replica.find(session_id)) is None


async def test_idle_and_absolute_expiry(engines):
    engine = engines()
    key = saved_key(engine)
    idle = Sessions(engine, 0.4, 600)
    session_id = await idle.open(key)
    for _ in range(4):  # renewed while used
        await asyncio.sleep(0.2)
        assert (await idle.find(session_id)) is not None
    await asyncio.sleep(0.6)
    assert (await idle.find(session_id)) is None
    aged = Sessions(engine, 60, 0.8)
    session_id = await aged.open(key)
    start = time.time()
    while time.time() - start < 0.6:
        assert (await aged.find(session_id)) is not None
        await asyncio.sleep(0.1)
    await asyncio.sleep(0.4)
    assert (await aged.find(session_id)) is None


async def test_a_revoked_key_ends_its_sessions(engines):
    engine = engines()
    key = saved_key(engine)
    sessions = Sessions(engine, 60, 600)
    session_id = await sessions.open(key)
    engine.execute(RevokeKey(key.id, time.time()))
    assert (await sessions.find(session_id)) is None
    assert list(Memory(NAMESPACE, engine=engine).keys()) == []


@pytest.mark.parametrize("given", [None, "", "x", "a" * 500, "\udcff"])
async def test_anything_else_is_no_session(engines, given):
    assert (await Sessions(engines(), 60, 600).find(given)) is None


async def test_the_csrf_token_is_compared_whole(engines):
    engine = engines()
    sessions = Sessions(engine, 60, 600)
    session_id = await sessions.open(saved_key(engine))
    session, _ = await sessions.find(session_id)
    assert session.csrf_ok(session.csrf)
    for wrong in (None, "", session.csrf[:-1], session.csrf + "x", "x" * len(session.csrf)):
        assert not session.csrf_ok(wrong)
