"""PostgreSQL: one psycopg 3 connection pool per process (and one async pool per event loop).

The SQL is the same as SQLite's (``sql.py``); this module only adds the schema, the pools and
the transaction edge. Tables are created on first use by numbered migrations recorded in
``botwire_schema``, under an advisory lock so replicas starting together do not race. Text
columns use ``COLLATE "C"`` so keys sort by code point, as everywhere else.

URL query options understood by botwire (removed before connecting; anything else goes to
libpq): ``pool_min`` (default 1), ``pool_max`` (default 10), ``pool_timeout`` seconds to wait for a
free connection (default 10). libpq's ``connect_timeout`` defaults to 2 seconds (its minimum).

Outages: the engine is *reachable* once a direct connection succeeded (and the schema is
migrated). A connection that fails, or that the server closed while it sat in the pool, makes the
engine connect directly once: when that fails too, the pools are closed (requests waiting for a
connection fail at once) and every operation raises ``StorageUnavailable`` at once, except one
attempt to connect every ``PROBE_INTERVAL`` seconds; the first that succeeds migrates if needed
and opens new pools. A refused connection fails in milliseconds; an unanswered one after
``connect_timeout``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import select
import threading
import time
import weakref
from collections.abc import Awaitable, Callable, Iterator
from functools import partial
from contextlib import contextmanager, suppress
from typing import Any, NamedTuple
from urllib.parse import parse_qsl, quote, unquote, urlencode

from .._wire import SECRET_OPTIONS, redact
from ..errors import ConfigurationError, StorageUnavailable, install_hint
from . import _fork, sql
from .base import Op

try:
    import psycopg
    from psycopg_pool import AsyncConnectionPool, ConnectionPool
except ImportError:  # pragma: no cover - exercised by the no-extra test in a subprocess
    psycopg = None  # type: ignore[assignment]

log = logging.getLogger(__name__)
_LOCK_ID = 0x626F7477  # "botw": advisory lock held while migrating
_KV_BODY = "key || ' ' || value"
TSV_CHARS = 200_000  # a tsvector holds at most 1 MB: index the start of very long values


def _tsvector(text: str) -> str:
    return f"to_tsvector('english'::regconfig, left({text}, {TSV_CHARS}))"


_MIGRATIONS: list[tuple[str, ...]] = [
    (
        'CREATE TABLE botwire_namespaces (ns text COLLATE "C" PRIMARY KEY, floor bigint NOT NULL)',
        'CREATE TABLE botwire_kv (ns text COLLATE "C" NOT NULL, key text COLLATE "C" NOT NULL, '
        "value text NOT NULL, version bigint NOT NULL, created_at double precision NOT NULL, "
        "updated_at double precision NOT NULL, expires_at double precision, "
        "size integer NOT NULL, PRIMARY KEY (ns, key))",
        "CREATE INDEX botwire_kv_expiry ON botwire_kv (expires_at) WHERE expires_at IS NOT NULL",
        'CREATE TABLE botwire_logs (id bigserial PRIMARY KEY, ns text COLLATE "C" NOT NULL, '
        'name text COLLATE "C" NOT NULL, last_seq bigint NOT NULL, entry_count bigint NOT NULL, '
        "UNIQUE (ns, name))",
        "CREATE TABLE botwire_entries (log_id bigint NOT NULL, seq bigint NOT NULL, "
        "value text NOT NULL, ts double precision NOT NULL, PRIMARY KEY (log_id, seq))",
    ),
    (  # 2: what the server keeps (API keys, write counters) and log entry sizes for quotas
        "ALTER TABLE botwire_entries ADD COLUMN size integer NOT NULL DEFAULT 0",
        "UPDATE botwire_entries SET size = octet_length(value)",
        'CREATE TABLE botwire_usage (ns text COLLATE "C" NOT NULL, day text NOT NULL, '
        "writes bigint NOT NULL, PRIMARY KEY (ns, day))",
        "CREATE TABLE botwire_api_keys (id text PRIMARY KEY, hash text NOT NULL UNIQUE, "
        "name text NOT NULL, prefixes text NOT NULL, rights text NOT NULL, "
        "writes_per_day bigint, max_bytes bigint, created_at double precision NOT NULL, "
        "revoked_at double precision)",
    ),
    (  # 3: keyword search: generated tsvector columns (the first TSV_CHARS characters) + GIN
        "ALTER TABLE botwire_kv ADD COLUMN tsv tsvector GENERATED ALWAYS AS "
        f"({_tsvector(_KV_BODY)}) STORED",
        "CREATE INDEX botwire_kv_tsv ON botwire_kv USING gin (tsv)",
        f"ALTER TABLE botwire_entries ADD COLUMN tsv tsvector GENERATED ALWAYS AS "
        f"({_tsvector('value')}) STORED",
        "CREATE INDEX botwire_entries_tsv ON botwire_entries USING gin (tsv)",
    ),
    (  # 4: when the server last saw each API key used (``TouchKey``); NULL: never
        "ALTER TABLE botwire_api_keys ADD COLUMN last_used_at double precision",
    ),
]
SCHEMA_VERSION = len(_MIGRATIONS)  # the newest schema this code knows (botwire_schema)
_OPTIONS = {"pool_min": 1, "pool_max": 10, "pool_timeout": 10.0}
PROBE_INTERVAL = 0.5  # seconds between attempts to connect while the database is unreachable
RETRY_AFTER = 1  # seconds, what a StorageUnavailable suggests waiting (a server's Retry-After)
_pg_sql: dict[str, str] = {}


def _pg(text: str) -> str:
    """``?`` placeholders to psycopg's ``%s`` and lock markers to SQL, cached per statement."""
    out = _pg_sql.get(text)
    if out is None:
        out = text.replace("%", "%%").replace("?", "%s").replace("/*FOR UPDATE*/", "FOR UPDATE")
        _pg_sql[text] = out
    return out


