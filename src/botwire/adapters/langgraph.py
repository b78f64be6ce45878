"""LangGraph: long-term memory (``BotWireStore``) and checkpoints (``BotWireSaver``) in botwire.

``BotWireStore`` (in ``langgraph_store``) is a ``langgraph.store.base.BaseStore``, for
``builder.compile(store=...)``; ``BotWireSaver`` (in ``langgraph_checkpoint``) is a
``langgraph.checkpoint.base.BaseCheckpointSaver``, for ``builder.compile(checkpointer=...)``.
Both take ``namespace`` (the prefix of the botwire namespaces they use), ``url`` and ``api_key``
like :class:`botwire.Memory`. See docs/langgraph.md.

This module also holds what the two share. Their logic is written once, as generators (*plans*)
that yield :class:`Call` requests and receive the answers; :class:`PlanRunner` answers through
``Memory`` for the sync methods and through ``AsyncMemory`` for the async ones, like the core's
plans. The two classes are imported from their modules on first use (they import this one).
"""

from __future__ import annotations

from . import require

require("langgraph", "langgraph", "botwire.adapters.langgraph")

import importlib  # noqa: E402
import re  # noqa: E402
from collections.abc import Awaitable, Callable, Generator  # noqa: E402
from contextlib import aclosing  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from itertools import islice  # noqa: E402
from typing import TYPE_CHECKING, Any, TypeVar  # noqa: E402

from ..errors import BotWireError  # noqa: E402
from ..memory import AsyncMemory, Memory  # noqa: E402
from ..namespaces import aforget, anamespaces, forget, namespaces  # noqa: E402

if TYPE_CHECKING:
    from .langgraph_checkpoint import DEFAULT_SAVER_PREFIX, BotWireSaver
    from .langgraph_store import (
        DEFAULT_STORE_PREFIX,
        BotWireStore,
        namespace_labels,
        namespace_name,
    )

__all__ = [
    "BotWireStore",
    "BotWireSaver",
    "DEFAULT_STORE_PREFIX",
    "DEFAULT_SAVER_PREFIX",
    "namespace_name",
    "namespace_labels",
]

_HOMES = {
    "BotWireStore": "langgraph_store",
    "DEFAULT_STORE_PREFIX": "langgraph_store",
    "namespace_name": "langgraph_store",
    "namespace_labels": "langgraph_store",
    "BotWireSaver": "langgraph_checkpoint",
    "DEFAULT_SAVER_PREFIX": "langgraph_checkpoint",
}


def __getattr__(name: str) -> Any:
    """The public names, from their modules on first use (those modules import this one)."""
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_HOMES[name]}", __package__), name)
    globals()[name] = value
    return value


T = TypeVar("T")

# -- path segments -----------------------------------------------------------------------------

_UNESCAPES = {"%25": "%", "%2F": "/"}


def esc(text: str) -> str:
    """``text`` as one path segment: ``%`` -> ``%25``, ``/`` -> ``%2F``, all else as it is."""
    return text.replace("%", "%25").replace("/", "%2F")


def unesc(segment: str) -> str | None:
    """The text ``esc`` made ``segment`` from, or None when ``esc`` cannot have made it."""
    text = re.sub("%(25|2F)", lambda m: _UNESCAPES[m.group(0)], segment)
    return text if esc(text) == segment else None


# -- plans and the runner ----------------------------------------------------------------------


@dataclass(frozen=True)
class Call:
    """One request of a plan: ``Memory(ns).<method>(*args, **kwargs)``, with four specials.

    ``"items"`` takes ``(prefix, limit)`` and answers a list of at most ``limit`` (None: all)
    pairs; ``"keys"`` answers a list; ``"namespaces"`` lists the botwire namespaces starting
    with ``ns`` and ``"forget"`` deletes the namespace ``ns``.
    """

    ns: str
    method: str
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)


Plan = Generator[Call, Any, T]


class PlanRunner:
    """Runs plans on one botwire storage: sync through ``Memory``, async through ``AsyncMemory``.

    It holds the engine (through an ``AsyncMemory`` on ``namespace``, which is never written)
    until ``close`` / ``aclose``; the memories it makes per call share that engine.
    """

    def __init__(self, namespace: str, url: str | None, api_key: str | None) -> None:
        self._holder = AsyncMemory(namespace, url=url, api_key=api_key)
        self._engine = self._holder.engine
        self._where: dict[str, Any] = {"url": url, "api_key": api_key}
        self.max_value_bytes = self._holder.max_value_bytes

    def run(self, plan: Plan[T]) -> T:
        return _drive(plan, self._call)

    async def arun(self, plan: Plan[T]) -> T:
        try:
            request = next(plan)
            while True:
                try:
                    answer = await self._acall(request)
                except BotWireError as exc:
                    request = plan.throw(exc)
                else:
                    request = plan.send(answer)
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]

    def _call(self, call: Call) -> Any:
        if call.method == "namespaces":
            return list(namespaces(call.ns, **self._where))
        if call.method == "forget":
            return forget(call.ns, **self._where)
        memory = Memory(call.ns, engine=self._engine, max_value_bytes=self.max_value_bytes)
        if call.method == "items":
            prefix, limit = call.args
            return list(islice(memory.items(prefix), limit))
        if call.method == "keys":
            return list(memory.keys(*call.args))
        return getattr(memory, call.method)(*call.args, **call.kwargs)

    async def _acall(self, call: Call) -> Any:
        if call.method == "namespaces":
            return [name async for name in anamespaces(call.ns, **self._where)]
        if call.method == "forget":
            return await aforget(call.ns, **self._where)
        memory = AsyncMemory(call.ns, engine=self._engine, max_value_bytes=self.max_value_bytes)
        if call.method == "items":
            prefix, limit = call.args
            pairs: list[tuple[str, Any]] = []
            async with aclosing(memory.items(prefix)) as items:
                async for pair in items:
                    if limit is not None and len(pairs) >= limit:
                        break
                    pairs.append(pair)
            return pairs
        if call.method == "keys":
            return [key async for key in memory.keys(*call.args)]
        method: Callable[..., Awaitable[Any]] = getattr(memory, call.method)
        return await method(*call.args, **call.kwargs)

    def close(self) -> None:
        self._holder.close()

    async def aclose(self) -> None:
        await self._holder.aclose()


def _drive(plan: Plan[T], call: Callable[[Call], Any]) -> T:
    """Answer each request of ``plan``; a botwire error goes back into the plan to handle."""
    try:
        request = next(plan)
        while True:
            try:
                answer = call(request)
            except BotWireError as exc:
                request = plan.throw(exc)
            else:
                request = plan.send(answer)
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]


