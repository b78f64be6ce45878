"""Backup and restore of the embedded SQLite database (``botwire backup`` / ``botwire restore``).

How a backup copies: SQLite's online backup API (``Connection.backup``), all pages in one step.

- One step is one read transaction on the source, so the copy is the database as it was at one
  instant: every write committed before the backup began is in it, none is half in it. The
  database is in WAL mode, where a reader never blocks a writer, so writers go on at full speed
  while the pages are copied (the WAL only grows until the copy is done, then the background
  checkpoint catches up). Copying in several steps would only matter for a rollback journal
  (a reader there holds writers off), and it is worse under writers: a step after another
  connection wrote starts the copy again, so a busy database might never finish.
- ``VACUUM INTO`` gives the same snapshot, but it rebuilds every table and index row by row
  (more CPU and time than copying pages) and writes a file SQLite never syncs. The backup API
  copies into a connection of ours, so the copy is then checked and synced before it is named.

The copy is written to a temporary file (0600) beside PATH, switched to a rollback journal (a
single standalone file: nothing in a ``-wal`` beside it), checked (``PRAGMA integrity_check``,
botwire's tables, the schema version of the source), synced, then given its name by one rename
(a link when PATH must not be replaced, so a file that appeared meanwhile is never lost).

How a restore writes: the backup API again, from the backup into a connection on the target.
Renaming a file over a live database is wrong: a ``-wal`` beside it would be replayed over the
new file, and processes that have the old file open keep writing to it. Instead the target
connection first takes the database for itself (``locking_mode=EXCLUSIVE``, then
``journal_mode=DELETE``, which needs every other connection gone, checkpoints the old WAL into
the file and removes it): an open connection anywhere (a running ``botwire serve``, an agent)
makes the restore refuse instead of waiting. The pages are then written in one journaled
transaction, so a crash midway leaves the old database, and every other process that opens the
file afterwards waits for the lock and then sees the restored one. An older schema is migrated by
opening it as botwire always does; a newer one (written by a newer botwire) is refused.
"""

from __future__ import annotations

import os
import re
import shlex
import sqlite3
import tempfile
import time
from contextlib import closing, suppress
from dataclasses import dataclass, replace
from urllib.parse import parse_qsl, quote, urlencode

from ._wire import redact
from .engines import home_dir, open_engine, resolve_url
from .engines import sqlite as sqlite_engine
from .errors import BotWireError

__all__ = ["BackupError", "Copied", "backup", "inspect", "pg_dump_command", "restore"]

SCHEMA_VERSION = sqlite_engine.SCHEMA_VERSION  # the newest schema this code knows
LOCK_WAIT = 1.0  # seconds a restore waits for the target's lock before it says it is in use
_MAGIC = b"SQLite format 3\x00"
_TABLES = ("botwire_kv", "botwire_logs", "botwire_entries", "botwire_namespaces")
_PG_OPTIONS = ("pool_min", "pool_max", "pool_timeout")  # botwire's, unknown to libpq


class BackupError(BotWireError):
    """A backup or restore was refused or failed; the message names the mistake."""


@dataclass(frozen=True)
class Copied:
    """What a backup holds: one database file, checked."""

    path: str
    size: int  # bytes
    schema_version: int
    namespaces: int
    keys: int  # live keys (botwire's own ``~`` keys included)
    entries: int  # log entries
    seconds: float = 0.0
    migrated_from: int | None = None  # restore: the backup's schema version, when older

    def describe(self) -> str:
        version = f"schema version {self.schema_version}"
        if self.migrated_from is not None:
            version += f" (migrated from {self.migrated_from})"
        return (
            f"{_size(self.size)}, {_many(self.namespaces, 'namespace')}, "
            f"{_many(self.keys, 'key')}, {_many(self.entries, 'log entry', 'log entries')}, "
            f"{version}, integrity ok, in {self.seconds:.2f} s"
        )


# --- where: the configured database must be a SQLite file ------------------------------------


