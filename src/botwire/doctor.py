"""``botwire doctor``: check what a botwire install needs, and say what to fix.

It reads the configuration the library and the server read (``--url``, ``BOTWIRE_URL``,
``BOTWIRE_DATABASE_URL``, the SQLite file in ``$BOTWIRE_HOME``; the server's ``Settings``; the
voice settings), then runs each check in ``CHECKS``: a small function of a :class:`Context`
yielding findings (``ok``, ``warn`` or ``fail``: what was seen, and how to fix it). A check that
raises is a failure naming the error, never a traceback. Exit code: 1 when anything failed.

Checks only read. The SQLite file is opened read-only, and ``immutable`` when it has no
``-wal`` file (nobody is writing), so not even SQLite's ``-shm`` file appears; PostgreSQL is
read in a read-only transaction; the server and the public URL are asked by ``GET``. Nothing
secret is printed: URLs are shown through ``redact``, and every line goes through ``scrub``,
which hides each secret value this process knows of (API keys, voice secrets, database
passwords). docs/doctor.md explains each check and its fixes.
"""

from __future__ import annotations

import difflib
import getpass
import importlib.util
import json
import os
import shutil
import sqlite3
import ssl
import stat
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, fields, replace
from email.utils import parsedate_to_datetime
from functools import partial
from importlib import metadata
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlsplit

import click
import httpx

from . import __version__
from ._wire import SECRET_OPTIONS, _userinfo_end, redact
from .engines import base as ops
from .engines import home_dir, open_engine, resolve_url, sql
from .engines.http import split_url
from .errors import ConfigurationError, install_hint

OK, WARN, FAIL = "ok", "warn", "fail"
LABELS = {OK: "ok  ", WARN: "warn", FAIL: "FAIL"}
CLOCK_WARN = 30.0  # seconds of skew worth a warning
# Webhook signatures carry timestamps: Vapi's HMAC, Retell and Telnyx refuse one older than
# 300 s (ElevenLabs 45 min), so a clock that far off refuses every signed webhook.
CLOCK_FAIL = 300.0
DISK_FAIL = 100 << 20  # bytes free: SQLite cannot grow (or checkpoint its WAL) without room
DISK_WARN = 1 << 30
TLS_WARN_DAYS = 14
TIMEOUT = 5.0  # seconds for each HTTP request
ADMIN_KEY_FILE = "admin.key"  # server/run.py writes it on the first start
SERVER_MODULES = ("fastapi", "uvicorn", "prometheus_client", "fastapi_offline", "jinja2")


@dataclass(frozen=True)
class Finding:
    status: str  # OK, WARN or FAIL
    what: str
    fix: str = ""
    check: str = ""  # the check's name, set by ``run_checks``


def ok(what: str) -> Finding:
    return Finding(OK, what)


def warn(what: str, fix: str) -> Finding:
    return Finding(WARN, what, fix)


def fail(what: str, fix: str) -> Finding:
    return Finding(FAIL, what, fix)


@dataclass
class Context:
    """What the checks read, and what earlier checks found for later ones."""

    url: str  # the database (or server) examined
    source: str  # where that URL came from
    given_public_url: str
    home: str
    url_ok: bool = False
    server: Any = None  # server.config.Settings, when it loaded
    voice: Any = None  # voice.settings.VoiceSettings, when it loaded
    schema: int | None = None  # the database's schema version, once read
    expected: int = 0  # the schema version this botwire writes
    keys: list[ops.ApiKey] | None = None  # the database's API keys, once read
    clocks: list[tuple[str, float]] = field(default_factory=list)  # (source, local - theirs)
    secrets: set[str] = field(default_factory=set)

    @classmethod
    def build(cls, url: str | None, public_url: str | None) -> Context:
        source = (
            "--url"
            if url
            else next(
                (v for v in ("BOTWIRE_URL", "BOTWIRE_DATABASE_URL") if os.environ.get(v)),
                "the default file in $BOTWIRE_HOME",
            )
        )
        ctx = cls(resolve_url(url), source, public_url or "", home_dir())
        ctx.secrets = known_secrets(ctx.url)
        return ctx

    @property
    def scheme(self) -> str:
        return self.url.split(":", 1)[0].lower() if ":" in self.url else ""

    @property
    def is_sqlite(self) -> bool:
        return self.scheme == "sqlite"

    @property
    def is_postgres(self) -> bool:
        return self.scheme in ("postgres", "postgresql")

    @property
    def is_server(self) -> bool:
        return self.scheme in ("http", "https")

    @property
    def shown(self) -> str:
        return redact(self.url)

    @property
    def path(self) -> str:
        """The SQLite file, as ``engines._open_sqlite`` reads the URL."""
        named = os.path.expanduser(unquote(urlsplit(self.url).path)[1:])
        return os.path.abspath(named)

    @property
    def public_url(self) -> str:
        configured = self.voice.public_url if self.voice is not None else ""
        return (self.given_public_url or configured).rstrip("/")

    @property
    def public_source(self) -> str:
        if self.given_public_url:
            return "--public-url"
        return "BOTWIRE_PUBLIC_URL" if os.environ.get("BOTWIRE_PUBLIC_URL") else "voice.json"

    def enabled_platforms(self) -> list[str]:
        if self.voice is None:
            return []
        return [name for name, on in self.voice.enabled().items() if on]

    def serving(self) -> bool:
        """Whether this machine looks like it runs ``botwire serve``."""
        return bool(
            self.keys
            or os.path.exists(os.path.join(self.home, ADMIN_KEY_FILE))
            or self.enabled_platforms()
            or self.public_url
            or os.environ.get("BOTWIRE_HOST")
            or os.environ.get("BOTWIRE_PORT")
        )


