"""The embedded default: one SQLite file, shared by every thread and process that opens it.

- One connection per thread, opened lazily and re-opened in a child after ``fork`` (the
  parent's connections are left alone: closing them in the child could disturb the parent).
- WAL journal with ``synchronous=NORMAL``: a committed write is in the WAL file before
  ``set`` returns, so it survives a crash of the process (not a power cut; use
  ``?synchronous=full`` in the URL for that).
- Writers take turns at a gate (a lock for threads, an ``flock`` beside the file for
  processes) before SQLite's own lock, whose busy handler would sleep up to 100 ms between
  tries. Transactions are ``BEGIN IMMEDIATE``; waiting longer than ``?timeout=`` seconds
  (default 30) for another writer is ``StorageUnavailable``.
- WAL checkpoints run on a background thread every 1000 writes, never inside a write; so does
  the search index's upkeep (forgetting deleted documents, catching up the namespaces it
  serves, merging FTS5 segments), a slice per write transaction, so that writers never
  wait long for the gate.
- Keyword search ranks a small namespace directly, without the shared index (see
  ``sql.sqlite_search_direct``), and a large one through the FTS5 indexes, which a search
  brings up to date for its namespace first. The index serves only the large namespaces
  searched through it: a caller's writes add nothing for it (migration 6, ``_INDEX_ON_DEMAND``).
- Async calls: a point read, or a one-statement write when the gate is free, runs at once
  (microseconds, less than a thread hop); other reads run in a worker thread, other writes
  queue on one writer thread per engine (sqlite3 has no async I/O).
"""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from functools import partial
from typing import Any

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

from ..errors import ConfigurationError, StorageUnavailable
from . import _fork, sql
from . import base as ops
from .base import Op



def _settle(future: asyncio.Future[Any], outcome: Any) -> None:
    if future.cancelled():
        return
    if isinstance(outcome, BaseException):
        future.set_exception(outcome)
    else:
        future.set_result(outcome)


INLINE_ROWS = 256  # a range read this small costs less on the event loop than a thread hop


def _is_point_read(op: Op) -> bool:
    """A read short enough to run on the event loop: one key, or one short range scan."""
    if isinstance(op, ops.Batch):
        return all(_is_point_read(sub) for sub in op.ops)
    if isinstance(op, (ops.Get, ops.Info)):
        return len(op.keys) == 1
    if isinstance(op, ops.Scan):
        return op.limit <= INLINE_ROWS
    if isinstance(op, ops.Read):
        size = op.last if op.last is not None else op.limit
        return size is not None and size <= INLINE_ROWS
    return isinstance(op, (ops.FindKey, ops.LogCount))

CHECKPOINT_EVERY = 1000  # writes between background WAL checkpoints, per engine
INDEX_SLICE = 64  # rows indexed (or forgotten) per write transaction (~45 us each)
INDEX_INLINE = 8  # slices a search indexes itself; a namespace lacking more is ranked directly
DIRECT_FALLBACK_MAX = 20_000  # a namespace the index lacks much of is ranked directly up to this
INDEX_MERGE_PAGES = 16  # FTS5 merge work per write transaction (pages; ~1-5 ms)
_FTS = "content='', tokenize='porter unicode61'"
_FTS_TABLES = ("botwire_kv_fts", "botwire_entries_fts")
# A contentless index forgets a document by being given its exact text. A key keeps its doc
# until the queue is applied, so the first forget row of a doc holds the text it was indexed
# with; later rows of the same doc hold texts that never reached the index and are skipped.
_FORGET_KEY = (
    "INSERT INTO botwire_fts_queue (ns, doc, body) "
    "SELECT OLD.ns, OLD.doc, OLD.key || ' ' || OLD.value WHERE OLD.doc IS NOT NULL"
)
_PENDING_ENTRY = (
    "SELECT id FROM botwire_fts_queue WHERE log_id = OLD.log_id AND seq = OLD.seq "
    "AND body IS NULL"
)

