"""CrewAI memory storage in botwire: ``crewai.Memory(storage=BotWireStorage("my-crew"))``.

:class:`BotWireStorage` implements CrewAI's ``StorageBackend`` protocol
(``crewai.memory.storage.backend``), the interface of its built-in LanceDB store, so a crew's
memory lives in a botwire namespace: the embedded SQLite file, PostgreSQL, or a botwire server.

Layout, in the one namespace the storage owns::

    record:<id>            {"content", "scope", "categories", "metadata", "importance",
                            "created_at", "last_accessed", "source", "private"}
    embedding:<id>         the record's embedding, a list of floats (null without one)
    embedding-dimensions   the length of the first embedding stored; later ones must match

Scopes are the record's ``scope`` field, normalized like CrewAI's own paths (leading ``/``,
no trailing or double ``/``). A scope prefix ``/a/b`` selects scope ``/a/b`` and everything
below it (``/a/b/c``), never ``/a/bc``; ``None`` or ``/`` selects every record.

Search reads the records in the namespace, keeps those the filters allow, fetches their
embeddings and ranks by cosine similarity, computed here (there is no vector index): it suits
memories of up to some thousands of records per namespace. Sync methods run through
:class:`botwire.Memory`, ``asave`` / ``asearch`` / ``adelete`` through
:class:`botwire.AsyncMemory` on the same engine.
"""

from __future__ import annotations

from . import open_memory, require

require("crewai", "crewai", "botwire.adapters.crewai")

import heapq  # noqa: E402
import math  # noqa: E402
from collections.abc import Iterable, Mapping  # noqa: E402
from datetime import datetime, timezone  # noqa: E402
from typing import Any  # noqa: E402

from crewai.memory.storage.backend import EmbeddingDimensionMismatchError  # noqa: E402
from crewai.memory.types import MemoryRecord, ScopeInfo  # noqa: E402
from crewai.memory.utils import normalize_scope_path  # noqa: E402

from .._wire import redact  # noqa: E402
from ..errors import InvalidInput, VersionConflict  # noqa: E402
from ..memory import PAGE_SIZE, AsyncMemory, Memory  # noqa: E402

__all__ = ["BotWireStorage"]

RECORD = "record:"
EMBEDDING = "embedding:"
DIMENSIONS = "embedding-dimensions"

Row = tuple[str, dict[str, Any]]  # (record id, stored record fields)


