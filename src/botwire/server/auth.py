"""API keys: made at random, shown once, stored as SHA-256, scoped to namespace prefixes.

A key holds one right for all its prefixes: ``read`` (get, list, read logs), ``write`` (also
set, delete, incr, append, clear) or ``admin`` (also forget namespaces and manage keys within
its prefixes). A key never learns that a namespace outside its prefixes exists: every request
on one is refused with 403 before anything is read, and listings are filtered.

Keys are 256 random bits, so a fast hash is the right one (a slow password hash protects
guessable secrets; these are not guessable). Lookups are cached for ``key_cache_seconds``; a
revocation applies at once on the replica that made it and within that time on the others.
Each lookup in the database also records the key's use (``TouchKey``), at most once per key per
``key_cache_seconds`` (and per second) in each process: ``last_used_at`` is that exact.
Clients that keep presenting bad keys are refused with 429 for the rest of the window; a valid
key is never refused, so one misconfigured agent cannot lock out the others behind its address.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import logging
import secrets
import time
from collections import OrderedDict, deque
from dataclasses import dataclass
from typing import Any

from .._codec import check_name
from .._wire import API_KEY_PREFIX
from ..engines.base import ApiKey, Engine, FindKey, ListKeys, RevokeKey, SaveKey, TouchKey
from ..errors import (
    AuthenticationFailed,
    ConfigurationError,
    InvalidInput,
    PermissionDenied,
    StorageUnavailable,
)

RIGHTS = ("read", "write", "admin")
BOOTSTRAP_ID = "admin"
TOUCH_EVERY = 1.0  # seconds: a key's use is written at most this often per process, at least
log = logging.getLogger("botwire.server")


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


MAX_QUOTA = 2**53 - 1  # the largest integer every JSON parser reads exactly


def new_key(
    name: str,
    prefixes: list[str] | tuple[str, ...],
    rights: str,
    *,
    writes_per_day: int | None = None,
    max_bytes: int | None = None,
    key_id: str | None = None,
) -> tuple[str, ApiKey]:
    """A new secret and the record to store for it (which does not contain the secret)."""
    if rights not in RIGHTS:
        raise InvalidInput(f"rights must be one of {', '.join(RIGHTS)}, not {rights!r}")
    if not prefixes:
        raise InvalidInput('a key needs at least one namespace prefix ("" for all)')
    for prefix in prefixes:
        if prefix != "":
            check_name(prefix, "prefix")
    for limit in (writes_per_day, max_bytes):
        if limit is not None and (type(limit) is not int or not 0 <= limit <= MAX_QUOTA):
            raise InvalidInput(f"quota overrides are integers from 0 (unlimited) to {MAX_QUOTA}")
    if not isinstance(name, str) or len(name) > 200:
        raise InvalidInput("a key's name is a string of at most 200 characters")
    secret = API_KEY_PREFIX + secrets.token_urlsafe(32)
    record = ApiKey(
        id=key_id or secrets.token_hex(6),
        hash=hash_secret(secret),
        name=name,
        prefixes=tuple(dict.fromkeys(prefixes)),
        rights=rights,
        writes_per_day=writes_per_day,
        max_bytes=max_bytes,
        created_at=time.time(),
    )
    return secret, record


@dataclass(frozen=True)
class Principal:
    """Who is asking: the stored key behind a request."""

    key: ApiKey

    def can(self, namespace: str, right: str) -> bool:
        if RIGHTS.index(self.key.rights) < RIGHTS.index(right):
            return False
        return any(namespace.startswith(p) for p in self.key.prefixes)

    def require(self, namespace: str, right: str) -> None:
        if not self.can(namespace, right):
            raise PermissionDenied(f"this API key has no {right} access to namespace {namespace!r}")

    def require_right(self, right: str) -> None:
        if RIGHTS.index(self.key.rights) < RIGHTS.index(right):
            raise PermissionDenied(f"this API key lacks the {right} right")

    def covers(self, prefix: str) -> bool:
        """Whether every namespace starting with ``prefix`` is within this key's scopes: a
        function of prefixes alone (``""`` means every namespace and is covered only by ``""``)."""
        return any(prefix.startswith(p) for p in self.key.prefixes)

    def require_cover(self, prefixes: list[str] | tuple[str, ...], rights: str) -> None:
        """Refuse to manage a key unless every prefix extends one of this key's own and its
        rights are no greater than this key's."""
        outside = [p for p in prefixes if not self.covers(p)]
        if outside:
            shown = "every namespace" if outside[0] == "" else f"prefix {outside[0]!r}"
            raise PermissionDenied(
                f"this API key cannot manage keys for {shown}: its own prefixes are "
                f"{list(self.key.prefixes)}"
            )
        if rights in RIGHTS and RIGHTS.index(rights) > RIGHTS.index(self.key.rights):
            held = self.key.rights
            raise PermissionDenied(f"this API key cannot grant {rights}: it holds {held}")

    def listing_prefixes(self, prefix: str) -> list[str]:
        """The prefixes to list so that ``prefix`` is honoured and nothing outside leaks."""
        out = set()
        for own in self.key.prefixes:
            if prefix.startswith(own):
                out.add(prefix)
            elif own.startswith(prefix):
                out.add(own)
        # a prefix inside another one lists nothing new
        return sorted(p for p in out if not any(p != q and p.startswith(q) for q in out))


