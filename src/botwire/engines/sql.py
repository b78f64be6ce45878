"""SQL shared by the SQLite and PostgreSQL engines, written once.

Each operation has a *handler*: a generator that yields ``Stmt`` records and receives, for each,
the fetched rows (a statement with a result) or the row count (one without). It returns the
operation's result. The engines only drive handlers: open a transaction where the handler needs
one (``TXN``), execute each statement, send the answer back. Sync and async drivers step the same
generators, so no logic exists twice (the pattern of ``httpx.Auth.auth_flow``).

Statements use ``?`` placeholders; the PostgreSQL engine rewrites them to ``%s`` once per text.
Both databases compare text by code point here (SQLite's BINARY collation on UTF-8, PostgreSQL's
``COLLATE "C"``), which is also Python's ``str`` order.

Versions are per key and only go up, even across a delete: an existing row's version is
``version + 1``, computed in the writing statement; a new row starts one above its namespace's
*floor*, the highest version ever removed from that namespace (raised by ``delete``, ``clear``
and the purge of expired keys, never by ``set``), so a reader's old version is never handed out
again. Compare-and-set is a conditional ``UPDATE`` (or an ``INSERT ... ON CONFLICT`` that only
replaces an expired row): the database re-checks the condition under its row lock, so exactly
one of several racing writers wins. Multi-row writes lock rows in key order, the order ``forget``
and ``clear`` use, so two of them never deadlock.

``/*FOR UPDATE*/`` marks a read that should lock its rows: PostgreSQL's engine turns it into
``FOR UPDATE``; SQLite, whose writers are serialized by ``BEGIN IMMEDIATE``, ignores the comment.
"""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Generator
from typing import Any, Callable, NamedTuple

from .. import _search
from .._codec import decode
from ..errors import (
    ConfigurationError,
    NamespaceNotEmpty,
    StorageUnavailable,
    UnsupportedValue,
    VersionConflict,
)
from . import base as ops
from .base import Entry, Row, adrive, drive  # noqa: F401  (the engines' drivers)


def check_schema(found: int, known: int) -> None:
    """Refuse a database a newer botwire has migrated: this code would misread what it keeps."""
    if found > known:
        raise ConfigurationError(
            f"the database's schema is version {found}, newer than this botwire knows "
            f"({known}): a newer botwire has used it. Upgrade botwire here, or restore a "
            "backup made before the upgrade (docs/deploy.md, Upgrades)"
        )


class Stmt(NamedTuple):
    sql: str
    params: Any = ()
    many: bool = False
    # False: plan this statement for its parameters every time. A server-side prepared
    # statement's generic plan for ``key IN (...)`` scans the whole namespace on PostgreSQL.
    prepare: bool = True


Handler = Generator[Stmt, Any, Any]

_LIVE = "(expires_at IS NULL OR expires_at > ?)"
# Leaves out botwire's own names, those starting with "~" (base.INTERNAL): "~" is U+007E, so
# they are exactly the range ["~", U+007F).
_VISIBLE = "NOT ({col} >= '~' AND {col} < '\x7f')"
_COLS = "key, {value}, version, created_at, updated_at, expires_at, size"
_META = _COLS.format(value="NULL")

_EXPIRED = "botwire_kv.expires_at IS NOT NULL AND botwire_kv.expires_at <= excluded.updated_at"
_SET = (
    "value = excluded.value, updated_at = excluded.updated_at, expires_at = excluded.expires_at, "
    "size = excluded.size, version = botwire_kv.version + 1, "
    f"created_at = CASE WHEN {_EXPIRED} THEN excluded.created_at ELSE botwire_kv.created_at END"
)
# Parameters: ns, key, value, ns, created_at, updated_at, expires_at, size.
_ROW = "(?, ?, ?, COALESCE((SELECT floor FROM botwire_namespaces WHERE ns = ?), 0) + 1, ?, ?, ?, ?)"
_INTO = "INSERT INTO botwire_kv (ns, key, value, version, created_at, updated_at, expires_at, size)"
_ON_CONFLICT = " ON CONFLICT (ns, key) DO UPDATE SET "
_INSERT = f"{_INTO} VALUES {_ROW}{_ON_CONFLICT}"
_UPSERT = _INSERT + _SET
_UPSERT_ONE = _UPSERT + " RETURNING version"
# Only replaces a row that has expired: "set if absent".
_CREATE = _INSERT + _SET + " WHERE botwire_kv.expires_at IS NOT NULL AND botwire_kv.expires_at <= ?"
_REPLACE = (
    "UPDATE botwire_kv SET value = ?, version = version + 1, updated_at = ?, expires_at = ?, "
    f"size = ? WHERE ns = ? AND key = ? AND version = ? AND {_LIVE} RETURNING version"
)
_RAISE_FLOOR = (
    "INSERT INTO botwire_namespaces (ns, floor) VALUES (?, ?) ON CONFLICT (ns) DO UPDATE SET "
    "floor = CASE WHEN excluded.floor > botwire_namespaces.floor THEN excluded.floor "
    "ELSE botwire_namespaces.floor END"
)
GET_ONE = f"SELECT value FROM botwire_kv WHERE ns = ? AND key = ? AND {_LIVE}"
_VERSION = f"SELECT version FROM botwire_kv WHERE ns = ? AND key = ? AND {_LIVE}"
_LOG_ID = "(SELECT id FROM botwire_logs WHERE ns = ? AND name = ?)"
_IN_CHUNK = 500
_INCR_TRIES = 1000


class Purger:
    """Says when a write should be followed by a small purge of expired keys."""

    def __init__(self, every_writes: int = 500, every_seconds: float = 60.0, batch: int = 500):
        self.every_writes, self.every_seconds, self.batch = every_writes, every_seconds, batch
        self._writes = 0
        self._last = time.monotonic()

    def due(self) -> bool:
        self._writes += 1
        if self._writes < self.every_writes:  # the clock is read every 64th write only
            if self._writes % 64 or time.monotonic() - self._last < self.every_seconds:
                return False
        self._writes, self._last = 0, time.monotonic()
        return True


# How a handler must be run.
READ = 0  # reads only: no transaction
ATOMIC = 1  # one statement writes (others only read or report): autocommit is atomic enough
TXN = 2  # several writes that must commit together: a write transaction


def handle_mode(op: ops.Op) -> int:
    """How ``op`` will run (``READ``, ``ATOMIC`` or ``TXN``), without building its handler."""
    mode = _HANDLERS[type(op)][1]
    if mode < 0:
        return ATOMIC if len(op.items) == 1 else TXN  # type: ignore[union-attr]
    return mode


