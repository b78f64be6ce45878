"""LangGraph long-term memory: ``BotWireStore``, a ``langgraph.store.base.BaseStore`` in botwire.

Namespaces. The LangGraph namespace ``(label, label, ...)`` is the botwire namespace
``<prefix>/<label>/<label>...`` (prefix ``"langgraph"`` unless told otherwise), each label with
``%`` written ``%25`` and ``/`` written ``%2F``: every tuple has a name of its own and the name
gives the tuple back, so ``list_namespaces`` and prefix search are listings of
``botwire.namespaces(prefix=...)``. ``("users", "a/b")`` is ``langgraph/users/a%2Fb``.

Items. An item's key is its botwire key; its value is stored in an envelope
``{"value": {...}, "created_at": <Unix s>, "updated_at": <Unix s>, "ttl": <minutes>}`` (``ttl``
only when the item expires), and expires through botwire's own key TTL.

``batch`` and ``abatch`` run one plan (see ``botwire.adapters.langgraph``): reads first, then
writes, every value checked before anything is written.
"""

from __future__ import annotations

from . import require

require("langgraph", "langgraph", "botwire.adapters.langgraph")

import time  # noqa: E402
from collections import defaultdict  # noqa: E402
from collections.abc import Iterable, Mapping  # noqa: E402
from datetime import datetime, timezone  # noqa: E402
from typing import Any, TypeVar  # noqa: E402

from langgraph.store.base import (  # noqa: E402
    BaseStore,
    GetOp,
    InvalidNamespaceError,
    Item,
    ListNamespacesOp,
    MatchCondition,
    Op,
    PutOp,
    Result,
    SearchItem,
    SearchOp,
    TTLConfig,
    validate_op_namespace,
)

from .._codec import MAX_NAME_CHARS, check_name, encode  # noqa: E402
from ..errors import InvalidInput, VersionConflict  # noqa: E402
from . import Closing  # noqa: E402
from .langgraph import Call, Plan, PlanRunner, esc, unesc  # noqa: E402

__all__ = ["BotWireStore", "DEFAULT_STORE_PREFIX", "namespace_name", "namespace_labels"]

DEFAULT_STORE_PREFIX = "langgraph"

# -- names -------------------------------------------------------------------------------------


def namespace_name(prefix: str, labels: tuple[str, ...]) -> str:
    """The botwire namespace of the LangGraph namespace ``labels`` under ``prefix``."""
    return "/".join((prefix, *map(esc, labels)))


def namespace_labels(prefix: str, name: str) -> tuple[str, ...] | None:
    """The LangGraph namespace of the botwire namespace ``name``; None if not one of ours."""
    if not name.startswith(prefix + "/"):
        return None
    labels = tuple(unesc(s) for s in name[len(prefix) + 1 :].split("/"))
    return labels if all(labels) else None  # type: ignore[return-value]


# -- the store ---------------------------------------------------------------------------------


