"""The engine protocol: a handful of frozen op records (named tuples) and two methods to run them.

``Memory`` validates and encodes input once, builds one of the records below and hands it to
``engine.execute(op)`` (or ``await engine.aexecute(op)``). Values cross this boundary as JSON
text, already checked; an engine only stores and fetches. Every engine (SQLite, PostgreSQL, the
HTTP client of the botwire server) implements exactly this, and the conformance suite in
``tests/conformance`` runs against each of them.

Results per operation:

==============  ============================================================================
``Get``         ``list[str | None]``, each key's JSON text, ``None`` for missing or expired
``Info``        ``list[Row | None]``, each key's metadata (and value when ``values``)
``Put``         ``list[int]``, the new version of each item
``Delete``      ``bool``, whether a live key was deleted
``Incr``        ``int``, the new value
``Scan``        ``list[Row]``, keys after ``after`` in code-point order, at most ``limit``
``Count``       ``int``, live keys in the namespace (as listed: ``~`` keys only if asked)
``Clear``       ``int``, keys deleted
``Append``      ``list[int]``, the sequence numbers given to the entries
``Read``        ``list[Entry]``, oldest first
``LogCount``    ``int``
``LogClear``    ``int``, entries deleted
``Namespaces``  ``list[str]``, namespaces after ``after`` with a live key or log entry
``Forget``      ``bool``, whether the namespace held anything
``Search``      ``list[Hit]``, the live keys and log entries matching any of ``terms``, most
                relevant first, at most ``limit``
``Logs``        ``list[LogInfo]``, the namespace's logs after ``after`` by name, at most ``limit``
``Floor``       ``int``, the namespace's version floor: the highest version ever removed
``Restore``     ``str``, "imported" or "unchanged" (it held exactly this); all or nothing;
                ``NamespaceNotEmpty`` when it holds other data and ``replace`` is not set
==============  ============================================================================

Names starting with ``INTERNAL`` (``~``) are botwire's own bookkeeping (``~call/...`` keys,
the ``~botwire:voice-replay`` namespace): ``Scan``, ``Namespaces`` and ``Search`` leave them out
unless ``internal`` is set or the ``prefix`` itself starts with ``~``. The database skips them,
so ``limit`` counts only the names returned and paging stays exact.

The botwire server also keeps its own state (API keys, quota counters) in the database it
serves, through a few *server ops* below the line. The SQL engines run them; the HTTP engine,
a client, refuses them.

==============  ============================================================================
``Charge``      ``int | None``, the day's write count after charging ``n``; ``None`` when
                that would pass ``limit`` (nothing is charged)
``Usage``       ``int``, bytes stored by live keys and log entries of the namespace
``Writes``      ``int``, the writes charged to the namespace on ``day`` (read only)
``SaveKey``     ``bool``, whether the key was saved (``only_if_none``: no key exists yet)
``FindKey``     ``ApiKey | None``, the unrevoked key with this hash
``ListKeys``    ``list[ApiKey]``, every key, revoked ones too, oldest first
``RevokeKey``   ``bool``, whether an unrevoked key was revoked
``TouchKey``    ``bool``, whether the key's ``last_used_at`` moved forward to ``at`` (it never
                moves back)
``Recent``      ``list[Row]``, the most recently written keys, newest first (no values)
==============  ============================================================================
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Generator
from typing import Any, NamedTuple, Protocol, Union, runtime_checkable

INTERNAL = "~"  # the first character of botwire's own names


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


class LogInfo(NamedTuple):
    """One log of a namespace: ``last_seq`` is the last number handed out (cleared entries
    included), ``entry_count`` the entries it holds."""

    name: str
    last_seq: int
    entry_count: int


class LogDump(NamedTuple):
    """A log as ``Restore`` writes it: its entries keep their numbers and times."""

    name: str
    last_seq: int
    entries: tuple[Entry, ...]


class Hit(NamedTuple):
    """One search result: a key (``log`` is None) or a log entry. ``value`` is JSON text."""

    key: str | None
    log: str | None
    seq: int | None
    value: str
    ts: float  # the key's updated_at or the entry's ts
    score: float  # higher is more relevant; the scale is the engine's own


class Get(NamedTuple):
    ns: str
    keys: tuple[str, ...]


class Info(NamedTuple):
    ns: str
    keys: tuple[str, ...]
    values: bool = False  # fill ``Row.value`` too


class Put(NamedTuple):
    """Write every item or none. ``if_version`` applies only to a single item."""

    ns: str
    items: tuple[tuple[str, str], ...]
    ttl: float | None = None
    if_version: int | None = None


class Delete(NamedTuple):
    ns: str
    key: str
    if_version: int | None = None  # delete only a live key at this version (>= 1)


class Incr(NamedTuple):
    ns: str
    key: str
    by: int


class Scan(NamedTuple):
    """``internal``: also keys starting with ``~`` (see ``INTERNAL``)."""

    ns: str
    prefix: str
    after: str | None
    limit: int
    values: bool = False
    internal: bool = False


class Count(NamedTuple):
    """``internal``: also keys starting with ``~``, which ``keys()`` leaves out too."""

    ns: str
    internal: bool = False


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
    """``internal``: also namespaces starting with ``~`` (see ``INTERNAL``)."""

    prefix: str
    after: str | None
    limit: int
    internal: bool = False


class Forget(NamedTuple):
    ns: str


class Search(NamedTuple):
    """Keyword search. ``terms`` are lower-case words (letters and digits), stop words removed.
    ``internal``: also keys and logs whose names start with ``~`` (see ``INTERNAL``)."""

    ns: str
    terms: tuple[str, ...]
    limit: int
    internal: bool = False


class Logs(NamedTuple):
    """``internal``: also logs whose names start with ``~``."""

    ns: str
    after: str | None = None
    limit: int = 1000
    internal: bool = False


class Floor(NamedTuple):
    ns: str


class Restore(NamedTuple):
    """Write a namespace exactly as exported: keys with their versions and times, logs with
    their numbers. ``floor``: the namespace's version floor. ``replace``: overwrite whatever it
    holds."""

    ns: str
    keys: tuple[Row, ...]
    logs: tuple[LogDump, ...]
    floor: int = 0
    replace: bool = False


class ApiKey(NamedTuple):
    """A server API key as stored: only the SHA-256 of the secret, never the secret."""

    id: str
    hash: str
    name: str
    prefixes: tuple[str, ...]
    rights: str  # "read", "write" or "admin"
    writes_per_day: int | None  # None: the server default; 0: unlimited
    max_bytes: int | None
    created_at: float
    revoked_at: float | None = None
    last_used_at: float | None = None  # as the server last recorded a use (see ``TouchKey``)


class Charge(NamedTuple):
    ns: str
    day: str  # UTC date, YYYY-MM-DD
    n: int  # negative to refund
    limit: int  # 0: unlimited


class Usage(NamedTuple):
    ns: str


class Writes(NamedTuple):
    ns: str
    day: str  # UTC date, YYYY-MM-DD


class SaveKey(NamedTuple):
    key: ApiKey
    only_if_none: bool = False


class FindKey(NamedTuple):
    hash: str


class ListKeys(NamedTuple):
    pass


class RevokeKey(NamedTuple):
    id: str
    at: float


class TouchKey(NamedTuple):
    """Record that key ``id`` was used at ``at``: one statement, by primary key."""

    id: str
    at: float


class Recent(NamedTuple):
    """``internal``: also keys starting with ``~`` (see ``INTERNAL``)."""

    ns: str
    limit: int
    internal: bool = False


class Batch(NamedTuple):
    """Reads answered together: a list of their results, in order. Only ops that only read
    (not ``Search``). PostgreSQL answers key scans and newest-entries reads (call start's) in
    one statement (``sql.batch_one``): one round trip; other engines, one read after another."""

    ops: tuple[Any, ...]


Op = Union[
    Batch,
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
    Search,
    Logs,
    Floor,
    Restore,
    Charge,
    Usage,
    Writes,
    SaveKey,
    FindKey,
    ListKeys,
    RevokeKey,
    TouchKey,
    Recent,
]


# What a ``Batch`` may hold: the ops that only read (``Search`` runs apart on SQLite).
READS = (
    Get,
    Info,
    Scan,
    Count,
    Read,
    LogCount,
    Namespaces,
    Logs,
    Floor,
    Usage,
    Writes,
    FindKey,
    ListKeys,
    Recent,
)


def batch_ops(op: Batch) -> tuple[Any, ...]:
    """``op.ops``; ``TypeError`` when one of them is not a read of ``READS``."""
    for sub in op.ops:
        if type(sub) not in READS:
            raise TypeError(f"a Batch holds reads only, not {type(sub).__name__}")
    return op.ops


@runtime_checkable
class Engine(Protocol):
    """What ``Memory`` needs from a storage backend."""

    url: str

    def execute(self, op: Op) -> Any: ...

    async def aexecute(self, op: Op) -> Any: ...

    def close(self) -> None: ...

    async def aclose(self) -> None: ...


# -- stepping handlers ------------------------------------------------------------------------
# An engine turns each op into a *handler*: a generator that yields what to send to the
# database or server (a statement, a request) and receives each answer. The drivers below step
# one, sync or async, so the engines write their logic once (as httpx.Auth.auth_flow does).


def drive(handler: Generator[Any, Any, Any], run: Callable[[Any], Any]) -> Any:
    """Step ``handler`` to the end, running each statement with ``run``."""
    answer = None
    while True:
        try:
            stmt = handler.send(answer)
        except StopIteration as stop:
            return stop.value
        answer = run(stmt)


async def adrive(handler: Generator[Any, Any, Any], run: Callable[[Any], Awaitable[Any]]) -> Any:
    """``drive`` for a coroutine ``run``: the only part the async engines add."""
    answer = None
    while True:
        try:
            stmt = handler.send(answer)
        except StopIteration as stop:
            return stop.value
        answer = await run(stmt)