class BotWireStorage:
    """CrewAI's memory ``StorageBackend`` in one botwire namespace.

    ``BotWireStorage("research-crew", url=None, api_key=None)`` opens a
    :class:`botwire.Memory` on the namespace (``url`` and ``api_key`` as there), or pass an open
    ``memory=``. The namespace belongs to the storage: ``reset()`` clears all of it.
    """

    def __init__(
        self,
        namespace: str | None = None,
        *,
        url: str | None = None,
        api_key: str | None = None,
        memory: Memory | None = None,
    ) -> None:
        memory = open_memory("BotWireStorage", namespace, url, api_key, memory)
        self.memory = memory
        self.namespace = memory.namespace
        self._amemory = AsyncMemory(
            memory.namespace, engine=memory.engine, max_value_bytes=memory.max_value_bytes
        )

    def __repr__(self) -> str:
        return f"BotWireStorage({self.namespace!r}, url={redact(self.memory.engine.url)!r})"

    def close(self) -> None:
        """Release the Memory (``crewai.Memory.close()`` calls this)."""
        self.memory.close()

    def __deepcopy__(self, memo: dict[int, Any]) -> BotWireStorage:
        # A handle on a database, not data: CrewAI's copies of a Memory share it.
        return self

    # -- writes ------------------------------------------------------------------------------

    def save(self, records: list[MemoryRecord]) -> None:
        """Store ``records`` (a record whose id exists replaces it): all of them or none."""
        if not records:
            return
        dims = _batch_dimensions(records)
        stored = self.memory.get(DIMENSIONS) if dims else None
        self.memory.set_many(_encode(records, dims, stored))

    async def asave(self, records: list[MemoryRecord]) -> None:
        if not records:
            return
        dims = _batch_dimensions(records)
        stored = await self._amemory.get(DIMENSIONS) if dims else None
        await self._amemory.set_many(_encode(records, dims, stored))

    def update(self, record: MemoryRecord) -> None:
        """Replace the record with ``record.id`` (or add it), embedding included."""
        self.save([record])

    def touch_records(self, record_ids: list[str]) -> None:
        """Set ``last_accessed`` to now (CrewAI calls this after a recall; best effort).

        Each record is rewritten only if nobody wrote it since it was read, so a concurrent
        ``update`` is never undone.
        """
        now = _now().isoformat()
        for rid in dict.fromkeys(record_ids):
            key = RECORD + rid
            info = self.memory.info(key)
            fields = self.memory.get(key) if info is not None else None
            if info is None or not isinstance(fields, dict):
                continue
            try:
                self.memory.set(key, {**fields, "last_accessed": now}, if_version=info.version)
            except VersionConflict:
                continue

    def delete(
        self,
        scope_prefix: str | None = None,
        categories: list[str] | None = None,
        record_ids: list[str] | None = None,
        older_than: datetime | None = None,
        metadata_filter: dict[str, Any] | None = None,
    ) -> int:
        """Delete the records matching every criterion given (all of them when none is).

        Returns how many were deleted.
        """
        match = _Match(scope_prefix, categories, metadata_filter, record_ids, older_than)
        if match.everything:
            count = sum(1 for _ in self.memory.keys(RECORD))
            self.memory.clear()
            return count
        if match.only_ids:
            ids = list(match.ids or ())
        else:
            ids = [rid for rid, fields in self._rows() if match(rid, fields)]
        deleted = 0
        for rid in ids:
            # The record first: an embedding without its record is never read.
            deleted += self.memory.delete(RECORD + rid)
            self.memory.delete(EMBEDDING + rid)
        return deleted

    async def adelete(
        self,
        scope_prefix: str | None = None,
        categories: list[str] | None = None,
        record_ids: list[str] | None = None,
        older_than: datetime | None = None,
        metadata_filter: dict[str, Any] | None = None,
    ) -> int:
        match = _Match(scope_prefix, categories, metadata_filter, record_ids, older_than)
        if match.everything:
            count = 0
            async for _ in self._amemory.keys(RECORD):
                count += 1
            await self._amemory.clear()
            return count
        if match.only_ids:
            ids = list(match.ids or ())
        else:
            ids = [rid for rid, fields in await self._arows() if match(rid, fields)]
        deleted = 0
        for rid in ids:
            deleted += await self._amemory.delete(RECORD + rid)
            await self._amemory.delete(EMBEDDING + rid)
        return deleted

    def reset(self, scope_prefix: str | None = None) -> None:
        """Delete every record in the scope; with no scope, everything in the namespace."""
        self.delete(scope_prefix=scope_prefix)

    # -- reads -------------------------------------------------------------------------------

    def search(
        self,
        query_embedding: list[float],
        scope_prefix: str | None = None,
        categories: list[str] | None = None,
        metadata_filter: dict[str, Any] | None = None,
        limit: int = 10,
        min_score: float = 0.0,
    ) -> list[tuple[MemoryRecord, float]]:
        """The ``limit`` records most similar to ``query_embedding`` (cosine), best first.

        Only records in ``scope_prefix`` (and below), with any of ``categories`` and every item
        of ``metadata_filter``, scoring at least ``min_score``. Records without an embedding
        are never found by search.
        """
        query = _check_query(query_embedding, limit)
        if query is None:
            return []
        match = _Match(scope_prefix, categories, metadata_filter)
        rows = [(rid, f) for rid, f in self._rows() if match(rid, f)]
        vectors: dict[str, Any] = {}
        for keys in _chunks([EMBEDDING + rid for rid, _ in rows]):
            vectors.update(self.memory.get_many(keys))
        return _rank(query, rows, vectors, limit, min_score)

    async def asearch(
        self,
        query_embedding: list[float],
        scope_prefix: str | None = None,
        categories: list[str] | None = None,
        metadata_filter: dict[str, Any] | None = None,
        limit: int = 10,
        min_score: float = 0.0,
    ) -> list[tuple[MemoryRecord, float]]:
        query = _check_query(query_embedding, limit)
        if query is None:
            return []
        match = _Match(scope_prefix, categories, metadata_filter)
        rows = [(rid, f) for rid, f in await self._arows() if match(rid, f)]
        vectors: dict[str, Any] = {}
        for keys in _chunks([EMBEDDING + rid for rid, _ in rows]):
            vectors.update(await self._amemory.get_many(keys))
        return _rank(query, rows, vectors, limit, min_score)

    def get_record(self, record_id: str) -> MemoryRecord | None:
        """The record with ``record_id`` and its embedding, or None."""
        found = self.memory.get_many([RECORD + record_id, EMBEDDING + record_id])
        fields = found.get(RECORD + record_id)
        if not isinstance(fields, dict):
            return None
        return _record(record_id, fields, found.get(EMBEDDING + record_id))

    def list_records(
        self, scope_prefix: str | None = None, limit: int = 200, offset: int = 0
    ) -> list[MemoryRecord]:
        """Records in the scope (and below), newest first, without their embeddings."""
        if limit <= 0 or offset < 0:
            return []
        match = _Match(scope_prefix)
        rows = [(rid, f) for rid, f in self._rows() if match(rid, f)]
        rows.sort(key=lambda row: _time(row[1]["created_at"]), reverse=True)
        return [_record(rid, fields) for rid, fields in rows[offset : offset + limit]]

    def get_scope_info(self, scope: str) -> ScopeInfo:
        """Record count, categories, oldest / newest record and child scopes of ``scope``."""
        path = normalize_scope_path(scope)
        match = _Match(path)
        rows = [f for rid, f in self._rows() if match(rid, f)]
        times = [_time(f["created_at"]) for f in rows]
        categories = {c for f in rows for c in f["categories"]}
        return ScopeInfo(
            path=path,
            record_count=len(rows),
            categories=sorted(categories),
            oldest_record=min(times, default=None),
            newest_record=max(times, default=None),
            child_scopes=_children(path, (f["scope"] for f in rows)),
        )

    def list_scopes(self, parent: str = "/") -> list[str]:
        """The immediate child scopes of ``parent`` that hold records (at any depth below)."""
        path = normalize_scope_path(parent)
        return _children(path, (f["scope"] for _, f in self._rows()))

    def list_categories(self, scope_prefix: str | None = None) -> dict[str, int]:
        """How many records in the scope carry each category."""
        match = _Match(scope_prefix)
        counts: dict[str, int] = {}
        for rid, fields in self._rows():
            if match(rid, fields):
                for category in fields["categories"]:
                    counts[category] = counts.get(category, 0) + 1
        return counts

    def count(self, scope_prefix: str | None = None) -> int:
        """How many records are in the scope and below (``None``: in the namespace)."""
        match = _Match(scope_prefix)
        if match.everything:
            return sum(1 for _ in self.memory.keys(RECORD))
        return sum(1 for rid, fields in self._rows() if match(rid, fields))

    def _rows(self) -> list[Row]:
        return [(key[len(RECORD) :], v) for key, v in self.memory.items(RECORD) if _valid(v)]

    async def _arows(self) -> list[Row]:
        items = self._amemory.items(RECORD)
        return [(key[len(RECORD) :], v) async for key, v in items if _valid(v)]


