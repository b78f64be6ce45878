"""Keys when things go wrong: recovering a lost admin key straight from the database, rotating
the admin key through the API, and keys listed by their last use. Real ``botwire serve``
processes over a SQLite file and over PostgreSQL (a private schema)."""

from __future__ import annotations

import json
import os
import re
import sqlite3
import stat
import subprocess
import sys
import time
from functools import partial
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner
from servers import ServerProcess

from botwire.cli import main
from botwire.engines import open_engine
from botwire.engines import postgres as postgres_engine
from botwire.engines import sql
from botwire.engines import sqlite as sqlite_engine
from botwire.engines.base import ApiKey, ListKeys, SaveKey, TouchKey
from botwire.errors import ConfigurationError
from botwire.server.auth import new_key

BIN = Path(sys.executable).with_name("botwire")
CACHE = 0.5  # the servers' key_cache_seconds: how soon a revocation made elsewhere applies
SECRET = re.compile(r"bw_[A-Za-z0-9_-]{20,}")


def get(server: ServerProcess, path: str, key: str) -> httpx.Response:
    return httpx.get(server.base + path, headers={"Authorization": f"Bearer {key}"}, timeout=10)


def status_soon(server: ServerProcess, key: str, want: int) -> int:
    """The status of GET /v1/keys with ``key`` once it is ``want``, or after the cache time."""
    deadline = time.monotonic() + CACHE + 5
    while True:
        status = get(server, "/v1/keys", key).status_code
        if status == want or time.monotonic() > deadline:
            return status
        time.sleep(0.05)


def full_log(server: ServerProcess) -> str:
    return (server.home / "server.log").read_text(errors="replace")


def clean_env(home: Path, **more: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BOTWIRE_")}
    return {**env, "BOTWIRE_HOME": str(home), **more}


def cli(env: dict[str, str], *args: str, ok: bool = True):
    result = CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)
    assert (result.exit_code == 0) is ok, result.output
    return result


def secret_in(text: str) -> str:
    found = SECRET.findall(text)
    assert len(found) == 1, text
    return found[0]


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture(params=["sqlite", "postgres"])
def database(request, tmp_path) -> str:
    if request.param == "postgres":
        return request.getfixturevalue("fresh_postgres_url")
    return f"sqlite:///{tmp_path}/home/botwire.db"  # the file botwire serve uses by default


@pytest.fixture
def server(database, tmp_path):
    s = ServerProcess(database, tmp_path / "home", key_cache_seconds=CACHE, access_log=1).start()
    yield s
    s.stop()


# -- recovery --------------------------------------------------------------------------------