def secret_from_headers(headers: Any) -> str | None:
    """The key from ``Authorization: Bearer``, ``X-API-Key`` or HTTP Basic (user or password)."""
    direct = headers.get("x-api-key")
    if direct:
        return direct.strip()
    auth = headers.get("authorization")
    if not auth:
        return None
    scheme, _, value = auth.partition(" ")
    scheme = scheme.lower()
    if scheme == "bearer":
        return value.strip() or None
    if scheme == "basic":
        try:
            user, _, password = base64.b64decode(value.strip()).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError, ValueError):
            return None
        # the key may be either part (http://KEY@host, or a client's user:KEY)
        for part in (user, password):
            if part.startswith(API_KEY_PREFIX):
                return part
        return user or password or None
    return None


class KeyRing:
    """Finds the key behind a secret (cached briefly) and throttles clients that guess: a client
    over ``failures`` bad keys in ``window`` seconds gets 429 for any key that is not valid."""

    def __init__(self, engine: Engine, *, cache_seconds: float, failures: int, window: float):
        self.engine = engine
        self.cache_seconds = cache_seconds
        self.failures, self.window = failures, window
        # valid keys and unknown secrets apart, so a spray of random keys never evicts a good one
        self._cache: dict[str, tuple[float, ApiKey]] = {}
        self._misses: OrderedDict[str, float] = OrderedDict()
        self._failed: OrderedDict[str, deque[float]] = OrderedDict()
        self._touched: dict[str, float] = {}  # key id -> when its next use may be written

    async def authenticate(self, secret: str | None, client: str) -> Principal:
        now = time.monotonic()
        found = await self._find(secret, now) if secret else None
        if found is not None:
            return Principal(found)
        self._check_throttle(client, now)
        if not secret:
            raise AuthenticationFailed(
                "an API key is required: Authorization: Bearer <key>, X-API-Key, or the key as "
                "the user of the URL (http://KEY@host:8421)"
            )
        self._record_failure(client, now)
        raise AuthenticationFailed("the API key is not valid (unknown or revoked)")

    async def _find(self, secret: str, now: float) -> ApiKey | None:
        """The valid key behind ``secret``, or None."""
        digest = hash_secret(secret)
        cached = self._cache.get(digest)
        if cached is not None and cached[0] > now:
            found: ApiKey | None = cached[1]
        elif self._misses.get(digest, 0.0) > now:
            found = None
        else:
            found = await self.engine.aexecute(FindKey(digest))
            if found is not None and hmac.compare_digest(found.hash, digest):
                found = await self._touch(found, now)
            self._remember(digest, found, now + self.cache_seconds)
        return found if found is not None and hmac.compare_digest(found.hash, digest) else None

    async def _touch(self, key: ApiKey, now: float) -> ApiKey:
        """Record a use of ``key`` (once per ``key_cache_seconds``, and per second, at most) and
        return it with that use. A failed write is logged at debug: it never fails a request."""
        if self._touched.get(key.id, 0.0) > now:
            return key
        if len(self._touched) > 10_000:
            self._touched.clear()
        self._touched[key.id] = now + max(self.cache_seconds, TOUCH_EVERY)
        at = time.time()
        try:
            moved = await self.engine.aexecute(TouchKey(key.id, at))
        except Exception as exc:  # noqa: BLE001 - the use goes unrecorded, the request goes on
            log.debug("the use of API key %s was not recorded: %s", key.id, exc)
            return key
        return key._replace(last_used_at=at) if moved else key

    def _remember(self, digest: str, found: ApiKey | None, until: float) -> None:
        if found is not None:
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[digest] = (until, found)
            self._misses.pop(digest, None)
            return
        self._misses[digest] = until
        self._misses.move_to_end(digest)
        while len(self._misses) > 10_000:
            self._misses.popitem(last=False)

    def forget_cached(self) -> None:
        """Drop every cached lookup (after a key is revoked here)."""
        self._cache.clear()
        self._misses.clear()

    def _check_throttle(self, client: str, now: float) -> None:
        failed = self._failed.get(client)
        if not failed:
            return
        while failed and failed[0] <= now - self.window:
            failed.popleft()
        if len(failed) >= self.failures:
            retry = failed[0] + self.window - now
            raise TooManyFailures(retry)

    def _record_failure(self, client: str, now: float) -> None:
        failed = self._failed.setdefault(client, deque())
        self._failed.move_to_end(client)
        failed.append(now)
        if len(failed) > self.failures:
            failed.popleft()
        while len(self._failed) > 10_000:  # bounded memory under a spray of addresses
            self._failed.popitem(last=False)


