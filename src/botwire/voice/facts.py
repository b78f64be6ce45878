"""A caller's facts with where each came from, their last values, and the platforms' extracted
fields turned into facts by per-field policies.

A fact is a plain key of the caller's namespace (``customer_name``). Beside it, the internal key
``~fact/<key>`` keeps its provenance: the last ``HISTORY`` writes in the order they took effect,
each ``{"value", "source", "platform", "call_id", "at", "born", "version"}`` (``"deleted": true``
for a removal; ``born`` is the key's creation time, as versions start again after a removal).
The fact is written by compare-and-set, then its entry added to the record by compare-and-set,
so concurrent writers each leave their entry, on every engine; a fact's provenance is the entry
of its current life and version.
A fact written straight through ``Memory`` / ``/v1`` has no entry of its own: it reads back with
``source="api"`` and the key's own update time.

Extraction (``apply``): every field of a platform's structured extraction becomes a fact under
its name, unless ``Policies`` (the ``facts`` setting) say otherwise::

    *=overwrite, allergies=append, email=fill_if_empty, score=ignore, name->customer_name
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from functools import partial
from typing import TYPE_CHECKING, Any

from .._codec import MAX_NAME_CHARS, check_name
from ..errors import ConfigurationError, InvalidInput, StorageUnavailable, VersionConflict
from .records import INTERNAL_PREFIX, LAST_CALL, OPEN_PREFIX, bounded

if TYPE_CHECKING:
    from .core import Plan

log = logging.getLogger("botwire.voice")
PREFIX = f"{INTERNAL_PREFIX}fact/"
HISTORY = 10  # writes kept per fact
SOURCES = ("analysis", "tool", "api", "console", "mcp")
POLICIES = ("overwrite", "fill_if_empty", "append", "ignore")
EMPTY_WORDS = frozenset(
    {
        "n/a", "na", "n.a.", "none", "null", "nil", "unknown", "not available", "not applicable",
        "not provided", "not mentioned", "not specified", "not stated", "unspecified", "-", "--",
    }
)  # fmt: skip


# -- provenance ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Origin:
    """Where a write comes from: ``source`` (one of ``SOURCES``), the platform and call."""

    source: str
    platform: str | None = None
    call_id: str | None = None

    def entry(self, value: Any, deleted: bool = False) -> dict[str, Any]:
        out = {"value": bounded(value), "source": self.source, "platform": self.platform}
        out.update({"call_id": self.call_id, "at": time.time()})
        if deleted:
            out["deleted"] = True
        return out


@dataclass(frozen=True)
class Fact:
    """One fact, or one past write of it (``history``): its value and where it came from.
    ``source`` is ``"api"`` for a write made through ``Memory`` or ``/v1`` directly."""

    key: str
    value: Any
    source: str
    at: float | None
    platform: str | None = None
    call_id: str | None = None
    deleted: bool = False
    truncated: bool = False  # a history entry of a value too long to keep whole

    @classmethod
    def of(cls, key: str, entry: Mapping[str, Any]) -> Fact:
        value = entry.get("value")
        truncated = isinstance(value, dict) and value.keys() == {"~truncated"}
        return cls(
            key,
            value["~truncated"] if truncated and isinstance(value, dict) else value,
            str(entry.get("source") or "api"),
            entry.get("at"),
            entry.get("platform"),
            entry.get("call_id"),
            bool(entry.get("deleted")),
            truncated,
        )


def record_key(key: str) -> str:
    """The internal key that holds ``key``'s provenance (hashed when the name would not fit)."""
    name = PREFIX + key
    if len(name) <= MAX_NAME_CHARS:
        return name
    return PREFIX + "#" + hashlib.sha256(key.encode()).hexdigest()


def _entries(record: Any) -> list[dict[str, Any]]:
    history = record.get("history") if isinstance(record, dict) else None
    return [e for e in history if isinstance(e, dict)] if isinstance(history, list) else []


def _order(entry: dict[str, Any]) -> tuple[float, int, int]:
    """Writes in the order they took effect: by the key's life (its creation time), then
    version; a removal last in its life."""
    born, version = entry.get("born"), entry.get("version")
    rank = (0, version) if isinstance(version, int) else (1, 0)
    return (born if isinstance(born, (int, float)) else 0.0, *rank)


def _with(key: str, record: Any, entry: dict[str, Any]) -> dict[str, Any]:
    history = sorted([*_entries(record), entry], key=_order)[-HISTORY:]
    return {"key": key, "history": history}