# 6: the index serves only the large namespaces that searches go through it for, and a caller's
# writes queue nothing. A key with no ``doc`` was never indexed, one with ``stale`` changed since
# (``stale`` is the text the index holds for its doc, kept by a trigger that runs only for
# indexed keys), and a log's entries above ``indexed_seq`` are not indexed yet. A search
# registers a large namespace and indexes it (``sql.sqlite_index_namespace``): one pass over its
# keys, then what its writers queue. A queue row per write cost each write a second B-tree page.
_QUEUED_KEY = "(ns, key) IN (SELECT ns, key FROM botwire_fts_queue WHERE key IS NOT NULL)"
_QUEUED_DOC = "doc IN (SELECT doc FROM botwire_fts_queue WHERE doc IS NOT NULL AND log_id IS NULL)"
_IN_KV_FTS = "EXISTS (SELECT 1 FROM botwire_kv_fts WHERE rowid = {})"
_SERVED = "EXISTS (SELECT 1 FROM botwire_fts_ns WHERE ns = {}.ns)"
_INDEX_ON_DEMAND = (
    "ALTER TABLE botwire_kv ADD COLUMN stale TEXT",
    "ALTER TABLE botwire_logs ADD COLUMN indexed_seq INTEGER NOT NULL DEFAULT 0",
    # The queue so far, said in the new terms. A queued key whose doc was forgotten already
    # (the slice that would index it again had not run) is not in the index.
    f"UPDATE botwire_kv SET doc = NULL WHERE doc IS NOT NULL AND ({_QUEUED_KEY} OR {_QUEUED_DOC}) "
    f"AND NOT {_IN_KV_FTS.format('botwire_kv.doc')}",
    # An indexed key changed since: the index holds the text of its doc's first forget row.
    "UPDATE botwire_kv SET stale = (SELECT body FROM botwire_fts_queue q WHERE q.doc = "
    f"botwire_kv.doc AND q.log_id IS NULL ORDER BY q.id LIMIT 1) WHERE {_QUEUED_DOC}",
    # Entries are queued in the order they are appended: what a log has queued is its newest.
    "UPDATE botwire_logs SET indexed_seq = COALESCE((SELECT min(q.seq) - 1 FROM "
    "botwire_fts_queue q WHERE q.log_id = botwire_logs.id AND q.body IS NULL), last_seq)",
    # Left: the first forget row of each indexed doc no key holds any more, and forgotten entries.
    "DELETE FROM botwire_fts_queue WHERE key IS NOT NULL OR (log_id IS NOT NULL AND body IS NULL) "
    "OR (log_id IS NULL AND (doc IN (SELECT doc FROM botwire_kv WHERE doc IS NOT NULL) "
    f"OR NOT {_IN_KV_FTS.format('botwire_fts_queue.doc')} OR id NOT IN (SELECT min(id) FROM "
    "botwire_fts_queue WHERE log_id IS NULL GROUP BY doc)))",
    *(
        f"DROP TRIGGER {t}"
        for t in ("botwire_kv_ai", "botwire_kv_au", "botwire_kv_ad", "botwire_entries_ai")
    ),
    "DROP TRIGGER botwire_entries_ad",
    "DROP INDEX botwire_fts_queue_entry",
    # The namespaces the index serves (registered by their first search through it); cursor:
    # how far the first pass over their keys has come (NULL: done; then the queue says what
    # changed). Only their new and changed keys are queued, so a caller's writes queue nothing.
    "CREATE TABLE botwire_fts_ns (ns TEXT PRIMARY KEY, cursor TEXT) WITHOUT ROWID",
    "CREATE INDEX botwire_fts_queue_ns ON botwire_fts_queue (ns, id)",
    # A served namespace: a new key is queued; a changed indexed key is queued with the text
    # the index holds (its first row for a doc is the one that counts: later ones, and a
    # deleted key's forget row after them, hold texts that never reached the index). A served
    # namespace's queue is applied in order, by its own catch-up.
    f"CREATE TRIGGER botwire_kv_new AFTER INSERT ON botwire_kv WHEN {_SERVED.format('NEW')} "
    "BEGIN INSERT INTO botwire_fts_queue (ns, key) VALUES (NEW.ns, NEW.key); END",
    "CREATE TRIGGER botwire_kv_changed AFTER UPDATE OF value ON botwire_kv "
    f"WHEN OLD.doc IS NOT NULL AND OLD.stale IS NULL AND {_SERVED.format('OLD')} BEGIN "
    "INSERT INTO botwire_fts_queue (ns, key, doc, body) "
    "VALUES (OLD.ns, OLD.key, OLD.doc, OLD.key || ' ' || OLD.value); END",
    # Any other indexed key (indexed before this schema) keeps that text in its own row.
    "CREATE TRIGGER botwire_kv_stale AFTER UPDATE OF value ON botwire_kv "
    f"WHEN OLD.doc IS NOT NULL AND OLD.stale IS NULL AND NOT {_SERVED.format('OLD')} BEGIN "
    "UPDATE botwire_kv SET stale = OLD.key || ' ' || OLD.value "
    "WHERE ns = OLD.ns AND key = OLD.key; END",
    "CREATE TRIGGER botwire_kv_forget AFTER DELETE ON botwire_kv WHEN OLD.doc IS NOT NULL BEGIN "
    "INSERT INTO botwire_fts_queue (ns, doc, body) "
    "VALUES (OLD.ns, OLD.doc, COALESCE(OLD.stale, OLD.key || ' ' || OLD.value)); END",
    "CREATE TRIGGER botwire_entries_forget AFTER DELETE ON botwire_entries "
    f"WHEN OLD.seq < {sql.ENTRY_DOC} "
    "AND OLD.seq <= (SELECT indexed_seq FROM botwire_logs WHERE id = OLD.log_id) BEGIN "
    "INSERT INTO botwire_fts_queue (ns, log_id, seq, body) "
    "SELECT ns, OLD.log_id, OLD.seq, OLD.value FROM botwire_logs WHERE id = OLD.log_id; END",
)