# -- secrets: collected to be hidden, never shown -------------------------------------------


def known_secrets(url: str) -> set[str]:
    found = {os.environ.get("BOTWIRE_API_KEY", "")}
    for candidate in (url, os.environ.get("BOTWIRE_URL"), os.environ.get("BOTWIRE_DATABASE_URL")):
        found |= url_secrets(candidate or "")
    found |= voice_secrets()
    try:
        with open(os.path.join(home_dir(), ADMIN_KEY_FILE), encoding="utf-8") as fh:
            found.add(fh.read().strip())
    except (OSError, ValueError):
        pass
    return {s for s in found if len(s) >= 4}


def url_secrets(url: str) -> set[str]:
    """A URL's password (and user part, an API key in an http URL) and secret options, raw
    and decoded; the userinfo ends where ``redact`` ends it."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return set()
    at = _userinfo_end(rest)
    user, _, password = rest[:at].partition(":") if at >= 0 else ("", "", "")
    raw = [password, user] if scheme.lower() in ("http", "https") else [password]
    query = rest[at + 1 :].partition("?")[2].partition("#")[0]
    raw += [v for k, v in parse_qsl(query) if k.lower() in SECRET_OPTIONS]
    return {s for s in raw if s} | {unquote(s) for s in raw if s}


def voice_secrets() -> set[str]:
    """Every voice secret set in the environment or the voice settings file, even when the
    settings do not load."""
    from .voice.settings import SECRETS, config_path, env_name

    found = {os.environ.get(env_name(name), "") for name in SECRETS}
    try:
        with open(config_path(), encoding="utf-8") as fh:
            data = json.load(fh)
        if isinstance(data, dict):
            found |= {str(data.get(name) or "") for name in SECRETS}
    except (OSError, ValueError):
        pass
    return found


def scrub(text: str, secrets: set[str]) -> str:
    for secret in sorted(secrets, key=len, reverse=True):
        text = text.replace(secret, "***")
    return text


# -- reading without writing ----------------------------------------------------------------


class Unreachable(Exception):
    """The database did not answer; the message is safe to show."""


@contextmanager
def sqlite_reader(path: str) -> Iterator[sqlite3.Connection]:
    """A read-only connection. Without a ``-wal`` file (no writer), ``immutable``: SQLite would
    otherwise create ``-wal`` and ``-shm`` files beside the database and leave them there."""
    mode = "ro" if os.path.exists(path + "-wal") else "ro&immutable=1"
    conn = sqlite3.connect(f"file:{quote(path)}?mode={mode}", uri=True, timeout=2)
    try:
        yield conn
    finally:
        conn.close()


@contextmanager
def postgres_reader(url: str) -> Iterator[Any]:
    """A connection in read-only transactions (rolled back); driver errors as ``Unreachable``
    with the URL's secrets hidden."""
    from .engines.postgres import PostgresEngine, psycopg

    engine = PostgresEngine(url)  # checks the URL without connecting
    try:
        conn = psycopg.connect(engine._conninfo, autocommit=False)
    except psycopg.Error as exc:
        raise Unreachable(engine._hide(" ".join(str(exc).split())[:300])) from None
    try:
        conn.read_only = True
        yield conn
    except psycopg.Error as exc:
        raise Unreachable(engine._hide(" ".join(str(exc).split())[:300])) from None
    finally:
        conn.close()  # the transaction is rolled back: nothing was written anyway
        engine.close()


def read_op(ctx: Context, op: Any) -> Any:
    """Run a read op with the engines' own SQL over a read-only connection."""
    handler, mode = sql.handle(op, time.time())
    if mode != sql.READ:
        raise RuntimeError(f"{type(op).__name__} writes; the doctor only reads")
    if ctx.is_sqlite:
        from .engines import sqlite as engine

        with sqlite_reader(ctx.path) as conn:
            return sql.drive(handler, partial(engine._run, conn))
    from .engines import postgres

    with postgres_reader(ctx.url) as conn:
        return sql.drive(handler, partial(postgres._run, conn))


# -- configuration --------------------------------------------------------------------------


