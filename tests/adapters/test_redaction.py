"""No adapter shows a secret: a PostgreSQL password (in the URL's user part or its options) or
a server's API key never reaches a repr or a dumped config. Real engines; CrewAI's classes
are checked in tests/adapters/crewai/ (their own virtualenv)."""

from __future__ import annotations

from typing import Any

import pytest
from frameworks import ENGINE_ENV, SECRET, unique_ns, with_password

from botwire import AsyncMemory, Memory



@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    for name in ENGINE_ENV:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(params=["user-part", "option"])
def secret_pg_url(request, postgres_url) -> str:
    return with_password(postgres_url, request.param)


@pytest.fixture
def secret_http_url(http_sqlite_url) -> str:
    return http_sqlite_url  # its user part is the admin API key


def _shown(objects: list[Any]) -> str:
    return " ".join(map(repr, objects))


def test_memory_reprs(secret_pg_url):
    ns = unique_ns()
    am = AsyncMemory(ns, url=secret_pg_url)
    with Memory(ns, url=secret_pg_url) as m:
        m.set("k", 1)  # the URL works: the password is only hidden, not lost
        text = _shown([m, am, m.log("calls"), am.log("calls")])
    am.close()
    assert SECRET not in text and "127.0.0.1:5432/test" in text


def test_langchain_reprs(secret_pg_url, secret_http_url):
    from botwire.adapters.langchain import BotWireByteStore, BotWireChatHistory, BotWireStore

    key = secret_http_url.split("//", 1)[1].split("@", 1)[0]
    for url in (secret_pg_url, secret_http_url):
        ns = unique_ns()
        made = [
            BotWireChatHistory("s", namespace=ns, url=url),
            BotWireStore(ns, url=url),
            BotWireByteStore(ns, url=url),
        ]
        made[1].mset([("k", 1)])
        text = _shown(made)
        for thing in made:
            thing.close()
        assert SECRET not in text and key not in text
        assert "127.0.0.1" in text


async def test_autogen_repr_and_config(secret_pg_url):
    from botwire.adapters.autogen import BotWireMemory

    memory = BotWireMemory(unique_ns(), url=secret_pg_url)
    try:
        model = memory.dump_component()
        text = _shown([memory, model]) + model.model_dump_json()
        assert SECRET not in text
        assert model.config["url"].startswith("postgresql://postgres@127.0.0.1:5432/test?")
    finally:
        await memory.close()


def test_langgraph_reprs(secret_pg_url):
    from botwire.adapters.langgraph_checkpoint import BotWireSaver
    from botwire.adapters.langgraph_store import BotWireStore

    made = [BotWireStore(unique_ns(), url=secret_pg_url), BotWireSaver(url=secret_pg_url)]
    try:
        assert SECRET not in _shown(made)
    finally:
        for thing in made:
            thing.close()