def sqlite_path(url: str | None, *, command: str, path: str) -> str:
    """The SQLite file ``url`` (else the configured database) names; ``BackupError`` for a
    PostgreSQL or server URL, saying what to run instead."""
    resolved = resolve_url(url)
    scheme = resolved.split(":", 1)[0].lower() if ":" in resolved else ""
    if scheme in ("postgres", "postgresql"):
        raise BackupError(_postgres_advice(resolved, command, path))
    if scheme in ("http", "https"):
        raise BackupError(_server_advice(resolved, command))
    engine = open_engine(resolved)  # checks the URL as every command does; opens nothing yet
    engine.close()
    target = getattr(engine, "path", None)
    if not isinstance(target, str):  # pragma: no cover - every other scheme is refused above
        raise BackupError(f"{redact(resolved)!r} is not a SQLite database")
    return target


def pg_dump_command(url: str, path: str) -> str:
    """The ``pg_dump`` command that backs up what botwire stores at ``url`` into ``path``."""
    conninfo, schema = _libpq_url(url)
    what = f"--schema={shlex.quote(_pattern(schema))}" if schema else "--table='public.botwire_*'"
    return f"pg_dump --format=custom {what} --file={shlex.quote(path)} {shlex.quote(conninfo)}"


def pg_restore_command(url: str, path: str) -> str:
    """The ``pg_restore`` command that puts a ``pg_dump_command`` dump back at ``url``."""
    conninfo, _ = _libpq_url(url)
    return (
        f"pg_restore --clean --if-exists --no-owner --dbname={shlex.quote(conninfo)} "
        f"{shlex.quote(path)}"
    )


def _libpq_url(url: str) -> tuple[str, str | None]:
    """``url`` without its password and botwire's own options (libpq refuses them), and the
    schema its ``options=-csearch_path=...`` puts botwire's tables in (None: public)."""
    head, _, query = redact(url).partition("?")
    pairs = [(k, v) for k, v in parse_qsl(query, keep_blank_values=True) if k not in _PG_OPTIONS]
    schema = next((_first_schema(v) for k, v in pairs if k == "options"), None)
    rest = urlencode(pairs, quote_via=quote)
    return (f"{head}?{rest}" if rest else head), schema


def _first_schema(options: str) -> str | None:
    """The first schema of ``search_path`` in a libpq ``options`` value (``-csearch_path=a,b``:
    where botwire's tables are created), skipping ``$user``; None for public or none."""
    found = re.search(r"search_path\s*=\s*(\S+)", options)
    names = [n.strip().strip('"') for n in found.group(1).split(",")] if found else []
    return next((n for n in names if n and n not in ("$user", "public")), None)


def _pattern(name: str) -> str:
    """A schema name as a pg_dump pattern: double-quoted unless lower case (patterns fold case)."""
    return name if re.fullmatch(r"[a-z_][a-z0-9_]*", name) else '"' + name.replace('"', '""') + '"'


def _postgres_advice(url: str, command: str, path: str) -> str:
    if command == "backup":
        return (
            f"botwire backup copies a SQLite file, and {redact(url)!r} is PostgreSQL: back it "
            f"up with pg_dump (see docs/backup.md):\n  {pg_dump_command(url, path)}\n"
            "(the password from PGPASSWORD or ~/.pgpass), or copy what it stores as JSON "
            f"Lines:\n  botwire export --url {shlex.quote(redact(url))} --out FILE"
        )
    return (
        f"botwire restore replaces a SQLite file, and {redact(url)!r} is PostgreSQL: restore a "
        f"pg_dump with pg_restore (see docs/backup.md):\n  {pg_restore_command(url, path)}\n"
        f"or load an export:\n  botwire import FILE --url {shlex.quote(redact(url))}"
    )


def _server_advice(url: str, command: str) -> str:
    if command == "backup":
        where, instead = "", "export --out FILE"
    else:
        where, instead = ", with the server stopped", "import FILE"
    return (
        f"botwire {command} works on a SQLite file on this machine, and {redact(url)!r} is a "
        f"botwire server: run 'botwire {command}' on the server's machine{where} (--url: the "
        f"database given to 'botwire serve --database'), or from here: botwire {instead} "
        f"--url {shlex.quote(redact(url))}"
    )


