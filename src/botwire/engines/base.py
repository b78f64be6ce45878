"""The engine protocol: a handful of frozen op records (named tuples) and two methods to run them.

``Memory`` validates and encodes input once, builds one of the records below and hands it to
``engine.execute(op)`` (or ``await engine.aexecute(op)``). Values cross this boundary as JSON
text, already checked; an engine only stores and fetches. Every engine (SQLite, PostgreSQL, the
HTTP client of the botwire server) implements exactly this, and the conformance suite in
``tests/conformance`` runs against each of them.

Results per operation:

==============  ============================================================================
``Get``         ``list[str | None]``, each key's JSON text, ``None`` for missing or expired
``Info``        ``list[Row | None]``, each key's metadata (``Row.value`` is ``None``)
``Put``         ``list[int]``, the new version of each item
``Delete``      ``bool``, whether a live key was deleted
``Incr``        ``int``, the new value
``Scan``        ``list[Row]``, keys after ``after`` in code-point order, at most ``limit``
``Count``       ``int``, live keys in the namespace
``Clear``       ``int``, keys deleted
``Append``      ``list[int]``, the sequence numbers given to the entries
``Read``        ``list[Entry]``, oldest first
``LogCount``    ``int``
``LogClear``    ``int``, entries deleted
``Namespaces``  ``list[str]``, namespaces after ``after`` with a live key or log entry
``Forget``      ``bool``, whether the namespace held anything
==============  ============================================================================
"""

from __future__ import annotations

from typing import Any, NamedTuple, Protocol, Union, runtime_checkable


class Row(NamedTuple):
    """One stored key. ``value`` is JSON text; ``None`` when the op did not ask for values."""

    key: str
    value: str | None
    version: int
    created_at: float
    updated_at: float
    expires_at: float | None
    size: int


class Entry(NamedTuple):
    """One log entry. ``value`` is JSON text."""

    seq: int
    value: str
    ts: float


class Get(NamedTuple):
    ns: str
    keys: tuple[str, ...]


class Info(NamedTuple):
    ns: str
    keys: tuple[str, ...]


class Put(NamedTuple):
    """Write every item or none. ``if_version`` applies only to a single item."""

    ns: str
    items: tuple[tuple[str, str], ...]
    ttl: float | None = None
    if_version: int | None = None


class Delete(NamedTuple):
    ns: str
    key: str


class Incr(NamedTuple):
    ns: str
    key: str
    by: int


class Scan(NamedTuple):
    ns: str
    prefix: str
    after: str | None
    limit: int
    values: bool = False


class Count(NamedTuple):
    ns: str


class Clear(NamedTuple):
    ns: str


class Append(NamedTuple):
    ns: str
    log: str
    entries: tuple[str, ...]


class Read(NamedTuple):
    """``last``: the newest ``last`` entries. Otherwise entries with ``seq > after``."""

    ns: str
    log: str
    after: int = 0
    limit: int | None = None
    last: int | None = None


class LogCount(NamedTuple):
    ns: str
    log: str


class LogClear(NamedTuple):
    ns: str
    log: str


class Namespaces(NamedTuple):
    prefix: str
    after: str | None
    limit: int


class Forget(NamedTuple):
    ns: str


Op = Union[
    Get,
    Info,
    Put,
    Delete,
    Incr,
    Scan,
    Count,
    Clear,
    Append,
    Read,
    LogCount,
    LogClear,
    Namespaces,
    Forget,
]


@runtime_checkable
class Engine(Protocol):
    """What ``Memory`` needs from a storage backend."""

    url: str

    def execute(self, op: Op) -> Any: ...

    async def aexecute(self, op: Op) -> Any: ...

    def close(self) -> None: ...

    async def aclose(self) -> None: ...
