"""Export and import: every namespace's keys and logs as JSON Lines, from and into any engine.

An export is a header line, then one block per namespace, then a last line::

    {"botwire_export": 1, "version": "0.3.0", "exported_at": 1764763200.5, "prefix": "", ...}
    {"ns": "customer-555-0123", "floor": 0}
    {"key": "last_order", "version": 3, "created_at": ..., "ttl": null, "value": "ORDER-789"}
    {"log": "calls", "last_seq": 2, "count": 2}
    {"seq": 1, "ts": ..., "value": {...}}
    {"seq": 2, "ts": ..., "value": {...}}
    {"end": "customer-555-0123", "keys": 1, "logs": 1, "entries": 2, "sha256": "..."}
    {"end_of_export": true, "namespaces": 1}

Keys come in key order with their versions and times (``ttl``: seconds left when exported;
``expires_at`` is what an import keeps), logs in name order with every entry's number and time,
``floor`` is the namespace's version floor. ``sha256`` covers the keys and entries (not ``ttl``
or ``floor``, which an import over older data raises),
so a block cut short or edited is refused, and a migration compares the two sides by it.
Reading pages through the engine keeps memory constant however much is exported; an import
holds one namespace at a time and writes it all or nothing (``ops.Restore``), so it can be run
again after an interruption: a namespace already imported is ``unchanged``.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from . import _codec
from ._codec import check_name, encode
from ._version import __version__
from .engines import base as ops
from .engines.base import Engine, Entry, LogDump, Row
from .errors import InvalidInput, NamespaceNotEmpty

FORMAT = 1
PAGE = 1000


# -- export -------------------------------------------------------------------------------------


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def header(prefix: str, internal: bool, now: float | None = None) -> str:
    now = time.time() if now is None else now
    return _dumps(
        {
            "botwire_export": FORMAT,
            "version": __version__,
            "exported_at": now,
            "prefix": prefix,
            "internal": internal,
        }
    )


def footer(namespaces: int) -> str:
    return _dumps({"end_of_export": True, "namespaces": namespaces})


def _paged(
    engine: Engine, op: Callable[[Any], Any], last: Callable[[Any], Any], after: Any = None
) -> Iterator[Any]:
    """Every item of a listing op, fetched ``PAGE`` at a time: ``op(after)`` makes the op for
    the page after ``after``, ``last(item)`` is what the next page starts after."""
    while True:
        page = engine.execute(op(after))
        yield from page
        if len(page) < PAGE:
            return
        after = last(page[-1])


def namespaces(engine: Engine, prefix: str = "", internal: bool = False) -> Iterator[str]:
    return _paged(engine, lambda a: ops.Namespaces(prefix, a, PAGE, internal), lambda ns: ns)


@dataclass
class Digest:
    """The block's checksum and counts, the same whether computed while writing or reading."""

    sha: Any = field(default_factory=hashlib.sha256)
    keys: int = 0
    logs: int = 0
    entries: int = 0

    def key(self, r: Row) -> None:
        self.keys += 1
        fields = (r.key, r.version, repr(r.created_at), repr(r.updated_at), repr(r.expires_at))
        self.sha.update(("K\0" + "\0".join(map(str, fields)) + f"\0{r.value}\n").encode())

    def log(self, name: str, last_seq: int) -> None:
        self.logs += 1
        self.sha.update(f"L\0{name}\0{last_seq}\n".encode())

    def entry(self, e: Entry) -> None:
        self.entries += 1
        self.sha.update(f"E\0{e.seq}\0{e.ts!r}\0{e.value}\n".encode())

    def end(self, ns: str) -> dict[str, Any]:
        counts = {"keys": self.keys, "logs": self.logs, "entries": self.entries}
        return {"end": ns, **counts, "sha256": self.sha.hexdigest()}


def canonical(text: str) -> str:
    """Stored JSON text in the form every engine stores it (compact, UTF-8): what an import
    writes back, so the checksum of an export matches its import's."""
    return _codec._dumps(json.loads(text))


