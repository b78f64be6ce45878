"""What only the PostgreSQL engine promises: migrations, pool options, failure mapping."""

from __future__ import annotations

import threading
import time

import pytest

from botwire.engines.postgres import SCHEMA_VERSION
from botwire import ConfigurationError, Memory, StorageUnavailable


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
    assert versions == list(range(1, SCHEMA_VERSION + 1))
    assert collation == ("C",)


def test_a_schema_from_a_newer_botwire_is_refused(postgres_server_url, ns):
    import secrets

    import psycopg

    schema = f"botwire_newer_{secrets.token_hex(4)}"
    with psycopg.connect(postgres_server_url, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    url = f"{postgres_server_url}?options=-csearch_path%3D{schema}"
    try:
        with Memory(ns, url=url) as m:
            m.set("k", 1)
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("INSERT INTO botwire_schema (version) VALUES (%s)", (SCHEMA_VERSION + 1,))
        with pytest.raises(ConfigurationError, match="newer than this botwire knows"):
            Memory(ns, url=url).get("k")
    finally:
        with psycopg.connect(postgres_server_url, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


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
            applied = conn.execute("SELECT count(*) FROM botwire_schema").fetchone()[0]
            assert applied == SCHEMA_VERSION
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


def test_options_with_spaces_reach_the_server_whole(url, ns):
    """Two -c settings in one options= value: libpq reads %20 as a space, never "+"."""
    with Memory(ns, url=url + "%20-cstatement_timeout%3D4321&pool_min=0") as m:
        m.set("k", 1)  # search_path (the first setting) still works, or the table is missing
        with m.engine._sync_pool().connection() as conn:
            shown = conn.execute("SHOW statement_timeout").fetchone()[0]
        assert shown == "4321ms"


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


# -- async pools: one per event loop, all closed by close() -------------------------------------


def _connections(server_url: str, app: str) -> int:
    import psycopg

    with psycopg.connect(server_url, autocommit=True) as conn:
        return conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s", (app,)
        ).fetchone()[0]


def _settle(server_url: str, app: str, want: int, seconds: float = 10.0) -> int:
    """The number of ``app``'s connections, once it is ``want`` (or the time is up)."""
    deadline = time.monotonic() + seconds
    while (n := _connections(server_url, app)) != want and time.monotonic() < deadline:
        time.sleep(0.05)
    return n


@pytest.fixture
def app_engine(url):
    """A fresh engine whose connections are named, one connection per pool."""
    import secrets

    from botwire.engines.postgres import PostgresEngine

    app = f"botwire_test_{secrets.token_hex(4)}"
    engine = PostgresEngine(f"{url}&pool_min=1&pool_max=1&application_name={app}")
    yield engine, app
    engine.close()


def test_concurrent_first_async_calls_on_one_loop_share_one_pool(
    app_engine, postgres_server_url, ns, monkeypatch, caplog
):
    import asyncio

    from botwire import AsyncMemory
    from botwire.engines import postgres

    created: list[object] = []

    class CountedPool(postgres.AsyncConnectionPool):  # the real pool, counted
        def __init__(self, *args, **kwargs):
            created.append(None)
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(postgres, "AsyncConnectionPool", CountedPool)
    engine, app = app_engine

    async def main() -> int:
        m = AsyncMemory(ns, engine=engine)
        assert await asyncio.gather(*(m.get(f"k{i}") for i in range(20))) == [None] * 20
        assert await m.get("k0") is None
        opened = await asyncio.to_thread(_connections, postgres_server_url, app)
        await engine.aclose()
        return opened

    opened = asyncio.run(main())
    assert len(created) == 1
    assert opened <= 2  # one async pool of one connection, and the migrating one leaving
    assert _settle(postgres_server_url, app, 0) == 0
    assert "destroyed but it is pending" not in caplog.text  # no pool was dropped unclosed


def test_close_closes_the_async_pools_of_finished_event_loops(app_engine, postgres_server_url, ns):
    import asyncio

    from botwire import AsyncMemory

    engine, app = app_engine

    async def use(i: int) -> None:
        await AsyncMemory(ns, engine=engine).set(f"k{i}", i)

    for i in range(3):
        asyncio.run(use(i))  # a new loop each time, closed at the end
    # a new pool drops those of loops closed meanwhile; the last one waits for close()
    assert _settle(postgres_server_url, app, 1) == 1  # the last async pool (no sync pool)
    engine.close()
    assert _settle(postgres_server_url, app, 0) == 0
    with pytest.raises(StorageUnavailable, match="closed"):
        Memory(ns, engine=engine).get("k0")


def test_close_inside_a_running_loop_and_aclose_close_its_pool(app_engine, postgres_server_url, ns):
    import asyncio

    from botwire import AsyncMemory

    engine, app = app_engine

    async def main() -> None:
        m = AsyncMemory(ns, engine=engine)
        await m.set("k", 1)
        engine.close()  # sync, on the loop's own thread: it cannot wait for the pool here
        await engine.aclose()

    asyncio.run(main())
    assert _settle(postgres_server_url, app, 0) == 0


def test_close_closes_the_pool_of_a_loop_running_in_another_thread(
    app_engine, postgres_server_url, ns
):
    import asyncio

    from botwire import AsyncMemory

    engine, app = app_engine
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever)
    thread.start()
    try:
        m = AsyncMemory(ns, engine=engine)
        asyncio.run_coroutine_threadsafe(m.set("k", 1), loop).result(10)
        engine.close()
        assert _settle(postgres_server_url, app, 0) == 0
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join()
        loop.close()


