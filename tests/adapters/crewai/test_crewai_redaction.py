"""CrewAI's classes never show a secret: a PostgreSQL password or a server's API key."""

from __future__ import annotations

from frameworks import need

need("crewai", "crewai")

import pytest  # noqa: E402
from frameworks import SECRET, unique_ns, with_password  # noqa: E402

from botwire.adapters.crewai import BotWireStorage, botwire_tools  # noqa: E402



@pytest.fixture(params=["user-part", "option"])
def secret_pg_url(request, postgres_url) -> str:
    return with_password(postgres_url, request.param)


def test_storage_repr_hides_the_database_password(secret_pg_url):
    storage = BotWireStorage(unique_ns(), url=secret_pg_url)
    try:
        assert storage.count() == 0  # the URL works: the password is only hidden
        text = repr(storage)
    finally:
        storage.close()
    assert SECRET not in text and "postgresql://postgres@127.0.0.1:5432/test?" in text


def test_storage_and_tools_hide_the_api_key(http_sqlite_url):
    key = http_sqlite_url.split("//", 1)[1].split("@", 1)[0]
    storage = BotWireStorage(unique_ns(), url=http_sqlite_url)
    tools = botwire_tools(unique_ns(), url=http_sqlite_url)
    try:
        text = " ".join(map(repr, [storage, *tools]))
    finally:
        storage.close()
        tools[0].memory.close()
    assert key not in text and "127.0.0.1" in repr(storage)
