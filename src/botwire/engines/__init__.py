"""Engines and how a URL picks one.

``lease(url)`` resolves the URL (argument, then ``BOTWIRE_URL``, then ``BOTWIRE_DATABASE_URL``,
then the default SQLite file), and hands out one shared engine per URL and process, counting
holders; the engine closes when the last holder releases it. Configuration is read here, when a
``Memory`` is created, never at import.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from typing import Callable
from urllib.parse import parse_qsl, unquote, urlsplit

from ..errors import ConfigurationError
from .base import Engine

__all__ = ["Engine", "Lease", "default_path", "lease", "open_engine", "resolve_url"]

DB_FILE = "botwire.db"


def default_path() -> str:
    """``$BOTWIRE_HOME/botwire.db``, else the same file in the user data dir."""
    home = os.environ.get("BOTWIRE_HOME")
    if not home:
        import platformdirs

        home = platformdirs.user_data_dir("botwire", appauthor=False)
    return os.path.join(os.path.abspath(os.path.expanduser(home)), DB_FILE)


def resolve_url(url: str | None = None) -> str:
    for candidate in (url, os.environ.get("BOTWIRE_URL"), os.environ.get("BOTWIRE_DATABASE_URL")):
        if candidate:
            return candidate
    return "sqlite:///" + default_path()


def open_engine(url: str) -> Engine:
    """A new engine for ``url`` (not shared: the caller closes it)."""
    scheme = url.split(":", 1)[0].lower() if ":" in url else ""
    opener = _OPENERS.get(scheme)
    if opener is None:
        raise ConfigurationError(
            f"unsupported URL scheme {scheme!r} in {_redact(url)!r}: use sqlite:///path, "
            "postgresql://... or http(s)://..."
        )
    return opener(url)


def _open_sqlite(url: str) -> Engine:
    from .sqlite import SQLiteEngine

    parts = urlsplit(url)
    path = unquote(parts.path)
    if parts.netloc not in ("", "localhost") or not path.strip("/"):
        raise ConfigurationError(
            f"bad SQLite URL {url!r}: use sqlite:///relative.db or sqlite:////absolute/path.db"
        )
    path = path[1:]  # sqlite:///x.db is relative, sqlite:////x.db absolute
    options = dict(parse_qsl(parts.query))
    unknown = set(options) - {"timeout", "synchronous"}
    if unknown:
        raise ConfigurationError(f"unknown SQLite URL options {sorted(unknown)} in {url!r}")
    try:
        timeout = float(options.get("timeout", 30))
        return SQLiteEngine(
            os.path.expanduser(path),
            timeout=timeout,
            synchronous=options.get("synchronous", "normal"),
        )
    except ValueError as exc:
        raise ConfigurationError(f"bad SQLite URL {url!r}: {exc}") from None


def _open_postgres(url: str) -> Engine:
    from .postgres import PostgresEngine

    return PostgresEngine(url)


def _open_http(url: str) -> Engine:
    raise ConfigurationError(
        f"{_redact(url)!r} points at a botwire server; the HTTP engine is not part of this "
        "release. Use sqlite:/// or postgresql:// URLs (unset BOTWIRE_URL)."
    )


_OPENERS: dict[str, Callable[[str], Engine]] = {
    "sqlite": _open_sqlite,
    "postgres": _open_postgres,
    "postgresql": _open_postgres,
    "http": _open_http,
    "https": _open_http,
}


def _redact(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None and not (parts.username and parts.scheme.startswith("http")):
        return url
    host = parts.hostname or ""
    netloc = f"***@{host}" + (f":{parts.port}" if parts.port else "")
    return parts._replace(netloc=netloc).geturl()


@dataclass
class Lease:
    """One holder's claim on a shared engine. ``release()`` is idempotent."""

    url: str
    engine: Engine
    released: bool = field(default=False)

    def release(self) -> Engine | None:
        """Give the engine back; returns it when this was the last holder (closed already)."""
        if self.released:
            return None
        self.released = True
        return _release(self.url)


_shared: dict[str, list] = {}  # url -> [engine, holders]
_shared_lock = threading.Lock()


def lease(url: str | None = None) -> Lease:
    resolved = resolve_url(url)
    with _shared_lock:
        entry = _shared.get(resolved)
        if entry is None:
            entry = _shared[resolved] = [open_engine(resolved), 0]
        entry[1] += 1
        return Lease(resolved, entry[0])


def _release(url: str) -> Engine | None:
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
