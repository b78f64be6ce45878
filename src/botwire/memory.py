"""``Memory`` and ``AsyncMemory``: validate input once, build an engine op, shape the result.

Everything that does no I/O lives in ``_MemoryBase`` as *plans*: a method that checks its
arguments and returns ``(op, finish)``, the operation for the engine and the function that turns
the engine's answer into the public result. ``Memory`` runs a plan with ``engine.execute``,
``AsyncMemory`` with ``await engine.aexecute``; that is the whole difference between them.
"""

from __future__ import annotations

import os
import weakref
from itertools import islice
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from . import _codec, _search
from ._wire import redact
from ._codec import check_int, check_name, check_names, check_ttl, decode, encode
from .engines import Engine, lease
from .engines import base as ops
from .errors import ConfigurationError, InvalidInput, NotFound

__all__ = ["Memory", "AsyncMemory", "KeyInfo", "LogEntry", "SearchHit", "Log", "AsyncLog"]

PAGE_SIZE = 1000
_MISSING: Any = object()

T = TypeVar("T")
Plan = tuple[ops.Op, Callable[[Any], T]]


@dataclass(frozen=True, slots=True)
class KeyInfo:
    """Metadata of one stored key. Times are Unix seconds."""

    key: str
    version: int
    created_at: float
    updated_at: float
    expires_at: float | None
    size: int


@dataclass(frozen=True, slots=True)
class LogEntry:
    """One log entry: its sequence number (1, 2, 3, ... per log), value and Unix timestamp."""

    seq: int
    value: Any
    ts: float


@dataclass(frozen=True, slots=True)
class SearchHit:
    """One result of :meth:`Memory.search`: a stored key, or an entry of a log.

    For a key, ``key`` is set and ``log`` / ``seq`` are None; for a log entry, ``log`` and
    ``seq`` are set and ``key`` is None. ``ts`` is the key's last write or the entry's time.
    ``score`` grows with relevance; compare scores only within one result list.
    """

    key: str | None
    log: str | None
    seq: int | None
    value: Any
    ts: float
    score: float


def _max_value_bytes(given: int | None) -> int:
    if given is None:
        raw = os.environ.get("BOTWIRE_MAX_VALUE_BYTES")
        if not raw:
            return _codec.DEFAULT_MAX_VALUE_BYTES
        try:
            given = int(raw)
        except ValueError:
            raise ConfigurationError(f"BOTWIRE_MAX_VALUE_BYTES={raw!r} is not an integer") from None
    return check_int(given, "max_value_bytes", minimum=1)


def _check_prefix(prefix: object) -> str:
    if prefix == "":
        return ""
    return check_name(prefix, "prefix")


def check_flag(value: object, what: str) -> bool:
    if type(value) is not bool:
        raise InvalidInput(f"{what} must be True or False, not {value!r}")
    return value


class _Owner:
    """Holds an engine: either given (the caller owns it) or leased from the shared registry."""

    def __init__(self, url: str | None, engine: Engine | None, api_key: str | None) -> None:
        if engine is not None:
            self._engine, self._lease = engine, None
        else:
            self._lease = lease(url, api_key=api_key)
            self._engine = self._lease.engine
        self._finalizer = weakref.finalize(self, _release, self._lease)

    def close(self) -> None:
        """Release this object's hold on its engine (the last holder closes it)."""
        self._finalizer()

    async def aclose(self) -> None:
        """Release this object's hold; closes the engine's async resources when last."""
        released = self._finalizer()
        if released is not None:
            await released.aclose()


def _release(held: Any) -> Engine | None:
    return held.release() if held is not None else None


