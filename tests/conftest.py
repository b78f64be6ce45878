"""Shared fixtures: every conformance test runs once per engine.

``engine_url`` is parametrized over ``ENGINES``; adding an engine (the HTTP client of the botwire
server, say) is one line in ``ENGINES`` plus a fixture that yields its URL.

PostgreSQL runs when ``BOTWIRE_TEST_POSTGRES_URL`` is set, and is skipped with a visible reason
otherwise, unless ``BOTWIRE_TEST_REQUIRE_POSTGRES=1`` (CI), where a missing URL or an unreachable
server fails the tests instead. Each test session gets a fresh schema, dropped at the end.
"""

from __future__ import annotations

import os
import secrets
import uuid
from urllib.parse import quote

import pytest

POSTGRES_URL_ENV = "BOTWIRE_TEST_POSTGRES_URL"
REQUIRE_POSTGRES_ENV = "BOTWIRE_TEST_REQUIRE_POSTGRES"

# engine id -> name of the fixture that yields a URL for it. One line per engine.
ENGINES = {
    "sqlite": "sqlite_url",
    "postgres": "postgres_url",
    "http-sqlite": "http_sqlite_url",
    "http-postgres": "http_postgres_url",
    "asgi-sqlite": "asgi_sqlite_url",
    "asgi-postgres": "asgi_postgres_url",
}
# Engines reachable only from this process: tests marked ``processes`` skip them.
IN_PROCESS = {"asgi-sqlite", "asgi-postgres"}

# The conformance servers store without quotas and accept big values: quotas and limits have
# their own tests.
_TEST_SERVER = {"writes_per_day": 0, "max_bytes": 0, "max_value_bytes": 64 << 20,
                "max_body_bytes": 256 << 20}

# Settings that would redirect a Memory away from the URL a test asked for.
_ENGINE_ENV = (
    "BOTWIRE_URL", "BOTWIRE_DATABASE_URL", "BOTWIRE_MAX_VALUE_BYTES", "BOTWIRE_API_KEY"
)


def _postgres_required() -> bool:
    return os.environ.get(REQUIRE_POSTGRES_ENV, "").strip() not in ("", "0", "false", "no")


def _postgres_unavailable(reason: str):
    if _postgres_required():
        pytest.fail(
            f"{reason} (and {REQUIRE_POSTGRES_ENV}=1: PostgreSQL tests must run)", pytrace=False
        )
    pytest.skip(reason)


def with_query_param(url: str, name: str, value: str) -> str:
    """``url`` with ``name=value`` appended to its query string (value percent-encoded)."""
    sep = "&" if "?" in url else "?"
    return f"{url}{sep}{name}={quote(value, safe='')}"


@pytest.fixture(scope="session")
def postgres_server_url() -> str:
    """The configured PostgreSQL URL (skip or fail when it is not set)."""
    url = os.environ.get(POSTGRES_URL_ENV, "").strip()
    if not url:
        _postgres_unavailable(f"{POSTGRES_URL_ENV} is not set: PostgreSQL tests skipped")
    return url


@pytest.fixture(scope="session")
def postgres_schema_url(postgres_server_url: str):
    """A fresh schema for this session; yields a URL whose search_path points at it."""
    try:
        import psycopg
    except ImportError as exc:  # pragma: no cover - depends on the environment
        _postgres_unavailable(f"psycopg is not installed ({exc}): PostgreSQL tests skipped")
    schema = f"botwire_test_{secrets.token_hex(6)}"
    try:
        with psycopg.connect(postgres_server_url, autocommit=True, connect_timeout=5) as conn:
            conn.execute(f'CREATE SCHEMA "{schema}"')
    except psycopg.Error as exc:
        _postgres_unavailable(f"PostgreSQL at {POSTGRES_URL_ENV} is unreachable: {exc}")
    yield with_query_param(postgres_server_url, "options", f"-csearch_path={schema}")
    with psycopg.connect(postgres_server_url, autocommit=True, connect_timeout=5) as conn:
        conn.execute("SET lock_timeout = '20s'")
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@pytest.fixture
def postgres_url(postgres_schema_url: str) -> str:
    return postgres_schema_url


@pytest.fixture
def sqlite_url(tmp_path) -> str:
    return f"sqlite:///{tmp_path}/botwire.db"


@pytest.fixture(scope="session")
def http_sqlite_server(tmp_path_factory):
    """A botwire server over a SQLite file, in its own process, for the whole session."""
    from servers import ServerProcess

    home = tmp_path_factory.mktemp("http-sqlite")
    server = ServerProcess(f"sqlite:///{home}/botwire.db", home, **_TEST_SERVER).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def http_postgres_server(tmp_path_factory, postgres_schema_url):
    """A botwire server over this session's PostgreSQL schema, in its own process."""
    from servers import ServerProcess

    home = tmp_path_factory.mktemp("http-postgres")
    server = ServerProcess(postgres_schema_url, home, **_TEST_SERVER).start()
    yield server
    server.stop()


