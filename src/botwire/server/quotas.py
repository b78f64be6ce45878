"""Per-namespace quotas, kept in the database so every replica enforces the same numbers.

- **Writes per UTC day** (default 1000; 0: unlimited): each stored value or log entry counts one.
  The count is charged *before* the write by one atomic statement that refuses to pass the
  limit, so across any number of replicas exactly the quota's worth of writes succeed; a write
  that then fails (a version conflict, say) is refunded. Deletions are never counted or refused.
- **Stored bytes** (default 50 MB; 0: unlimited): live values plus log entries. A write is
  refused when the namespace's usage plus the bytes it would add passes the limit. Usage is
  read from the database and reused for a few seconds while far from the limit, re-read on every
  write near it; racing writers on several replicas can overshoot by what they write at once.

A key may carry its own limits, which replace the server's defaults for the requests it makes.
"""

from __future__ import annotations

import time
from typing import NamedTuple

from .._wire import seconds_to_utc_midnight
from ..engines.base import Charge, Engine, Usage
from ..engines.sql import utc_day
from ..errors import InvalidInput, QuotaExceeded
from .auth import Principal
from .config import Settings

_USAGE_FRESH_SECONDS = 5.0
_NEAR_LIMIT = 0.9


class WriteQuotaExceeded(QuotaExceeded):
    code = "write_quota_exceeded"


class StorageQuotaExceeded(QuotaExceeded):
    code = "storage_quota_exceeded"


class Charged(NamedTuple):
    ns: str
    day: str
    n: int
    added_bytes: int


class Quotas:
    def __init__(self, engine: Engine, settings: Settings) -> None:
        self.engine = engine
        self.settings = settings
        self._usage: dict[str, tuple[float, int]] = {}

    def limits(self, who: Principal) -> tuple[int, int]:
        writes, stored = who.key.writes_per_day, who.key.max_bytes
        return (
            self.settings.writes_per_day if writes is None else writes,
            self.settings.max_bytes if stored is None else stored,
        )

    async def admit(self, who: Principal, ns: str, writes: int, added_bytes: int) -> Charged:
        """Charge ``writes`` against ``ns`` or raise; nothing is charged when refused."""
        writes_limit, bytes_limit = self.limits(who)
        if bytes_limit and added_bytes:
            await self._check_storage(ns, added_bytes, bytes_limit)
        if not (writes_limit and writes):  # unlimited, or nothing to count: nothing to refund
            return Charged(ns, "", 0, added_bytes)
        if writes > writes_limit:  # could never fit, whatever the day
            raise InvalidInput(
                f"this request writes {writes} values; namespace {ns!r} may write "
                f"{writes_limit} a day: send fewer at a time"
            )
        day = utc_day(time.time())
        if await self.engine.aexecute(Charge(ns, day, writes, writes_limit)) is None:
            raise WriteQuotaExceeded(
                f"namespace {ns!r} has used its {writes_limit} writes for today (UTC)",
                retry_after=seconds_to_utc_midnight(),
            )
        return Charged(ns, day, writes, added_bytes)

    async def done(self, charged: Charged, ok: bool) -> None:
        """After the write: refund its charge when it failed, else account its bytes."""
        if not ok:
            if charged.n:
                await self.engine.aexecute(Charge(charged.ns, charged.day, -charged.n, 0))
            return
        cached = self._usage.get(charged.ns)
        if cached is not None:
            self._usage[charged.ns] = (cached[0], cached[1] + charged.added_bytes)

    async def _check_storage(self, ns: str, added: int, limit: int) -> None:
        now = time.monotonic()
        cached = self._usage.get(ns)
        if cached is None or cached[0] < now or cached[1] + added > limit * _NEAR_LIMIT:
            used = await self.engine.aexecute(Usage(ns))
            if len(self._usage) > 100_000:
                self._usage.clear()
            self._usage[ns] = (now + _USAGE_FRESH_SECONDS, used)
        else:
            used = cached[1]
        if used + added > limit:
            raise StorageQuotaExceeded(
                f"namespace {ns!r} stores {used} bytes; {added} more would pass its limit of "
                f"{limit} bytes. Delete something first."
            )