def check_server_settings(ctx: Context) -> Iterator[Finding]:
    try:
        from .server.config import Settings
    except (ImportError, ConfigurationError):
        yield ok("server settings not read: the server extra is not installed (see below)")
        return
    try:
        ctx.server = Settings.from_env()
    except ConfigurationError as exc:
        yield fail(
            f"server settings: {exc}{_env_named(str(exc), Settings)}",
            "fix or unset that variable (docs/server.md lists the settings)",
        )
        return
    s = ctx.server
    yield ok(f"server settings parse (host {s.host}, port {s.port}, {s.workers} worker(s))")


def _env_named(message: str, settings: Any) -> str:
    """The variables behind the settings a message names (the range checks name the setting)."""
    named = []
    for f in fields(settings):
        env = "BOTWIRE_DATABASE_URL" if f.name == "database" else f"BOTWIRE_{f.name.upper()}"
        if env not in message and f.name in message.split() and os.environ.get(env):
            named.append(f"{env}={os.environ[env]!r}")
    return f" (set by {', '.join(named)})" if named else ""


def check_database_url(ctx: Context) -> Iterator[Finding]:
    raw = os.environ.get("BOTWIRE_MAX_VALUE_BYTES")
    if raw and not (raw.strip().isdigit() and int(raw) >= 1):
        yield fail(
            f"the library's BOTWIRE_MAX_VALUE_BYTES={raw!r} is not a size in bytes",
            "set it to a whole number of bytes (1048576, the default) or unset it",
        )
    if ctx.is_postgres and importlib.util.find_spec("psycopg") is None:
        yield fail(f"database {ctx.shown} needs the postgres extra", install_hint("postgres"))
        return
    try:
        open_engine(ctx.url).close()  # parses and checks the URL; connects nothing
    except ConfigurationError as exc:
        if not _missing_sqlite_folder(ctx, exc):  # that one is the file check's to explain
            yield fail(f"database URL from {ctx.source}: {exc}", f"fix {ctx.source}")
            return
    ctx.url_ok = True
    yield ok(f"database URL {ctx.shown} (from {ctx.source})")


def _missing_sqlite_folder(ctx: Context, exc: Exception) -> bool:
    """The SQLite engine refuses a URL whose folder is missing, after every other check."""
    folder = os.path.dirname(ctx.path) if ctx.is_sqlite else ""
    return bool(folder) and not os.path.isdir(folder) and "does not exist" in str(exc)


def check_voice_settings(ctx: Context) -> Iterator[Finding]:
    from .voice.settings import VoiceSettings, config_path

    try:
        ctx.voice = VoiceSettings.load()
    except ConfigurationError as exc:
        yield fail(
            f"voice settings: {exc}",
            f"fix that BOTWIRE_* variable or {config_path()} (botwire voice configure ...)",
        )
        return
    yield ok("voice settings parse")


def check_variables(ctx: Context) -> Iterator[Finding]:
    """A ``BOTWIRE_*`` variable that is a near miss of a setting's is a typo, silently ignored."""
    known = known_variables()
    for name in sorted(v for v in os.environ if v.startswith("BOTWIRE_")):
        if name in known or name.startswith("BOTWIRE_TEST_"):
            continue
        match = difflib.get_close_matches(name, known, n=1, cutoff=0.85)
        if match:
            yield warn(
                f"{name} is not a botwire setting: it is ignored", f"did you mean {match[0]}?"
            )


def known_variables() -> list[str]:
    from .voice.settings import VoiceSettings, env_name

    names = ["BOTWIRE_URL", "BOTWIRE_DATABASE_URL", "BOTWIRE_HOME", "BOTWIRE_API_KEY"]
    names += ["BOTWIRE_MAX_VALUE_BYTES", "BOTWIRE_VOICE_CONFIG"]
    names += [env_name(n) for n in VoiceSettings.names()]
    try:
        from .server.config import Settings

        names += [f"BOTWIRE_{f.name.upper()}" for f in fields(Settings)]
    except (ImportError, ConfigurationError):
        pass
    return names


def check_agreement(ctx: Context) -> Iterator[Finding]:
    """The library (``BOTWIRE_URL``) and the server (``BOTWIRE_DATABASE_URL``) on one database."""
    library = os.environ.get("BOTWIRE_URL", "")
    if ctx.server is None or not library or library.lower().startswith(("http:", "https:")):
        return
    if _same_database(library, ctx.server.database):
        return
    yield warn(
        f"the library stores in {redact(library)} (BOTWIRE_URL) but botwire serve would "
        f"store in {redact(ctx.server.database)} (BOTWIRE_DATABASE_URL or the default)",
        "set both to the same database, or point BOTWIRE_URL at the server (http://KEY@host:8421)",
    )


def _same_database(a: str, b: str) -> bool:
    def norm(url: str) -> str:
        if url.lower().startswith("sqlite:"):
            named = os.path.expanduser(unquote(urlsplit(url).path)[1:])
            return "sqlite:" + os.path.abspath(named)
        return url

    return norm(a) == norm(b)


# -- the database ---------------------------------------------------------------------------