# --- backup ----------------------------------------------------------------------------------


def backup(path: str, url: str | None = None, *, force: bool = False) -> Copied:
    """Copy the configured SQLite database to ``path`` while writers run (see the module
    docstring); ``force`` replaces an existing ``path``. Returns what the copy holds."""
    started = time.monotonic()
    dest = os.path.abspath(os.path.expanduser(path))
    source = sqlite_path(url, command="backup", path=path)
    _need_database_file(source, f"no botwire database at {source} (nothing stored there yet?)")
    _check_destination(dest, source, force)
    with closing(_connect_ro(source, "the database")) as src:
        _botwire_version(src, source)
        tmp = _temp_beside(dest)
        try:
            copied = _copy_to(src, tmp, source)  # checked
            version = _botwire_version(src, source)
            if copied.schema_version != version:
                raise BackupError(
                    f"{source} was migrated while it was copied (schema version "
                    f"{copied.schema_version} -> {version}): run the backup again"
                )
            _fsync(tmp)
            _place(tmp, dest, force)
        except BaseException:
            _remove(tmp)
            raise
    _fsync_folder(dest)
    return replace(copied, path=dest, seconds=time.monotonic() - started)


def _check_destination(dest: str, source: str, force: bool) -> None:
    if os.path.isdir(dest):
        raise BackupError(f"{dest} is a folder: name the backup file (e.g. {dest}/botwire.db)")
    if not os.path.isdir(os.path.dirname(dest)):
        raise BackupError(f"the folder {os.path.dirname(dest)} does not exist: create it first")
    near = {
        source + s
        for s in ("", "-wal", "-shm", "-journal", "-botwire.lock", "-botwire.lock-waiters")
    }
    if dest in near or (os.path.exists(dest) and os.path.samefile(dest, source)):
        raise BackupError(f"{dest} is the database itself (or one of its files): back up elsewhere")
    if os.path.lexists(dest) and not force:
        raise BackupError(f"{dest} exists: pass --force to replace it")


def _copy_to(src: sqlite3.Connection, tmp: str, source: str) -> Copied:
    with closing(sqlite3.connect(tmp, isolation_level=None)) as dst:
        try:
            src.backup(dst)  # pages=-1: all in one read transaction (the module docstring)
            dst.execute("PRAGMA journal_mode=DELETE")  # standalone: no -wal to depend on
        except sqlite3.Error as exc:
            raise BackupError(f"copying {source} failed, no backup was written: {exc}") from None
        try:
            return inspect_connection(dst, tmp, name=f"the copy of {source}")
        except BackupError as exc:  # a page-for-page copy: the database itself is so
            raise BackupError(
                f"{exc}; no backup was written (check the database: sqlite3 "
                f"{shlex.quote(source)} 'PRAGMA integrity_check')"
            ) from None


def _temp_beside(dest: str) -> str:
    fd, tmp = tempfile.mkstemp(
        prefix=f".{os.path.basename(dest)}.", suffix=".tmp", dir=os.path.dirname(dest)
    )  # mode 0600: memory holds personal data
    os.close(fd)
    return tmp


def _place(tmp: str, dest: str, force: bool) -> None:
    """Give the finished copy its name in one step: replace ``dest`` only with ``force``."""
    if force:
        os.replace(tmp, dest)
        return
    try:
        os.link(tmp, dest)  # fails if dest appeared meanwhile: never replaced by accident
    except FileExistsError:
        raise BackupError(
            f"{dest} appeared while the backup ran: pass --force to replace it"
        ) from None
    except OSError:  # a file system without hard links
        if os.path.lexists(dest):
            raise BackupError(f"{dest} exists: pass --force to replace it") from None
        os.replace(tmp, dest)
        return
    os.unlink(tmp)


# --- restore ---------------------------------------------------------------------------------


