"""Console sessions, kept in the database so that every replica, and a restarted server, know
them.

Signing in with an API key opens a session: a random id (256 bits) goes to the browser in a
cookie, and the internal namespace ``~botwire:console-sessions`` keeps, under the id's SHA-256
(never the id itself), the key's stored hash, a CSRF token and two times. The record's TTL is
the idle timeout, renewed as the session is used (at most every ``idle / 4`` seconds, so a page
view is no write); a session also ends ``max_age`` seconds after it was opened, however busy.
Every request looks the key up again by its hash: a revoked key ends its sessions at once.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import asdict, dataclass

from ...engines.base import ApiKey, Engine, FindKey
from ...memory import AsyncMemory

NAMESPACE = "~botwire:console-sessions"
RENEW_EVERY = 60.0  # seconds: the longest a session's TTL goes without being renewed


@dataclass(frozen=True)
class Session:
    """One signed-in browser: which key it acts as and its CSRF token."""

    key_hash: str  # the API key's stored hash (botwire_api_keys.hash), not its secret
    csrf: str
    created_at: float
    seen_at: float

    def csrf_ok(self, given: str | None) -> bool:
        return bool(given) and hmac.compare_digest(self.csrf.encode(), str(given).encode())


def _digest(session_id: str) -> str:
    return hashlib.sha256(session_id.encode("utf-8", "surrogatepass")).hexdigest()


class Sessions:
    """Open, find, renew and close sessions in ``engine``."""

    def __init__(self, engine: Engine, idle: float, max_age: float) -> None:
        self.memory = AsyncMemory(NAMESPACE, engine=engine)
        self.engine = engine
        self.idle, self.max_age = idle, max_age

    async def open(self, key: ApiKey) -> str:
        """A new session acting as ``key``; returns its id (for the cookie, nowhere else)."""
        session_id = secrets.token_urlsafe(32)
        now = time.time()
        session = Session(key.hash, secrets.token_urlsafe(32), now, now)
        await self._save(session_id, session, now)
        return session_id

    async def find(self, session_id: str | None) -> tuple[Session, ApiKey] | None:
        """The live session behind ``session_id`` and its (unrevoked) key, or None."""
        if not session_id or len(session_id) > 100:
            return None
        raw = await self.memory.get(_digest(session_id))
        now = time.time()
        try:
            session = Session(**raw) if isinstance(raw, dict) else None
        except TypeError:
            session = None
        if session is None or not self._alive(session, now):
            return None
        key = await self.engine.aexecute(FindKey(session.key_hash))
        if key is None:  # revoked since
            await self.close(session_id)
            return None
        if now - session.seen_at >= min(RENEW_EVERY, self.idle / 4):
            session = Session(session.key_hash, session.csrf, session.created_at, now)
            await self._save(session_id, session, now)
        return session, key

    async def close(self, session_id: str | None) -> None:
        if session_id and len(session_id) <= 100:
            await self.memory.delete(_digest(session_id))

    def _alive(self, session: Session, now: float) -> bool:
        return now - session.seen_at < self.idle and now - session.created_at < self.max_age

    async def _save(self, session_id: str, session: Session, now: float) -> None:
        ttl = min(self.idle, session.created_at + self.max_age - now)
        await self.memory.set(_digest(session_id), asdict(session), ttl=max(ttl, 0.001))