class BotWireStore(Closing, BaseStore):
    """LangGraph's ``BaseStore`` kept in botwire: a drop-in for ``InMemoryStore``.

    ``BotWireStore()`` keeps items in the default storage under the namespace prefix
    ``"langgraph"``; ``url`` / ``api_key`` pick PostgreSQL or a botwire server like
    :class:`botwire.Memory`. ``ttl`` is LangGraph's ``TTLConfig`` (``default_ttl`` minutes,
    ``refresh_on_read``). Search filters like ``InMemoryStore`` and ignores ``query`` (there is
    no vector index); results come in namespace, then key order.

    >>> graph = builder.compile(store=BotWireStore(url="postgresql://..."))  # doctest: +SKIP
    """

    supports_ttl = True

    def __init__(
        self,
        namespace: str = DEFAULT_STORE_PREFIX,
        *,
        url: str | None = None,
        api_key: str | None = None,
        ttl: TTLConfig | None = None,
    ) -> None:
        self.prefix = check_name(namespace, "namespace")
        self.ttl_config = ttl
        self._io = self._held = PlanRunner(self.prefix, url, api_key)

    def batch(self, ops: Iterable[Op]) -> list[Result]:
        return self._io.run(self._batch(list(ops)))

    async def abatch(self, ops: Iterable[Op]) -> list[Result]:
        return await self._io.arun(self._batch(list(ops)))

    def _batch(self, ops: list[Op]) -> Plan[list[Result]]:
        """Reads first, then writes (the last put of a key wins), as ``InMemoryStore`` does."""
        for op in ops:
            self._check(op)
        results: list[Result] = [None] * len(ops)
        puts: dict[tuple[str, str], PutOp] = {}
        gets: dict[tuple[str, ...], list[tuple[int, str]]] = defaultdict(list)
        refresh: set[tuple[str, str]] = set()
        for i, op in enumerate(ops):
            if isinstance(op, PutOp):
                puts[(self._name(op.namespace), op.key)] = op
            elif isinstance(op, GetOp):
                gets[op.namespace].append((i, op.key))
            elif isinstance(op, SearchOp):
                results[i] = yield from self._search(op, refresh)
            else:
                results[i] = yield from self._list_namespaces(op)
        for labels, wanted in gets.items():
            name = self._name(labels)
            found = yield Call(name, "get_many", ([key for _, key in wanted],))
            for i, key in wanted:
                results[i] = _item(Item, labels, key, found.get(key))
                get = ops[i]
                assert isinstance(get, GetOp)
                if results[i] is not None and found[key].get("ttl") and get.refresh_ttl:
                    refresh.add((name, key))
        writes = yield from self._envelopes(puts)  # checks every value before any write
        for name, key in sorted(refresh - puts.keys()):
            yield from self._refresh(name, key)
        for (name, key), (envelope, _) in writes.items():
            if envelope is None:
                yield Call(name, "delete", (key,))
        by_ttl: dict[tuple[str, float | None], dict[str, Any]] = defaultdict(dict)
        for (name, key), (envelope, ttl) in writes.items():
            if envelope is not None:
                by_ttl[(name, ttl)][key] = envelope
        for (name, ttl), mapping in by_ttl.items():
            yield Call(name, "set_many", (mapping,), {"ttl": ttl})
        return results

    # -- checks (no I/O) --------------------------------------------------------------------

    def _name(self, labels: tuple[str, ...]) -> str:
        name = namespace_name(self.prefix, labels)
        if len(name) > MAX_NAME_CHARS:
            raise InvalidNamespaceError(
                f"namespace {labels!r} is {len(name)} characters as the botwire namespace "
                f"{name[:40]!r}...; botwire's limit is {MAX_NAME_CHARS}"
            )
        return name

    def _check(self, op: Op) -> None:
        if not isinstance(op, (GetOp, PutOp, SearchOp, ListNamespacesOp)):
            raise ValueError(f"Unknown operation type: {type(op)}")
        validate_op_namespace(op)
        if isinstance(op, (GetOp, PutOp)):
            if not op.namespace:
                raise InvalidNamespaceError("Namespace cannot be empty.")
            self._name(op.namespace)
            check_name(op.key)
        if isinstance(op, PutOp) and op.value is not None:
            if op.namespace[0] == "langgraph":
                raise InvalidNamespaceError(
                    f'Root label for namespace cannot be "langgraph". Got: {op.namespace}'
                )
            if not isinstance(op.value, Mapping):
                raise InvalidInput(
                    f"value must be a dict with str keys, not {type(op.value).__name__}; "
                    "nothing was stored"
                )
            if op.ttl is not None:
                _check_minutes(op.ttl)
        if isinstance(op, SearchOp) and op.filter:
            _check_filter(op.filter)
        if isinstance(op, ListNamespacesOp):
            for condition in op.match_conditions or ():
                if condition.match_type not in ("prefix", "suffix"):
                    raise ValueError(f"Unsupported match type: {condition.match_type}")

    # -- reads ------------------------------------------------------------------------------

    def _spaces(self, labels: tuple[str, ...]) -> Plan[list[tuple[tuple[str, ...], str]]]:
        """Every namespace (labels, botwire name) starting with ``labels``, in tuple order."""
        start = namespace_name(self.prefix, labels) if labels else self.prefix + "/"
        if len(start) > MAX_NAME_CHARS:
            return []
        found = []
        for name in (yield Call(start, "namespaces")):
            got = namespace_labels(self.prefix, name)
            if got is not None and got[: len(labels)] == labels:
                found.append((got, name))
        return sorted(found)

    def _search(self, op: SearchOp, refresh: set[tuple[str, str]]) -> Plan[list[SearchItem]]:
        bounded = op.offset >= 0 and op.limit >= 0  # else slice like a list, from the end
        stop = op.offset + op.limit if bounded else None
        hits: list[tuple[SearchItem, str, bool]] = []  # (item, botwire namespace, expires)
        for labels, name in (yield from self._spaces(op.namespace_prefix)):
            want = None if op.filter or stop is None else stop - len(hits)
            for key, envelope in (yield Call(name, "items", ("", want))):
                item = _item(SearchItem, labels, key, envelope)
                if item is not None and _matches(item.value, op.filter):
                    hits.append((item, name, bool(envelope.get("ttl"))))
            if stop is not None and len(hits) >= stop:
                break
        page = hits[op.offset : op.offset + op.limit]
        if op.refresh_ttl:
            refresh.update((name, item.key) for item, name, expires in page if expires)
        return [item for item, _, _ in page]

    def _list_namespaces(self, op: ListNamespacesOp) -> Plan[list[tuple[str, ...]]]:
        conditions = op.match_conditions or ()
        literal: tuple[str, ...] = ()  # the longest prefix without a wildcard: one listing
        for c in conditions:
            if c.match_type == "prefix":
                head = tuple(c.path[: c.path.index("*")] if "*" in c.path else c.path)
                literal = max(literal, head, key=len)
        spaces = [s for s, _ in (yield from self._spaces(literal))]
        spaces = [s for s in spaces if all(_does_match(c, s) for c in conditions)]
        if op.max_depth is not None:
            spaces = sorted({s[: op.max_depth] for s in spaces})
        return spaces[op.offset : op.offset + op.limit]

    # -- writes -----------------------------------------------------------------------------

    def _envelopes(
        self, puts: dict[tuple[str, str], PutOp]
    ) -> Plan[dict[tuple[str, str], tuple[dict[str, Any] | None, float | None]]]:
        """(envelope or None to delete, ttl seconds) per item; every envelope checked."""
        keep: dict[str, list[str]] = defaultdict(list)
        for name, key in puts:
            if puts[(name, key)].value is not None:
                keep[name].append(key)
        before: dict[tuple[str, str], Any] = {}
        for name, keys in keep.items():  # an update keeps the item's created_at
            found = yield Call(name, "get_many", (keys,))
            before.update(((name, k), v) for k, v in found.items())
        now = time.time()
        writes: dict[tuple[str, str], tuple[dict[str, Any] | None, float | None]] = {}
        for where, op in puts.items():
            if op.value is None:
                writes[where] = (None, None)
                continue
            old = before.get(where)
            created = old["created_at"] if old is not None and _is_envelope(old) else now
            envelope = {"value": dict(op.value), "created_at": created, "updated_at": now}
            if op.ttl is not None:
                envelope["ttl"] = op.ttl
            encode(envelope, self._io.max_value_bytes)  # what set_many checks, before any write
            writes[where] = (envelope, None if op.ttl is None else op.ttl * 60)
        return writes

    def _refresh(self, name: str, key: str) -> Plan[None]:
        """Restart the expiry of one item, unless it was written after this read."""
        info = yield Call(name, "info", (key,))
        if info is None:
            return
        envelope = yield Call(name, "get", (key,))
        if not (_is_envelope(envelope) and envelope.get("ttl")):
            return
        again = {"ttl": envelope["ttl"] * 60, "if_version": info.version}
        try:  # the version was read first: a write in between makes this a no-op, not a rollback
            yield Call(name, "set", (key, envelope), again)
        except VersionConflict:
            pass  # written or deleted meanwhile; a write sets its own expiry


