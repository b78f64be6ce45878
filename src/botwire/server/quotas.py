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
from collections.abc import Awaitable, Callable
from typing import NamedTuple, TypeVar

from .._wire import seconds_to_utc_midnight
from ..engines.base import Charge, Engine, Usage
from ..engines.sql import utc_day
from ..errors import InvalidInput, QuotaExceeded
from .auth import Principal
from .config import Settings

T = TypeVar("T")
Cost = tuple[int, int]  # (writes, bytes added)
_USAGE_FRESH_SECONDS = 5.0
_NEAR_LIMIT = 0.9


class WriteQuotaExceeded(QuotaExceeded):
    code = "write_quota_exceeded"


class StorageQuotaExceeded(QuotaExceeded):
    code = "storage_quota_exceeded"


class OverDailyWriteQuota(InvalidInput):
    """One request writes more than the namespace's whole daily write quota: it could never
    fit, whatever the day (400 for an API client, which can send fewer at a time)."""


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

    async def charged(
        self,
        who: Principal,
        ns: str,
        cost: Cost,
        write: Callable[[], Awaitable[T]],
        spent: Callable[[T], Cost] | None = None,
    ) -> T:
        """Run ``write`` under the namespace's quotas: ``cost`` is admitted first (or refused,
        nothing written), refunded if the write fails, and, when ``spent(result)`` says it
        stored less (a retried webhook), settled at what it stored."""
        charged = await self.admit(who, ns, *cost)
        try:
            result = await write()
        except Exception:  # not on cancellation: the write may still land, and then it counts
            await self.done(charged, ok=False)
            raise
        await self.done(charged, ok=True, used=None if spent is None else spent(result))
        return result

    async def admit(self, who: Principal, ns: str, writes: int, added_bytes: int) -> Charged:
        """Charge ``writes`` against ``ns`` or raise; nothing is charged when refused."""
        writes_limit, bytes_limit = self.limits(who)
        if bytes_limit and added_bytes:
            await self._check_storage(ns, added_bytes, bytes_limit)
        if not (writes_limit and writes):  # unlimited, or nothing to count: nothing to refund
            return Charged(ns, "", 0, added_bytes)
        if writes > writes_limit:  # could never fit, whatever the day
            raise OverDailyWriteQuota(
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

    async def done(self, charged: Charged, ok: bool, used: Cost | None = None) -> None:
        """After the write: refund its charge when it failed, else what it did not ``use`` of
        it, and account the bytes it added."""
        writes, added = (0, 0) if not ok else used or (charged.n, charged.added_bytes)
        refund = charged.n - min(writes, charged.n)
        if refund:
            await self.engine.aexecute(Charge(charged.ns, charged.day, -refund, 0))
        cached = self._usage.get(charged.ns)
        if cached is not None and added:
            self._usage[charged.ns] = (cached[0], cached[1] + added)

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