def restore(path: str, url: str | None = None, *, force: bool = False) -> Copied:
    """Replace the configured SQLite database with the backup at ``path`` (see the module
    docstring); ``force`` replaces a database that holds data. Returns what it holds now."""
    started = time.monotonic()
    source = os.path.abspath(os.path.expanduser(path))
    target = sqlite_path(url, command="restore", path=path)
    _need_database_file(source, f"no backup at {source}")
    if os.path.exists(target) and os.path.samefile(source, target):
        raise BackupError(f"{source} is the configured database itself: nothing to restore")
    with closing(_connect_ro(source, "the backup")) as src:
        held = inspect_connection(src, source)
        if held.schema_version > SCHEMA_VERSION:
            raise BackupError(
                f"{source} has schema version {held.schema_version}, newer than this botwire "
                f"knows ({SCHEMA_VERSION}): restore it with the botwire version that made it"
            )
        with closing(_take(target)) as dst:
            _check_target(dst, target, force)
            try:
                src.backup(dst)  # one journaled write transaction on the target
                dst.execute("PRAGMA journal_mode=DELETE")  # as the backup may have been WAL
            except sqlite3.Error as exc:
                raise BackupError(f"the restore failed, {target} is as it was: {exc}") from None
    now = _open_as_botwire(target)  # checked again, as every process will open it
    older = held.schema_version if held.schema_version < now.schema_version else None
    return replace(now, seconds=time.monotonic() - started, migrated_from=older)


def _take(target: str) -> sqlite3.Connection:
    """A connection that holds ``target`` alone (the module docstring), or ``BackupError``
    when another connection has it open."""
    _create_private(target)
    conn = _connect(target, "the configured database", timeout=LOCK_WAIT)
    try:
        conn.execute("PRAGMA locking_mode=EXCLUSIVE")  # keep every lock until closed
        conn.execute("PRAGMA journal_mode=DELETE")  # checkpoint and drop the old WAL
        conn.execute("BEGIN EXCLUSIVE")
        conn.execute("COMMIT")
    except sqlite3.OperationalError as exc:
        conn.close()
        if "locked" in str(exc) or "busy" in str(exc):
            raise BackupError(
                f"{target} is in use by another process (a running 'botwire serve', an agent, "
                "a notebook...): stop everything that uses it, then restore again"
            ) from None
        raise BackupError(f"cannot open {target}: {exc}") from None
    except sqlite3.DatabaseError as exc:
        conn.close()
        raise BackupError(
            f"{target} is not a SQLite database ({exc}): it was not replaced; move it away "
            "first if the backup should go there"
        ) from None
    return conn


def _check_target(conn: sqlite3.Connection, target: str, force: bool) -> None:
    if force:
        return
    tables = _tables(conn)
    if not tables:
        return
    if not set(_TABLES) <= tables:
        raise BackupError(
            f"{target} is a SQLite database but not botwire's (tables: "
            f"{', '.join(sorted(tables)[:5])}): pass --force to replace it"
        )
    keys, logs, api_keys = conn.execute(
        "SELECT (SELECT count(*) FROM botwire_kv), (SELECT count(*) FROM botwire_logs), "
        "(SELECT count(*) FROM botwire_api_keys)"
        if "botwire_api_keys" in tables
        else "SELECT (SELECT count(*) FROM botwire_kv), (SELECT count(*) FROM botwire_logs), 0"
    ).fetchone()
    if keys or logs or api_keys:
        raise BackupError(
            f"{target} holds data ({_many(keys, 'key')}, {_many(logs, 'log')}, "
            f"{_many(api_keys, 'API key')}): pass --force to replace it (back it up first: "
            "botwire backup FILE)"
        )


def _create_private(path: str) -> None:
    """A missing database file is made owner-only, its folder too when it is botwire's home."""
    folder = os.path.dirname(path)
    if folder == home_dir():
        os.makedirs(folder, mode=0o700, exist_ok=True)
    with suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))


def _open_as_botwire(target: str) -> Copied:
    """Open the restored file as every botwire process does (an older schema is migrated)."""
    from . import Memory

    with Memory("botwire:restore", url=f"sqlite:///{target}") as m:
        list(m.keys(limit=1))  # opens, switches to WAL, migrates
    with closing(_connect_ro(target, "the restored database")) as conn:
        return inspect_connection(conn, target)


# --- checks shared by both -------------------------------------------------------------------