# -- items and filters -------------------------------------------------------------------------

_I = TypeVar("_I", bound=Item)


def _is_envelope(value: Any) -> bool:
    return (
        isinstance(value, dict)
        and isinstance(value.get("value"), dict)
        and all(isinstance(value.get(t), (int, float)) for t in ("created_at", "updated_at"))
    )


def _item(kind: type[_I], labels: tuple[str, ...], key: str, envelope: Any) -> _I | None:
    if not _is_envelope(envelope):
        return None  # missing, or not written by a BotWireStore
    return kind(
        namespace=labels,
        key=key,
        value=envelope["value"],
        created_at=datetime.fromtimestamp(envelope["created_at"], timezone.utc),
        updated_at=datetime.fromtimestamp(envelope["updated_at"], timezone.utc),
    )


def _check_minutes(ttl: Any) -> None:
    if not isinstance(ttl, (int, float)) or isinstance(ttl, bool) or not 0 < ttl < float("inf"):
        raise InvalidInput(f"ttl must be a positive number of minutes, not {ttl!r}")


_OPERATORS = {"$eq", "$ne", "$gt", "$gte", "$lt", "$lte"}


def _check_filter(filter: Any) -> None:
    """Raise ``ValueError`` for an unknown ``$`` operator anywhere in ``filter``."""
    if isinstance(filter, dict):
        if any(isinstance(k, str) and k.startswith("$") for k in filter):
            unknown = set(filter) - _OPERATORS
            if unknown:
                raise ValueError(f"Unsupported operator: {sorted(map(str, unknown))[0]}")
            return
        for value in filter.values():
            _check_filter(value)
    elif isinstance(filter, (list, tuple)):
        for value in filter:
            _check_filter(value)


