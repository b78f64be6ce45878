"""Engines and how a URL picks one.

``lease(url)`` resolves the URL (argument, then ``BOTWIRE_URL``, then ``BOTWIRE_DATABASE_URL``,
then the default SQLite file), and hands out one shared engine per URL and process, counting
holders; the engine closes when the last holder releases it. Configuration is read here, when a
``Memory`` is created, never at import.
"""

from __future__ import annotations

import os
import re
import threading
from dataclasses import dataclass, field
from typing import Callable
from urllib.parse import parse_qsl, unquote, urlsplit

from .._wire import redact
from ..errors import ConfigurationError
from .base import Engine

__all__ = ["Engine", "Lease", "default_path", "home_dir", "lease", "open_engine", "resolve_url"]

DB_FILE = "botwire.db"


def home_dir() -> str:
    """``$BOTWIRE_HOME``, else the user data dir (platformdirs): the database, the admin key."""
    home = os.environ.get("BOTWIRE_HOME")
    if not home:
        import platformdirs

        home = platformdirs.user_data_dir("botwire", appauthor=False)
    return os.path.abspath(os.path.expanduser(home))


def default_path() -> str:
    """``$BOTWIRE_HOME/botwire.db``, else the same file in the user data dir."""
    return os.path.join(home_dir(), DB_FILE)


def resolve_url(url: str | None = None) -> str:
    for candidate in (url, os.environ.get("BOTWIRE_URL"), os.environ.get("BOTWIRE_DATABASE_URL")):
        if candidate:
            return candidate
    return "sqlite:///" + default_path()


def open_engine(url: str, *, api_key: str | None = None) -> Engine:
    """A new engine for ``url`` (not shared: the caller closes it)."""
    scheme = url.split(":", 1)[0].lower() if ":" in url else ""
    opener = _OPENERS.get(scheme)
    if opener is None:
        raise ConfigurationError(_unsupported(url, scheme))
    if scheme in ("http", "https"):
        from .http import HttpEngine

        return HttpEngine(url, api_key=api_key)
    if api_key is not None:
        raise ConfigurationError("api_key is for a botwire server (an http:// or https:// URL)")
    return opener(url)


def _unsupported(url: str, scheme: str) -> str:
    if "://" not in url and _CONNINFO.match(url):  # host=db user=app password=...
        return (
            f"{redact(url)!r} is a libpq connection string, not a URL: write it as "
            "postgresql://user:password@host:5432/db (percent-encode @ : / ? # % in the password, "
            "other options go in the query: ?sslmode=require)"
        )
    if "://" not in url:  # a bare path
        shown = redact(url)
        return (
            f"{shown!r} is not a URL: for a SQLite file write sqlite:///{shown} "
            "(sqlite:///relative.db, sqlite:////absolute/path.db)"
        )
    return (
        f"unsupported URL scheme {scheme!r} in {redact(url)!r}: use sqlite:///path, "
        "postgresql://... or http(s)://..."
    )


_CONNINFO = re.compile(r"\s*[A-Za-z_]+\s*=")  # libpq's key=value form starts so


def _open_sqlite(url: str) -> Engine:
    from .sqlite import SQLiteEngine

    parts = urlsplit(url)
    path = unquote(parts.path)
    if parts.netloc not in ("", "localhost") or not path.strip("/"):
        raise ConfigurationError(
            f"bad SQLite URL {redact(url)!r}: use sqlite:///relative.db or sqlite:////absolute/path.db"
        )
    path = path[1:]  # sqlite:///x.db is relative, sqlite:////x.db absolute
    options = dict(parse_qsl(parts.query))
    unknown = set(options) - {"timeout", "synchronous"}
    if unknown:
        raise ConfigurationError(f"unknown SQLite URL options {sorted(unknown)} in {redact(url)!r}")
    named = os.path.expanduser(path)
    path = os.path.abspath(named)
    if named.endswith(("/", os.sep)) or os.path.isdir(path):
        what = "is" if os.path.isdir(path) else "names (it ends with /)"
        raise ConfigurationError(
            f"bad SQLite URL {redact(url)!r}: {path!r} {what} a folder, not a file: name the "
            "database file in it (sqlite:////absolute/folder/botwire.db)"
        )
    try:
        timeout = float(options.get("timeout", 30))
        return SQLiteEngine(
            path,
            timeout=timeout,
            synchronous=options.get("synchronous", "normal"),
            make_folder=_folder_to_make(url, path),
        )
    except ValueError as exc:
        raise ConfigurationError(f"bad SQLite URL {redact(url)!r}: {exc}") from None


def _folder_to_make(url: str, path: str) -> bool:
    """True for a file in the botwire home (made on first use, owner only); any other
    folder must exist, so that a typo in a path is an error rather than a new database."""
    folder = os.path.dirname(path)
    if folder == home_dir():
        return True
    if not os.path.isdir(folder):
        raise ConfigurationError(
            f"bad SQLite URL {redact(url)!r}: the folder {folder!r} does not exist (create it, "
            "or fix the path: sqlite:///relative.db, sqlite:////absolute/path.db)"
        )
    return False


def _open_postgres(url: str) -> Engine:
    from .postgres import PostgresEngine

    return PostgresEngine(url)


def _open_http(url: str) -> Engine:  # pragma: no cover - open_engine passes the key
    from .http import HttpEngine

    return HttpEngine(url)


_OPENERS: dict[str, Callable[[str], Engine]] = {
    "sqlite": _open_sqlite,
    "postgres": _open_postgres,
    "postgresql": _open_postgres,
    "http": _open_http,
    "https": _open_http,
}


@dataclass
class Lease:
    """One holder's claim on a shared engine. ``release()`` is idempotent."""

    url: tuple[str, str | None]
    engine: Engine
    released: bool = field(default=False)

    def release(self) -> Engine | None:
        """Give the engine back; returns it when this was the last holder (closed already)."""
        if self.released:
            return None
        self.released = True
        return _release(self.url)


_shared: dict[tuple[str, str | None], list] = {}  # (url, api key) -> [engine, holders]
_shared_lock = threading.Lock()


def lease(url: str | None = None, *, api_key: str | None = None) -> Lease:
    resolved = resolve_url(url)
    shared_as = (resolved, api_key)
    with _shared_lock:
        entry = _shared.get(shared_as)
        if entry is None:
            entry = _shared[shared_as] = [open_engine(resolved, api_key=api_key), 0]
        entry[1] += 1
        return Lease(shared_as, entry[0])


def _release(url: tuple[str, str | None]) -> Engine | None:
    with _shared_lock:
        entry = _shared.get(url)
        if entry is None:
            return None
        entry[1] -= 1
        if entry[1] > 0:
            return None
        del _shared[url]
    entry[0].close()
    return entry[0]