def handle(op: ops.Op, now: float, postgres: bool = False) -> tuple[Handler, int]:
    """The handler for ``op`` and how to run it (``READ``, ``ATOMIC`` or ``TXN``).
    ``postgres``: where PostgreSQL does in one statement what SQLite needs several for."""
    if postgres:
        if type(op) is ops.Batch and one_statement(op):
            return batch_one(op, now), READ
        one = _ONE_STATEMENT.get(type(op))
        if one is not None and (type(op) is not ops.Append or len(op.entries) <= _IN_CHUNK):  # type: ignore[attr-defined]
            return one(op, now), ATOMIC
    handler, mode = _HANDLERS[type(op)]
    if mode < 0:  # a Put: one item is one statement
        mode = ATOMIC if len(op.items) == 1 else TXN  # type: ignore[union-attr]
    return handler(op, now), mode


def upsert_one(op: ops.Put, now: float) -> tuple[str, tuple[Any, ...]]:
    """The statement of a one-item ``Put`` without ``if_version``: one row, ``RETURNING
    version``. The handler yields it; the SQLite engine runs it directly (its hot path)."""
    ((key, text),) = op.items
    expires = None if op.ttl is None else now + op.ttl
    return _UPSERT_ONE, (op.ns, key, text, op.ns, now, now, expires, _size(text))


def together(op: ops.Batch, now: float, postgres: bool = False) -> list[Handler]:
    """The handlers of a ``Batch``'s reads, to be stepped side by side."""
    return [handle(sub, now, postgres)[0] for sub in ops.batch_ops(op)]


# PostgreSQL answers a Batch of key scans and newest-entries reads (the call-start reads) in one
# statement: each read's own statement is a branch of a UNION ALL, its rows tagged with the
# read's place and numbered in their order, in seven columns that every branch fills alike.
# Each read's handler is then given its own rows: the answers are the handlers' own.
_BRANCH = {
    ops.Scan: "s.key, s.value, s.version, s.created_at, s.updated_at, s.expires_at, s.size",
    ops.Read: "NULL, s.value, s.seq, s.ts, NULL, NULL, NULL",
}


def _branch_row(kind: type, row: tuple[Any, ...]) -> tuple[Any, ...]:
    return row if kind is ops.Scan else (row[2], row[1], row[3])  # Read: seq, value, ts


def one_statement(op: ops.Batch) -> bool:
    """Whether PostgreSQL can answer ``op`` in one statement (``batch_one``)."""
    return bool(op.ops) and all(
        (type(sub) is ops.Scan and sub.values) or (type(sub) is ops.Read and sub.last is not None)
        for sub in op.ops
    )


def batch_one(op: ops.Batch, now: float) -> Handler:
    handlers = together(op, now, postgres=True)
    parts, params = [], []
    for i, (sub, handler) in enumerate(zip(op.ops, handlers, strict=True)):
        stmt = next(handler)
        parts.append(
            f"SELECT {i} AS i, row_number() OVER () AS n, {_BRANCH[type(sub)]} FROM ({stmt.sql}) s"
        )
        params += stmt.params
    rows = yield Stmt(" UNION ALL ".join(parts) + " ORDER BY i, n", tuple(params))
    mine: list[list[tuple[Any, ...]]] = [[] for _ in op.ops]
    for row in rows:
        mine[row[0]].append(_branch_row(type(op.ops[row[0]]), row[2:]))
    results = []
    for handler, rows_of in zip(handlers, mine, strict=True):
        try:
            handler.send(rows_of)
        except StopIteration as stop:
            results.append(stop.value)
        else:
            raise RuntimeError("a batched read asked for a second statement")
    return results


def batch(op: ops.Batch, now: float) -> Handler:
    """A ``Batch`` one read after the other (where a round trip costs nothing: SQLite)."""
    results = []
    for handler in together(op, now):
        results.append((yield from handler))
    return results


def get(op: ops.Get, now: float) -> Handler:
    if len(op.keys) == 1:
        rows = yield Stmt(GET_ONE, (op.ns, op.keys[0], now))
        return [rows[0][0] if rows else None]
    found = dict((yield from _select_in("key, value", op.ns, op.keys, now)))
    return [found.get(k) for k in op.keys]


def info(op: ops.Info, now: float) -> Handler:
    cols = _COLS.format(value="value") if op.values else _META
    if len(op.keys) == 1:  # one key (the server's GET): a statement PostgreSQL keeps prepared
        rows = yield Stmt(_info_one(cols), (op.ns, op.keys[0], now))
        return [Row._make(rows[0]) if rows else None]
    found = {r[0]: Row._make(r) for r in (yield from _select_in(cols, op.ns, op.keys, now))}
    return [found.get(k) for k in op.keys]


@functools.lru_cache(maxsize=2)
def _info_one(cols: str) -> str:
    return f"SELECT {cols} FROM botwire_kv WHERE ns = ? AND key = ? AND {_LIVE}"


def _select_in(cols: str, ns: str, keys: tuple[str, ...], now: float) -> Handler:
    rows: list[Any] = []
    for start in range(0, len(keys), _IN_CHUNK):
        chunk = keys[start : start + _IN_CHUNK]
        marks = ", ".join("?" * len(chunk))
        sql = f"SELECT {cols} FROM botwire_kv WHERE ns = ? AND key IN ({marks}) AND {_LIVE}"
        rows += yield Stmt(sql, (ns, *chunk, now), prepare=False)
    return rows


def put(op: ops.Put, now: float) -> Handler:
    if not op.items:
        return []
    expires = None if op.ttl is None else now + op.ttl
    if op.if_version is not None:
        ((key, text),) = op.items
        return [(yield from _put_if(op.ns, key, text, expires, op.if_version, now))]
    if len(op.items) == 1:
        rows = yield Stmt(*upsert_one(op, now))
        return [rows[0][0]]
    items = sorted(op.items)  # lock order: by key
    found: dict[str, int] = {}
    for start in range(0, len(items), _IN_CHUNK):  # one multi-row statement per chunk
        chunk = items[start : start + _IN_CHUNK]
        params = [p for k, t in chunk for p in (op.ns, k, t, op.ns, now, now, expires, _size(t))]
        rows = yield Stmt(_upsert_rows(len(chunk)), params, prepare=False)
        found.update(rows)
    return [found[k] for k, _ in op.items]


@functools.lru_cache(maxsize=8)
def _upsert_rows(n: int) -> str:
    rows = ", ".join([_ROW] * n)
    return f"{_INTO} VALUES {rows}{_ON_CONFLICT}{_SET} RETURNING key, version"


def _put_if(
    ns: str, key: str, text: str, expires: float | None, expected: int, now: float
) -> Handler:
    """Compare-and-set; returns the new version or raises ``VersionConflict``."""
    if expected == 0:
        rows = yield Stmt(
            _CREATE + " RETURNING version", (ns, key, text, ns, now, now, expires, _size(text), now)
        )
    else:
        rows = yield Stmt(_REPLACE, (text, now, expires, _size(text), ns, key, expected, now))
    if rows:
        return rows[0][0]
    current = yield Stmt(_VERSION, (ns, key, now))
    raise VersionConflict(key, expected, current[0][0] if current else 0)