def _split_options(url: str) -> tuple[str, dict[str, float]]:
    """The conninfo for libpq (botwire's options taken out, ``connect_timeout`` added) and
    botwire's options. The query starts at the first ``?`` after the userinfo, as libpq reads
    it, so a raw ``?`` or ``#`` in the password stays in the password. Errors never quote the
    URL."""
    head, query = _head_and_query(url)
    pairs = parse_qsl(query, keep_blank_values=True)
    ours: dict[str, float] = {}
    for k, v in pairs:
        if k in _OPTIONS:
            try:
                ours[k] = float(v)
            except ValueError:
                raise ValueError(f"{k}={v!r} is not a number") from None
    rest = [(k, v) for k, v in pairs if k not in _OPTIONS]
    if not any(k == "connect_timeout" for k, _ in rest):
        rest.append(("connect_timeout", "2"))
    # %20, not "+": libpq does not read "+" as a space in a URI (options=-c a=1 -c b=2)
    return f"{head}?{urlencode(rest, quote_via=quote)}", {**_OPTIONS, **ours}


def _head_and_query(url: str) -> tuple[str, str]:
    scheme, sep, rest = url.partition("://")
    slash = rest.find("/")
    at = rest.rfind("@", 0, slash if slash >= 0 else len(rest))  # the end of the userinfo
    question = rest.find("?", at + 1)
    if question < 0:
        return url, ""
    return scheme + sep + rest[:question], rest[question + 1 :]


def _secrets(url: str) -> list[str]:
    """The password (and secret options) in ``url``, raw and decoded: never shown."""
    head, query = _head_and_query(url)
    userinfo, at, _ = head.partition("://")[2].rpartition("@")
    found = [userinfo.partition(":")[2]] if at else []
    found += [v for k, v in parse_qsl(query, keep_blank_values=True) if k.lower() in SECRET_OPTIONS]
    found += [unquote(v) for v in found]
    return sorted({v for v in found if v}, key=len, reverse=True)