# -- filters -------------------------------------------------------------------------------


class _Match:
    """The filters of a search / delete / listing, applied to stored record fields."""

    def __init__(
        self,
        scope_prefix: str | None = None,
        categories: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        record_ids: list[str] | None = None,
        older_than: datetime | None = None,
    ) -> None:
        scope = normalize_scope_path(scope_prefix) if scope_prefix is not None else "/"
        self.scope = None if scope == "/" else scope
        self.categories = set(categories) if categories else None
        if metadata is not None and not isinstance(metadata, Mapping):
            raise InvalidInput(f"metadata_filter must be a dict, not {type(metadata).__name__}")
        self.metadata = dict(metadata) if metadata else None
        # record_ids=[] selects no record (not every record)
        self.ids = _ids(record_ids) if record_ids is not None else None
        self.older_than = _naive_utc(older_than) if older_than is not None else None
        filters = (self.scope, self.categories, self.metadata, self.older_than)
        self.everything = self.ids is None and all(f is None for f in filters)
        self.only_ids = self.ids is not None and all(f is None for f in filters)

    def __call__(self, rid: str, fields: dict[str, Any]) -> bool:
        if self.scope is not None and not _in_scope(fields["scope"], self.scope):
            return False
        if self.categories is not None and self.categories.isdisjoint(fields["categories"]):
            return False
        if self.metadata is not None:
            stored = fields["metadata"]
            if not all(k in stored and stored[k] == v for k, v in self.metadata.items()):
                return False
        if self.ids is not None and rid not in self.ids:
            return False
        if self.older_than is not None and not _time(fields["created_at"]) < self.older_than:
            return False
        return True


def _ids(record_ids: Iterable[str]) -> dict[str, None]:
    """The ids, once each, in order (a dict: ordered, and quick to test membership)."""
    if isinstance(record_ids, str) or not all(isinstance(r, str) for r in record_ids):
        raise InvalidInput("record_ids must be a list of str")
    return dict.fromkeys(record_ids)


def _in_scope(scope: str, prefix: str) -> bool:
    return scope == prefix or scope.startswith(prefix + "/")


def _children(parent: str, scopes: Iterable[str]) -> list[str]:
    """Immediate children of ``parent`` among ``scopes`` and their ancestors, sorted."""
    base = "" if parent == "/" else parent
    children = set()
    for scope in scopes:
        if scope.startswith(base + "/") and len(scope) > len(base) + 1:
            children.add(base + "/" + scope[len(base) + 1 :].split("/", 1)[0])
    return sorted(children)


# -- records <-> stored values ---------------------------------------------------------------