def inspect(path: str) -> Copied:
    """Check a backup (or any botwire SQLite file) and say what it holds: ``BackupError`` when it
    is missing, not SQLite, not botwire's or corrupt."""
    path = os.path.abspath(os.path.expanduser(path))
    _need_database_file(path, f"no such file: {path}")
    with closing(_connect_ro(path, "the file")) as conn:
        return inspect_connection(conn, path)


def inspect_connection(conn: sqlite3.Connection, path: str, name: str | None = None) -> Copied:
    """What the database on ``conn`` (the file ``path``; ``name`` in messages) holds, checked."""
    _integrity(conn, name or path)
    version = _botwire_version(conn, name or path)
    try:
        namespaces, keys, entries = conn.execute(
            "SELECT (SELECT count(*) FROM (SELECT ns FROM botwire_kv WHERE expires_at IS NULL "
            "OR expires_at > ?1 UNION SELECT ns FROM botwire_logs WHERE entry_count > 0)), "
            "(SELECT count(*) FROM botwire_kv WHERE expires_at IS NULL OR expires_at > ?1), "
            "(SELECT count(*) FROM botwire_entries)",
            (time.time(),),
        ).fetchone()
    except sqlite3.DatabaseError as exc:
        raise BackupError(f"{name or path} is not a botwire database ({exc})") from None
    return Copied(path, os.path.getsize(path), version, namespaces, keys, entries)


def _integrity(conn: sqlite3.Connection, path: str) -> None:
    try:
        rows = [r[0] for r in conn.execute("PRAGMA integrity_check(20)")]
    except sqlite3.DatabaseError as exc:
        raise BackupError(f"{path} is corrupt: {exc}") from None
    if rows != ["ok"]:
        raise BackupError(f"{path} is corrupt: PRAGMA integrity_check says: {'; '.join(rows)}")


def _botwire_version(conn: sqlite3.Connection, path: str) -> int:
    try:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        tables = _tables(conn)
    except sqlite3.DatabaseError as exc:
        raise BackupError(f"{path} is corrupt or not a SQLite database: {exc}") from None
    missing = [t for t in _TABLES if t not in tables]
    if missing or version < 1:
        why = f"no table {', '.join(missing)}" if missing else "no schema version"
        raise BackupError(f"{path} is a SQLite database but not a botwire database ({why})")
    return int(version)


def _tables(conn: sqlite3.Connection) -> set[str]:
    return {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def _need_database_file(path: str, missing: str) -> None:
    if not os.path.exists(path):
        raise BackupError(missing)
    if os.path.isdir(path):
        raise BackupError(f"{path} is a folder, not a database file")
    with open(path, "rb") as f:
        head = f.read(len(_MAGIC))
    if head != _MAGIC:
        what = "an empty file" if not head else "not a SQLite database"
        raise BackupError(f"{path} is {what} (it does not start with 'SQLite format 3')")


def _connect_ro(path: str, what: str) -> sqlite3.Connection:
    return _connect(f"file:{quote(path)}?mode=ro", what, uri=True)


def _connect(
    target: str, what: str, *, uri: bool = False, timeout: float = 30.0
) -> sqlite3.Connection:
    try:
        return sqlite3.connect(target, timeout=timeout, isolation_level=None, uri=uri)
    except sqlite3.Error as exc:
        raise BackupError(f"cannot open {what} ({target}): {exc}") from None


def _fsync(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_folder(path: str) -> None:
    with suppress(OSError):  # not every platform can sync a folder
        _fsync(os.path.dirname(path))


def _remove(tmp: str) -> None:
    for name in (tmp, tmp + "-journal", tmp + "-wal", tmp + "-shm"):
        with suppress(FileNotFoundError):
            os.unlink(name)


def _many(n: int, one: str, more: str | None = None) -> str:
    return f"{n} {one if n == 1 else more or one + 's'}"


def _size(n: int) -> str:
    if n < 1024:
        return f"{n} bytes"
    size, unit = n / 1024, "KB"
    for bigger in ("MB", "GB"):
        if size < 1024:
            break
        size, unit = size / 1024, bigger
    return f"{size:.1f} {unit}"