_URL_IN_TEXT = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s\"]*")
_QUOTED = re.compile(r'"[^"]*"')
# libpq's and psycopg's words for a connection option it cannot use: a mistake, not an outage
_MISCONFIGURED = re.compile(
    r"invalid (connection option|URI|integer value|port number|percent-encoded|[\w ]+ value)"
    r"|bad value for|missing \"=\"|unterminated quoted string|unexpected character"
    r"|end of string reached|host address may not be empty|could not match \d+ host names"
    r"|Servname not supported|value \".*\" invalid when|invalid SSL protocol version"
)


def _misconfigured(exc: psycopg.Error) -> bool:
    """A connection option libpq or psycopg rejects before talking to the server (or a
    ``ProgrammingError``: a statement or object the database refuses), rather than an outage."""
    if isinstance(exc, psycopg.ProgrammingError):
        return True
    return exc.sqlstate is None and bool(_MISCONFIGURED.search(str(exc)))


class PostgresEngine:
    """Engine over a PostgreSQL database."""

    def __init__(self, url: str) -> None:
        if psycopg is None:
            raise ConfigurationError(
                f"PostgreSQL needs the postgres extra: {install_hint('postgres')}"
            )
        self.url = url
        self._secrets = _secrets(url)
        try:
            self._conninfo, options = _split_options(url)
        except ValueError as exc:
            raise ConfigurationError(
                f"bad PostgreSQL URL option in {redact(url)!r}: {exc}"
            ) from None
        self._check_conninfo()
        self._min, self._max = int(options["pool_min"]), int(options["pool_max"])
        self._timeout = options["pool_timeout"]
        self._lock = threading.Lock()
        _fork.renew_after_fork(self)
        self._pool: ConnectionPool | None = None
        self._pid = os.getpid()
        # One async pool per event loop, with the connections it opened (to close them when
        # the loop is gone), and a lock per loop so that racing first calls open one pool.
        self._apools: dict[asyncio.AbstractEventLoop, _AsyncPool] = {}
        self._alocks: dict[asyncio.AbstractEventLoop, asyncio.Lock] = {}
        self._closing: list[asyncio.Task[None]] = []  # pool closes close() could not wait for
        self._migrated = False
        self._closed = False
        self._purger = sql.Purger()
        # Reachability (see the module docstring): set by _probe, under its lock.
        self._probe_lock = threading.Lock()
        self._reachable = False
        self._retry_at = 0.0  # while unreachable, no attempt to connect before this (monotonic)
        self._down_since: float | None = None
        self._why = ""

    # -- configuration ----------------------------------------------------------------------

    def _check_conninfo(self) -> None:
        """What libpq can tell without connecting: unknown options, bad syntax, the port."""
        try:
            params = psycopg.conninfo.conninfo_to_dict(self._conninfo)
        except psycopg.Error as exc:
            raise self._misconfiguration(exc) from None
        for port in str(params.get("port") or "").split(","):
            if port and not (port.isdigit() and 0 < int(port) < 65536):
                raise self._misconfiguration(
                    f'invalid integer value "{port}" for connection option "port"'
                )

    def _misconfiguration(self, exc: psycopg.Error | str) -> ConfigurationError:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        detail = self._hide(first.removeprefix("connection is bad: "))
        return ConfigurationError(
            f"the PostgreSQL URL {redact(self.url)!r} cannot be used: {detail}"
        )

    def _hide(self, text: str) -> str:
        """Driver text without the URL's secrets: URLs in it redacted, the password replaced, and
        a quoted piece of the URL that is or holds part of the password hidden whole (libpq
        quotes what it could not parse: ``invalid integer value "hun" for ... "port"`` for a
        raw ``/`` in the password)."""
        text = _URL_IN_TEXT.sub(lambda m: redact(m.group()), text)
        for secret in self._secrets:
            text = text.replace(secret, "***")
        pieces = {s[i : i + 4] for s in self._secrets for i in range(max(len(s) - 3, 1))}

        def hidden(quoted: re.Match[str]) -> str:
            inside = quoted.group()[1:-1]
            part = inside and any(inside in s for s in self._secrets)
            return '"***"' if part or any(p in inside for p in pieces) else quoted.group()

        return _QUOTED.sub(hidden, text)

    # -- sync -------------------------------------------------------------------------------

    def execute(self, op: Op) -> Any:
        handler, mode = sql.handle(op, time.time(), postgres=True)
        on: Callable[[Any], Any] = partial(_drive_on, handler=handler, mode=mode)
        with _mapped(self._hide):
            pool = self._sync_pool()
            try:
                result = self._drive(pool, on)
            except psycopg.OperationalError as exc:
                if _lost(exc) and not self._probe():
                    raise self._unreachable() from exc
                raise
        if mode and self._purger.due():
            try:
                purge = sql.purge(time.time(), self._purger.batch)
                self._drive(pool, partial(_drive_on, handler=purge, mode=sql.TXN))
            except psycopg.Error as exc:  # best effort: the next purge catches up
                log.debug("purge of expired keys skipped: %s", exc)
        return result

    def _drive(self, pool: ConnectionPool, on: Callable[[Any], Any]) -> Any:
        with pool.connection() as conn:
            if not _went_away(conn):
                return on(conn)
        if not self._probe():  # the server closed it: restarted, or gone
            raise self._unreachable()
        pool.drain()  # the other idle connections are as dead: replace them all
        with pool.connection() as conn:
            return on(conn)

    def _sync_pool(self) -> ConnectionPool:
        pool = self._pool
        if pool is not None and self._pid == os.getpid():
            return pool
        self._check_open()
        self._reach()
        with self._lock:
            self._check_open()
            self._renew_if_forked()
            if not self._reachable:  # an outage began meanwhile
                raise self._unreachable()
            if self._pool is None:
                self._pool = ConnectionPool(
                    self._conninfo,
                    min_size=self._min,
                    max_size=self._max,
                    timeout=self._timeout,
                    kwargs={"autocommit": True},
                    open=True,
                    name="botwire",
                    reconnect_timeout=PROBE_INTERVAL,
                    reconnect_failed=self._pool_failed,
                )
            return self._pool

    def _renew_if_forked(self) -> None:
        """After fork the parent's pools are dropped, not closed: their sockets are shared."""
        if self._pid != os.getpid():
            self._pid = os.getpid()
            self._pool, self._apools, self._alocks = None, {}, {}

    # -- reachability -----------------------------------------------------------------------

    def _reach(self) -> None:
        """Return once the database answered since its last outage; while it does not, raise
        at once (one caller every PROBE_INTERVAL tries to connect first)."""
        if not self._reachable and (time.monotonic() < self._retry_at or not self._probe()):
            raise self._unreachable()

    async def _areach(self) -> None:
        if self._reachable:
            return
        if time.monotonic() < self._retry_at or not await asyncio.to_thread(self._probe):
            raise self._unreachable()

    def _probe(self) -> bool:
        """Connect directly (and migrate, the first time): whether the database answers. When
        it does not, the engine is unreachable until a later probe succeeds."""
        with self._probe_lock:
            if not self._reachable and time.monotonic() < self._retry_at:
                return False  # another caller has just tried
            try:
                with psycopg.connect(self._conninfo, autocommit=True) as conn:
                    if not self._migrated:
                        _migrate(conn)
                        self._migrated = True
            except psycopg.Error as exc:
                if _misconfigured(exc):  # a mistake to fix, not an outage to wait out
                    raise self._misconfiguration(exc) from None
                if not self._migrated or _lost(exc):
                    self._mark_down(exc)
                    return False
                log.debug("PostgreSQL answers, refusing a connection: %s", exc)  # too busy, say
            if self._down_since is not None:
                log.warning("PostgreSQL answers again, after %.1f s", self._since_down())
                self._down_since = None
            self._reachable = True
            return True

    def _pool_failed(self, pool: ConnectionPool) -> None:
        """A pool gave up connecting (after PROBE_INTERVAL): is the database gone?"""
        with suppress(ConfigurationError):  # the next operation raises it
            self._probe()

    async def _apool_failed(self, pool: AsyncConnectionPool) -> None:
        with suppress(ConfigurationError):
            await asyncio.to_thread(self._probe)

    def _mark_down(self, exc: psycopg.Error) -> None:
        """Unreachable: close the pools, so that requests waiting for a connection fail now."""
        self._reachable = False
        self._retry_at = time.monotonic() + PROBE_INTERVAL
        said = self._hide(str(exc).strip())
        self._why = f"{type(exc).__name__}: {said.splitlines()[0] if said else ''}"
        if self._down_since is None:
            self._down_since = time.monotonic()
            log.warning(
                "PostgreSQL is not available, retrying every %s s: %s", PROBE_INTERVAL, said
            )
        with self._lock:
            pool, self._pool = self._pool, None
            apools, self._apools = self._apools, {}
        if self._pid != os.getpid():  # the parent's pools
            return
        if pool is not None:
            threading.Thread(target=pool.close, name="botwire-pool-close", daemon=True).start()
        for loop, held in apools.items():
            held.retire(loop, self._keep_closing)

    def _keep_closing(self, task: asyncio.Task[None]) -> None:
        with self._lock:
            self._closing = [t for t in self._closing if not t.done()] + [task]

    def _since_down(self) -> float:
        return time.monotonic() - (self._down_since or time.monotonic())

    def _unreachable(self) -> StorageUnavailable:
        down = self._since_down()
        return _unavailable(f"PostgreSQL has not been available for {down:.1f} s: {self._why}")

    # -- async ------------------------------------------------------------------------------

    async def aexecute(self, op: Op) -> Any:
        handler, mode = sql.handle(op, time.time(), postgres=True)
        on: Callable[[Any], Awaitable[Any]] = partial(_adrive_on, handler=handler, mode=mode)
        with _mapped(self._hide):
            pool = await self._async_pool()
            try:
                result = await self._adrive(pool, on)
            except psycopg.OperationalError as exc:
                if _lost(exc) and not await asyncio.to_thread(self._probe):
                    raise self._unreachable() from exc
                raise
        if mode and self._purger.due():
            try:
                purge = sql.purge(time.time(), self._purger.batch)
                await self._adrive(pool, partial(_adrive_on, handler=purge, mode=sql.TXN))
            except psycopg.Error as exc:
                log.debug("purge of expired keys skipped: %s", exc)
        return result

    async def _adrive(self, pool: AsyncConnectionPool, on: Callable[[Any], Awaitable[Any]]) -> Any:
        async with pool.connection() as conn:
            if not _went_away(conn):
                return await on(conn)
        if not await asyncio.to_thread(self._probe):
            raise self._unreachable()
        await pool.drain()
        async with pool.connection() as conn:
            return await on(conn)

    async def _async_pool(self) -> AsyncConnectionPool:
        loop = asyncio.get_running_loop()
        held = self._apools.get(loop) if self._pid == os.getpid() else None
        if held is not None:
            return held.pool
        self._check_open()
        await self._areach()
        with self._lock:
            self._renew_if_forked()
        async with self._loop_lock(loop):  # first calls racing on one loop open one pool
            held = self._apools.get(loop)
            if held is None:
                held = await self._open_async_pool(loop)
        return held.pool

    def _loop_lock(self, loop: asyncio.AbstractEventLoop) -> asyncio.Lock:
        with self._lock:
            lock = self._alocks.get(loop)
            if lock is None:
                lock = self._alocks[loop] = asyncio.Lock()
            return lock

    async def _open_async_pool(self, loop: asyncio.AbstractEventLoop) -> _AsyncPool:
        self._check_open()
        conns: weakref.WeakSet[Any] = weakref.WeakSet()

        async def remember(conn: Any) -> None:
            conns.add(conn)

        pool = AsyncConnectionPool(
            self._conninfo,
            min_size=self._min,
            max_size=self._max,
            timeout=self._timeout,
            kwargs={"autocommit": True},
            configure=remember,
            open=False,
            name="botwire-async",
            reconnect_timeout=PROBE_INTERVAL,
            reconnect_failed=self._apool_failed,
        )
        await pool.open()
        held, dead = _AsyncPool(pool, conns), []
        with self._lock:
            usable = not self._closed and self._reachable
            if usable:
                self._apools[loop] = held
                gone = [lp for lp in self._apools if lp.is_closed()]
                dead = [self._forget_loop(lp) for lp in gone]
        if not usable:  # the engine closed, or an outage began, while this pool opened
            await pool.close()
            self._check_open()
            raise self._unreachable()
        for old in dead:  # pools of event loops closed since: they cannot run again
            old.discard()
        return held

    def _forget_loop(self, loop: asyncio.AbstractEventLoop) -> _AsyncPool:
        self._alocks.pop(loop, None)
        return self._apools.pop(loop)

    # -- lifecycle --------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise StorageUnavailable("the PostgreSQL engine is closed")

    def _after_fork(self) -> None:
        """In a child right after fork: locks of our own (a parent's thread may hold them)."""
        self._lock = threading.Lock()
        self._probe_lock = threading.Lock()

    def close(self) -> None:
        """Close the pools: the sync pool, and each event loop's async pool as far as its loop
        allows (see ``_AsyncPool.close_from``). After fork the parent's pools are left alone."""
        with self._lock:
            self._closed = True
            pool, self._pool = self._pool, None
            apools, self._apools, self._alocks = self._apools, {}, {}
        if self._pid != os.getpid():
            return
        if pool is not None:
            pool.close()
        for loop, held in apools.items():
            task = held.close_from(loop)
            if task is not None:
                with self._lock:
                    self._closing.append(task)

    async def aclose(self) -> None:
        """``close()``, waiting for this loop's async pool to close."""
        loop = asyncio.get_running_loop()
        with self._lock:
            held = self._apools.pop(loop, None)
            closing = [t for t in self._closing if t.get_loop() is loop]
            self._closing = [t for t in self._closing if t.get_loop() is not loop]
        if held is not None:
            await held.pool.close()
        await asyncio.to_thread(self.close)
        for task in closing:  # started by a close() on this loop's thread
            with suppress(Exception):
                await task


