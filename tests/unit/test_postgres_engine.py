"""What only the PostgreSQL engine promises: migrations, pool options, failure mapping."""

from __future__ import annotations

import threading

import pytest

from botwire import Memory, StorageUnavailable


@pytest.fixture
def url(postgres_schema_url):
    return postgres_schema_url


def test_schema_is_versioned(url, ns):
    import psycopg

    with Memory(ns, url=url) as m:
        m.set("k", 1)
    schema_opts = url.split("search_path%3D")[1]
    with psycopg.connect(url) as conn:
        versions = [r[0] for r in conn.execute("SELECT version FROM botwire_schema ORDER BY 1")]
        collation = conn.execute(
            "SELECT collation_name FROM information_schema.columns "
            "WHERE table_schema = %s AND table_name = 'botwire_kv' AND column_name = 'key'",
            (schema_opts,),
        ).fetchone()
    assert versions == [1, 2, 3]
    assert collation == ("C",)


def test_engines_starting_together_migrate_once(postgres_server_url, ns):
    import secrets

    import psycopg

    from botwire.engines.postgres import PostgresEngine

    schema = f"botwire_mig_{secrets.token_hex(4)}"
    with psycopg.connect(postgres_server_url, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    url = f"{postgres_server_url}?options=-csearch_path%3D{schema}"
    engines = [PostgresEngine(url) for _ in range(4)]
    errors: list[BaseException] = []

    def start(engine):
        try:
            Memory(ns, engine=engine).set("k", 1)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=start, args=(e,)) for e in engines]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for e in engines:
        e.close()
    try:
        assert not errors
        with psycopg.connect(url) as conn:
            assert conn.execute("SELECT count(*) FROM botwire_schema").fetchone()[0] == 3
    finally:
        with psycopg.connect(postgres_server_url, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


def test_unreachable_server_is_storage_unavailable_and_says_why(ns):
    m = Memory(ns, url="postgresql://postgres@127.0.0.1:1/none?connect_timeout=1&pool_timeout=1")
    with pytest.raises(StorageUnavailable, match="PostgreSQL"):
        m.set("k", 1)
    m.close()


def test_pool_options_are_taken_out_of_the_conninfo(url, ns):
    with Memory(ns, url=url + "&pool_min=0&pool_max=2&pool_timeout=3") as m:
        m.set("k", 1)
        engine = m.engine
        assert "pool_" not in engine._conninfo
        assert (engine._min, engine._max, engine._timeout) == (0, 2, 3.0)
        assert m.get("k") == 1


def test_upgrading_a_version_2_schema_indexes_what_it_already_holds(fresh_postgres_url):
    import psycopg

    from botwire.engines import postgres as engine_module

    with psycopg.connect(fresh_postgres_url, autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE botwire_schema (version integer PRIMARY KEY, "
            "applied_at timestamptz NOT NULL DEFAULT now())"
        )
        for version, statements in enumerate(engine_module._MIGRATIONS[:2], start=1):
            for statement in statements:
                conn.execute(statement)
            conn.execute("INSERT INTO botwire_schema (version) VALUES (%s)", (version,))
        conn.execute(
            "INSERT INTO botwire_kv VALUES ('ns', 'fruit', '\"banana bread\"', 1, 0, 0, NULL, 15)"
        )
        conn.execute("INSERT INTO botwire_logs VALUES (7, 'ns', 'calls', 1, 1)")
        conn.execute("INSERT INTO botwire_entries VALUES (7, 1, '\"banana split\"', 0, 14)")
    with Memory("ns", url=fresh_postgres_url) as m:
        assert {(h.key, h.log) for h in m.search("banana")} == {("fruit", None), (None, "calls")}
        m.set("fruit", "apple")
        assert [h.log for h in m.search("banana")] == ["calls"]


def test_very_long_values_are_stored_and_their_start_is_searchable(url, ns):
    from botwire.engines.postgres import TSV_CHARS

    words = " ".join(f"w{i}x" for i in range(TSV_CHARS // 3))  # ~150k distinct words
    with Memory(ns, url=url, max_value_bytes=4 << 20) as m:
        m.set("big", "needle " + words)
        assert m.get("big").startswith("needle w0x")
        assert [h.key for h in m.search("needle")] == ["big"]