def _fields(record: MemoryRecord) -> dict[str, Any]:
    return {
        "content": record.content,
        "scope": normalize_scope_path(record.scope),
        "categories": list(record.categories),
        "metadata": record.metadata,
        "importance": record.importance,
        "created_at": record.created_at.isoformat(),
        "last_accessed": record.last_accessed.isoformat(),
        "source": record.source,
        "private": record.private,
    }


def _valid(value: Any) -> bool:
    """Whether a stored value has the fields every reader relies on."""
    return (
        isinstance(value, dict)
        and isinstance(value.get("scope"), str)
        and isinstance(value.get("categories"), list)
        and isinstance(value.get("metadata"), dict)
        and isinstance(value.get("created_at"), str)
    )


def _record(rid: str, fields: dict[str, Any], embedding: Any = None) -> MemoryRecord:
    return MemoryRecord(
        id=rid,
        content=fields.get("content", ""),
        scope=fields["scope"],
        categories=fields["categories"],
        metadata=fields["metadata"],
        importance=fields.get("importance", 0.5),
        created_at=_time(fields["created_at"]),
        last_accessed=_time(fields.get("last_accessed") or fields["created_at"]),
        embedding=embedding if isinstance(embedding, list) and embedding else None,
        source=fields.get("source"),
        private=bool(fields.get("private", False)),
    )


def _batch_dimensions(records: list[MemoryRecord]) -> int | None:
    """The embeddings' common length (None when no record has one); mixed lengths raise."""
    dims = None
    for record in records:
        if not isinstance(record, MemoryRecord):
            raise InvalidInput(f"save takes MemoryRecord objects, not {type(record).__name__}")
        if record.embedding:
            if dims is None:
                dims = len(record.embedding)
            elif len(record.embedding) != dims:
                raise EmbeddingDimensionMismatchError(dims, len(record.embedding))
    return dims


def _encode(records: list[MemoryRecord], dims: int | None, stored: Any) -> dict[str, Any]:
    """The keys to write for ``records``, checked against the stored dimension count."""
    if dims is not None and isinstance(stored, int) and stored != dims:
        raise EmbeddingDimensionMismatchError(stored, dims)
    mapping: dict[str, Any] = {}
    for record in records:
        mapping[RECORD + record.id] = _fields(record)
        # null for no embedding, so a replaced record never keeps an old one
        embedding = [float(x) for x in record.embedding] if record.embedding else None
        mapping[EMBEDDING + record.id] = embedding
    if dims is not None and stored is None:
        mapping[DIMENSIONS] = dims
    return mapping


def _check_query(query_embedding: Any, limit: int) -> list[float] | None:
    if type(limit) is not int or limit < 0:
        raise InvalidInput(f"limit must be an int >= 0, not {limit!r}")
    query = [float(x) for x in query_embedding]
    if not all(math.isfinite(x) for x in query):
        raise InvalidInput("query_embedding must hold finite numbers")
    if limit == 0 or not query or _norm(query) == 0.0:
        return None
    return query


def _rank(
    query: list[float],
    rows: list[Row],
    vectors: Mapping[str, Any],
    limit: int,
    min_score: float,
) -> list[tuple[MemoryRecord, float]]:
    qnorm = _norm(query)
    scored: list[tuple[float, str, str, dict[str, Any], list[float]]] = []
    for rid, fields in rows:
        vector = vectors.get(EMBEDDING + rid)
        if not isinstance(vector, list) or not vector:
            continue
        if len(vector) != len(query):
            raise EmbeddingDimensionMismatchError(len(vector), len(query))
        vnorm = _norm(vector)
        if vnorm == 0.0:
            continue
        score = math.fsum(a * b for a, b in zip(query, vector, strict=True)) / (qnorm * vnorm)
        if score >= min_score:
            scored.append((score, fields["created_at"], rid, fields, vector))
    best = heapq.nlargest(limit, scored, key=lambda s: (s[0], _time(s[1])))
    return [(_record(rid, fields, vector), score) for score, _, rid, fields, vector in best]


def _norm(vector: list[float]) -> float:
    return math.sqrt(math.fsum(x * x for x in vector))


def _chunks(keys: list[str]) -> Iterable[list[str]]:
    for start in range(0, len(keys), PAGE_SIZE):
        yield keys[start : start + PAGE_SIZE]


# -- time ----------------------------------------------------------------------------------


def _now() -> datetime:
    """Now as CrewAI stamps records: naive UTC."""
    return datetime.now(timezone.utc).replace(tzinfo=None)


def _naive_utc(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        return moment
    return moment.astimezone(timezone.utc).replace(tzinfo=None)


def _time(text: str) -> datetime:
    """A stored timestamp, as naive UTC so that stored and given times always compare."""
    return _naive_utc(datetime.fromisoformat(text))