class _MemoryBase(_Owner):
    def __init__(
        self,
        namespace: str,
        *,
        url: str | None = None,
        engine: Engine | None = None,
        max_value_bytes: int | None = None,
        api_key: str | None = None,
    ) -> None:
        self.namespace = check_name(namespace, "namespace")
        self.max_value_bytes = _max_value_bytes(max_value_bytes)
        super().__init__(url, engine, api_key)

    @property
    def engine(self) -> Engine:
        return self._engine

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.namespace!r}, url={redact(self._engine.url)!r})"

    # -- plans: (op, finish) ------------------------------------------------------------------

    def _get(self, key: str) -> ops.Get:
        return ops.Get(self.namespace, (check_name(key),))

    def _set(self, key: str, value: Any, ttl: float | None, if_version: int | None) -> Plan[int]:
        key = check_name(key)
        if if_version is not None:
            check_int(if_version, "if_version", minimum=0)
        items = ((key, encode(value, self.max_value_bytes, key)),)
        op = ops.Put(self.namespace, items, check_ttl(ttl), if_version)
        return op, _first

    def _delete(self, key: str, if_version: int | None) -> Plan[bool]:
        key = check_name(key)
        if if_version is not None:
            check_int(if_version, "if_version", minimum=1)
        return ops.Delete(self.namespace, key, if_version), bool

    def _exists(self, key: str) -> Plan[bool]:
        return ops.Info(self.namespace, (check_name(key),)), _found

    def _get_many(self, keys: Iterable[str]) -> Plan[dict[str, Any]]:
        unique = tuple(dict.fromkeys(check_names(keys)))
        op = ops.Get(self.namespace, unique)
        return op, lambda texts: {
            k: decode(t) for k, t in zip(unique, texts, strict=True) if t is not None
        }

    def _set_many(self, mapping: Mapping[str, Any], ttl: float | None) -> Plan[dict[str, int]]:
        if not isinstance(mapping, Mapping):
            raise InvalidInput(f"set_many takes a mapping, not {type(mapping).__name__}")
        limit = self.max_value_bytes
        items = tuple((check_name(k), encode(v, limit, k)) for k, v in mapping.items())
        op = ops.Put(self.namespace, items, check_ttl(ttl))
        return op, lambda versions: {k: v for (k, _), v in zip(items, versions, strict=True)}

    def _incr(self, key: str, by: int) -> Plan[int]:
        return ops.Incr(self.namespace, check_name(key), check_int(by, "by")), _same

    def _count(self, internal: object = False) -> Plan[int]:
        return ops.Count(self.namespace, check_flag(internal, "include_internal")), _same

    def _clear(self) -> Plan[int]:
        return ops.Clear(self.namespace), _same

    def _info(self, key: str) -> Plan[KeyInfo | None]:
        return ops.Info(self.namespace, (check_name(key),)), _key_info

    def _search(self, query: str, limit: int, internal: bool) -> Plan[list[SearchHit]]:
        terms, limit = _search.terms(query), _search.check_limit(limit)
        op = ops.Search(self.namespace, terms, limit, check_flag(internal, "include_internal"))
        return op, _hits

    def _scan(
        self, prefix: str, values: bool, limit: int | None, internal: bool
    ) -> Callable[[str | None], ops.Scan]:
        prefix = _check_prefix(prefix)
        internal = check_flag(internal, "include_internal")
        size = PAGE_SIZE
        if limit is not None:
            size = min(check_int(limit, "limit", minimum=0), PAGE_SIZE)
        return lambda after: ops.Scan(self.namespace, prefix, after, size, values, internal)


    def _items_page(self, limit: int) -> Plan[list[tuple[str, Any]]]:
        """The first ``limit`` (at most ``PAGE_SIZE``) items, as one op: for ``_together``."""
        return self._scan("", True, limit, False)(None), _items_of


def _items_of(rows: list[ops.Row]) -> list[tuple[str, Any]]:
    return [_row_item(r) for r in rows]


def _first(results: list[Any]) -> Any:
    return results[0]


def _same(result: T) -> T:
    return result


def _found(rows: list[ops.Row | None]) -> bool:
    return rows[0] is not None