class _AsyncPool(NamedTuple):
    """An event loop's pool and the connections it opened."""

    pool: AsyncConnectionPool
    conns: weakref.WeakSet[Any]

    def close_from(self, loop: asyncio.AbstractEventLoop) -> asyncio.Task[None] | None:
        """Close the pool from outside its coroutines. On the loop's own thread this cannot
        wait: it returns the closing task. On another thread it waits up to 10 s. When the loop
        is closed or stopped, the pool can no longer run: its connections are closed."""
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            return loop.create_task(self.pool.close())
        if loop.is_running():
            try:
                asyncio.run_coroutine_threadsafe(self.pool.close(), loop).result(10)
                return None
            except Exception as exc:  # the loop stopped meanwhile, or is stuck
                log.debug("async pool not closed on its loop: %s", exc)
        self.discard()
        return None

    def retire(
        self, loop: asyncio.AbstractEventLoop, keep: Callable[[asyncio.Task[None]], None]
    ) -> None:
        """Close the pool on its loop, from any thread, without waiting: its waiting requests
        fail as soon as it runs. ``keep`` holds the closing task."""

        def start() -> None:
            keep(loop.create_task(self.pool.close()))

        try:
            loop.call_soon_threadsafe(start)
        except RuntimeError:  # the loop is closed: the pool can no longer run
            self.discard()

    def discard(self) -> None:
        """Close the connections of a pool whose loop will not run again."""
        for conn in list(self.conns):
            with suppress(Exception):
                conn.pgconn.finish()


