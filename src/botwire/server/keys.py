"""Managing API keys (admin), as ``/v1/keys`` and the console's keys page both do it.

A key sees and manages only keys that lie wholly within its own prefixes; a key it makes gets
no wider prefixes, no higher right and no larger quota than its own.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from ..engines import base as ops
from ..errors import NotFound, PermissionDenied, StorageUnavailable
from .auth import Principal, new_key
from .state import Context


def within(who: Principal, keys: Sequence[ops.ApiKey]) -> list[ops.ApiKey]:
    """The keys whose every prefix ``who`` covers, in the order given."""
    return [k for k in keys if all(who.covers(p) for p in k.prefixes)]


async def listed(ctx: Context, who: Principal) -> list[ops.ApiKey]:
    """Every key, active or revoked, within the admin ``who``'s prefixes, oldest first."""
    who.require_right("admin")
    return within(who, await ctx.engine.aexecute(ops.ListKeys()))


async def create(
    ctx: Context,
    who: Principal,
    name: str,
    prefixes: list[str],
    rights: str,
    writes_per_day: Any = None,
    max_bytes: Any = None,
) -> tuple[str, ops.ApiKey]:
    """A new key within ``who``'s prefixes and rights, saved; returns its secret (shown once)
    and its record."""
    who.require_right("admin")
    who.require_cover(prefixes, rights)
    writes, stored = child_limits(ctx, who, writes_per_day, max_bytes)
    secret, record = new_key(name, prefixes, rights, writes_per_day=writes, max_bytes=stored)
    if not await ctx.engine.aexecute(ops.SaveKey(record)):
        raise StorageUnavailable("the new key could not be saved; try again")
    return secret, record


async def revoke(ctx: Context, who: Principal, key_id: str) -> bool:
    """Revoke the active key ``key_id`` if it lies within ``who``'s prefixes; any other id is
    ``NotFound``, so a scoped admin learns nothing of keys outside its prefixes."""
    who.require_right("admin")
    keys = await ctx.engine.aexecute(ops.ListKeys())
    target = next((k for k in keys if k.id == key_id and k.revoked_at is None), None)
    if target is None or not within(who, [target]):
        raise NotFound(f"no active key {key_id!r} within this key's prefixes")
    revoked: bool = await ctx.engine.aexecute(ops.RevokeKey(key_id, time.time()))
    ctx.keyring.forget_cached()
    return revoked


def child_limits(ctx: Context, who: Principal, writes: Any, stored: Any) -> tuple[Any, Any]:
    """A key gets no more quota than its maker: limits it leaves out are inherited, and it
    cannot ask for more (or for 0, unlimited) than the maker has. Only an admin of every
    namespace with no limit of its own (the operator's key) hands out any limit."""
    out = []
    for given, own, effective, default in zip(
        (writes, stored),
        (who.key.writes_per_day, who.key.max_bytes),
        ctx.quotas.limits(who),
        (ctx.settings.writes_per_day, ctx.settings.max_bytes),
        strict=True,
    ):
        if own is None and who.covers(""):
            out.append(given)
            continue
        value = own if given is None else given
        wanted = default if value is None else value
        if effective and isinstance(wanted, int) and (wanted == 0 or wanted > effective):
            raise PermissionDenied("a key cannot get a larger quota than the key that makes it")
        out.append(value)
    return out[0], out[1]