def _key_info(rows: list[ops.Row | None]) -> KeyInfo | None:
    r = rows[0]
    if r is None:
        return None
    return KeyInfo(r.key, r.version, r.created_at, r.updated_at, r.expires_at, r.size)


def _hits(hits: list[ops.Hit]) -> list[SearchHit]:
    return [SearchHit(h.key, h.log, h.seq, decode(h.value), h.ts, h.score) for h in hits]


def _row_key(row: ops.Row) -> str:
    return row.key


def _row_item(row: ops.Row) -> tuple[str, Any]:
    return row.key, decode(row.value)  # type: ignore[arg-type]  # Scan(values=True) fills it


def _pages(
    execute: Callable[[Any], Any], page: Callable[[Any], Any], cursor: Callable[[Any], Any]
) -> Iterator[Any]:
    """Every row of a paged listing; ``page(after)`` builds an op, ``cursor(row)`` gives after."""
    after = None
    while True:
        op = page(after)
        rows = execute(op) if op.limit else []
        yield from rows
        if not rows or len(rows) < op.limit:
            return
        after = cursor(rows[-1])


async def _apages(
    aexecute: Callable[[Any], Any], page: Callable[[Any], Any], cursor: Callable[[Any], Any]
) -> AsyncIterator[Any]:
    after = None
    while True:
        op = page(after)
        rows = await aexecute(op) if op.limit else []
        for row in rows:
            yield row
        if not rows or len(rows) < op.limit:
            return
        after = cursor(rows[-1])


async def _alimited(rows: AsyncIterator[Any], limit: int | None) -> AsyncIterator[Any]:
    """The first ``limit`` rows (all when None), without fetching a page past them."""
    if limit == 0:
        return
    count = 0
    async for row in rows:
        yield row
        count += 1
        if count == limit:
            return