def incr(op: ops.Incr, now: float) -> Handler:
    for _ in range(_INCR_TRIES):  # retried only when two writers create the key at once
        rows = yield Stmt(
            "SELECT value, version, expires_at FROM botwire_kv "
            f"WHERE ns = ? AND key = ? AND {_LIVE} /*FOR UPDATE*/",
            (op.ns, op.key, now),
        )
        current, version, expires = (decode(rows[0][0]), *rows[0][1:]) if rows else (0, 0, None)
        if type(current) is not int:
            raise UnsupportedValue(
                f"incr needs an int, but {op.key!r} holds a {type(current).__name__}; "
                "nothing changed"
            )
        value = current + op.by
        try:
            yield from _put_if(op.ns, op.key, str(value), expires, version, now)
        except VersionConflict:
            continue
        return value
    raise StorageUnavailable(f"incr on {op.key!r} kept losing to other writers; try again")


# PostgreSQL: incr as one INSERT ... ON CONFLICT DO UPDATE whose arithmetic the database does on
# the locked row (numeric, so any int is exact), a live key's TTL kept, an expired one replaced.
# Parameters: ns, key, value, ns, created_at, updated_at, expires_at, size (as _ROW), by, by.
_INT_TEXT = "'^-{0,1}[0-9]+$'"  # JSON text of an int, as the codec writes it
_SUM = "(botwire_kv.value::numeric + ?)::text"
_INCR_ONE = (
    f"{_INSERT}value = CASE WHEN {_EXPIRED} THEN excluded.value ELSE {_SUM} END, "
    "updated_at = excluded.updated_at, version = botwire_kv.version + 1, "
    f"expires_at = CASE WHEN {_EXPIRED} THEN NULL ELSE botwire_kv.expires_at END, "
    f"size = CASE WHEN {_EXPIRED} THEN excluded.size ELSE octet_length({_SUM}) END, "
    f"created_at = CASE WHEN {_EXPIRED} THEN excluded.created_at ELSE botwire_kv.created_at END "
    f"WHERE {_EXPIRED} OR botwire_kv.value ~ {_INT_TEXT} RETURNING value"
)


def incr_one(op: ops.Incr, now: float) -> Handler:
    text = str(op.by)
    params = (op.ns, op.key, text, op.ns, now, now, None, len(text), op.by, op.by)
    rows = yield Stmt(_INCR_ONE, params)
    if rows:
        return int(rows[0][0])
    held = yield Stmt(GET_ONE, (op.ns, op.key, now))
    kind = type(decode(held[0][0])).__name__ if held else "value"
    raise UnsupportedValue(f"incr needs an int, but {op.key!r} holds a {kind}; nothing changed")


def append_one(op: ops.Append, now: float) -> Handler:
    """PostgreSQL: the log row's numbers taken and the entries written in one statement."""
    n = len(op.entries)
    if n == 0:
        return []
    rows = ", ".join(["(?::bigint, ?, ?::integer)"] * n)
    params: list[Any] = [op.ns, op.log, n, n, n, now]
    for i, text in enumerate(op.entries, 1):
        params += (i, text, _size(text))
    found = yield Stmt(
        "WITH l AS (INSERT INTO botwire_logs (ns, name, last_seq, entry_count) "
        "VALUES (?, ?, ?, ?) ON CONFLICT (ns, name) DO UPDATE SET "
        "last_seq = botwire_logs.last_seq + excluded.last_seq, "
        "entry_count = botwire_logs.entry_count + excluded.entry_count RETURNING id, last_seq), "
        "e AS (INSERT INTO botwire_entries (log_id, seq, value, ts, size) "
        "SELECT l.id, l.last_seq - ? + v.i, v.value, ?, v.size "
        f"FROM l, (VALUES {rows}) AS v (i, value, size)) "
        "SELECT last_seq FROM l",
        params,
        prepare=n == 1,
    )
    last = found[0][0]
    return list(range(last - n + 1, last + 1))


_ONE_STATEMENT: dict[type, Callable[[Any, float], Handler]] = {
    ops.Incr: incr_one,
    ops.Append: append_one,
}


def delete(op: ops.Delete, now: float) -> Handler:
    if op.if_version is not None:
        return (yield from _delete_if(op.ns, op.key, op.if_version, now))
    rows = yield Stmt(
        "DELETE FROM botwire_kv WHERE ns = ? AND key = ? RETURNING version, expires_at",
        (op.ns, op.key),
    )
    if not rows:
        return False
    version, expires = rows[0]
    yield Stmt(_RAISE_FLOOR, (op.ns, version))
    return expires is None or expires > now


def _delete_if(ns: str, key: str, expected: int, now: float) -> Handler:
    """Delete the key only while it is live at ``expected``, else ``VersionConflict``."""
    rows = yield Stmt(
        f"DELETE FROM botwire_kv WHERE ns = ? AND key = ? AND version = ? AND {_LIVE} "
        "RETURNING version",
        (ns, key, expected, now),
    )
    if not rows:
        current = yield Stmt(_VERSION, (ns, key, now))
        raise VersionConflict(key, expected, current[0][0] if current else 0)
    yield Stmt(_RAISE_FLOOR, (ns, expected))
    return True


def hides_internal(prefix: str, internal: bool) -> bool:
    """Whether a listing leaves out names starting with "~": unless asked for, by ``internal``
    or by a ``prefix`` that starts with "~"."""
    return not (internal or prefix.startswith(ops.INTERNAL))


def _visible(col: str, hide: bool) -> str:
    return f" AND {_VISIBLE.format(col=col)}" if hide else ""


def scan(op: ops.Scan, now: float) -> Handler:
    cols = _COLS.format(value="value" if op.values else "NULL")
    upper = prefix_upper(op.prefix)
    sql = f"SELECT {cols} FROM botwire_kv WHERE ns = ? AND key >= ? AND key > ?"
    params: tuple[Any, ...] = (op.ns, op.prefix, op.after or "")
    if upper is not None:
        sql += " AND key < ?"
        params += (upper,)
    sql += _visible("key", hides_internal(op.prefix, op.internal))
    rows = yield Stmt(f"{sql} AND {_LIVE} ORDER BY key LIMIT ?", (*params, now, op.limit))
    return [Row._make(r) for r in rows]


def count(op: ops.Count, now: float) -> Handler:
    hide = _visible("key", not op.internal)
    sql = f"SELECT count(*) FROM botwire_kv WHERE ns = ? AND {_LIVE}{hide}"
    rows = yield Stmt(sql, (op.ns, now))
    return rows[0][0]