def _migrate(conn: Any) -> None:
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_ID,))
        conn.execute(
            "CREATE TABLE IF NOT EXISTS botwire_schema (version integer PRIMARY KEY, "
            "applied_at timestamptz NOT NULL DEFAULT now())"
        )
        current = conn.execute("SELECT coalesce(max(version), 0) FROM botwire_schema").fetchone()[0]
        sql.check_schema(current, SCHEMA_VERSION)
        for version, statements in enumerate(_MIGRATIONS[current:], start=current + 1):
            for statement in statements:
                conn.execute(statement)
            conn.execute("INSERT INTO botwire_schema (version) VALUES (%s)", (version,))


def _drive_on(conn: Any, handler: sql.Handler, mode: int) -> Any:
    if mode != sql.TXN:  # autocommit: a lone statement commits itself
        return sql.drive(handler, lambda stmt: _run(conn, stmt))
    with conn.transaction():
        return sql.drive(handler, lambda stmt: _run(conn, stmt))


async def _adrive_on(conn: Any, handler: sql.Handler, mode: int) -> Any:
    if mode != sql.TXN:
        return await sql.adrive(handler, lambda stmt: _arun(conn, stmt))
    async with conn.transaction():
        return await sql.adrive(handler, lambda stmt: _arun(conn, stmt))