class Memory(_MemoryBase):
    """Persistent memory for one namespace (one customer, phone number or tenant).

    >>> m = Memory("customer-555-0123")
    >>> m.set("last_order", "ORDER-789")  # doctest: +SKIP
    >>> m.get("last_order")               # doctest: +SKIP
    'ORDER-789'
    """

    def _do(self, op: ops.Op, finish: Callable[[Any], T]) -> T:
        return finish(self._engine.execute(op))

    def _together(self, *plans: Plan[Any]) -> list[Any]:
        """Read plans answered together (one ``Batch``: one round trip on PostgreSQL)."""
        results = self._engine.execute(ops.Batch(tuple(op for op, _ in plans)))
        return [finish(r) for (_, finish), r in zip(plans, results, strict=True)]

    def get(self, key: str, default: Any = None) -> Any:
        """The value stored at ``key``, or ``default`` when it is missing or expired."""
        text = self._engine.execute(self._get(key))[0]  # the hot path: no plan tuple
        return default if text is None else decode(text)

    def set(
        self, key: str, value: Any, *, ttl: float | None = None, if_version: int | None = None
    ) -> int:
        """Store ``value``; returns the key's new version. See docs/api.md for ttl / if_version."""
        return self._do(*self._set(key, value, ttl, if_version))

    def delete(self, key: str, *, if_version: int | None = None) -> bool:
        """Delete ``key``; ``True`` if it existed. ``if_version=v``: only while it is at ``v``,
        else ``VersionConflict`` and nothing is deleted."""
        return self._do(*self._delete(key, if_version))

    def exists(self, key: str) -> bool:
        return self._do(*self._exists(key))

    def get_many(self, keys: Iterable[str]) -> dict[str, Any]:
        """The stored values of ``keys``; missing keys are left out."""
        return self._do(*self._get_many(keys))

    def set_many(self, mapping: Mapping[str, Any], *, ttl: float | None = None) -> dict[str, int]:
        """Store every item or none; returns the new versions."""
        return self._do(*self._set_many(mapping, ttl))

    def incr(self, key: str, by: int = 1) -> int:
        """Atomically add ``by`` to the int at ``key`` (missing counts as 0); the new value."""
        return self._do(*self._incr(key, by))

    def count(self, *, include_internal: bool = False) -> int:
        """Live keys, as ``keys()`` lists them (``~`` keys only with ``include_internal``)."""
        return self._do(*self._count(include_internal))

    def clear(self) -> int:
        """Delete every key of the namespace (not its logs); how many there were."""
        return self._do(*self._clear())

    def info(self, key: str) -> KeyInfo | None:
        return self._do(*self._info(key))

    def keys(
        self, prefix: str = "", *, limit: int | None = None, include_internal: bool = False
    ) -> Iterator[str]:
        """Every key starting with ``prefix`` (the first ``limit``), in code-point order,
        fetched page by page. Keys starting with ``~`` are botwire's own bookkeeping (voice
        call claims): listed only with ``include_internal=True`` or a prefix starting with ``~``.
        """
        page = self._scan(prefix, False, limit, include_internal)
        return islice(map(_row_key, _pages(self._engine.execute, page, _row_key)), limit)

    def items(
        self, prefix: str = "", *, limit: int | None = None, include_internal: bool = False
    ) -> Iterator[tuple[str, Any]]:
        """``(key, value)`` pairs of :meth:`keys`."""
        page = self._scan(prefix, True, limit, include_internal)
        return islice(map(_row_item, _pages(self._engine.execute, page, _row_key)), limit)

    def search(
        self, query: str, limit: int = 10, *, include_internal: bool = False
    ) -> list[SearchHit]:
        """Keys and log entries of this namespace matching words of ``query``, best first.

        Matches any word of the query in key names, values and log entries, in its other forms
        too ("orders" finds "ordered", "allergy" finds "allergic"); common English words like
        "the" are ignored and expired keys never match. A word found as written ranks above a
        variant. Ranked by the database's full-text ranking (SQLite FTS5 BM25, PostgreSQL
        ``ts_rank``). Keys and logs whose names start with ``~`` are left out unless
        ``include_internal=True``.
        """
        return self._do(*self._search(query, limit, include_internal))

    def log(self, name: str) -> Log:
        """The append-only log ``name`` of this namespace."""
        return Log(self, name)

    def __contains__(self, key: str) -> bool:
        return self.exists(key)

    def __getitem__(self, key: str) -> Any:
        value = self.get(key, _MISSING)
        if value is _MISSING:
            raise NotFound(key)
        return value

    def __setitem__(self, key: str, value: Any) -> None:
        self.set(key, value)

    def __delitem__(self, key: str) -> None:
        if not self.delete(key):
            raise NotFound(key)

    def __len__(self) -> int:
        return self.count()

    def __bool__(self) -> bool:
        return True  # a handle, always truthy: `memory or Memory(...)` must not count keys

    def __iter__(self) -> Iterator[str]:
        return self.keys()

    def __enter__(self) -> Memory:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _NoDunders:
    def _refuse(self, instead: str) -> TypeError:
        return TypeError(f"{type(self).__name__} is async: use {instead}")

    def __contains__(self, key: object) -> bool:
        raise self._refuse("`await m.exists(key)`")

    def __getitem__(self, key: object) -> Any:
        raise self._refuse("`await m.get(key)`")

    def __setitem__(self, key: object, value: object) -> None:
        raise self._refuse("`await m.set(key, value)`")

    def __delitem__(self, key: object) -> None:
        raise self._refuse("`await m.delete(key)`")

    def __len__(self) -> int:
        raise self._refuse("`await m.count()`")

    def __iter__(self) -> Iterator[Any]:
        raise self._refuse("`async for ... in`")