def clear(op: ops.Clear, now: float) -> Handler:
    rows = yield Stmt(
        f"SELECT count(CASE WHEN {_LIVE} THEN 1 END), max(version) FROM botwire_kv WHERE ns = ?",
        (now, op.ns),
    )
    live, highest = rows[0]
    if highest is not None:
        yield Stmt(_RAISE_FLOOR, (op.ns, highest))
        yield Stmt("DELETE FROM botwire_kv WHERE ns = ?", (op.ns,))
    return live


def append(op: ops.Append, now: float) -> Handler:
    n = len(op.entries)
    if n == 0:
        return []
    rows = yield Stmt(
        "INSERT INTO botwire_logs (ns, name, last_seq, entry_count) VALUES (?, ?, ?, ?) "
        "ON CONFLICT (ns, name) DO UPDATE SET "
        "last_seq = botwire_logs.last_seq + excluded.last_seq, "
        "entry_count = botwire_logs.entry_count + excluded.entry_count RETURNING id, last_seq",
        (op.ns, op.log, n, n),
    )
    log_id, last = rows[0]
    seqs = list(range(last - n + 1, last + 1))
    sql = "INSERT INTO botwire_entries (log_id, seq, value, ts, size) VALUES (?, ?, ?, ?, ?)"
    params = [
        (log_id, seq, text, now, _size(text)) for seq, text in zip(seqs, op.entries, strict=True)
    ]
    if n == 1:
        yield Stmt(sql, params[0])
    else:
        yield Stmt(sql, params, many=True)
    return seqs


def read(op: ops.Read, now: float) -> Handler:
    sql = f"SELECT seq, value, ts FROM botwire_entries WHERE log_id = {_LOG_ID}"
    if op.last is not None:
        rows = yield Stmt(f"{sql} ORDER BY seq DESC LIMIT ?", (op.ns, op.log, op.last))
        return [Entry(*r) for r in reversed(rows)]
    rows = yield Stmt(
        f"{sql} AND seq > ? ORDER BY seq LIMIT ?", (op.ns, op.log, op.after, op.limit)
    )
    return [Entry(*r) for r in rows]


def log_count(op: ops.LogCount, now: float) -> Handler:
    rows = yield Stmt(
        "SELECT entry_count FROM botwire_logs WHERE ns = ? AND name = ?", (op.ns, op.log)
    )
    return rows[0][0] if rows else 0


def log_clear(op: ops.LogClear, now: float) -> Handler:
    rows = yield Stmt(
        "UPDATE botwire_logs SET entry_count = 0 WHERE ns = ? AND name = ? RETURNING id",
        (op.ns, op.log),
    )
    if not rows:
        return 0
    return (yield Stmt("DELETE FROM botwire_entries WHERE log_id = ?", (rows[0][0],)))


def namespaces(op: ops.Namespaces, now: float) -> Handler:
    upper = prefix_upper(op.prefix)
    below = "" if upper is None else " AND ns < ?"
    bound = (op.prefix, op.after or "") + (() if upper is None else (upper,))
    hide = hides_internal(op.prefix, op.internal)
    # A loose index scan: one index probe per distinct namespace, however many keys each holds.
    # Internal namespaces are stepped over (one probe each) and left out of the answer.
    # Each branch stops at the page size, so a page costs about ``limit`` probes, not one per
    # namespace in the prefix.
    rows = yield Stmt(
        "WITH RECURSIVE n(ns) AS ("
        f"SELECT (SELECT min(ns) FROM botwire_kv WHERE ns >= ? AND ns > ?{below}) UNION ALL "
        f"SELECT (SELECT min(ns) FROM botwire_kv WHERE ns > n.ns{below}) FROM n "
        "WHERE n.ns IS NOT NULL) SELECT ns FROM ("
        f"SELECT ns FROM (SELECT ns FROM n WHERE ns IS NOT NULL{_visible('ns', hide)} "
        f"AND (SELECT 1 FROM botwire_kv k WHERE k.ns = n.ns AND {_LIVE} LIMIT 1) IS NOT NULL "
        "LIMIT ?) AS kv UNION "
        f"SELECT ns FROM (SELECT ns FROM botwire_logs WHERE ns >= ? AND ns > ?{below} "
        f"AND entry_count > 0{_visible('ns', hide)} ORDER BY ns LIMIT ?) AS lg"
        ") AS found ORDER BY ns LIMIT ?",
        (*bound, *bound[2:], now, op.limit, *bound, op.limit, op.limit),
    )
    return [r[0] for r in rows]


def forget(op: ops.Forget, now: float) -> Handler:
    # Lock order as every writer: log rows, then their entries; keys in key order.
    logs = yield Stmt(
        "UPDATE botwire_logs SET entry_count = 0 WHERE ns = ? RETURNING id, entry_count", (op.ns,)
    )
    entries = 0
    for log_id, _ in logs:
        entries += yield Stmt("DELETE FROM botwire_entries WHERE log_id = ?", (log_id,))
    yield Stmt("DELETE FROM botwire_logs WHERE ns = ?", (op.ns,))
    keys = yield from clear(ops.Clear(op.ns), now)
    yield Stmt("DELETE FROM botwire_namespaces WHERE ns = ?", (op.ns,))  # no trace is left
    return entries > 0 or keys > 0


# -- export and import --------------------------------------------------------------------------


def logs(op: ops.Logs, now: float) -> Handler:
    rows = yield Stmt(
        "SELECT name, last_seq, entry_count FROM botwire_logs WHERE ns = ? AND name > ?"
        f"{_visible('name', not op.internal)} ORDER BY name LIMIT ?",
        (op.ns, op.after or "", op.limit),
    )
    return [ops.LogInfo(*r) for r in rows]


def floor(op: ops.Floor, now: float) -> Handler:
    rows = yield Stmt("SELECT floor FROM botwire_namespaces WHERE ns = ?", (op.ns,))
    return int(rows[0][0]) if rows else 0


def restore(op: ops.Restore, now: float) -> Handler:
    """Compare with what the namespace holds, then (unless it holds exactly this) forget it and
    insert the rows as given, in one transaction. The floor also covers every version the
    namespace held before, so no version a reader saw there is handed out again."""
    live = (r for r in op.keys if r.expires_at is None or r.expires_at > now)
    keys = tuple(sorted(r._replace(size=_size(r.value or "")) for r in live))
    logs = tuple(sorted(op.logs))
    held = yield Stmt(
        "SELECT (SELECT count(*) FROM botwire_kv WHERE ns = ?), "
        "(SELECT max(version) FROM botwire_kv WHERE ns = ?), "
        "(SELECT count(*) FROM botwire_logs WHERE ns = ?)",
        (op.ns, op.ns, op.ns),
    )
    rows, highest, log_rows = held[0]
    old_floor = yield from floor(ops.Floor(op.ns), now)
    if rows or log_rows:
        if (yield from _holds(op.ns, keys, logs, now)):
            return "unchanged"
        live = yield from count(ops.Count(op.ns, internal=True), now)
        if (live or log_rows) and not op.replace:
            raise NamespaceNotEmpty(op.ns)
        yield from forget(ops.Forget(op.ns), now)
    yield from _insert(op.ns, keys, logs, now)
    top = max(op.floor, old_floor, highest or 0)
    if top:
        yield Stmt(_RAISE_FLOOR, (op.ns, top))
    return "imported"