def _matches(value: dict[str, Any], filter: dict[str, Any] | None) -> bool:
    return not filter or all(_compare(value.get(k), want) for k, want in filter.items())


def _compare(have: Any, want: Any) -> bool:
    """``InMemoryStore``'s matching: operators, nested dicts by their keys, lists item by item."""
    if isinstance(want, dict):
        if any(isinstance(k, str) and k.startswith("$") for k in want):
            return all(_apply(have, op, arg) for op, arg in want.items())
        return isinstance(have, dict) and all(_compare(have.get(k), v) for k, v in want.items())
    if isinstance(want, (list, tuple)):
        return (
            isinstance(have, (list, tuple))
            and len(have) == len(want)
            and all(_compare(h, w) for h, w in zip(have, want, strict=True))
        )
    return bool(have == want)


def _apply(have: Any, op: str, arg: Any) -> bool:
    if op == "$eq":
        return bool(have == arg)
    if op == "$ne":
        return bool(have != arg)
    try:  # numbers (or numeric strings) compare as floats; anything else does not match
        a, b = float(have), float(arg)
    except (TypeError, ValueError):
        return False
    return {"$gt": a > b, "$gte": a >= b, "$lt": a < b, "$lte": a <= b}[op]


def _does_match(condition: MatchCondition, labels: tuple[str, ...]) -> bool:
    path = condition.path
    if len(labels) < len(path):
        return False
    if condition.match_type == "prefix":
        pairs = zip(labels[: len(path)], path, strict=True)
    else:
        pairs = zip(labels[::-1][: len(path)], path[::-1], strict=True)
    return all(want == "*" or have == want for have, want in pairs)