class AsyncMemory(_NoDunders, _MemoryBase):
    """``Memory`` with awaitable methods; ``keys()`` / ``items()`` are async iterators."""

    async def _do(self, op: ops.Op, finish: Callable[[Any], T]) -> T:
        return finish(await self._engine.aexecute(op))

    async def _together(self, *plans: Plan[Any]) -> list[Any]:
        results = await self._engine.aexecute(ops.Batch(tuple(op for op, _ in plans)))
        return [finish(r) for (_, finish), r in zip(plans, results, strict=True)]

    async def get(self, key: str, default: Any = None) -> Any:
        text = (await self._engine.aexecute(self._get(key)))[0]
        return default if text is None else decode(text)

    async def set(
        self, key: str, value: Any, *, ttl: float | None = None, if_version: int | None = None
    ) -> int:
        return await self._do(*self._set(key, value, ttl, if_version))

    async def delete(self, key: str, *, if_version: int | None = None) -> bool:
        return await self._do(*self._delete(key, if_version))

    async def exists(self, key: str) -> bool:
        return await self._do(*self._exists(key))

    async def get_many(self, keys: Iterable[str]) -> dict[str, Any]:
        return await self._do(*self._get_many(keys))

    async def set_many(
        self, mapping: Mapping[str, Any], *, ttl: float | None = None
    ) -> dict[str, int]:
        return await self._do(*self._set_many(mapping, ttl))

    async def incr(self, key: str, by: int = 1) -> int:
        return await self._do(*self._incr(key, by))

    async def count(self, *, include_internal: bool = False) -> int:
        """Live keys, as ``keys()`` lists them (``~`` keys only with ``include_internal``)."""
        return await self._do(*self._count(include_internal))

    async def clear(self) -> int:
        return await self._do(*self._clear())

    async def info(self, key: str) -> KeyInfo | None:
        return await self._do(*self._info(key))

    async def keys(
        self, prefix: str = "", *, limit: int | None = None, include_internal: bool = False
    ) -> AsyncGenerator[str, None]:
        """See :meth:`Memory.keys`."""
        page = self._scan(prefix, False, limit, include_internal)
        async for row in _alimited(_apages(self._engine.aexecute, page, _row_key), limit):
            yield row.key

    async def items(
        self, prefix: str = "", *, limit: int | None = None, include_internal: bool = False
    ) -> AsyncGenerator[tuple[str, Any], None]:
        page = self._scan(prefix, True, limit, include_internal)
        async for row in _alimited(_apages(self._engine.aexecute, page, _row_key), limit):
            yield _row_item(row)

    async def search(
        self, query: str, limit: int = 10, *, include_internal: bool = False
    ) -> list[SearchHit]:
        """See :meth:`Memory.search`."""
        return await self._do(*self._search(query, limit, include_internal))

    def log(self, name: str) -> AsyncLog:
        return AsyncLog(self, name)

    async def __aenter__(self) -> AsyncMemory:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


# -- logs ------------------------------------------------------------------------------------


class _LogBase(Generic[T]):
    def __init__(self, memory: T, name: str) -> None:
        self.memory = memory
        self.name = check_name(name, "log name")
        self._ns: str = memory.namespace  # type: ignore[attr-defined]
        self._limit: int = memory.max_value_bytes  # type: ignore[attr-defined]

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._ns!r}, {self.name!r})"

    def _append(self, entry: Any) -> Plan[int]:
        return ops.Append(self._ns, self.name, (encode(entry, self._limit),)), _first

    def _extend(self, entries: Iterable[Any]) -> Plan[list[int]]:
        if isinstance(entries, (str, bytes, Mapping)):
            raise InvalidInput(
                f"extend takes an iterable of entries, not a {type(entries).__name__}"
            )
        texts = tuple(encode(e, self._limit) for e in entries)
        return ops.Append(self._ns, self.name, texts), _same

    def _read_last(self, last: int) -> Plan[list[LogEntry]]:
        check_int(last, "last", minimum=0)
        return ops.Read(self._ns, self.name, last=last), _entries

    def _read_page(self, limit: int | None) -> Callable[[int | None], ops.Read]:
        if limit is not None:
            check_int(limit, "limit", minimum=0)
        size = PAGE_SIZE if limit is None else min(limit, PAGE_SIZE)
        return lambda after: ops.Read(self._ns, self.name, after=after or 0, limit=size)

    def _count(self) -> Plan[int]:
        return ops.LogCount(self._ns, self.name), _same

    def _clear(self) -> Plan[int]:
        return ops.LogClear(self._ns, self.name), _same