def _went_away(conn: Any) -> bool:
    """Whether the server closed this idle connection (a restart, a shutdown). Nothing arrives
    on an idle connection but the server's farewell (or, rarely, a notice): one system call."""
    try:
        return bool(conn.closed) or _readable(conn.pgconn.socket)
    except psycopg.OperationalError:  # libpq knows it is lost
        return True


def _readable(fd: int) -> bool:
    if not hasattr(select, "poll"):  # Windows: select has no descriptor limit there
        return bool(select.select([fd], [], [], 0)[0])
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    return bool(poller.poll(0))


def _lost(exc: psycopg.Error) -> bool:
    """A failure of the connection (client side, no SQLSTATE), a connection exception (08) or
    the server shutting down or starting up (57P), rather than of the statement."""
    state = exc.sqlstate
    return state is None or state.startswith(("08", "57P"))


def _unavailable(message: str) -> StorageUnavailable:
    exc = StorageUnavailable(message)
    exc.retry_after = RETRY_AFTER  # type: ignore[attr-defined]
    return exc


def _run(conn: Any, stmt: sql.Stmt) -> Any:
    if stmt.sql is sql.SEARCH:
        stmt = sql.postgres_search(*stmt.params)
    if stmt.many:
        with conn.cursor() as cur:
            cur.executemany(_pg(stmt.sql), stmt.params)
            return cur.rowcount
    cur = conn.execute(_pg(stmt.sql), stmt.params, prepare=None if stmt.prepare else False)
    return cur.rowcount if cur.description is None else cur.fetchall()


async def _arun(conn: Any, stmt: sql.Stmt) -> Any:
    if stmt.sql is sql.SEARCH:
        stmt = sql.postgres_search(*stmt.params)
    if stmt.many:
        async with conn.cursor() as cur:
            await cur.executemany(_pg(stmt.sql), stmt.params)
            return cur.rowcount
    cur = await conn.execute(_pg(stmt.sql), stmt.params, prepare=None if stmt.prepare else False)
    return cur.rowcount if cur.description is None else await cur.fetchall()


@contextmanager
def _mapped(hide: Callable[[str], str]) -> Iterator[None]:
    try:
        yield
    except psycopg.Error as exc:
        raise _unavailable(f"PostgreSQL: {type(exc).__name__}: {hide(str(exc))}") from exc