def _plan_indexes(plan: dict) -> set[str]:
    found = {plan["Index Name"]} if "Index Name" in plan else set()
    for child in plan.get("Plans", []):
        found |= _plan_indexes(child)
    return found


def test_search_reads_the_namespace_by_key_not_a_words_whole_posting_list(fresh_postgres_url):
    """With statistics from VACUUM ANALYZE the planner would combine the primary key with the
    GIN index, reading the posting list of a common word across all namespaces."""
    import psycopg

    from botwire.engines import sql
    from botwire.engines.postgres import _pg

    with Memory("n0", url=fresh_postgres_url) as m:
        m.set("k", 1)  # creates the tables
    with psycopg.connect(fresh_postgres_url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO botwire_kv (ns, key, value, version, created_at, updated_at, size) "
            "SELECT 'n' || (i / 20), 'k' || (i % 20), "
            "'\"order ' || i || ' for a kettle, delivered\"', 1, 0, 0, 20 "
            "FROM generate_series(20, 60000) AS i ON CONFLICT DO NOTHING"
        )
        conn.execute(
            "INSERT INTO botwire_logs (ns, name, last_seq, entry_count) "
            "SELECT 'n' || i, 'calls', 10, 10 FROM generate_series(1, 3000) AS i"
        )
        conn.execute(
            "INSERT INTO botwire_entries (log_id, seq, value, ts, size) "
            "SELECT l.id, s, '\"where is my order ' || s || '\"', 0, 20 "
            "FROM botwire_logs l, generate_series(1, 10) AS s"
        )
        conn.execute("VACUUM ANALYZE botwire_kv")
        conn.execute("VACUUM ANALYZE botwire_entries")
        conn.execute("VACUUM ANALYZE botwire_logs")
        for words in (("order",), ("kettle", "order", "delivered")):
            stmt = sql.postgres_search("n77", words, 10, 0.0)
            (plan,) = conn.execute(
                "EXPLAIN (FORMAT JSON) " + _pg(stmt.sql), stmt.params, prepare=False
            ).fetchone()[0]
            used = _plan_indexes(plan["Plan"])
            assert "botwire_kv_pkey" in used and "botwire_entries_pkey" in used, used
            assert not used & {"botwire_kv_tsv", "botwire_entries_tsv"}, used
    with Memory("n77", url=fresh_postgres_url) as m:
        hits = m.search("order", limit=100)
        assert len(hits) == 30 and {h.log for h in hits} == {None, "calls"}