def key_line(r: Row, now: float) -> str:
    ttl = None if r.expires_at is None else round(max(r.expires_at - now, 0.0), 3)
    head = _dumps(
        {
            "key": r.key,
            "version": r.version,
            "created_at": r.created_at,
            "updated_at": r.updated_at,
            "expires_at": r.expires_at,
            "ttl": ttl,
        }
    )
    return f'{head[:-1]}, "value": {r.value}}}'  # the stored JSON text, as it is


def entry_line(e: Entry) -> str:
    return f'{{"seq": {e.seq}, "ts": {e.ts!r}, "value": {e.value}}}'


def block(engine: Engine, ns: str, internal: bool = False) -> Iterator[str]:
    """One namespace's lines, read in pages."""
    now = time.time()
    digest = Digest()
    floor = engine.execute(ops.Floor(ns))
    yield _dumps({"ns": ns, "floor": floor})
    for r in _keys(engine, ns, internal):
        r = r._replace(value=canonical(r.value or "null"))
        digest.key(r)
        yield key_line(r, now)
    for log in _logs(engine, ns, internal):
        digest.log(log.name, log.last_seq)
        yield _dumps({"log": log.name, "last_seq": log.last_seq, "count": log.entry_count})
        for e in _entries(engine, ns, log.name):
            e = e._replace(value=canonical(e.value))
            digest.entry(e)
            yield entry_line(e)
    yield _dumps(digest.end(ns))


def render(op: ops.Restore, now: float | None = None) -> Iterator[str]:
    """A ``Restore`` as the lines of its block (what ``POST .../restore`` takes)."""
    now = time.time() if now is None else now
    digest = Digest()
    yield _dumps({"ns": op.ns, "floor": op.floor})
    for r in sorted(op.keys):
        digest.key(r)
        yield key_line(r, now)
    for log in sorted(op.logs):
        digest.log(log.name, log.last_seq)
        yield _dumps({"log": log.name, "last_seq": log.last_seq, "count": len(log.entries)})
        for e in log.entries:
            digest.entry(e)
            yield entry_line(e)
    yield _dumps(digest.end(op.ns))


def _keys(engine: Engine, ns: str, internal: bool) -> Iterator[Row]:
    scan = lambda a: ops.Scan(ns, "", a, PAGE, values=True, internal=internal)  # noqa: E731
    return _paged(engine, scan, lambda r: r.key)


def _logs(engine: Engine, ns: str, internal: bool) -> Iterator[ops.LogInfo]:
    return _paged(engine, lambda a: ops.Logs(ns, a, PAGE, internal), lambda g: g.name)


def _entries(engine: Engine, ns: str, log: str) -> Iterator[Entry]:
    return _paged(engine, lambda a: ops.Read(ns, log, a, PAGE), lambda e: e.seq, after=0)


def export(
    engine: Engine, prefix: str = "", internal: bool = False, names: Iterable[str] | None = None
) -> Iterator[str]:
    """Every line of an export (without newlines). ``names``: the namespaces to export, as
    ``namespaces(engine, prefix, internal)`` lists them (a progress bar may wrap them)."""
    yield header(prefix, internal)
    count = 0
    for ns in namespaces(engine, prefix, internal) if names is None else names:
        yield from block(engine, ns, internal)
        count += 1
    yield footer(count)


# -- reading an export --------------------------------------------------------------------------


class BadExport(InvalidInput):
    """A line of an export that cannot be read; names its line number."""

    def __init__(self, line: int, message: str) -> None:
        super().__init__(f"line {line}: {message}")
        self.line = line


@dataclass
class Dump:
    """One namespace as read from an export."""

    ns: str
    floor: int
    keys: list[Row]
    logs: list[LogDump]
    sha256: str
    line: int  # where its block starts

    def op(self, replace: bool = False) -> ops.Restore:
        return ops.Restore(self.ns, tuple(self.keys), tuple(self.logs), self.floor, replace)

    @property
    def entries(self) -> int:
        return sum(len(g.entries) for g in self.logs)