def check_database(ctx: Context) -> Iterator[Finding]:
    if not ctx.url_ok:
        return
    if ctx.is_server:
        yield from _server_database(ctx)
    elif ctx.is_postgres:
        yield from _postgres_database(ctx)
    elif ctx.is_sqlite:
        yield from _sqlite_database(ctx)


def _sqlite_database(ctx: Context) -> Iterator[Finding]:
    from .engines.sqlite import SCHEMA_VERSION

    ctx.expected = SCHEMA_VERSION
    if not os.path.isfile(ctx.path) or not os.access(ctx.path, os.R_OK):
        return  # the file check says why
    try:
        with sqlite_reader(ctx.path) as conn:
            ctx.schema = conn.execute("PRAGMA user_version").fetchone()[0]
    except sqlite3.Error as exc:
        yield fail(
            f"database {ctx.shown} cannot be read: {exc}",
            "is it a botwire database? restore it from a backup, or point the URL elsewhere",
        )
        return
    yield _schema_finding(ctx, "SQLite " + sqlite3.sqlite_version)


def _postgres_database(ctx: Context) -> Iterator[Finding]:
    from .engines.postgres import SCHEMA_VERSION, psycopg

    if psycopg is None:
        yield fail(f"database {ctx.shown} needs the postgres extra", install_hint("postgres"))
        return
    ctx.expected = SCHEMA_VERSION
    try:
        with postgres_reader(ctx.url) as conn:
            version, server = _postgres_state(ctx, conn)
    except Unreachable as exc:
        yield fail(
            f"database {ctx.shown} does not answer: {exc}",
            f"start PostgreSQL, or fix the host, port, user or password in {ctx.source}",
        )
        return
    ctx.schema = version
    yield _schema_finding(ctx, server)


def _postgres_state(ctx: Context, conn: Any) -> tuple[int, str]:
    """The schema version and the server's version; the server's clock into ``ctx.clocks``."""
    before = time.time()
    now = conn.execute("SELECT extract(epoch FROM clock_timestamp())").fetchone()[0]
    ctx.clocks.append(("PostgreSQL's clock", (before + time.time()) / 2 - float(now)))
    exists = conn.execute("SELECT to_regclass('botwire_schema') IS NOT NULL").fetchone()[0]
    version = 0
    if exists:
        version = conn.execute("SELECT coalesce(max(version), 0) FROM botwire_schema").fetchone()[0]
    number = conn.info.server_version
    return int(version), f"PostgreSQL {number // 10000}.{number % 10000}"


def _schema_finding(ctx: Context, server: str) -> Finding:
    found, expected, where = ctx.schema or 0, ctx.expected, f"database {ctx.shown} ({server})"
    if found == expected:
        return ok(f"{where} answers: schema version {found}, as this botwire expects")
    if found == 0:
        return warn(
            f"{where} answers and holds no botwire tables yet",
            "nothing to do: they are created on first use (botwire serve, or any Memory)",
        )
    if found < expected:
        return warn(
            f"{where} answers: schema version {found}, this botwire expects {expected}",
            "it will be migrated on next start (of botwire serve, or any Memory)",
        )
    return fail(
        f"{where}: schema version {found} is newer than this botwire knows ({expected}): "
        "a newer botwire wrote it",
        f"upgrade botwire on this machine (this is {__version__}): install the newer checkout "
        "with pip install -e .",
    )


def _server_database(ctx: Context) -> Iterator[Finding]:
    """An http(s) URL: the botwire server answers, its database is ready, the key is taken."""
    base, key, _ = split_url(ctx.url, None)
    try:
        ready = httpx.get(base + "/readyz", timeout=TIMEOUT)
    except httpx.HTTPError as exc:
        yield fail(
            f"server {base} does not answer from here: {type(exc).__name__}: {exc}",
            f"start botwire serve there, or fix the host and port in {ctx.source}",
        )
        return
    _note_date(ctx, f"the Date header of {base}", ready)
    if ready.status_code != 200:
        yield fail(
            f"server {base} answers /readyz with {ready.status_code}: its database does not",
            "run botwire doctor on the server's machine",
        )
    else:
        yield ok(f"server {base} answers and its database is ready")
    yield _server_key(base, key, ctx.source)


def _server_key(base: str, key: str | None, source: str) -> Finding:
    if not key:
        return fail(
            f"no API key for {base}",
            "set BOTWIRE_API_KEY, or put the key in the URL (http://KEY@host:8421)",
        )
    headers = {"Authorization": f"Bearer {key}"}
    answer = httpx.get(
        base + "/v1/namespaces", params={"limit": 1}, headers=headers, timeout=TIMEOUT
    )
    if answer.status_code in (200, 403):
        return ok(f"server {base} accepts the API key")
    if answer.status_code == 401:
        return fail(
            f"server {base} refuses the API key (401: unknown or revoked)",
            f"make a new one (botwire keys create ...) and put it in {source} or BOTWIRE_API_KEY",
        )
    return warn(f"server {base} answers {answer.status_code} to the API key", "try again later")


# -- the SQLite file and its folder ---------------------------------------------------------