def _holds(ns: str, keys: tuple[Row, ...], logs: tuple[ops.LogDump, ...], now: float) -> Handler:
    """Whether the namespace holds exactly ``keys`` (live) and ``logs``."""
    rows = yield Stmt(
        f"SELECT {_COLS.format(value='value')} FROM botwire_kv WHERE ns = ? AND {_LIVE} "
        "ORDER BY key",
        (ns, now),
    )
    if tuple(Row(*r) for r in rows) != keys:
        return False
    found = yield Stmt(
        "SELECT id, name, last_seq FROM botwire_logs WHERE ns = ? ORDER BY name", (ns,)
    )
    if [(name, last) for _, name, last in found] != [(g.name, g.last_seq) for g in logs]:
        return False
    for (log_id, _, _), given in zip(found, logs, strict=True):
        entries = yield Stmt(
            "SELECT seq, value, ts FROM botwire_entries WHERE log_id = ? ORDER BY seq", (log_id,)
        )
        if tuple(Entry(*e) for e in entries) != given.entries:
            return False
    return True


def _insert(ns: str, keys: tuple[Row, ...], logs: tuple[ops.LogDump, ...], now: float) -> Handler:
    if keys:
        yield Stmt(
            f"{_INTO} VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [(ns, *r) for r in keys],
            many=True,
        )
    for log in logs:
        made = yield Stmt(
            "INSERT INTO botwire_logs (ns, name, last_seq, entry_count) VALUES (?, ?, ?, ?) "
            "RETURNING id",
            (ns, log.name, log.last_seq, len(log.entries)),
        )
        if log.entries:
            yield Stmt(
                "INSERT INTO botwire_entries (log_id, seq, value, ts, size) VALUES (?, ?, ?, ?, ?)",
                [(made[0][0], e.seq, e.value, e.ts, _size(e.value)) for e in log.entries],
                many=True,
            )


# -- keyword search -----------------------------------------------------------------------------
# The full-text query differs between the databases, so the handler yields the ``SEARCH`` marker
# with its arguments and each engine swaps in its own statements. SQLite ranks a small namespace
# directly (``sqlite_search_direct``) and a large one with its two contentless FTS5 tables kept
# by triggers (migration 3; ``sqlite_search``); PostgreSQL filters the namespace's rows with
# generated ``tsvector`` columns (``postgres_search``).

SEARCH = "/*SEARCH*/"
ENTRY_DOC = 1 << 32  # an entry's FTS5 rowid is log_id * ENTRY_DOC + seq
# SQLite ranks a namespace of at most this many live keys and log entries directly, without the
# index: tokenizing one document costs ~3 us, so at 300 documents of ~100 bytes this takes about
# 1 ms, what a common word costs through the index in a database of 10k such namespaces. The
# index reads whole posting lists, so its cost follows the database, not the namespace.
SEARCH_DIRECT_MAX = 300
# Hits with equal scores: the newest first, then keys (by key) before log entries (by log, seq).
_HIT_ORDER = "score DESC, ts DESC, key IS NULL, key, log, seq"


def search(op: ops.Search, now: float) -> Handler:
    if not op.terms:
        return []
    rows = yield Stmt(SEARCH, (op.ns, op.terms, op.limit, now, op.internal))
    return [ops.Hit(*r) for r in rows]


def hit_order(row: tuple[Any, ...]) -> tuple[Any, ...]:
    """The sort key of a hit row ``(key, log, seq, value, ts, score)``, as ``_HIT_ORDER``."""
    key, log, seq, _, ts, score = row
    return (-score, -ts, key is None, key or "", log or "", seq or 0)


def _fts5_string(text: str) -> str:
    return '"' + text.replace('"', '""') + '"'


def _fts5_words(terms: tuple[str, ...]) -> str:
    """Each term, and its root as a prefix (FTS5 stems both with ``porter``)."""
    return " OR ".join(_fts5_term(t, _search.root(t)) for t in terms)


def _fts5_term(term: str, root: str | None) -> str:
    exact = _fts5_string(term)
    return exact if root is None else f"{exact} OR {_fts5_string(root)}*"


def _tsquery(terms: tuple[str, ...]) -> str:
    """Each term, and its root as a prefix (``to_tsquery('english', ...)`` stems both)."""
    return " | ".join(_tsquery_term(t, _search.root(t)) for t in terms)


def _tsquery_term(term: str, root: str | None) -> str:
    return term if root is None else f"{term} | {root}:*"


# A per-connection scratch index in the temp schema: the direct search fills it with the
# namespace's documents inside a read transaction and rolls it back, so it is always empty.
SQLITE_SCRATCH = (
    "CREATE VIRTUAL TABLE IF NOT EXISTS temp.botwire_search "
    "USING fts5(body, content='', tokenize='porter unicode61')"
)


@functools.lru_cache(maxsize=2)
def _ns_docs(hide: bool) -> str:
    return (
        "SELECT key, NULL, NULL, value, updated_at, key || ' ' || value FROM botwire_kv "
        f"WHERE ns = ? AND {_LIVE}{_visible('key', hide)} UNION ALL "
        "SELECT NULL, l.name, e.seq, e.value, e.ts, e.value FROM botwire_logs l "
        f"JOIN botwire_entries e ON e.log_id = l.id WHERE l.ns = ?{_visible('l.name', hide)} "
        "LIMIT ?"
    )


def sqlite_search_direct(
    ns: str,
    terms: tuple[str, ...],
    limit: int,
    now: float,
    most: int = SEARCH_DIRECT_MAX,
    internal: bool = False,
) -> Handler:
    """Rank a namespace of at most ``most`` documents without the shared index: its keys and
    entries go into the scratch index (``SQLITE_SCRATCH``), which bm25 then ranks against the
    namespace alone. Returns hit rows, or ``None`` when the namespace is larger.

    Run it inside a transaction that is rolled back afterwards: the rollback empties the
    scratch index and the reads share one snapshot."""
    docs = yield Stmt(_ns_docs(not internal), (ns, now, ns, most + 1))
    if len(docs) > most:
        return None
    if not docs:
        return []
    yield Stmt(
        "INSERT INTO temp.botwire_search (rowid, body) VALUES (?, ?)",
        [(n, d[5]) for n, d in enumerate(docs)],
        many=True,
    )
    scores = yield Stmt(
        "SELECT rowid, -bm25(botwire_search) FROM temp.botwire_search "
        "WHERE botwire_search MATCH ?",
        (_fts5_words(terms),),
    )
    hits = sorted(((*docs[n][:5], score) for n, score in scores), key=hit_order)
    return hits[:limit]