# -- outages: a cluster of the test's own, stopped and started --------------------------------


WITHIN = 4.0  # seconds: "within ~2 s" (failing during an outage, resuming after it), generously


@pytest.fixture
def cluster():
    from pg_cluster import private_cluster

    with private_cluster() as c:
        yield c


def _fails_fast(call, *args) -> StorageUnavailable:
    """``call(*args)`` raises StorageUnavailable within ~2 s (not after the pool's timeout)."""
    started = time.monotonic()
    with pytest.raises(StorageUnavailable) as caught:
        call(*args)
    assert time.monotonic() - started < WITHIN
    return caught.value


def _until_it_works(call, *args) -> float:
    """Seconds until ``call(*args)`` first succeeds (failing with StorageUnavailable before)."""
    started = time.monotonic()
    while True:
        try:
            call(*args)
            return time.monotonic() - started
        except StorageUnavailable:
            assert time.monotonic() - started < 10.0, "service did not resume"
            time.sleep(0.02)


def test_an_outage_fails_fast_and_service_resumes_when_the_database_returns(cluster, ns):
    with Memory(ns, url=cluster.url + "?pool_min=3") as m:
        m.set("before", 1)
        cluster.stop()
        failures = [_fails_fast(m.set, f"during{i}", i) for i in range(6)]  # not 10 s
        assert all("PostgreSQL" in str(exc) and exc.retry_after == 1 for exc in failures)
        cluster.start()
        assert _until_it_works(m.set, "after", 2) < WITHIN
        assert m.get_many(["before", "after"]) == {"before": 1, "after": 2}
        assert [k for k in m.keys() if k.startswith("during")] == []


async def test_an_outage_fails_fast_and_resumes_on_the_async_pool(cluster, ns):
    import asyncio

    from botwire import AsyncMemory

    async with AsyncMemory(ns, url=cluster.url + "?pool_min=3") as m:
        await m.set("before", 1)
        cluster.stop()
        for i in range(6):
            started = time.monotonic()
            with pytest.raises(StorageUnavailable):
                await m.set(f"during{i}", i)
            assert time.monotonic() - started < WITHIN
        cluster.start()
        started = time.monotonic()
        while True:
            try:
                await m.set("after", 2)
                break
            except StorageUnavailable:
                assert time.monotonic() - started < 10.0, "service did not resume"
                await asyncio.sleep(0.02)
        assert time.monotonic() - started < WITHIN
        assert await m.get_many(["before", "after"]) == {"before": 1, "after": 2}


def test_requests_waiting_for_a_connection_fail_fast_when_the_database_goes(cluster, ns):
    """One connection, eight threads: when the database goes, those queued for the connection
    fail at once instead of waiting out the pool's timeout."""
    with Memory(ns, url=cluster.url + "?pool_min=1&pool_max=1") as m:
        m.set("k", 0)
        slowest: list[float] = []
        stop = threading.Event()

        def writer(n: int) -> None:
            while not stop.is_set():
                started = time.monotonic()
                try:
                    m.set(f"k{n}", n)
                except StorageUnavailable:
                    slowest.append(time.monotonic() - started)
                    return

        threads = [threading.Thread(target=writer, args=(n,)) for n in range(8)]
        for t in threads:
            t.start()
        time.sleep(0.3)
        cluster.stop()
        for t in threads:
            t.join(15)
        stop.set()
        assert len(slowest) == 8 and max(slowest) < WITHIN


def test_a_restarted_database_is_used_without_an_error(cluster, ns):
    """The pool's idle connections died with the server: none of them is handed to a request."""
    with Memory(ns, url=cluster.url + "?pool_min=4&pool_max=4") as m:
        for i in range(8):
            m.set(f"k{i}", i)
        cluster.stop()
        cluster.start()
        for i in range(8):
            assert m.get(f"k{i}") == i