@pytest.fixture
def fresh_postgres_url(postgres_server_url):
    """A URL of a new, empty PostgreSQL schema, dropped after the test."""
    import psycopg

    schema = f"botwire_test_fresh_{secrets.token_hex(6)}"
    with psycopg.connect(postgres_server_url, autocommit=True, connect_timeout=5) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    yield with_query_param(postgres_server_url, "options", f"-csearch_path={schema}")
    with psycopg.connect(postgres_server_url, autocommit=True, connect_timeout=5) as conn:
        conn.execute("SET lock_timeout = '20s'")
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def _in_process_server(database: str):
    """The server application in this process (no socket): the HTTP engine calls it via ASGI."""
    from botwire.engines import open_engine
    from botwire.server import Settings, create_app
    from botwire.engines.base import SaveKey
    from botwire.server.auth import new_key
    from botwire.server.inprocess import InProcessServer

    engine = open_engine(database)  # other servers may share it: a key of our own
    secret, record = new_key("in-process tests", [""], "admin")
    assert engine.execute(SaveKey(record))
    engine.close()
    server = InProcessServer(
        create_app(Settings(database=database, **_TEST_SERVER)),
        base_url=f"http://botwire-{secrets.token_hex(4)}.inprocess",
    )
    return server, server.url(secret)


@pytest.fixture(scope="session")
def asgi_sqlite_server(tmp_path_factory):
    server, url = _in_process_server(f"sqlite:///{tmp_path_factory.mktemp('asgi')}/botwire.db")
    yield url
    server.close()


@pytest.fixture(scope="session")
def asgi_postgres_server(postgres_schema_url):
    server, url = _in_process_server(postgres_schema_url)
    yield url
    server.close()


@pytest.fixture
def asgi_sqlite_url(asgi_sqlite_server) -> str:
    return asgi_sqlite_server


@pytest.fixture
def asgi_postgres_url(asgi_postgres_server) -> str:
    return asgi_postgres_server


@pytest.fixture
def http_sqlite_url(http_sqlite_server) -> str:
    return http_sqlite_server.url()


@pytest.fixture
def http_postgres_url(http_postgres_server) -> str:
    return http_postgres_server.url()


@pytest.fixture(params=list(ENGINES))
def engine_url(request, monkeypatch) -> str:
    """A URL for each engine in turn. Environment settings that could override it are removed."""
    for name in _ENGINE_ENV:
        monkeypatch.delenv(name, raising=False)
    if request.param in IN_PROCESS and request.node.get_closest_marker("processes"):
        pytest.skip(f"{request.param}: an in-process server is not reachable from other processes")
    return request.getfixturevalue(ENGINES[request.param])


@pytest.fixture
def engine_id(engine_url, request) -> str:
    """The id ("sqlite", "postgres", ...) of the engine this test runs on."""
    return request.node.callspec.params["engine_url"]


@pytest.fixture
def fresh_engine_url(engine_id, request, tmp_path):
    """A URL of the current engine pointing at storage nobody has used yet (no tables)."""
    if engine_id == "sqlite":
        yield f"sqlite:///{tmp_path}/fresh.db"
    elif engine_id == "postgres":
        import psycopg

        server = request.getfixturevalue("postgres_server_url")
        schema = f"botwire_test_fresh_{secrets.token_hex(6)}"
        with psycopg.connect(server, autocommit=True, connect_timeout=5) as conn:
            conn.execute(f'CREATE SCHEMA "{schema}"')
        try:
            yield with_query_param(server, "options", f"-csearch_path={schema}")
        finally:
            with psycopg.connect(server, autocommit=True, connect_timeout=5) as conn:
                conn.execute("SET lock_timeout = '20s'")
                conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    else:
        pytest.skip(f"{engine_id}: a server creates its schema when it starts, before any client")


def unique_ns(tag: str = "t") -> str:
    return f"{tag}-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def ns() -> str:
    """A namespace no other test uses."""
    return unique_ns()


@pytest.fixture
def memory(ns, engine_url):
    import botwire

    m = botwire.Memory(ns, url=engine_url)
    yield m
    m.close()


@pytest.fixture
def keep_engine_open(engine_url, ns):
    """Hold the engine for the whole test, so short-lived Memory objects do not reopen it."""
    import botwire

    with botwire.Memory(ns + "-holder", url=engine_url) as holder:
        yield holder


@pytest.fixture
async def amemory(ns, engine_url):
    import botwire

    m = botwire.AsyncMemory(ns, url=engine_url)
    yield m
    await m.aclose()