def sqlite_search(
    ns: str, terms: tuple[str, ...], limit: int, now: float, internal: bool = False
) -> Stmt:
    """Search a large namespace through the FTS5 indexes (index what it lacks first).

    The FTS5 table drives each join (``CROSS JOIN`` keeps that order): with the namespace's
    rows outside, SQLite would run the ``MATCH`` once per row, working out bm25's statistics
    each time."""
    match = f"body : ({_fts5_words(terms)})"
    if any(c.isascii() and c.isalnum() for c in ns):  # the ns phrase has a token: narrow by it
        match = f"ns : {_fts5_string(ns)} AND {match}"
    # bm25 weights: the ns column 0, the body 1. bm25 is lower for better matches.
    return Stmt(
        "SELECT key, log, seq, value, ts, score FROM ("
        "SELECT k.key AS key, NULL AS log, NULL AS seq, k.value AS value, k.updated_at AS ts, "
        "-bm25(botwire_kv_fts, 0.0, 1.0) AS score FROM botwire_kv_fts f "
        "CROSS JOIN botwire_kv k ON k.doc = f.rowid "
        "WHERE botwire_kv_fts MATCH ? AND k.ns = ? AND k.stale IS NULL "
        "AND (k.expires_at IS NULL OR k.expires_at > ?)"
        f"{_visible('k.key', not internal)} UNION ALL "
        "SELECT NULL, l.name, e.seq, e.value, e.ts, -bm25(botwire_entries_fts, 0.0, 1.0) "
        "FROM botwire_entries_fts f "
        f"CROSS JOIN botwire_logs l ON l.id = f.rowid / {ENTRY_DOC} "
        f"CROSS JOIN botwire_entries e ON e.log_id = l.id AND e.seq = f.rowid % {ENTRY_DOC} "
        f"WHERE botwire_entries_fts MATCH ? AND l.ns = ?{_visible('l.name', not internal)}"
        f") ORDER BY {_HIT_ORDER} LIMIT ?",
        (match, ns, now, match, ns, limit),
    )


def sqlite_pending(ns: str) -> Handler:
    """Whether the index lacks any of ``ns``'s keys or entries: it does not serve ``ns`` yet
    (or its first pass is not done), keys are queued, or a log has entries not indexed."""
    rows = yield Stmt(
        "SELECT NOT EXISTS (SELECT 1 FROM botwire_fts_ns WHERE ns = ? AND cursor IS NULL) "
        "OR EXISTS (SELECT 1 FROM botwire_fts_queue WHERE ns = ?) "
        "OR EXISTS (SELECT 1 FROM botwire_logs WHERE ns = ? AND last_seq > indexed_seq)",
        (ns, ns, ns),
    )
    return bool(rows[0][0])


def sqlite_served_pending() -> Handler:
    """The namespaces the index serves that lack something: first passes not done, queue
    rows (logs are looked at when their namespace is searched)."""
    rows = yield Stmt(
        "SELECT ns FROM botwire_fts_ns WHERE cursor IS NOT NULL UNION "
        "SELECT ns FROM botwire_fts_ns s WHERE EXISTS (SELECT 1 FROM botwire_fts_queue q "
        "WHERE q.ns = s.ns)"
    )
    return [r[0] for r in rows]


_LACKS = "(doc IS NULL OR stale IS NOT NULL)"


def sqlite_index_namespace(ns: str, most: int) -> Handler:
    """Do up to ``most`` rows of indexing work on ``ns`` in the caller's write transaction,
    registering it as a namespace the index serves. Returns the rows worked on (fewer than
    ``most``: nothing is left).

    Keys: the first pass reads ``most`` keys in order from the cursor and indexes those the
    index lacks (a doc never given, or ``stale`` set); after it, the queue names the keys
    written since. A key without a doc is indexed under a new one; a key whose ``stale`` is
    set is first forgotten with that text (what the index holds for its doc). Entries above a
    log's ``indexed_seq`` are indexed in order. FTS5 is given ascending rowids: deletes (old
    docs), then new docs, above every doc given before; a smaller rowid than the last one makes
    it write out its pending changes as a new segment."""
    served = yield Stmt("SELECT cursor FROM botwire_fts_ns WHERE ns = ?", (ns,))
    if not served:
        yield Stmt("INSERT INTO botwire_fts_ns (ns, cursor) VALUES (?, '')", (ns,))
        served = [("",)]
    cursor = served[0][0]
    if cursor is not None:
        done = yield from _first_pass(ns, cursor, most)
    else:
        done = yield from _apply_queue(ns, most)
    if done < most:
        done += yield from _index_entries(ns, most - done)
    return done


def _first_pass(ns: str, cursor: str, most: int) -> Handler:
    """The next ``most`` keys of ``ns`` after ``cursor``: index those the index lacks."""
    rows = yield Stmt(
        f"SELECT key, doc, stale, key || ' ' || value, {_LACKS} FROM botwire_kv "
        "WHERE ns = ? AND key > ? ORDER BY key LIMIT ?",
        (ns, cursor, most),
    )
    yield from _index_keys(ns, [r[:4] for r in rows if r[4]])
    after = rows[-1][0] if len(rows) == most else None
    yield Stmt("UPDATE botwire_fts_ns SET cursor = ? WHERE ns = ?", (after, ns))
    return len(rows)


def _apply_queue(ns: str, most: int) -> Handler:
    """The oldest ``most`` queue rows of ``ns``, in order: forget the documents they name,
    then index their keys that the index lacks."""
    queued = yield Stmt(
        "SELECT id, key, log_id, seq, body FROM botwire_fts_queue WHERE ns = ? "
        "ORDER BY id LIMIT ?",
        (ns, most),
    )
    if not queued:
        return 0
    ids = tuple(r[0] for r in queued)
    yield from _forget_first(ids)
    yield from _forget_entries(ns, [r[2:] for r in queued if r[2] is not None])
    names = sorted({r[1] for r in queued if r[1] is not None})
    if names:
        keys = yield Stmt(
            "SELECT key, doc, stale, key || ' ' || value FROM botwire_kv WHERE ns = ? AND "
            f"key IN ({', '.join('?' * len(names))}) AND ({_LACKS} OR NOT "
            f"{_INDEXED.format(doc='doc')})",
            (ns, *names),
            prepare=False,
        )
        yield from _index_keys(ns, keys)
    yield from _dequeue(ids)
    return len(queued)


def _dequeue(ids: tuple[int, ...]) -> Handler:
    yield Stmt(
        f"DELETE FROM botwire_fts_queue WHERE id IN ({', '.join('?' * len(ids))})",
        ids,
        prepare=False,
    )