async def test_a_restarted_database_is_used_without_an_error_by_the_async_pool(cluster, ns):
    import asyncio

    from botwire import AsyncMemory

    async with AsyncMemory(ns, url=cluster.url + "?pool_min=4&pool_max=4") as m:
        await asyncio.gather(*(m.set(f"k{i}", i) for i in range(8)))
        cluster.stop()
        cluster.start()
        assert [await m.get(f"k{i}") for i in range(8)] == list(range(8))


def test_an_engine_opened_while_the_database_is_down_migrates_once_it_is_up(cluster, ns):
    cluster.stop()
    with Memory(ns, url=cluster.url) as m:
        for _ in range(3):
            _fails_fast(m.set, "k", 1)
        cluster.start()
        assert _until_it_works(m.set, "k", 1) < WITHIN
        assert m.get("k") == 1


def _with_password(url: str, password: str) -> str:
    """``url`` (no password in it) with ``password`` written raw into its userinfo."""
    scheme, _, rest = url.partition("://")
    user, at, host = rest.rpartition("@")
    return f"{scheme}://{user or 'postgres'}:{password}@{host}" if at else url


@pytest.mark.parametrize(
    "option, named",
    [("foo=bar", '"foo"'), ("port=abc", '"port"'), ("sslmode=bogus", "sslmode")],
)
def test_a_bad_option_is_a_configuration_error_at_once_not_an_outage(
    postgres_server_url, ns, option, named
):
    from botwire import ConfigurationError

    url = f"{_with_password(postgres_server_url, 'hun?ter2')}?connect_timeout=1&{option}"
    for _ in range(3):  # every time, at once: nothing to wait out
        started = time.monotonic()
        with pytest.raises(ConfigurationError) as err:
            with Memory(ns, url=url) as m:
                m.set("k", 1)
        assert time.monotonic() - started < 0.5
        message = str(err.value)
        assert named in message and "not been available" not in message
        assert "hun" not in message and "ter2" not in message


async def test_a_bad_option_is_a_configuration_error_on_the_async_path(postgres_server_url, ns):
    from botwire import AsyncMemory, ConfigurationError

    url = f"{_with_password(postgres_server_url, 'hunter2')}?sslmode=bogus"
    async with AsyncMemory(ns, url=url) as m:
        with pytest.raises(ConfigurationError, match="sslmode") as err:
            await m.set("k", 1)
    assert "hunter2" not in str(err.value)


@pytest.mark.parametrize("password", ["hun?ter2", "hun#ter2", "hun?ter2#x"])
def test_a_password_with_a_raw_question_mark_or_hash_is_used_and_never_shown(
    postgres_schema_url, ns, password
):
    """libpq takes ? and # in a password as written: the URL's options start after the host."""
    base, _, query = postgres_schema_url.partition("?")
    url = f"{_with_password(base, password)}?{query}&pool_max=2"
    with Memory(ns, url=url) as m:
        m.set("k", 1)  # the options (search_path, pool_max) reached libpq and botwire whole
        assert m.get("k") == 1
        assert "ter2" not in repr(m) and "hun" not in repr(m)
    assert "pool_max" not in m.engine._conninfo  # type: ignore[attr-defined]


def test_driver_text_that_quotes_the_url_never_shows_the_password(postgres_server_url, ns):
    from botwire import ConfigurationError

    host = postgres_server_url.partition("@")[2].partition(":")[0]
    bad = _with_password(postgres_server_url, "hunter2").replace(f"@{host}", "@[::1", 1)
    with pytest.raises(ConfigurationError, match="IPv6") as err:
        Memory(ns, url=bad).set("k", 1)
    assert "hunter2" not in str(err.value)
    with pytest.raises(ConfigurationError, match="pool_max='many'") as err:
        Memory(ns, url=f"{_with_password(postgres_server_url, 'hun?ter2')}?pool_max=many")
    assert "ter2" not in str(err.value)


def test_an_outage_message_never_shows_the_password(ns):
    url = "postgresql://postgres:hun?ter2@127.0.0.1:1/none?connect_timeout=1"
    with Memory(ns, url=url) as m, pytest.raises(StorageUnavailable) as err:
        m.set("k", 1)
    assert "ter2" not in str(err.value) and "not been available" in str(err.value)