def _current(key: str, value: Any, record: Any, info: Any, at: float | None) -> Fact:
    """The fact as stored, with the entry of the write that stored it: the one of this life
    and version of the key (``info`` None: the newest one with its value); else written
    straight through the API."""
    mine = [e for e in _entries(record) if not e.get("deleted")]
    if info is not None:
        mine = [e for e in mine if (e.get("born"), e.get("version")) == _life(info)]
    mine = [e for e in mine if e.get("value") == bounded(value)]
    if not mine:
        return Fact(key, value, "api", at)
    newest: dict[str, Any] = max(mine, key=_order)
    return replace(Fact.of(key, newest), value=value, truncated=False)


TRIES = 32  # compare-and-set rounds before a write gives up: each round, one writer wins


def put(
    key: str, change: Callable[[Any], Any], origin: Origin, expected: int | None = None
) -> Plan[bool]:
    """Set ``key`` to ``change(current value)`` (None: leave it) by compare-and-set, then add the
    write to its record: concurrent writers of one fact each take a version and leave an entry.
    ``expected``: write only over that version (0: absent), else ``VersionConflict`` (an edit
    of what a person saw). True when it wrote."""
    for _ in range(TRIES if expected is None else 1):
        info = yield lambda m: m.info(key)  # the version first, then the value it guards
        current = (yield lambda m: m.get(key)) if info is not None else None
        new = change(current)
        if new is None:
            return False
        seen = info.version if info is not None else 0
        try:
            version = yield _cas(key, new, seen if expected is None else expected)
        except VersionConflict:
            if expected is not None:
                raise
            continue
        if info is None:  # created: this life's start
            info = yield lambda m: m.info(key)
        born = info.created_at if info is not None else None
        yield from _note(key, {**origin.entry(new), "born": born, "version": version})
        return True
    raise StorageUnavailable(f"{key!r} is being written by too many writers at once; try again")


def _cas(key: str, value: Any, version: int) -> Callable[[Any], Any]:
    return lambda m: m.set(key, value, if_version=version)


def _note(key: str, entry: dict[str, Any]) -> Plan[None]:
    """Add ``entry`` to the fact's record, by compare-and-set: no entry is lost to another."""
    side = record_key(key)
    for _ in range(TRIES):
        info = yield lambda m: m.info(side)
        record = (yield lambda m: m.get(side)) if info is not None else None
        try:
            yield _cas(side, _with(key, record, entry), info.version if info else 0)
            return
        except VersionConflict:
            continue
    log.warning("the history of %r missed a write: too many writes at once", key)


def write(values: Mapping[str, Any], origin: Origin) -> Plan[None]:
    """Set every fact in ``values``, each with its provenance."""
    for key, value in values.items():
        yield from put(key, _always(value), origin)


def _always(value: Any) -> Callable[[Any], Any]:
    return lambda _: value


def delete(key: str, origin: Origin, expected: int | None = None) -> Plan[bool]:
    """Remove a fact; its record keeps the removal (last in the life it ends), so the value can
    still be seen. ``expected``: remove only that version, else ``VersionConflict``."""
    info = yield lambda m: m.info(key)
    existed = bool((yield lambda m: m.delete(key, if_version=expected)))
    if existed:
        born = info.created_at if info is not None else None
        yield from _note(key, {**origin.entry(None, deleted=True), "born": born})
    return existed


def _life(info: Any) -> tuple[float, int]:
    return info.created_at, info.version


def fact(key: str) -> Plan[Fact | None]:
    info = yield lambda m: m.info(key)
    if info is None:
        return None
    found = yield lambda m: m.get_many([key, record_key(key)])
    if key not in found:
        return None
    record = found.get(record_key(key))
    return _current(key, found[key], record, info, info.updated_at)


def all_facts(limit: int = 1000) -> Plan[dict[str, Fact]]:
    """The caller's facts (plain keys), each with its provenance, in key order."""
    items = yield lambda m: m.items(limit=limit)
    records = yield lambda m: m.items(PREFIX, limit=limit * 2)
    by_key = {r.get("key"): r for _, r in records if isinstance(r, dict)}
    out = {}
    for key, value in items:
        if is_plain(key):
            out[key] = _current(key, value, by_key.get(key), None, None)
    return out


def history(key: str) -> Plan[list[Fact]]:
    """The fact's recorded writes, newest first (at most ``HISTORY``)."""
    record = yield lambda m: m.get(record_key(key))
    return [Fact.of(key, e) for e in reversed(_entries(record))]


def is_plain(key: str) -> bool:
    return not key.startswith((INTERNAL_PREFIX, OPEN_PREFIX)) and key != LAST_CALL


# -- policies -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Rule:
    policy: str = "overwrite"
    key: str | None = None  # the fact's key, when not the field's name