_MIGRATIONS: list[tuple[str, ...]] = [
    (
        "CREATE TABLE botwire_namespaces (ns TEXT PRIMARY KEY, floor INTEGER NOT NULL) "
        "WITHOUT ROWID",
        "CREATE TABLE botwire_kv (ns TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL, "
        "version INTEGER NOT NULL, created_at REAL NOT NULL, updated_at REAL NOT NULL, "
        "expires_at REAL, size INTEGER NOT NULL, PRIMARY KEY (ns, key)) WITHOUT ROWID",
        "CREATE INDEX botwire_kv_expiry ON botwire_kv (expires_at) WHERE expires_at IS NOT NULL",
        "CREATE TABLE botwire_logs (id INTEGER PRIMARY KEY AUTOINCREMENT, ns TEXT NOT NULL, "
        "name TEXT NOT NULL, last_seq INTEGER NOT NULL, entry_count INTEGER NOT NULL, "
        "UNIQUE (ns, name))",
        "CREATE TABLE botwire_entries (log_id INTEGER NOT NULL, seq INTEGER NOT NULL, "
        "value TEXT NOT NULL, ts REAL NOT NULL, PRIMARY KEY (log_id, seq)) WITHOUT ROWID",
    ),
    (  # 2: what the server keeps (API keys, write counters) and log entry sizes for quotas
        "ALTER TABLE botwire_entries ADD COLUMN size INTEGER NOT NULL DEFAULT 0",
        "UPDATE botwire_entries SET size = length(CAST(value AS BLOB))",
        "CREATE TABLE botwire_usage (ns TEXT NOT NULL, day TEXT NOT NULL, "
        "writes INTEGER NOT NULL, PRIMARY KEY (ns, day)) WITHOUT ROWID",
        "CREATE TABLE botwire_api_keys (id TEXT PRIMARY KEY, hash TEXT NOT NULL UNIQUE, "
        "name TEXT NOT NULL, prefixes TEXT NOT NULL, rights TEXT NOT NULL, "
        "writes_per_day INTEGER, max_bytes INTEGER, created_at REAL NOT NULL, "
        "revoked_at REAL) WITHOUT ROWID",
    ),
    (  # 3: keyword search: two contentless FTS5 indexes, keys and log entries, and a queue.
        # Writers only queue what changed (a row, in their own transaction); ``index_pending``
        # applies the queue in batches, before each search and in the background. Indexing in
        # the writer's transaction cost each write a new FTS5 segment (~35 us).
        "ALTER TABLE botwire_kv ADD COLUMN doc INTEGER",  # its FTS rowid; NULL: never indexed
        "CREATE INDEX botwire_kv_doc ON botwire_kv (doc)",
        f"CREATE VIRTUAL TABLE botwire_kv_fts USING fts5(ns, body, {_FTS})",
        f"CREATE VIRTUAL TABLE botwire_entries_fts USING fts5(ns, body, {_FTS})",
        "CREATE TABLE botwire_fts_next (doc INTEGER NOT NULL)",
        "INSERT INTO botwire_fts_next VALUES (0)",
        # A row is one of: (ns, key) index this key; (ns, doc, body) forget a key's document;
        # (log_id, seq) index this entry; (ns, log_id, seq, body) forget this entry document.
        "CREATE TABLE botwire_fts_queue (id INTEGER PRIMARY KEY, ns TEXT, key TEXT, "
        "doc INTEGER, log_id INTEGER, seq INTEGER, body TEXT)",
        "CREATE INDEX botwire_fts_queue_entry ON botwire_fts_queue (log_id, seq) "
        "WHERE log_id IS NOT NULL",
        "INSERT INTO botwire_fts_queue (ns, key) SELECT ns, key FROM botwire_kv",
        "INSERT INTO botwire_fts_queue (log_id, seq) SELECT log_id, seq FROM botwire_entries "
        f"WHERE seq < {sql.ENTRY_DOC}",
        "CREATE TRIGGER botwire_kv_ai AFTER INSERT ON botwire_kv BEGIN "
        "INSERT INTO botwire_fts_queue (ns, key) VALUES (NEW.ns, NEW.key); END",
        "CREATE TRIGGER botwire_kv_au AFTER UPDATE OF value ON botwire_kv BEGIN "
        f"{_FORGET_KEY}; INSERT INTO botwire_fts_queue (ns, key) VALUES (NEW.ns, NEW.key); END",
        f"CREATE TRIGGER botwire_kv_ad AFTER DELETE ON botwire_kv BEGIN {_FORGET_KEY}; END",
        "CREATE TRIGGER botwire_entries_ai AFTER INSERT ON botwire_entries "
        f"WHEN NEW.seq < {sql.ENTRY_DOC} BEGIN "
        "INSERT INTO botwire_fts_queue (log_id, seq) VALUES (NEW.log_id, NEW.seq); END",
        # An entry deleted before it was indexed only leaves the queue; else it is forgotten.
        "CREATE TRIGGER botwire_entries_ad AFTER DELETE ON botwire_entries "
        f"WHEN OLD.seq < {sql.ENTRY_DOC} BEGIN "
        "INSERT INTO botwire_fts_queue (ns, log_id, seq, body) "
        "SELECT (SELECT ns FROM botwire_logs WHERE id = OLD.log_id), OLD.log_id, OLD.seq, "
        f"OLD.value WHERE NOT EXISTS ({_PENDING_ENTRY}); "
        f"DELETE FROM botwire_fts_queue WHERE id IN ({_PENDING_ENTRY}); END",
    ),
    (  # 4: the FTS5 indexes merge their segments in small steps on the background thread
        # (``merge_index``). FTS5's own automerge did 64 x levels pages of merging at once,
        # in whichever write crossed its threshold: 20-40 ms holding the write lock.
        *(f"INSERT INTO {t} ({t}, rank) VALUES ('automerge', 0)" for t in _FTS_TABLES),
    ),
    (  # 5: when the server last saw each API key used (``TouchKey``); NULL: never
        "ALTER TABLE botwire_api_keys ADD COLUMN last_used_at REAL",
    ),
    _INDEX_ON_DEMAND,
]
SCHEMA_VERSION = len(_MIGRATIONS)  # the newest schema this code knows (PRAGMA user_version)
log = logging.getLogger(__name__)
_SYNCHRONOUS = {"off": "OFF", "normal": "NORMAL", "full": "FULL", "extra": "EXTRA"}