# A key's document is in the index while the FTS5 table holds its rowid (a rowid lookup).
_INDEXED = "EXISTS (SELECT 1 FROM botwire_kv_fts WHERE rowid = {doc})"


def _forget_first(ids: tuple[int, ...]) -> Handler:
    """Forget the documents that the queue rows ``ids`` name, each by its first queued text,
    if the index still holds it (a doc is forgotten once; its later rows held texts that never
    reached the index)."""
    marks = ", ".join("?" * len(ids))
    yield Stmt(
        "INSERT INTO botwire_kv_fts (botwire_kv_fts, rowid, ns, body) "
        "SELECT 'delete', doc, ns, body FROM botwire_fts_queue WHERE id IN (SELECT min(id) "
        f"FROM botwire_fts_queue WHERE id IN ({marks}) AND doc IS NOT NULL AND log_id IS NULL "
        f"GROUP BY doc) AND {_INDEXED.format(doc='doc')} ORDER BY doc",
        ids,
        prepare=False,
    )


def _index_keys(ns: str, keys: list[tuple[Any, ...]]) -> Handler:
    """Index ``(key, doc, stale, text)`` rows of ``ns`` under new docs (a doc whose ``stale``
    is set is first forgotten with that text)."""
    if not keys:
        return
    old = sorted((doc, ns, stale) for _, doc, stale, _ in keys if stale is not None)
    if old:
        yield Stmt(
            "INSERT INTO botwire_kv_fts (botwire_kv_fts, rowid, ns, body) "
            "VALUES ('delete', ?, ?, ?)",
            old,
            many=True,
        )
    base = (yield Stmt("SELECT doc FROM botwire_fts_next"))[0][0]
    docs = [(base + n, key, body) for n, (key, _, _, body) in enumerate(keys, 1)]
    yield Stmt(
        "INSERT INTO botwire_kv_fts (rowid, ns, body) VALUES (?, ?, ?)",
        [(doc, ns, body) for doc, _, body in docs],
        many=True,
    )
    yield Stmt(
        "UPDATE botwire_kv SET doc = ?, stale = NULL WHERE ns = ? AND key = ?",
        [(doc, ns, key) for doc, key, _ in docs],
        many=True,
    )
    yield Stmt("UPDATE botwire_fts_next SET doc = ?", (base + len(keys),))


def _index_entries(ns: str, most: int) -> Handler:
    """Index up to ``most`` entries of ``ns``'s logs above their ``indexed_seq``; how many."""
    done = 0
    logs = yield Stmt(
        "SELECT id, indexed_seq, last_seq FROM botwire_logs "
        "WHERE ns = ? AND last_seq > indexed_seq ORDER BY id",
        (ns,),
    )
    for log_id, indexed, last in logs:
        left = most - done
        if left <= 0:
            break
        entries = yield Stmt(
            "SELECT seq, value FROM botwire_entries "
            f"WHERE log_id = ? AND seq > ? AND seq < {ENTRY_DOC} ORDER BY seq LIMIT ?",
            (log_id, indexed, left),
        )
        if entries:
            yield Stmt(
                "INSERT INTO botwire_entries_fts (rowid, ns, body) VALUES (?, ?, ?)",
                [(log_id * ENTRY_DOC + seq, ns, value) for seq, value in entries],
                many=True,
            )
        upto = entries[-1][0] if len(entries) == left else last  # fewer: the log is done
        yield Stmt("UPDATE botwire_logs SET indexed_seq = ? WHERE id = ?", (upto, log_id))
        done += len(entries)
    return done


def sqlite_forget_queued(most: int) -> Handler:
    """Forget the oldest ``most`` queued documents of deleted keys and entries of namespaces
    the index does not serve (a served namespace's queue is applied by its catch-up), in the
    caller's write transaction. Returns how many queue rows were applied.

    Until then they are only dead weight: a search joins each document to its row, and a
    deleted row's doc or (log, seq) is never given again."""
    rows = yield Stmt(
        "SELECT id, ns, log_id, seq, body FROM botwire_fts_queue WHERE key IS NULL "
        "AND ns NOT IN (SELECT ns FROM botwire_fts_ns) ORDER BY id LIMIT ?",
        (most,),
    )
    if not rows:
        return 0
    ids = tuple(r[0] for r in rows)
    yield from _forget_first(ids)
    for ns in sorted({r[1] for r in rows}):
        yield from _forget_entries(ns, [r[2:] for r in rows if r[1] == ns and r[2] is not None])
    yield from _dequeue(ids)
    return len(rows)


def _forget_entries(ns: str, entries: list[tuple[Any, ...]]) -> Handler:
    """Forget ``(log_id, seq, text)`` entry documents of ``ns`` (each is queued once)."""
    if entries:
        yield Stmt(
            "INSERT INTO botwire_entries_fts (botwire_entries_fts, rowid, ns, body) "
            "VALUES ('delete', ?, ?, ?)",
            sorted((log_id * ENTRY_DOC + seq, ns, body) for log_id, seq, body in entries),
            many=True,
        )


def postgres_search(
    ns: str, terms: tuple[str, ...], limit: int, now: float, internal: bool = False
) -> Stmt:
    """Read the namespace's rows by the primary key (keys) and the log index (entries) and
    filter them by their ``tsvector``. ``OFFSET 0`` keeps the planner from combining those
    indexes with the GIN index, which reads a word's posting list across every namespace."""
    return Stmt(
        "WITH q AS (SELECT to_tsquery('english', ?) AS q) "
        "SELECT key, log, seq, value, ts, score FROM ("
        "SELECT k.key AS key, NULL::text AS log, NULL::bigint AS seq, k.value AS value, "
        "k.updated_at AS ts, ts_rank(k.tsv, q.q) AS score FROM (SELECT key, value, updated_at, "
        f"tsv FROM botwire_kv WHERE ns = ? AND {_LIVE}{_visible('key', not internal)} OFFSET 0) k, "
        "q WHERE k.tsv @@ q.q "
        "UNION ALL "
        "SELECT NULL, e.name, e.seq, e.value, e.ts, ts_rank(e.tsv, q.q) FROM (SELECT l.name, "
        "e.seq, e.value, e.ts, e.tsv FROM botwire_logs l JOIN botwire_entries e "
        f"ON e.log_id = l.id WHERE l.ns = ?{_visible('l.name', not internal)} OFFSET 0) e, q "
        "WHERE e.tsv @@ q.q"
        f") h ORDER BY {_HIT_ORDER} LIMIT ?",
        (_tsquery(terms), ns, now, ns, limit),
        prepare=False,
    )