def check_sqlite_files(ctx: Context) -> Iterator[Finding]:
    if not (ctx.is_sqlite and ctx.url_ok):
        return
    folder, path = os.path.dirname(ctx.path), ctx.path
    if not os.path.isdir(folder):
        yield _missing_folder(ctx, folder)
        return
    if not os.access(folder, os.W_OK | os.X_OK):
        yield fail(
            f"folder {folder} is not writable by {_user()}: SQLite writes its -wal and -shm "
            "files beside the database",
            f"chown {_user()} {folder} (or run as the user who owns it)",
        )
        return
    if not os.path.exists(path):
        yield warn(f"no database file yet at {path}", "nothing to do: created (0600) on first use")
        return
    yield from _file_state(path)


def _missing_folder(ctx: Context, folder: str) -> Finding:
    if folder != ctx.home:
        return fail(
            f"folder {folder} of the SQLite database does not exist",
            f"mkdir -p -m 700 {folder}, or fix the path in {ctx.source}",
        )
    parent = _existing_ancestor(folder)
    if not os.access(parent, os.W_OK | os.X_OK):
        return fail(
            f"the botwire home {folder} does not exist and cannot be made: {parent} is not "
            f"writable by {_user()}",
            f"mkdir -p -m 700 {folder} as a user who can, then chown {_user()} {folder}; or set "
            "BOTWIRE_HOME to a folder of yours",
        )
    return warn(
        f"the botwire home {folder} does not exist yet",
        "nothing to do: created (0700) on first use; or set BOTWIRE_HOME",
    )


def _file_state(path: str) -> Iterator[Finding]:
    if not os.path.isfile(path):
        yield fail(f"{path} is not a file", "point the URL at a database file")
        return
    if not os.access(path, os.R_OK | os.W_OK):
        yield fail(
            f"{path} is not readable and writable by {_user()}",
            f"chown {_user()} {path} && chmod 600 {path} (or run as its owner)",
        )
        return
    with open(path, "rb") as fh:
        head = fh.read(16)
    if head and head != b"SQLite format 3\x00":
        yield fail(f"{path} is not a SQLite database", "point the URL at botwire's database file")
        return
    exposed = [p for p in (path, path + "-wal", path + "-shm") if _open_to_others(p)]
    for p in exposed:
        yield warn(
            f"{p} is mode {_mode(p)}: {_who(p)}, and it holds your callers' personal data",
            f"chmod 600 {p}",
        )
    if not exposed:
        yield ok(f"database file {path} is writable by {_user()}, mode {_mode(path)}")


def check_disk(ctx: Context) -> Iterator[Finding]:
    if not (ctx.is_sqlite and ctx.url_ok):
        return
    folder = _existing_ancestor(os.path.dirname(ctx.path))
    free = shutil.disk_usage(folder).free
    what = f"{_size(free)} free on the disk of {folder}"
    if free < DISK_FAIL:
        yield fail(what + ": SQLite cannot grow or checkpoint its WAL", "free disk space")
    elif free < DISK_WARN:
        yield warn(what, "free disk space before the database needs it")
    else:
        yield ok(what)


def _existing_ancestor(folder: str) -> str:
    while not os.path.isdir(folder) and os.path.dirname(folder) != folder:
        folder = os.path.dirname(folder)
    return folder


def _open_to_others(path: str) -> bool:
    try:
        return bool(os.stat(path).st_mode & 0o077)
    except OSError:
        return False


def _mode(path: str) -> str:
    return oct(stat.S_IMODE(os.stat(path).st_mode))[2:].rjust(4, "0")


def _who(path: str) -> str:
    """Who besides the owner may use the file: "group and others can read it"."""
    mode = os.stat(path).st_mode
    rights: dict[str, list[str]] = {}
    for whom, shift in (("group", 3), ("others", 0)):
        bits = (mode >> shift) & 0o7
        can = [verb for verb, bit in (("read", 4), ("write", 2), ("execute", 1)) if bits & bit]
        if can:
            rights.setdefault(" and ".join(can), []).append(whom)
    return ", ".join(f"{' and '.join(w)} can {verbs} it" for verbs, w in rights.items())


def _user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no name for this uid
        return str(os.getuid()) if hasattr(os, "getuid") else "this user"