def _int(obj: dict[str, Any], name: str, n: int, minimum: int = 0) -> int:
    value = obj.get(name)
    if type(value) is not int or value < minimum:
        raise BadExport(n, f'"{name}" must be a whole number >= {minimum}, not {value!r}')
    return value


def _time(obj: dict[str, Any], name: str, n: int, optional: bool = False) -> Any:
    value: Any = obj.get(name)
    if value is None and optional:
        return None
    if type(value) not in (int, float):
        raise BadExport(n, f'"{name}" must be a time in Unix seconds, not {value!r}')
    return float(value)


def _value(obj: dict[str, Any], n: int, max_bytes: int) -> str:
    if "value" not in obj:
        raise BadExport(n, 'no "value"')
    try:
        return encode(obj["value"], max_bytes)
    except InvalidInput as exc:
        raise BadExport(n, str(exc)) from None


def _name(obj: dict[str, Any], field_name: str, n: int) -> str:
    try:
        return check_name(obj.get(field_name), field_name)
    except InvalidInput as exc:
        raise BadExport(n, str(exc)) from None


class Reader:
    """Reads an export line by line into ``Dump``s, checking each block's counts and checksum;
    ``check_header`` and ``finished`` guard the first and last lines."""

    def __init__(self, max_value_bytes: int | None = None) -> None:
        self.max_value_bytes = max_value_bytes or 1 << 62
        self.n = 0
        self.header: dict[str, Any] | None = None
        self.done = False
        self.namespaces = 0

    def _parse(self, text: str) -> dict[str, Any]:
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as exc:
            raise BadExport(self.n, f"not valid JSON ({exc.msg}): cut short or edited?") from None
        if not isinstance(obj, dict):
            raise BadExport(self.n, "each line must be a JSON object")
        return obj

    def dumps(self, lines: Iterable[str]) -> Iterator[Dump]:
        current: Dump | None = None
        digest = Digest()
        for text in lines:
            self.n += 1
            if not text.strip():
                continue
            obj = self._parse(text)
            if self.header is None:
                self._check_header(obj)
            elif self.done:
                raise BadExport(self.n, "a line after the export's last line")
            elif current is None and obj.get("end_of_export") is True:
                self._last(obj)
            elif current is None:
                current, digest = self._start(obj), Digest()
            elif "end_of_export" in obj:
                message = f"the block of namespace {current.ns!r} (from line {current.line}) "
                raise BadExport(self.n, message + "has no end line: cut short?")
            elif "end" in obj:
                self._end(obj, current, digest)
                yield current
                current = None
            else:
                self._record(obj, current, digest)
        self._finish(current)

    def _check_header(self, obj: dict[str, Any]) -> None:
        if obj.get("botwire_export") != FORMAT:
            raise BadExport(self.n, f"not a botwire export (format {FORMAT}): no header line")
        self.header = obj

    def _last(self, obj: dict[str, Any]) -> None:
        expected = obj.get("namespaces")
        if expected != self.namespaces:
            message = f"the export says {expected!r} namespaces, it holds {self.namespaces}"
            raise BadExport(self.n, message)
        self.done = True

    def _start(self, obj: dict[str, Any]) -> Dump:
        if "ns" not in obj:
            raise BadExport(self.n, 'expected a namespace line {"ns": ...}')
        floor = _int(obj, "floor", self.n)
        return Dump(_name(obj, "ns", self.n), floor, [], [], "", self.n)

    def _record(self, obj: dict[str, Any], dump: Dump, digest: Digest) -> None:
        n = self.n
        if "key" in obj:
            row = Row(
                _name(obj, "key", n),
                _value(obj, n, self.max_value_bytes),
                _int(obj, "version", n, 1),
                _time(obj, "created_at", n),
                _time(obj, "updated_at", n),
                _time(obj, "expires_at", n, optional=True),
                0,
            )
            if dump.logs:
                raise BadExport(n, "a key after the namespace's logs")
            if dump.keys and dump.keys[-1].key >= row.key:
                raise BadExport(n, f"key {row.key!r} is out of order or repeated")
            dump.keys.append(row)
            digest.key(row)
        elif "log" in obj:
            name = _name(obj, "log", n)
            if dump.logs and dump.logs[-1].name >= name:
                raise BadExport(n, f"log {name!r} is out of order or repeated")
            dump.logs.append(LogDump(name, _int(obj, "last_seq", n), ()))
            digest.log(name, dump.logs[-1].last_seq)
        elif "seq" in obj:
            self._entry(obj, dump, digest)
        else:
            raise BadExport(n, "expected a key, log, entry or end line")

    def _entry(self, obj: dict[str, Any], dump: Dump, digest: Digest) -> None:
        n = self.n
        if not dump.logs:
            raise BadExport(n, "an entry before any log line")
        log = dump.logs[-1]
        entry = Entry(_int(obj, "seq", n, 1), _value(obj, n, 1 << 62), _time(obj, "ts", n))
        if (log.entries and log.entries[-1].seq >= entry.seq) or entry.seq > log.last_seq:
            raise BadExport(n, f"entry {entry.seq} of log {log.name!r} is out of order")
        dump.logs[-1] = log._replace(entries=(*log.entries, entry))
        digest.entry(entry)

    def _end(self, obj: dict[str, Any], dump: Dump, digest: Digest) -> None:
        want = digest.end(dump.ns)
        if obj.get("end") != dump.ns:
            raise BadExport(self.n, f"the end line names {obj.get('end')!r}, the block {dump.ns!r}")
        for name in ("keys", "logs", "entries"):
            if obj.get(name) != want[name]:
                raise BadExport(
                    self.n,
                    f"namespace {dump.ns!r} says {obj.get(name)!r} {name}, "
                    f"the block holds {want[name]}: cut short or edited?",
                )
        if obj.get("sha256") != want["sha256"]:
            raise BadExport(
                self.n, f"namespace {dump.ns!r}: the checksum does not match its lines: edited?"
            )
        dump.sha256 = want["sha256"]
        self.namespaces += 1

    def _finish(self, current: Dump | None) -> None:
        if self.header is None:
            raise BadExport(self.n, "the file is empty: not a botwire export")
        if current is not None:
            raise BadExport(
                self.n,
                f"the file ends inside namespace {current.ns!r} (its block "
                f"starts at line {current.line}): cut short?",
            )
        if not self.done:
            raise BadExport(self.n, "the file ends without its last line: cut short?")


