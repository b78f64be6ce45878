"""A caller's facts with where each came from, their last values, and the platforms' extracted
fields turned into facts by per-field policies.

A fact is a plain key of the caller's namespace (``customer_name``). Beside it, the internal key
``~fact/<key>`` keeps its provenance: the last ``HISTORY`` writes, newest last, each
``{"value", "source", "platform", "call_id", "at"}`` (``"deleted": true`` for a removal). A fact
and its record are written in one ``set_many`` (all or nothing), so they agree on every engine.
A fact written straight through ``Memory`` / ``/v1`` has no record of that write: it reads back
with ``source="api"`` and the key's own update time.

Extraction (``apply``): every field of a platform's structured extraction becomes a fact under
its name, unless ``Policies`` (the ``facts`` setting) say otherwise::

    *=overwrite, allergies=append, email=fill_if_empty, score=ignore, name->customer_name
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from .._codec import MAX_NAME_CHARS, check_name
from ..errors import ConfigurationError, InvalidInput
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


def _record(key: str, record: Any, entry: dict[str, Any]) -> dict[str, Any]:
    return {"key": key, "history": [*_entries(record), entry][-HISTORY:]}


def _current(key: str, value: Any, record: Any, updated_at: float | None) -> Fact:
    """The fact as stored: its record's newest entry, unless the value was written since."""
    entries = _entries(record)
    if entries and not entries[-1].get("deleted") and entries[-1].get("value") == bounded(value):
        return replace(Fact.of(key, entries[-1]), value=value, truncated=False)
    return Fact(key, value, "api", updated_at)


def write(values: Mapping[str, Any], origin: Origin) -> Plan[None]:
    """Set every fact in ``values`` and its provenance, all in one write."""
    records = yield lambda m: m.get_many([record_key(k) for k in values])
    batch: dict[str, Any] = {}
    for key, value in values.items():
        batch[key] = value
        batch[record_key(key)] = _record(key, records.get(record_key(key)), origin.entry(value))
    yield lambda m: m.set_many(batch)


def delete(key: str, origin: Origin) -> Plan[bool]:
    """Remove a fact; its record keeps the removal, so the value can still be seen."""
    side = record_key(key)
    found = yield lambda m: m.get_many([key, side])
    if key not in found:
        return False
    yield lambda m: m.set(side, _record(key, found.get(side), origin.entry(None, deleted=True)))
    return bool((yield lambda m: m.delete(key)))


def fact(key: str) -> Plan[Fact | None]:
    found = yield lambda m: m.get_many([key, record_key(key)])
    if key not in found:
        return None
    info = yield lambda m: m.info(key)
    updated = info.updated_at if info is not None else None
    return _current(key, found[key], found.get(record_key(key)), updated)


def all_facts(limit: int = 1000) -> Plan[dict[str, Fact]]:
    """The caller's facts (plain keys), each with its provenance, in key order."""
    items = yield lambda m: m.items(limit=limit)
    records = yield lambda m: m.items(PREFIX, limit=limit * 2)
    by_key = {r.get("key"): r for _, r in records if isinstance(r, dict)}
    out = {}
    for key, value in items:
        if is_plain(key):
            out[key] = _current(key, value, by_key.get(key), None)
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


def planned(
    extracted: Mapping[str, Any], policies: Policies, current: Mapping[str, Any]
) -> dict[str, Any]:
    """The facts to write for ``extracted`` given the ``current`` values of their keys: each
    field's policy applied; a field that fails its policy is logged and left out."""
    out: dict[str, Any] = {}
    for name, value in extracted.items():
        policy, key = policies.resolve(name)
        if policy == "ignore" or is_empty(value):
            continue
        if not _usable(name, key):
            continue
        new = _apply(policy, name, key, value, out.get(key, current.get(key)))
        if new is not None:
            out[key] = new
    return out


def targets(extracted: Mapping[str, Any], policies: Policies) -> list[str]:
    """The fact keys ``extracted`` may write (to read their current values first)."""
    keys = (policies.resolve(name) for name in extracted)
    return list(dict.fromkeys(key for policy, key in keys if policy != "ignore" and _valid(key)))


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
    """Write the facts ``extracted`` gives, with provenance; returns the keys written."""
    keys = targets(extracted, policies)
    if not keys:
        return []
    current = yield lambda m: m.get_many(keys)
    values = planned(extracted, policies, current)
    if not values:
        return []
    try:
        yield from write(values, origin)
        return list(values)
    except InvalidInput:  # one value too large, say: store the others
        pass
    wrote = []
    for key, value in values.items():
        try:
            yield from write({key: value}, origin)
            wrote.append(key)
        except InvalidInput as exc:
            log.warning("extracted field for %r is not stored: %s", key, exc)
    return wrote