class SQLiteEngine:
    """Engine over one SQLite database file."""

    def __init__(
        self,
        path: str,
        *,
        timeout: float = 30.0,
        synchronous: str = "normal",
        make_folder: bool = False,
    ) -> None:
        if synchronous.lower() not in _SYNCHRONOUS:
            raise ValueError(f"synchronous must be one of {sorted(_SYNCHRONOUS)}")
        self.path = os.path.abspath(path)
        self._make_folder = make_folder
        self.url = f"sqlite:///{self.path}"
        self.timeout = timeout
        self._synchronous = _SYNCHRONOUS[synchronous.lower()]
        self._local = threading.local()
        self._lock = threading.Lock()
        self._migrate_lock = threading.Lock()
        self._generation = _fork.generation
        self._conns: list[sqlite3.Connection] = []
        self._inherited: list[sqlite3.Connection] = []  # a parent's, after fork: never closed
        self._migrated = False
        self._closed = False
        self._purger = sql.Purger()
        self._gate = _WriteGate(self.path + "-botwire.lock")
        _fork.renew_after_fork(self)
        self._queue: deque[tuple[Op, asyncio.AbstractEventLoop, asyncio.Future[Any]]] = deque()
        self._pools: dict[str, ThreadPoolExecutor] = {}
        self._pools_pid = os.getpid()
        self._writes = 0
        self.index_slice = INDEX_SLICE
        self.search_direct_max = sql.SEARCH_DIRECT_MAX

    def execute(self, op: Op, *, wait: bool = True) -> Any:
        """Run ``op``. ``wait=False``: raise ``GateBusy`` rather than wait for another writer."""
        kind = type(op)
        try:
            if kind is ops.Get and len(op.keys) == 1:  # type: ignore[union-attr]
                return self._get_one(op)  # type: ignore[arg-type]
            if kind is ops.Put and len(op.items) == 1 and op.if_version is None:  # type: ignore[union-attr]
                return self._put_one(op, wait)  # type: ignore[arg-type]
            if kind is ops.Search:
                return self._search(op, wait)  # type: ignore[arg-type]
            handler, mode = sql.handle(op, time.time())
            result = self._drive(handler, mode, wait)
        except sqlite3.Error as exc:
            raise StorageUnavailable(f"SQLite: {exc}") from exc
        if mode:
            self._after_writes(1, wait)
        return result

    # The two hottest ops run their one statement directly: the handler's generator, ``Stmt``
    # and the context managers cost about as much as the statement itself (BENCHMARKS.md).
    def _get_one(self, op: ops.Get) -> list[str | None]:
        row = self._connection().execute(sql.GET_ONE, (op.ns, op.keys[0], time.time())).fetchone()
        return [None if row is None else row[0]]

    def _put_one(self, op: ops.Put, wait: bool) -> list[int]:
        statement, params = sql.upsert_one(op, time.time())
        conn, gate = self._connection(), self._gate
        held = gate.enter(self.timeout if wait else None)
        try:
            version = conn.execute(statement, params).fetchone()[0]
        finally:
            gate.leave(held)
        self._after_writes(1, wait)
        return [version]

    def _after_writes(self, n: int, wait: bool) -> None:
        """Every so many writes: purge expired keys, and checkpoint the WAL in the background."""
        due = False
        for _ in range(n):  # the purger counts each write
            due = self._purger.due() or due
        if due:
            self._purge(wait)
        before, self._writes = self._writes, self._writes + n
        if before // CHECKPOINT_EVERY != self._writes // CHECKPOINT_EVERY:
            try:
                self._background().submit(self._checkpoint)
            except (RuntimeError, StorageUnavailable):  # closing: the last close checkpoints
                pass

    def _purge(self, wait: bool) -> None:
        """Best effort: a purge that fails (say, the database is busy) waits for the next one."""
        try:
            self._drive(sql.purge(time.time(), self._purger.batch), sql.TXN, wait)
        except (sqlite3.Error, GateBusy) as exc:
            log.debug("purge of expired keys skipped: %s", exc)

    def _checkpoint(self) -> None:
        """Apply the search index's queue, then copy the WAL into the database, off the
        writers' path. PASSIVE never blocks them; connections do not checkpoint on their own
        (``wal_autocheckpoint=0``), which used to stall one write in a thousand for
        milliseconds."""
        try:
            self._index_pending()  # the search index catches up
            self._merge_index()
        except (sqlite3.Error, StorageUnavailable) as exc:
            log.debug("search indexing postponed: %s", exc)
        try:
            self._connection().execute("PRAGMA wal_checkpoint(PASSIVE)")
        except (sqlite3.Error, StorageUnavailable) as exc:
            log.debug("WAL checkpoint skipped: %s", exc)

    def _search(self, op: ops.Search, wait: bool) -> list[ops.Hit]:
        """A small namespace is ranked directly. A large one through the FTS5 indexes, once
        they hold all of its rows; when they lack more than ``INDEX_INLINE`` slices of them
        (a namespace that just grew, or was imported) this search ranks it directly, up to
        ``DIRECT_FALLBACK_MAX`` documents, and the background indexes it."""
        if not op.terms:
            return []
        conn, now = self._connection(), time.time()
        rows = self._search_direct(conn, op, now, self.search_direct_max)
        if rows is None:
            if not self._catch_up(op.ns, wait, INDEX_INLINE):
                rows = self._search_direct(conn, op, now, DIRECT_FALLBACK_MAX)
                self._index_later()
                if rows is None:  # too large to rank directly: index it all first (once)
                    self._catch_up(op.ns, wait)
            if rows is None:
                rows = _run(conn, sql.sqlite_search(op.ns, op.terms, op.limit, now, op.internal))
        return [ops.Hit(*r) for r in rows]

    def _search_direct(
        self, conn: sqlite3.Connection, op: ops.Search, now: float, most: int
    ) -> Any:
        if getattr(self._local, "scratch", None) is not conn:
            conn.execute(sql.SQLITE_SCRATCH)
            self._local.scratch = conn
        handler = sql.sqlite_search_direct(op.ns, op.terms, op.limit, now, most, op.internal)
        conn.execute("BEGIN")  # one snapshot; the rollback empties the scratch index
        try:
            return sql.drive(handler, partial(_run, conn))
        finally:
            conn.execute("ROLLBACK")

    def _catch_up(self, ns: str, wait: bool = True, slices: int = 1_000_000) -> bool:
        """Index what the index lacks of ``ns`` (registering it as one the index serves),
        ``index_slice`` rows per write transaction (other writers get the gate between
        slices), at most ``slices`` of them. Returns whether the index now holds all of it."""
        if not self._drive(sql.sqlite_pending(ns), sql.READ):
            return True
        for _ in range(slices):
            if self._closed:
                return False
            done = self._drive(sql.sqlite_index_namespace(ns, self.index_slice), sql.TXN, wait)
            if done < self.index_slice:
                return True
        return False

    def _index_pending(self, wait: bool = True) -> None:
        """Forget the queued documents, then index what the namespaces the index serves lack,
        ``index_slice`` per write transaction. Stops early when the engine closes."""
        while not self._closed:
            if self._drive(sql.sqlite_forget_queued(self.index_slice), sql.TXN, wait) < (
                self.index_slice
            ):
                break
        for ns in self._drive(sql.sqlite_served_pending(), sql.READ):
            if self._closed:
                return
            self._catch_up(ns, wait)

    def _index_later(self) -> None:
        with suppress(RuntimeError, StorageUnavailable):
            self._background().submit(self._checkpoint)

    def _merge_index(self) -> None:
        """Merge the FTS5 indexes' segments (each slice of the queue adds one) in steps of
        ``INDEX_MERGE_PAGES`` pages, one write transaction each, until FTS5 finds nothing
        worth merging. Stops early when the engine closes."""
        conn = self._connection()
        for table in _FTS_TABLES:
            merge = f"INSERT INTO {table} ({table}, rank) VALUES ('merge', ?)"
            for _ in range(10_000):  # a bound, far above what 1000 writes need
                if self._closed:
                    return
                with self._gate(self.timeout):
                    before = conn.total_changes
                    conn.execute(merge, (INDEX_MERGE_PAGES,))
                    if conn.total_changes - before <= 1:  # no work done: the statement alone
                        break

    async def aexecute(self, op: Op) -> Any:
        if self._migrated and _is_point_read(op):
            # One short indexed read in WAL mode (never blocked by writers): shorter than a
            # thread hop.
            return self.execute(op)
        mode = sql.handle_mode(op)
        if mode == sql.READ:
            return await asyncio.to_thread(self.execute, op)
        if mode == sql.ATOMIC and self._migrated:
            try:  # one statement and the gate is free: done in microseconds, no thread hop
                return self.execute(op, wait=False)
            except GateBusy:
                pass
        # Otherwise writes queue for one writer thread per engine, so the event loop never
        # waits for the gate, and whatever queued meanwhile commits together (group commit).
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._queue.append((op, loop, future))
        self._writer().submit(self._drain)
        return await future

    def _drain(self) -> None:
        """On the writer thread: take the gate, then commit every queued write at once."""
        batch: list[tuple[Op, asyncio.AbstractEventLoop, asyncio.Future[Any]]] = []
        try:
            conn = self._connection()  # before the gate: opening may migrate, which takes it
            with self._gate(self.timeout):
                batch = self._take()
                if not batch:
                    return
                outcomes = self._commit_group(conn, [op for op, _, _ in batch])
        except (sqlite3.Error, StorageUnavailable) as exc:  # the whole group failed
            batch = batch or self._take()
            error = exc if isinstance(exc, StorageUnavailable) else StorageUnavailable(
                f"SQLite: {exc}"
            )
            outcomes = [error] * len(batch)
        for (_, loop, future), outcome in zip(batch, outcomes, strict=True):
            loop.call_soon_threadsafe(_settle, future, outcome)
        if batch:
            self._after_writes(len(batch), wait=True)

    def _take(self) -> list[tuple[Op, asyncio.AbstractEventLoop, asyncio.Future[Any]]]:
        batch = []
        while True:
            try:
                batch.append(self._queue.popleft())
            except IndexError:
                return batch

    def _commit_group(self, conn: sqlite3.Connection, group: list[Op]) -> list[Any]:
        """Run each op in its own savepoint, commit once; each op's result or exception.
        Answers go out only after the commit, so each is as durable as a lone write."""
        run = partial(_run, conn)
        outcomes: list[Any] = []
        conn.execute("BEGIN IMMEDIATE")
        try:
            for op in group:
                outcomes.append(self._in_savepoint(conn, op, run))
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        return outcomes

    @staticmethod
    def _in_savepoint(conn: sqlite3.Connection, op: Op, run: Any) -> Any:
        handler, _ = sql.handle(op, time.time())
        conn.execute("SAVEPOINT botwire_op")
        try:
            result = sql.drive(handler, run)
        except Exception as exc:  # this op fails alone: undo its statements, keep the others
            conn.execute("ROLLBACK TO botwire_op")
            conn.execute("RELEASE botwire_op")
            if isinstance(exc, sqlite3.Error):
                return StorageUnavailable(f"SQLite: {exc}")
            return exc
        conn.execute("RELEASE botwire_op")
        return result

    def _writer(self) -> ThreadPoolExecutor:
        return self._pool("writer")

    def _background(self) -> ThreadPoolExecutor:
        return self._pool("checkpoint")

    def _pool(self, name: str) -> ThreadPoolExecutor:
        pool = self._pools.get(name)
        if pool is None or self._pools_pid != os.getpid():
            with self._lock:
                if self._closed:
                    raise StorageUnavailable(f"the engine for {self.url} is closed")
                if self._pools_pid != os.getpid():  # forked: the parent's threads are gone
                    self._pools, self._pools_pid = {}, os.getpid()
                pool = self._pools.get(name)
                if pool is None:
                    pool = self._pools[name] = ThreadPoolExecutor(1, f"botwire-sqlite-{name}")
        return pool

    def close(self) -> None:
        with self._lock:
            self._closed = True
            conns, self._conns = self._conns, []
            pools, self._pools = self._pools, {}
        if self._pools_pid == os.getpid():
            for pool in pools.values():
                pool.shutdown(wait=True)
        self._gate.close()
        for conn in conns:
            conn.close()

    async def aclose(self) -> None:
        self.close()

    def _drive(self, handler: sql.Handler, mode: int, wait: bool = True) -> Any:
        run = partial(_run, self._connection())
        if mode == sql.READ:
            return sql.drive(handler, run)
        with self._gate(self.timeout if wait else None):
            return self._write(handler, mode, run)

    def _write(self, handler: sql.Handler, mode: int, run: Any) -> Any:
        if mode != sql.TXN:  # a lone write statement takes the write lock at its start
            return sql.drive(handler, run)
        conn = run.args[0]
        conn.execute("BEGIN IMMEDIATE")
        try:
            result = sql.drive(handler, run)
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        return result

    def _after_fork(self) -> None:
        """In a child right after fork: locks of our own (a parent's thread may hold these)."""
        self._lock, self._migrate_lock = threading.Lock(), threading.Lock()
        self._gate._after_fork()

    def _connection(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None or self._generation != _fork.generation:
            conn = self._open()
            self._local.conn = conn
        return conn

    def _open(self) -> sqlite3.Connection:
        with self._lock:
            if self._closed:
                raise StorageUnavailable(f"the engine for {self.url} is closed")
            if self._generation != _fork.generation:  # forked: leave the parent's alone
                self._inherited += self._conns
                self._conns, self._generation = [], _fork.generation
            _create_private(self.path, self._make_folder)
            conn = sqlite3.connect(
                self.path, timeout=self.timeout, isolation_level=None, check_same_thread=False
            )
            self._conns.append(conn)
        for pragma in (
            f"PRAGMA synchronous={self._synchronous}",
            "PRAGMA temp_store=MEMORY",
            "PRAGMA mmap_size=268435456",
            "PRAGMA cache_size=-16000",
            "PRAGMA wal_autocheckpoint=0",  # checkpoints run in the background instead
        ):
            conn.execute(pragma)
        if not self._migrated:
            with self._migrate_lock:  # one thread migrates; the others wait for it
                if not self._migrated:
                    with self._gate(self.timeout):  # as every writer, other processes too
                        _migrate(conn, self.timeout)
                    self._migrated = True
                    self._catch_up_later(conn)
        return conn

    def _catch_up_later(self, conn: sqlite3.Connection) -> None:
        """Short-lived processes may leave queued documents to forget behind (the background
        forgets them every ``CHECKPOINT_EVERY`` writes): a long queue is applied in the
        background."""
        lo, hi = conn.execute("SELECT min(id), max(id) FROM botwire_fts_queue").fetchone()
        if lo is not None and hi - lo >= CHECKPOINT_EVERY:
            self._index_later()


def _create_private(path: str, make_folder: bool) -> None:
    """Create the database file readable by its owner only (SQLite gives its ``-wal`` and
    ``-shm`` files the same mode), and its folder (owner only) when asked to. An existing file
    or folder is left as it is."""
    try:
        if make_folder:
            os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        if os.path.isdir(path):  # SQLite would say only "unable to open database file"
            raise ConfigurationError(
                f"the SQLite path {path!r} is a folder, not a file: name the database file in it"
            ) from None
    except IsADirectoryError:
        raise ConfigurationError(f"the SQLite path {path!r} is a folder, not a file") from None
    except OSError as exc:
        raise StorageUnavailable(f"cannot create the SQLite file {path}: {exc}") from exc


class _WriteGate:
    """Writers of one file take turns here before SQLite's own lock: a lock for this
    process's threads, then an ``flock`` on a file beside the database for other processes.
    A waiting writer is let in as soon as the gate opens, where SQLite's busy handler sleeps
    1, 2, 5 ... 100 ms between tries (the long tail of concurrent writes). Without ``fcntl``
    (Windows) only threads queue here. Writers that are not botwire still meet SQLite's lock.

    Fairness between processes: a writer that has to wait marks itself (a shared ``flock`` on
    a second file); a writer that would only go in if the gate is free (``timeout=None``)
    steps aside while anyone is marked, so a busy process cannot keep the gate to itself.
    """

    _setup = threading.Lock()

    def __init__(self, path: str) -> None:
        self.path = path
        # generation, thread lock, gate fd, waiters fd
        self._state: tuple[int, threading.Lock, int, int] | None = None

    def _ready(self) -> tuple[threading.Lock, int, int]:
        state = self._state
        if state is None or state[0] != _fork.generation:
            with self._setup:  # after a fork: a lock and file descriptors of our own
                state = self._state
                if state is None or state[0] != _fork.generation:
                    gate, waiters = _open_lock(self.path), _open_lock(self.path + "-waiters")
                    if gate < 0 or waiters < 0:
                        gate = waiters = -1
                    state = self._state = (_fork.generation, threading.Lock(), gate, waiters)
        return state[1], state[2], state[3]

    def _after_fork(self) -> None:
        type(self)._setup = threading.Lock()

    def close(self) -> None:
        with self._setup:
            state, self._state = self._state, None
        if state is not None and state[0] == _fork.generation:
            for fd in state[2:]:
                if fd >= 0:
                    os.close(fd)

    @contextmanager
    def __call__(self, timeout: float | None) -> Iterator[None]:
        """Hold the gate; ``timeout=None``: only if it is free now, else ``GateBusy``."""
        held = self.enter(timeout)
        try:
            yield
        finally:
            self.leave(held)

    def enter(self, timeout: float | None) -> tuple[threading.Lock, int]:
        """Take the gate (as ``__call__``); give what it returns to ``leave``."""
        lock, fd, waiters = self._ready()
        if timeout is None:
            if not lock.acquire(blocking=False):
                raise GateBusy("another thread is writing")
        elif not lock.acquire(timeout=timeout):
            raise sqlite3.OperationalError("database is locked (by another thread)")
        try:
            return lock, (fd if fd >= 0 and _flock(fd, waiters, timeout) else -1)
        except BaseException:
            lock.release()
            raise

    @staticmethod
    def leave(held: tuple[threading.Lock, int]) -> None:
        lock, fd = held
        try:
            if fd >= 0:
                with suppress(OSError):  # closed meanwhile by close(): already unlocked
                    fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            lock.release()


class GateBusy(Exception):
    """The write gate is held and the caller chose not to wait."""


def _open_lock(path: str) -> int:
    if fcntl is None:
        return -1
    try:
        return os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError:
        return -1  # an unwritable folder: SQLite's own lock still guards the data


def _flock(fd: int, waiters: int, timeout: float | None) -> bool:
    if timeout is None:  # go in only if the gate is free and nobody is waiting for it
        try:
            fcntl.flock(waiters, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise GateBusy("other processes are waiting to write") from None
        fcntl.flock(waiters, fcntl.LOCK_UN)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise GateBusy("another process is writing") from None
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        pass
    fcntl.flock(waiters, fcntl.LOCK_SH)  # "someone is waiting": held for microseconds at most
    try:
        deadline, pause = time.monotonic() + timeout, 0.00005
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return True
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise sqlite3.OperationalError(
                        "database is locked (by another process)"
                    ) from None
                time.sleep(pause)  # short naps: a writer holds the gate for microseconds
                pause = min(pause * 2, 0.0005)
    finally:
        fcntl.flock(waiters, fcntl.LOCK_UN)


def _migrate(conn: sqlite3.Connection, timeout: float) -> None:
    _use_wal(conn, timeout)
    found = conn.execute("PRAGMA user_version").fetchone()[0]
    if found >= SCHEMA_VERSION:
        sql.check_schema(found, SCHEMA_VERSION)
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        current = conn.execute("PRAGMA user_version").fetchone()[0]
        sql.check_schema(current, SCHEMA_VERSION)
        for version, statements in enumerate(_MIGRATIONS[current:], start=current + 1):
            for statement in statements:
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version={version}")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def _use_wal(conn: sqlite3.Connection, timeout: float) -> None:
    """Switch the file to WAL. The switch does not wait for the busy timeout by itself
    (another process may be creating the same fresh file), so wait here."""
    deadline, pause = time.monotonic() + timeout, 0.001
    while True:
        try:
            if conn.execute("PRAGMA journal_mode").fetchone()[0].lower() == "wal":
                return
            if conn.execute("PRAGMA journal_mode=WAL").fetchone()[0].lower() == "wal":
                return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) and "busy" not in str(exc):
                raise
        if time.monotonic() >= deadline:
            raise sqlite3.OperationalError("database is locked: could not switch it to WAL")
        time.sleep(pause)
        pause = min(pause * 2, 0.05)


def _run(conn: sqlite3.Connection, stmt: sql.Stmt) -> Any:
    if stmt.many:
        return conn.executemany(stmt.sql, stmt.params).rowcount
    cur = conn.execute(stmt.sql, stmt.params)
    return cur.rowcount if cur.description is None else cur.fetchall()