def test_recover_when_every_admin_key_is_gone_then_after_a_leak(server, database, tmp_path):
    home, old = server.home, server.admin_key
    scoped = httpx.post(
        server.base + "/v1/keys",
        json={"prefixes": ["acme:"], "rights": "admin", "name": "acme admin"},
        headers={"Authorization": f"Bearer {old}"},
    ).json()
    (home / "admin.key").unlink()
    assert (
        httpx.delete(
            server.base + "/v1/keys/admin", headers={"Authorization": f"Bearer {old}"}
        ).status_code
        == 200
    )
    assert get(server, "/v1/keys", old).status_code == 401  # no admin key for "" is left

    done = cli(clean_env(home), "keys", "recover", "--database", database)
    first = done.stdout.strip()
    assert SECRET.fullmatch(first) and "saved in" in done.stderr
    assert (home / "admin.key").read_text().strip() == first
    assert mode_of(home / "admin.key") == 0o600
    assert get(server, "/v1/keys", first).status_code == 200  # accepted at once
    assert get(server, "/v1/whoami", first).json()["prefixes"] == [""]

    # the recovered key leaked: a new one, in a real process, revoking every other admin key
    # for every namespace. The database is found without --database this time.
    more = {} if database.startswith("sqlite") else {"BOTWIRE_DATABASE_URL": database}
    run = subprocess.run(
        [str(BIN), "keys", "recover", "--revoke-others"],
        capture_output=True,
        text=True,
        env=clean_env(home, **more),
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert run.returncode == 0, run.stderr
    second = run.stdout.strip()
    assert SECRET.fullmatch(second) and second != first
    assert "revoked 1 other admin key" in run.stderr
    assert (home / "admin.key").read_text().strip() == second
    assert status_soon(server, first, 401) == 401
    assert get(server, "/v1/keys", second).status_code == 200
    listed = {k["id"]: k for k in get(server, "/v1/keys", second).json()["keys"]}
    assert listed[scoped["id"]]["revoked_at"] is None  # a scoped admin is not an operator key
    assert "GET /v1/keys" in full_log(server)  # the access log is on, and holds no secret
    for secret in (first, second):  # (the first start's banner shows the first key, only)
        assert secret not in full_log(server)


def test_recover_no_save_only_prints(server, database, tmp_path):
    before = (server.home / "admin.key").read_text()
    done = cli(clean_env(server.home), "keys", "recover", "--database", database, "--no-save")
    secret = done.stdout.strip()
    assert (server.home / "admin.key").read_text() == before
    assert get(server, "/v1/keys", secret).status_code == 200
    assert get(server, "/v1/keys", server.admin_key).status_code == 200  # nothing revoked


def test_recover_refuses_a_server_url(tmp_path):
    env = clean_env(tmp_path)
    done = cli(env, "keys", "recover", "--database", "http://bw_x@127.0.0.1:8421", ok=False)
    assert "server's API" in done.output and "--database sqlite:///" in done.output
    assert "bw_x" not in done.output
    env["BOTWIRE_DATABASE_URL"] = "https://botwire.example"
    assert "server's API" in cli(env, "keys", "recover", ok=False).output
    assert not (tmp_path / "admin.key").exists()


def test_recover_refuses_a_missing_or_foreign_sqlite_file(tmp_path):
    env = clean_env(tmp_path)
    done = cli(env, "keys", "recover", ok=False)  # the default file was never made
    assert f"no SQLite database at {tmp_path}/botwire.db" in done.output
    assert not (tmp_path / "botwire.db").exists()
    other = tmp_path / "other.db"
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE notes (t TEXT)")
    done = cli(env, "keys", "recover", "--database", f"sqlite:///{other}", ok=False)
    assert "not a botwire server's database" in done.output
    with sqlite3.connect(other) as conn:  # left as it was
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master")]
    assert tables == ["notes"]
    assert not (tmp_path / "admin.key").exists()


def test_recover_refuses_a_database_without_keys(tmp_path):
    engine = open_engine(f"sqlite:///{tmp_path}/empty.db")
    engine.execute(ListKeys())  # the tables, no key
    engine.close()
    done = cli(
        clean_env(tmp_path),
        "keys",
        "recover",
        "--database",
        f"sqlite:///{tmp_path}/empty.db",
        ok=False,
    )
    assert "holds no API key" in done.output and not (tmp_path / "admin.key").exists()


# -- rotation --------------------------------------------------------------------------------


def test_rotate_the_admin_key_from_admin_key_file(server):
    env = clean_env(server.home, BOTWIRE_PORT=str(server.port))
    old = server.admin_key
    before = get(server, "/v1/whoami", old).json()
    done = cli(env, "keys", "rotate")
    new = done.stdout.strip()
    assert SECRET.fullmatch(new) and new != old
    assert (server.home / "admin.key").read_text().strip() == new
    assert mode_of(server.home / "admin.key") == 0o600
    assert get(server, "/v1/keys", old).status_code == 401  # revoked on this server: at once
    me = get(server, "/v1/whoami", new).json()
    same = ("name", "prefixes", "rights", "writes_per_day", "max_bytes")
    assert {f: me[f] for f in same} == {f: before[f] for f in same}
    assert me["id"] != before["id"] and f"replaces {before['id']}" in done.stderr
    assert cli(env, "keys", "list").exit_code == 0  # the CLI goes on with the new key
    assert new not in full_log(server)


def test_rotate_a_scoped_key_keeps_its_scope_and_quotas(server):
    admin = {"Authorization": f"Bearer {server.admin_key}"}
    body = {
        "prefixes": ["acme:", "beta:"],
        "rights": "admin",
        "name": "acme ops",
        "writes_per_day": 50,
        "max_bytes": 4096,
    }
    made = httpx.post(server.base + "/v1/keys", json=body, headers=admin).json()
    env = clean_env(server.home, BOTWIRE_PORT=str(server.port))
    file_before = (server.home / "admin.key").read_text()
    done = cli(env, "keys", "rotate", "--api-key", made["key"])
    new = done.stdout.strip()
    me = get(server, "/v1/whoami", new).json()
    assert {k: me[k] for k in body} == body
    assert get(server, "/v1/whoami", made["key"]).status_code == 401
    assert (server.home / "admin.key").read_text() == file_before  # not the file's key
    assert "admin.key not changed" in done.stderr


def test_rotate_refuses_a_key_that_is_not_admin_and_changes_nothing(server):
    admin = {"Authorization": f"Bearer {server.admin_key}"}
    made = httpx.post(
        server.base + "/v1/keys", json={"prefixes": ["a:"], "rights": "write"}, headers=admin
    ).json()
    count = len(get(server, "/v1/keys", server.admin_key).json()["keys"])
    env = clean_env(server.home, BOTWIRE_PORT=str(server.port))
    done = cli(env, "keys", "rotate", "--api-key", made["key"], ok=False)
    assert "holds write" in done.output and "only an admin key" in done.output
    assert made["key"] not in done.output
    assert get(server, "/v1/whoami", made["key"]).status_code == 200
    assert len(get(server, "/v1/keys", server.admin_key).json()["keys"]) == count


def test_key_commands_explain_a_wrong_key_and_an_unreachable_server(server, tmp_path):
    env = clean_env(server.home, BOTWIRE_PORT=str(server.port))
    for command in (("list",), ("rotate",), ("create", "--prefix", "a:")):
        done = cli(env, "keys", *command, "--api-key", "bw_wrongwrongwrongwrongwrong", ok=False)
        assert "not valid" in done.output and "--api-key" in done.output
        assert "botwire keys recover" in done.output
    empty = clean_env(tmp_path / "nobody", BOTWIRE_PORT=str(server.port))
    done = cli(empty, "keys", "list", ok=False)
    assert "no API key given" in done.output and "admin.key" in done.output
    reader = httpx.post(
        server.base + "/v1/keys",
        json={"prefixes": [""], "rights": "read"},
        headers={"Authorization": f"Bearer {server.admin_key}"},
    ).json()["key"]
    done = cli(env, "keys", "list", "--api-key", reader, ok=False)
    assert "lacks the admin right" in done.output and "needs an admin key" in done.output
    done = cli(env, "keys", "list", "--server", "http://127.0.0.1:1", ok=False)
    assert "cannot reach the botwire server at http://127.0.0.1:1" in done.output


# -- /v1/whoami ------------------------------------------------------------------------------


async def test_whoami_answers_the_callers_own_key_without_secrets(api):
    reader = api.make_key(["acme:"], "read")
    r = await api.call("GET", "/v1/whoami", key=reader)
    assert r.status_code == 200
    me = r.json()
    assert me["prefixes"] == ["acme:"] and me["rights"] == "read"
    assert set(me) == {
        "id",
        "name",
        "prefixes",
        "rights",
        "writes_per_day",
        "max_bytes",
        "created_at",
        "revoked_at",
        "last_used_at",
    }
    assert reader not in r.text and "hash" not in me
    assert (await api.call("GET", "/v1/whoami", key=False)).status_code == 401
    assert (await api.call("GET", "/v1/whoami", key="bw_nope")).status_code == 401
    document = (await api.call("GET", "/openapi.json", key=False)).json()
    assert "get" in document["paths"]["/v1/whoami"]


# -- last use --------------------------------------------------------------------------------


def test_keys_list_by_last_use(server):
    admin = {"Authorization": f"Bearer {server.admin_key}"}
    made = {
        name: httpx.post(
            server.base + "/v1/keys", json={"prefixes": [f"{name}:"], "name": name}, headers=admin
        ).json()
        for name in ("never", "earlier", "later")
    }
    assert get(server, "/v1/namespaces/earlier:1/keys/k", made["earlier"]["key"]).status_code == 404
    time.sleep(0.05)
    assert get(server, "/v1/namespaces/later:1/keys/k", made["later"]["key"]).status_code == 404
    env = clean_env(server.home, BOTWIRE_PORT=str(server.port))
    listed = [json.loads(line) for line in cli(env, "keys", "list", "--json").stdout.splitlines()]
    ids = [k["id"] for k in listed]
    assert ids.index(made["later"]["id"]) < ids.index(made["earlier"]["id"])
    assert ids[-1] == made["never"]["id"] and listed[-1]["last_used_at"] is None
    uses = [k["last_used_at"] for k in listed if k["last_used_at"] is not None]
    assert uses == sorted(uses, reverse=True) and len(uses) == len(listed) - 1
    lines = cli(env, "keys", "list").stdout.splitlines()
    assert lines[-1].split("\t")[:5] == [made["never"]["id"], "active", "read", "'never:'", "never"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", lines[0].split("\t")[4])


def test_a_use_is_recorded_at_most_once_per_cache_time(tmp_path):
    url = f"sqlite:///{tmp_path}/home/botwire.db"
    server = ServerProcess(url, tmp_path / "home", key_cache_seconds=30).start()
    engine = open_engine(url)
    try:
        secret, record = new_key("agent", ["a:"], "read")
        assert engine.execute(SaveKey(record))
        assert get(server, "/v1/namespaces/a:1/keys/k", secret).status_code == 404
        first = next(k for k in engine.execute(ListKeys()) if k.id == record.id).last_used_at
        assert first is not None and abs(first - time.time()) < 30
        for _ in range(5):
            get(server, "/v1/namespaces/a:1/keys/k", secret)
        again = next(k for k in engine.execute(ListKeys()) if k.id == record.id).last_used_at
        assert again == first  # served from the cache: no write per request
    finally:
        server.stop()
        engine.close()


async def test_a_failed_use_write_never_fails_the_request(api, tmp_path, caplog):
    secret = api.make_key(["a:"], "write")
    with sqlite3.connect(tmp_path / "server.db") as conn:
        conn.execute(
            "CREATE TRIGGER no_touch BEFORE UPDATE OF last_used_at ON botwire_api_keys "
            "BEGIN SELECT RAISE(ABORT, 'the use column is read-only here'); END"
        )
    with caplog.at_level("DEBUG", logger="botwire.server"):
        r = await api.call("PUT", "/v1/namespaces/a:1/keys/k", key=secret, content=b"1")
    assert r.status_code == 200
    failures = [m for m in caplog.messages if "was not recorded" in m]
    assert failures and all(secret not in m for m in caplog.messages)
    listed = (await api.call("GET", "/v1/keys")).json()["keys"]
    assert all(k["last_used_at"] is None for k in listed)


async def test_console_keys_page_shows_last_use(api):
    secret = api.make_key(["<b>x:"], "read")
    await api.call("GET", "/v1/namespaces/%3Cb%3Ex:1/keys/k", key=secret)
    form = await api.client.get("/console/sign-in")
    token = re.search(r'name="sign_in_token" value="([^"]*)"', form.text)[1]
    signed = await api.client.post(
        "/console/sign-in", data={"sign_in_token": token, "api_key": api.admin}
    )
    assert signed.status_code == 303  # signing in is a use of the admin key
    page = (await api.client.get("/console/keys")).text
    assert '<th scope="col">Last used</th>' in page
    assert "<td>never</td>" not in page
    assert len(re.findall(r"<td>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC</td>", page)) == 4
    assert "<b>x:" not in page and "&lt;b&gt;x:" in page  # escaped, as everything
    api.make_key(["n:"], "read")
    page = (await api.client.get("/console/keys")).text
    assert page.count("<td>never</td>") == 1


# -- the op on each engine, and where it is refused ----------------------------------------------


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
def test_touch_key_only_moves_forward(kind, tmp_path, request):
    url = (
        request.getfixturevalue("fresh_postgres_url")
        if kind == "postgres"
        else f"sqlite:///{tmp_path}/t.db"
    )
    engine = open_engine(url)
    try:
        _, record = new_key("t", [""], "read")
        assert engine.execute(SaveKey(record))
        assert engine.execute(ListKeys())[0].last_used_at is None
        assert engine.execute(TouchKey(record.id, 100.0)) is True
        assert engine.execute(TouchKey(record.id, 50.0)) is False  # an older use elsewhere
        assert engine.execute(TouchKey("no-such-key", 200.0)) is False
        assert engine.execute(ListKeys())[0].last_used_at == 100.0
    finally:
        engine.close()


def test_the_http_engine_refuses_touch_key(server):
    engine = open_engine(server.url())
    try:
        with pytest.raises(ConfigurationError, match="TouchKey runs inside the botwire server"):
            engine.execute(TouchKey("admin", 1.0))
    finally:
        engine.close()


def test_an_older_sqlite_file_gains_the_column_and_keeps_its_keys(tmp_path):
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path)
    for statements in sqlite_engine._MIGRATIONS[:4]:  # before last_used_at (migration 5)
        for statement in statements:
            conn.execute(statement)
    conn.execute("PRAGMA user_version=4")
    conn.execute(
        "INSERT INTO botwire_api_keys VALUES ('k1', 'h', 'old', '[\"\"]', 'admin', NULL, NULL, 1.0,"
        " NULL)"
    )
    conn.commit()
    conn.close()
    engine = open_engine(f"sqlite:///{path}")
    try:
        (key,) = engine.execute(ListKeys())
        assert key == ApiKey("k1", "h", "old", ("",), "admin", None, None, 1.0)
    finally:
        engine.close()
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == sqlite_engine.SCHEMA_VERSION


def test_an_older_sqlite_file_lists_its_keys_unmigrated(tmp_path):
    """As botwire doctor reads a database before the server migrates it."""
    conn = sqlite3.connect(tmp_path / "old.db")
    for statements in sqlite_engine._MIGRATIONS[:4]:  # before last_used_at (migration 5)
        for statement in statements:
            conn.execute(statement)
    conn.execute(
        "INSERT INTO botwire_api_keys VALUES ('k1', 'h', 'old', '[\"\"]', 'read', 5, NULL, 1.0,"
        " 2.0)"
    )
    handler, _ = sql.handle(ListKeys(), time.time())
    (key,) = sql.drive(handler, partial(sqlite_engine._run, conn))
    conn.close()
    assert key == ApiKey("k1", "h", "old", ("",), "read", 5, None, 1.0, 2.0, None)


def test_an_older_postgres_schema_gains_the_column(fresh_postgres_url):
    import psycopg

    with psycopg.connect(fresh_postgres_url, autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE botwire_schema (version integer PRIMARY KEY, "
            "applied_at timestamptz NOT NULL DEFAULT now())"
        )
        for version, statements in enumerate(postgres_engine._MIGRATIONS[:-1], start=1):
            for statement in statements:
                conn.execute(statement)
            conn.execute("INSERT INTO botwire_schema (version) VALUES (%s)", (version,))
        conn.execute(
            "INSERT INTO botwire_api_keys VALUES ('k1', 'h', 'old', '[\"\"]', 'admin', "
            "NULL, NULL, 1.0, NULL)"
        )
    engine = open_engine(fresh_postgres_url)
    try:
        (key,) = engine.execute(ListKeys())
        assert key.id == "k1" and key.last_used_at is None
    finally:
        engine.close()
    with psycopg.connect(fresh_postgres_url) as conn:
        version = conn.execute("SELECT max(version) FROM botwire_schema").fetchone()[0]
    assert version == postgres_engine.SCHEMA_VERSION


def test_no_secret_in_a_key_records_repr():
    secret, record = new_key("agent", ["a:"], "write")
    assert secret not in repr(record) and secret not in str(record)


def test_docs_name_every_keys_command_and_error():
    from botwire.keys_cli import keys

    text = (Path(__file__).resolve().parents[2] / "docs" / "keys.md").read_text()
    for name in keys.commands:
        assert f"| `botwire keys {name}" in text, name
    for phrase in (
        "no API key given",
        "only an admin key can make its own replacement",
        "is a server's API",
        "no SQLite database at",
        "cannot reach the botwire server",
    ):
        assert phrase in text, phrase
