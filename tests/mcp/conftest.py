"""Fixtures: one real ``botwire serve`` process per test module and database (SQLite, and
PostgreSQL in a schema of the module's own), with the Vapi secret configured."""

from __future__ import annotations

import secrets
from urllib.parse import quote

import pytest


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def mcp_db(request, tmp_path_factory):
    """The module's database: a SQLite file, or a PostgreSQL schema dropped afterwards."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path_factory.mktemp('mcp-sqlite')}/botwire.db"
        return
    import psycopg

    request.getfixturevalue("postgres_schema_url")  # skips (or fails in CI) if unreachable
    server = request.getfixturevalue("postgres_server_url")
    schema = f"botwire_test_mcp_{secrets.token_hex(6)}"
    with psycopg.connect(server, autocommit=True, connect_timeout=5) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    try:
        sep = "&" if "?" in server else "?"
        yield f"{server}{sep}options={quote(f'-csearch_path={schema}', safe='')}"
    finally:
        with psycopg.connect(server, autocommit=True, connect_timeout=5) as conn:
            conn.execute("SET lock_timeout = '20s'")
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@pytest.fixture(scope="module")
def served(mcp_db, tmp_path_factory):
    """``botwire serve`` on the module's database, Vapi configured (secret mode)."""
    from mcpkit import VOICE, Served  # the SDK's clients: only where the extra is installed

    home = tmp_path_factory.mktemp("mcp-server")
    # the refused-key tests send a few bad keys: far from the throttle (its own test has one)
    server = Served(mcp_db, home, auth_failures=1000, **VOICE).start()
    yield server
    server.close()


@pytest.fixture(scope="module")
def admin(served) -> str:
    """A key for every namespace."""
    return served.key([""], "admin")