def one_block(lines: Iterable[str], max_value_bytes: int | None = None) -> Dump:
    """The one namespace block ``lines`` hold (no header or last line), checked as in a file."""
    reader = Reader(max_value_bytes)
    reader.header = {"botwire_export": FORMAT}
    found = list(reader.dumps([*lines, footer(1)]))
    return found[0]


# -- import -------------------------------------------------------------------------------------


@dataclass
class Report:
    imported: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    keys: int = 0
    entries: int = 0

    def add(self, dump: Dump, result: str) -> None:
        getattr(self, result).append(dump.ns)
        if result == "imported":
            self.keys += len(dump.keys)
            self.entries += dump.entries

    def line(self) -> str:
        return (
            f"{len(self.imported)} namespaces imported ({self.keys} keys, {self.entries} log "
            f"entries), {len(self.unchanged)} unchanged, {len(self.refused)} refused"
        )


def restore(engine: Engine, dumps: Iterable[Dump], replace: bool = False) -> Report:
    """Write each namespace all or nothing; a namespace that holds other data is refused
    (listed in the report) unless ``replace``."""
    report = Report()
    for dump in dumps:
        try:
            result = engine.execute(dump.op(replace))
        except NamespaceNotEmpty:
            result = "refused"
        report.add(dump, result)
    return report