def purge(now: float, limit: int) -> Handler:
    """Delete up to ``limit`` expired keys: small bounded batches, never a long pause."""
    rows = yield Stmt(
        "SELECT ns, key, version FROM botwire_kv WHERE expires_at <= ? LIMIT ?", (now, limit)
    )
    if not rows:
        return 0
    floors: dict[str, int] = {}
    for ns, _, version in rows:
        floors[ns] = max(version, floors.get(ns, 0))
    yield Stmt(_RAISE_FLOOR, sorted(floors.items()), many=True)
    yield Stmt("DELETE FROM botwire_usage WHERE day < ?", (utc_day(now - 2 * 86400),))
    doomed = sorted((ns, key) for ns, key, _ in rows)
    yield Stmt(  # still expired: a key written again since the SELECT stays
        "DELETE FROM botwire_kv WHERE ns = ? AND key = ? AND expires_at <= ?",
        [(ns, key, now) for ns, key in doomed],
        many=True,
    )
    return len(doomed)


# -- server ops: quota counters and API keys ----------------------------------------------------

_KEY_COLS = (
    "id, hash, name, prefixes, rights, writes_per_day, max_bytes, created_at, revoked_at, "
    "last_used_at"
)


def utc_day(ts: float) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(ts))


def charge(op: ops.Charge, now: float) -> Handler:
    if op.limit and op.n > op.limit:
        return None
    sql = (
        "INSERT INTO botwire_usage (ns, day, writes) VALUES (?, ?, ?) ON CONFLICT (ns, day) "
        "DO UPDATE SET writes = botwire_usage.writes + excluded.writes"
    )
    params: tuple[Any, ...] = (op.ns, op.day, op.n)
    if op.limit:  # the database re-checks under its row lock: exactly ``limit`` fit
        sql += " WHERE botwire_usage.writes + excluded.writes <= ?"
        params += (op.limit,)
    rows = yield Stmt(sql + " RETURNING writes", params)
    return rows[0][0] if rows else None


def usage(op: ops.Usage, now: float) -> Handler:
    rows = yield Stmt(
        f"SELECT (SELECT COALESCE(sum(size), 0) FROM botwire_kv WHERE ns = ? AND {_LIVE}) + "
        "(SELECT COALESCE(sum(e.size), 0) FROM botwire_entries e JOIN botwire_logs l "
        "ON e.log_id = l.id WHERE l.ns = ?)",
        (op.ns, now, op.ns),
    )
    return int(rows[0][0])


def writes(op: ops.Writes, now: float) -> Handler:
    rows = yield Stmt("SELECT writes FROM botwire_usage WHERE ns = ? AND day = ?", (op.ns, op.day))
    return int(rows[0][0]) if rows else 0


def save_key(op: ops.SaveKey, now: float) -> Handler:
    """``only_if_none``: the first-start key. Replicas racing to create it all use one fixed
    id, so exactly one insert lands."""
    k = op.key
    if op.only_if_none and (yield Stmt("SELECT 1 FROM botwire_api_keys LIMIT 1")):
        return False
    marks = ", ".join("?" * len(k))
    count = yield Stmt(
        f"INSERT INTO botwire_api_keys ({_KEY_COLS}) VALUES ({marks}) ON CONFLICT DO NOTHING",
        (*k[:3], json.dumps(list(k.prefixes)), *k[4:]),
    )
    return count == 1


def find_key(op: ops.FindKey, now: float) -> Handler:
    rows = yield Stmt(
        f"SELECT {_KEY_COLS} FROM botwire_api_keys WHERE hash = ? AND revoked_at IS NULL",
        (op.hash,),
    )
    return _api_key(rows[0]) if rows else None


def list_keys(op: ops.ListKeys, now: float) -> Handler:
    """``*``: migrations only append columns, in ``ApiKey``'s order, so a schema from before
    the last-use column (which ``botwire doctor`` reads without migrating) lists as well."""
    rows = yield Stmt("SELECT * FROM botwire_api_keys ORDER BY created_at, id")
    return [_api_key(r) for r in rows]


def revoke_key(op: ops.RevokeKey, now: float) -> Handler:
    count = yield Stmt(
        "UPDATE botwire_api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
        (op.at, op.id),
    )
    return count == 1


def touch_key(op: ops.TouchKey, now: float) -> Handler:
    """One indexed UPDATE; a use older than the one recorded (another replica's) is a no-op."""
    count = yield Stmt(
        "UPDATE botwire_api_keys SET last_used_at = ? WHERE id = ? "
        "AND (last_used_at IS NULL OR last_used_at < ?)",
        (op.at, op.id, op.at),
    )
    return count == 1


def recent(op: ops.Recent, now: float) -> Handler:
    hide = _visible("key", not op.internal)
    rows = yield Stmt(
        f"SELECT {_META} FROM botwire_kv WHERE ns = ? AND {_LIVE}{hide} "
        "ORDER BY updated_at DESC, key DESC LIMIT ?",
        (op.ns, now, op.limit),
    )
    return [Row._make(r) for r in rows]


def _api_key(row: Any) -> ops.ApiKey:
    values = (*row[:3], tuple(json.loads(row[3])), *row[4:])
    missing = len(ops.ApiKey._fields) - len(values)  # an older schema: None, as the defaults
    return ops.ApiKey._make(values + (None,) * missing)


def prefix_upper(prefix: str) -> str | None:
    """The smallest string greater than every string that starts with ``prefix``."""
    stripped = prefix.rstrip("\U0010ffff")
    if not stripped:
        return None
    nxt = ord(stripped[-1]) + 1
    if 0xD800 <= nxt <= 0xDFFF:
        nxt = 0xE000
    return stripped[:-1] + chr(nxt)


def _size(text: str) -> int:
    return len(text) if text.isascii() else len(text.encode("utf-8"))


_HANDLERS: dict[type, tuple[Callable[[Any, float], Handler], int]] = {
    ops.Batch: (batch, READ),
    ops.Get: (get, READ),
    ops.Info: (info, READ),
    ops.Put: (put, -1),
    ops.Delete: (delete, TXN),
    ops.Incr: (incr, TXN),
    ops.Scan: (scan, READ),
    ops.Count: (count, READ),
    ops.Clear: (clear, TXN),
    ops.Append: (append, TXN),
    ops.Read: (read, READ),
    ops.LogCount: (log_count, READ),
    ops.LogClear: (log_clear, TXN),
    ops.Namespaces: (namespaces, READ),
    ops.Forget: (forget, TXN),
    ops.Search: (search, READ),
    ops.Logs: (logs, READ),
    ops.Floor: (floor, READ),
    ops.Restore: (restore, TXN),
    ops.Charge: (charge, ATOMIC),
    ops.Usage: (usage, READ),
    ops.Writes: (writes, READ),
    ops.SaveKey: (save_key, ATOMIC),
    ops.FindKey: (find_key, READ),
    ops.ListKeys: (list_keys, READ),
    ops.RevokeKey: (revoke_key, ATOMIC),
    ops.TouchKey: (touch_key, ATOMIC),
    ops.Recent: (recent, READ),
}