class TooManyFailures(AuthenticationFailed):
    """Too many bad keys from one client: wait ``retry_after`` seconds."""

    code = "too_many_auth_failures"

    def __init__(self, retry_after: float) -> None:
        super().__init__("too many failed authentication attempts; try again later")
        self.retry_after = max(1, int(retry_after + 0.999))


def bootstrap_op() -> tuple[str, SaveKey]:
    """The first-start admin key (every namespace) and the op that saves it only when the
    database holds no key at all (the op answers whether it did)."""
    secret, record = new_key("bootstrap admin", [""], "admin", key_id=BOOTSTRAP_ID)
    return secret, SaveKey(record, only_if_none=True)


def recover_admin(
    engine: Engine, *, name: str = "recovered admin", revoke_others: bool = False
) -> tuple[str, ApiKey, list[str]]:
    """A new admin key for every namespace, saved straight into the server's database (for a
    lost admin key); returns its secret, its record and the ids it revoked. ``revoke_others``
    (for a leaked key): then every other active admin key for every namespace is revoked, once
    the new one is saved. A database with no key at all is refused: it is not a server's, or
    the server's next start makes the first admin key itself."""
    before = engine.execute(ListKeys())
    if not before:
        raise ConfigurationError(
            "this database holds no API key: it is not the one the botwire server uses, or "
            "the server has not started on it yet (its first start makes an admin key)"
        )
    secret, record = new_key(name, [""], "admin")
    if not engine.execute(SaveKey(record)):
        raise StorageUnavailable("the new admin key could not be saved; try again")
    revoked = []
    if revoke_others:
        now = time.time()
        for key in before:
            if key.revoked_at is None and key.rights == "admin" and "" in key.prefixes:
                if engine.execute(RevokeKey(key.id, now)):
                    revoked.append(key.id)
    return secret, record, revoked