def _size(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1024 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TB"  # pragma: no cover


# -- API keys -------------------------------------------------------------------------------


def check_api_keys(ctx: Context) -> Iterator[Finding]:
    if ctx.is_server or ctx.schema is None or not 2 <= ctx.schema <= ctx.expected:
        return  # no keys table yet (or a layout this botwire does not know)
    try:
        ctx.keys = read_op(ctx, ops.ListKeys())
    except Unreachable as exc:
        yield fail(f"the API keys of {ctx.shown} cannot be read: {exc}", "see the database line")
        return
    live = [k for k in ctx.keys if k.revoked_at is None]
    admins = [k for k in live if k.rights == "admin"]
    if not ctx.keys:
        what = "no API keys yet (only botwire serve needs them)"
        fix = "nothing to do: the first start of botwire serve makes an admin key"
        yield warn(what, fix) if ctx.serving() else ok(what)
    elif not live:
        yield fail(
            f"all {len(ctx.keys)} API keys are revoked: nothing can call the server, and a "
            "first-start admin key is made only for a database with no keys",
            "run `botwire keys recover` on the server's machine (docs/keys.md)",
        )
    elif not admins:
        yield warn(
            f"{len(live)} API key(s), none with the admin right: no key can create or revoke keys",
            "run `botwire keys recover` on the server's machine (docs/keys.md)",
        )
    else:
        yield ok(f"{len(live)} API key(s) in use, {len(admins)} with the admin right")


def check_admin_key(ctx: Context) -> Iterator[Finding]:
    path = os.path.join(ctx.home, ADMIN_KEY_FILE)
    if not os.path.exists(path):
        if ctx.keys:
            yield warn(
                f"no admin key file {path}: the local botwire keys has no key to use",
                "pass --api-key or set BOTWIRE_API_KEY to an admin key",
            )
        else:
            yield ok(f"no admin key file yet (the first start of botwire serve writes {path})")
        return
    if _open_to_others(path):
        yield fail(
            f"{path} is mode {_mode(path)}: {_who(path)}, and it holds an admin API key",
            f"chmod 600 {path}",
        )
    with open(path, encoding="utf-8") as fh:
        secret = fh.read().strip()
    ctx.secrets.add(secret)
    yield _admin_key_known(ctx, path, secret)


def _admin_key_known(ctx: Context, path: str, secret: str) -> Finding:
    if not secret.startswith("bw_"):
        return warn(
            f"{path} does not hold a botwire API key", f"remove {path} or put an admin key in it"
        )
    if ctx.keys is None:
        return ok(f"admin key file {path} (mode {_mode(path)})")
    from hashlib import sha256

    digest = sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()  # as server.auth
    match = next((k for k in ctx.keys if k.hash == digest), None)
    if match is None:
        return warn(
            f"{path} holds a key {ctx.shown} does not know (made for another database?)",
            f"put an admin key of this database in {path}, or remove it",
        )
    if match.revoked_at is not None or match.rights != "admin":
        state = "was revoked" if match.revoked_at is not None else f"has only {match.rights}"
        return warn(f"the key in {path} ({match.id}) {state}", f"put an admin key in {path}")
    return ok(f"admin key file {path} (mode {_mode(path)}) holds admin key {match.id}")


# -- voice ----------------------------------------------------------------------------------


def check_voice_platforms(ctx: Context) -> Iterator[Finding]:
    if ctx.voice is None:
        return
    from .voice.platforms.registry import PLATFORMS

    quiet = []
    for platform in PLATFORMS:
        findings = list(_platform(ctx, platform))
        quiet += [] if findings else [platform.name]
        yield from findings
    if quiet:
        yield ok(
            f"voice: {', '.join(quiet)} not configured (their webhooks answer 404 until "
            "botwire voice configure <platform>)"
        )


def _platform(ctx: Context, platform: Any) -> Iterator[Finding]:
    """Each platform whose secret is set, or whose other settings are set without it."""
    from .voice.settings import env_name

    values = ctx.voice.values()
    secrets = list(dict.fromkeys(route.secret for route in platform.routes))
    have = [s for s in secrets if values[s]]
    own = [
        o.setting
        for o in platform.options
        if not o.secret
        and o.setting.startswith(platform.name + "_")
        and values[o.setting] != o.default
    ]
    name = platform.name
    for secret in (s for s in secrets if not values[s] and (have or own)):
        routes = [r.path for r in platform.routes if r.secret == secret]
        flag = next((o.flag for o in platform.options if o.setting == secret), "")
        how = f"botwire voice configure {name} {flag} (asks for it), or set {env_name(secret)}"
        verb = "answers" if len(routes) == 1 else "answer"
        what = f"voice {name}: {secret} is not set, so {', '.join(routes)} {verb} 404"
        yield warn(what, how) if have else fail(f"{what} (yet {', '.join(own)} is set)", how)
    if have:
        where = ", ".join(f"{s} from {_secret_source(s)}" for s in have)
        yield ok(f"voice {name}: enabled ({where})")


def _secret_source(setting: str) -> str:
    from .voice.settings import config_path, env_name

    return env_name(setting) if os.environ.get(env_name(setting)) else config_path()


def check_voice_file(ctx: Context) -> Iterator[Finding]:
    from .voice.settings import config_path

    path = config_path()
    if os.path.exists(path) and _open_to_others(path):
        yield fail(
            f"{path} is mode {_mode(path)}: {_who(path)}, and it holds the voice secrets",
            f"chmod 600 {path}",
        )


# -- the public URL and the clock -----------------------------------------------------------


def check_public_url(ctx: Context) -> Iterator[Finding]:
    base = ctx.public_url
    if not base:
        yield _no_public_url(ctx)
        return
    if not base.startswith(("http://", "https://")):
        yield fail(f"public URL {base!r} is not an http(s) URL", f"fix {ctx.public_source}")
        return
    url, shown = base + "/healthz", redact(base) + "/healthz"
    try:
        answer, cert = _get_with_cert(url)
    except httpx.HTTPError as exc:
        yield _unreachable_public(ctx, shown, exc)
        return
    _note_date(ctx, f"the Date header of {redact(base)}", answer)
    yield from _public_answer(ctx, shown, answer, cert)


def _no_public_url(ctx: Context) -> Finding:
    how = "botwire voice configure callers --public-url https://..., or BOTWIRE_PUBLIC_URL"
    enabled = ctx.enabled_platforms()
    if "twilio" in enabled:
        return fail(
            "no public URL set: Twilio signs the URL it calls, so behind a proxy every "
            "request fails its signature",
            how,
        )
    if enabled:
        return warn("no public URL set: cannot check that the platforms reach this server", how)
    return ok("no public URL set (only voice platforms need one)")


def _get_with_cert(url: str) -> tuple[httpx.Response, dict[str, Any] | None]:
    """GET ``url`` (TLS verified, as httpx does: SSL_CERT_FILE, else certifi) and the peer's
    certificate, for an https URL."""
    with httpx.Client(timeout=TIMEOUT, follow_redirects=False) as client:
        with client.stream("GET", url) as answer:
            stream = answer.extensions.get("network_stream")
            tls = stream.get_extra_info("ssl_object") if stream is not None else None
            cert = tls.getpeercert() if tls is not None else None
            answer.read()
    return answer, cert


def _unreachable_public(ctx: Context, shown: str, exc: httpx.HTTPError) -> Finding:
    reason = f"{type(exc).__name__}: {exc}"
    if "CERTIFICATE_VERIFY_FAILED" in reason or isinstance(exc.__context__, ssl.SSLError):
        return fail(
            f"public URL {shown}: its TLS certificate is not valid from here ({exc})",
            "install a certificate for this host name from a trusted CA (e.g. Let's Encrypt); "
            "the platforms refuse it too",
        )
    return fail(
        f"public URL {shown} does not answer from this machine: {reason}",
        "start botwire serve, and check DNS, the firewall and the proxy in front of it "
        f"(the URL comes from {ctx.public_source})",
    )


def _public_answer(
    ctx: Context, shown: str, answer: httpx.Response, cert: dict[str, Any] | None
) -> Iterator[Finding]:
    if answer.status_code != 200:
        yield fail(
            f"public URL {shown} answers {answer.status_code}",
            "the proxy in front does not reach botwire serve: check where it forwards to",
        )
        return
    if _json_of(answer) != {"status": "ok"}:
        yield warn(f"public URL {shown} answers 200, but not as botwire does", "check the proxy")
        return
    yield _tls_finding(shown, cert) if cert is not None else _plain_http(ctx, shown)


def _tls_finding(shown: str, cert: dict[str, Any]) -> Finding:
    until = ssl.cert_time_to_seconds(cert["notAfter"])
    days = (until - time.time()) / 86400
    day = time.strftime("%Y-%m-%d", time.gmtime(until))
    if days < TLS_WARN_DAYS:
        return warn(
            f"public URL {shown} answers, but its TLS certificate expires in {days:.0f} day(s) "
            f"({day})",
            "renew the certificate",
        )
    return ok(f"public URL {shown} answers from this machine (TLS valid until {day})")


def _plain_http(ctx: Context, shown: str) -> Finding:
    host = urlsplit(ctx.public_url).hostname or ""
    if host in ("localhost", "127.0.0.1", "::1") or not ctx.enabled_platforms():
        return ok(f"public URL {shown} answers from this machine")
    return warn(
        f"public URL {shown} answers, but over plain http: secrets cross the network in clear",
        "put botwire serve behind https (a proxy with a certificate) and use https://",
    )


def _json_of(answer: httpx.Response) -> Any:
    try:
        return answer.json()
    except ValueError:
        return None


def _note_date(ctx: Context, source: str, answer: httpx.Response) -> None:
    """The clock offset to a server's ``Date`` header (whole seconds: its middle is taken)."""
    raw = answer.headers.get("date")
    if not raw:
        return
    try:
        theirs = parsedate_to_datetime(raw).timestamp() + 0.5
    except (TypeError, ValueError):
        return
    ctx.clocks.append((source, time.time() - answer.elapsed.total_seconds() / 2 - theirs))


def check_clock(ctx: Context) -> Iterator[Finding]:
    if not ctx.clocks:
        what = "clock not compared: no public URL or PostgreSQL answered to compare with"
        fix = "give a public URL that answers (--public-url, BOTWIRE_PUBLIC_URL) to compare"
        yield warn(what, fix) if ctx.enabled_platforms() else ok(what)
        return
    source, offset = max(ctx.clocks, key=lambda c: abs(c[1]))
    what = f"clock {abs(offset):.0f} s {'ahead of' if offset > 0 else 'behind'} {source}"
    fix = (
        "sync this machine's clock (timedatectl set-ntp true, or chrony): webhook signatures "
        f"older than {CLOCK_FAIL:.0f} s (Vapi HMAC, Retell, Telnyx) are refused"
    )
    if abs(offset) > CLOCK_FAIL:
        yield fail(what, fix)
    elif abs(offset) > CLOCK_WARN:
        yield warn(what, fix)
    else:
        yield ok(f"clock within {max(abs(offset), 1):.0f} s of {source}")


# -- extras ---------------------------------------------------------------------------------


def check_extras(ctx: Context) -> Iterator[Finding]:
    missing = [m for m in SERVER_MODULES if importlib.util.find_spec(m) is None]
    if not missing:
        yield ok(
            f"server extra installed (fastapi {_version('fastapi')}, uvicorn {_version('uvicorn')})"
        )
    elif ctx.serving():
        yield fail(f"the server extra is missing ({', '.join(missing)})", install_hint("server"))
    else:
        yield ok("server extra not installed (only botwire serve needs it)")
    if ctx.is_postgres and ctx.url_ok:  # without psycopg, the database URL line said so
        missing = [m for m in ("psycopg", "psycopg_pool") if importlib.util.find_spec(m) is None]
        if missing:
            yield fail(
                f"the postgres extra is missing ({', '.join(missing)})", install_hint("postgres")
            )
        else:
            yield ok(f"postgres extra installed (psycopg {_version('psycopg')})")
    if importlib.util.find_spec("mcp") is not None:
        yield ok(f"mcp extra installed (mcp {_version('mcp')}): /mcp and botwire mcp work")
    else:
        yield ok("mcp extra not installed (only /mcp and botwire mcp need it)")


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "?"


# -- running --------------------------------------------------------------------------------

Check = Callable[[Context], Iterator[Finding]]
CHECKS: tuple[Check, ...] = (
    check_server_settings,
    check_database_url,
    check_voice_settings,
    check_variables,
    check_agreement,
    check_database,
    check_sqlite_files,
    check_disk,
    check_api_keys,
    check_admin_key,
    check_voice_platforms,
    check_voice_file,
    check_public_url,
    check_clock,
    check_extras,
)


def run_checks(ctx: Context, checks: tuple[Check, ...] = CHECKS) -> list[Finding]:
    """Every check's findings in order, each named by its check and scrubbed of secrets."""
    out: list[Finding] = []
    for check in checks:
        name = check.__name__.removeprefix("check_")
        try:
            for finding in check(ctx):
                out.append(replace(finding, check=name))
        except Exception as exc:  # a check that breaks is a finding, never a traceback
            what = f"{name.replace('_', ' ')}: the check failed: {type(exc).__name__}: {exc}"
            out.append(Finding(FAIL, what, "the error says what went wrong", name))
    return [replace(f, what=scrub(f.what, ctx.secrets), fix=scrub(f.fix, ctx.secrets)) for f in out]


def exit_code(findings: list[Finding]) -> int:
    return 1 if any(f.status == FAIL for f in findings) else 0


def as_text(findings: list[Finding]) -> str:
    lines = [f"{LABELS[f.status]}  {f.what}" + (f"  — {f.fix}" if f.fix else "") for f in findings]
    counts = {s: sum(f.status == s for f in findings) for s in (OK, WARN, FAIL)}
    lines.append(f"{counts[OK]} ok, {counts[WARN]} warning(s), {counts[FAIL]} failure(s)")
    return "\n".join(lines)


def as_json(ctx: Context, findings: list[Finding]) -> str:
    doc = {
        "ok": exit_code(findings) == 0,
        "exit_code": exit_code(findings),
        "version": __version__,
        "database": ctx.shown,
        "public_url": redact(ctx.public_url) if ctx.public_url else None,
        "counts": {s: sum(f.status == s for f in findings) for s in (OK, WARN, FAIL)},
        "checks": [
            {"check": f.check, "status": f.status, "what": f.what, "fix": f.fix or None}
            for f in findings
        ],
    }
    return scrub(json.dumps(doc, ensure_ascii=False, indent=2), ctx.secrets)


@click.command()
@click.option(
    "--url",
    default=None,
    help="Database or server URL (default: BOTWIRE_URL, BOTWIRE_DATABASE_URL, else the "
    "embedded SQLite file).",
)
@click.option(
    "--public-url",
    default=None,
    help="This server's public base URL, to GET its /healthz from here (default: the "
    "public_url voice setting, BOTWIRE_PUBLIC_URL).",
)
@click.option("--json", "json_output", is_flag=True, help="One JSON document instead of lines.")
def doctor(url: str | None, public_url: str | None, json_output: bool) -> None:
    """Check configuration, database, permissions, voice secrets, the public URL and the
    clock, and say what to fix. Reads only. Exit 1 when a check fails (warnings alone: 0)."""
    ctx = Context.build(url, public_url)
    findings = run_checks(ctx)
    click.echo(as_json(ctx, findings) if json_output else as_text(findings))
    sys.exit(exit_code(findings))