def _entries(rows: list[ops.Entry]) -> list[LogEntry]:
    return [LogEntry(seq, decode(value), ts) for seq, value, ts in rows]


def _entry_seq(entry: ops.Entry) -> int:
    return entry.seq


def _check_read(last: int | None, after: int | None) -> int:
    if last is not None and after is not None:
        raise InvalidInput("read takes last=N or after=seq (with limit=N), not both")
    return check_int(after, "after", minimum=0) if after is not None else 0


class Log(_LogBase[Memory]):
    """An append-only log in a namespace: conversation turns, call records, events."""

    def append(self, entry: Any) -> int:
        """Add one entry; returns its sequence number."""
        return self.memory._do(*self._append(entry))

    def extend(self, entries: Iterable[Any]) -> list[int]:
        """Add every entry or none; returns their (consecutive) sequence numbers."""
        return self.memory._do(*self._extend(entries))

    def read(
        self, *, last: int | None = None, after: int | None = None, limit: int | None = None
    ) -> list[LogEntry]:
        """``read(last=N)``: the newest N; ``read(after=seq, limit=N)``: the next N. Oldest first"""
        start = _check_read(last, after)
        if last is not None:
            return self.memory._do(*self._read_last(last))
        return list(self._iter(start, limit))

    def count(self) -> int:
        return self.memory._do(*self._count())

    def clear(self) -> int:
        """Delete every entry; sequence numbers are not reused. Returns how many there were."""
        return self.memory._do(*self._clear())

    def _iter(self, after: int, limit: int | None) -> Iterator[LogEntry]:
        page = self._read_page(limit)
        start = lambda a: page(after if a is None else a)  # noqa: E731
        rows = _pages(self.memory.engine.execute, start, _entry_seq)
        for n, (seq, value, ts) in enumerate(rows):
            if limit is not None and n >= limit:
                return
            yield LogEntry(seq, decode(value), ts)

    def __len__(self) -> int:
        return self.count()

    def __iter__(self) -> Iterator[LogEntry]:
        return self._iter(0, None)


class AsyncLog(_LogBase[AsyncMemory]):
    """``Log`` with awaitable methods; ``async for entry in log``."""

    async def append(self, entry: Any) -> int:
        return await self.memory._do(*self._append(entry))

    async def extend(self, entries: Iterable[Any]) -> list[int]:
        return await self.memory._do(*self._extend(entries))

    async def read(
        self, *, last: int | None = None, after: int | None = None, limit: int | None = None
    ) -> list[LogEntry]:
        start = _check_read(last, after)
        if last is not None:
            return await self.memory._do(*self._read_last(last))
        return [e async for e in self._aiter(start, limit)]

    async def count(self) -> int:
        return await self.memory._do(*self._count())

    async def clear(self) -> int:
        return await self.memory._do(*self._clear())

    async def _aiter(self, after: int, limit: int | None) -> AsyncIterator[LogEntry]:
        page = self._read_page(limit)
        start = lambda a: page(after if a is None else a)  # noqa: E731
        n = 0
        async for seq, value, ts in _apages(self.memory.engine.aexecute, start, _entry_seq):
            if limit is not None and n >= limit:
                return
            n += 1
            yield LogEntry(seq, decode(value), ts)

    def __aiter__(self) -> AsyncIterator[LogEntry]:
        return self._aiter(0, None)

    def __len__(self) -> int:
        raise TypeError("AsyncLog is async: use `await log.count()`")