@dataclass(frozen=True)
class Policies:
    """What each extracted field becomes: ``default`` for fields without a rule of their own."""

    default: str = "overwrite"
    rules: Mapping[str, Rule] = field(default_factory=dict)

    @classmethod
    def parse(cls, text: str) -> Policies:
        """Comma-separated ``field=policy``, ``field->key``, ``field->key=policy``, ``*=policy``."""
        if not isinstance(text, str):
            raise ConfigurationError(f"facts must be a string of rules, not {type(text).__name__}")
        default, rules = "overwrite", {}
        for item in filter(None, (part.strip() for part in text.split(","))):
            name, rule = _rule(item)
            if name in rules or (name == "*" and default != "overwrite"):
                raise ConfigurationError(f"facts: {name!r} has two rules")
            if name == "*":
                if rule.key is not None:
                    raise ConfigurationError("facts: '*' takes a policy, not a new name")
                default = rule.policy
            else:
                rules[name] = rule
        return cls(default, rules)

    def with_rule(self, name: str, policy: str | None, key: str | None = None) -> Policies:
        """These policies with ``name``'s rule changed: its policy, or its fact key."""
        old = self.rules.get(name, Rule())
        item = f"{name}->{key or old.key}" if (key or old.key) else name
        _, rule = _rule(f"{item}={policy or old.policy}")
        return Policies(self.default, {**self.rules, name: rule})

    def resolve(self, name: str) -> tuple[str, str]:
        """``(policy, fact key)`` for the extracted field ``name``."""
        rule = self.rules.get(name)
        if rule is None:
            return self.default, name
        return rule.policy, rule.key or name

    def __str__(self) -> str:
        items = [] if self.default == "overwrite" else [f"*={self.default}"]
        for name, rule in self.rules.items():
            items.append(name + (f"->{rule.key}" if rule.key else "") + f"={rule.policy}")
        return ", ".join(items)


def _rule(item: str) -> tuple[str, Rule]:
    head, sep, policy = item.rpartition("=")
    if not sep:
        head, policy = item, "overwrite"
    name, arrow, key = (part.strip() for part in head.partition("->"))
    policy = policy.strip()
    if policy not in POLICIES:
        raise ConfigurationError(
            f"facts: {item!r}: unknown policy {policy!r}; use {', '.join(POLICIES)}"
        )
    if not name:
        raise ConfigurationError(f"facts: {item!r} names no field")
    if arrow:
        _check_target(key, item)
    return name, Rule(policy, key or None)


def _check_target(key: str, item: str) -> None:
    try:
        check_name(key)
    except InvalidInput as exc:
        raise ConfigurationError(f"facts: {item!r}: {exc}") from None
    if not is_plain(key):
        raise ConfigurationError(f"facts: {item!r}: {key!r} is kept by botwire itself")


# -- extracted fields -> facts --------------------------------------------------------------


def is_empty(value: Any) -> bool:
    """Nothing worth remembering: None, blank, "N/A"-style words, an empty list or object."""
    if value is None:
        return True
    if isinstance(value, str):
        return not value.strip() or value.strip().lower() in EMPTY_WORDS
    if isinstance(value, dict):
        return all(is_empty(v) for v in value.values())
    if isinstance(value, list):
        return all(is_empty(v) for v in value)
    return False


def _valid(key: str) -> bool:
    try:
        check_name(key)
    except InvalidInput:
        return False
    return is_plain(key)


def _usable(name: str, key: str) -> bool:
    if _valid(key):
        return True
    log.warning(
        "extracted field %r is not stored: %r cannot be a fact's key; rename it in the facts "
        "setting ('%s->new_name')",
        name,
        key,
        name,
    )
    return False


def _apply(policy: str, name: str, key: str, value: Any, now: Any) -> Any:
    """The fact's new value, or None to leave it as it is."""
    if policy == "fill_if_empty":
        return value if now is None or is_empty(now) else None
    if policy == "append":
        if now is not None and not isinstance(now, list):
            log.warning(
                "extracted field %r is not stored: append needs a list at %r, which holds a %s",
                name,
                key,
                type(now).__name__,
            )
            return None
        have = list(now or [])
        added = [v for v in (value if isinstance(value, list) else [value]) if not is_empty(v)]
        for item in added:
            if item not in have:
                have.append(item)
        return have if have != (now or []) else None
    return None if value == now else value


def apply(extracted: Mapping[str, Any], policies: Policies, origin: Origin) -> Plan[list[str]]:
    """Write the facts ``extracted`` gives, each by its policy, with provenance; returns the
    keys written. A field that fails its policy or cannot be stored is logged and skipped."""
    wrote = []
    for name, value in extracted.items():
        policy, key = policies.resolve(name)
        if policy == "ignore" or is_empty(value) or not _usable(name, key):
            continue
        try:
            changed = yield from put(key, partial(_apply, policy, name, key, value), origin)
        except InvalidInput as exc:  # a value too large, say: store the others
            log.warning("extracted field for %r is not stored: %s", key, exc)
            continue
        if changed:
            wrote.append(key)
    return wrote
