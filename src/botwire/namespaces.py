"""Whole-namespace operations: list the namespaces that hold anything, forget one customer."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

from ._codec import check_name
from .engines import lease
from .engines import base as ops
from .memory import PAGE_SIZE, _apages, _check_prefix, _pages, check_flag

__all__ = ["namespaces", "forget", "anamespaces", "aforget"]


def _page(prefix: str, internal: bool):  # type: ignore[no-untyped-def]
    prefix = _check_prefix(prefix)
    internal = check_flag(internal, "include_internal")
    return lambda after: ops.Namespaces(prefix, after, PAGE_SIZE, internal)


def _same(name: str) -> str:
    return name


def namespaces(
    prefix: str = "",
    *,
    url: str | None = None,
    api_key: str | None = None,
    include_internal: bool = False,
) -> Iterator[str]:
    """Every namespace starting with ``prefix`` that holds a live key or a log entry.
    Namespaces starting with ``~`` are botwire's own (the voice webhooks' replay guard): listed
    only with ``include_internal=True`` or a prefix starting with ``~``."""
    page = _page(prefix, include_internal)
    held = lease(url, api_key=api_key)
    try:
        yield from _pages(held.engine.execute, page, _same)
    finally:
        held.release()


async def anamespaces(
    prefix: str = "",
    *,
    url: str | None = None,
    api_key: str | None = None,
    include_internal: bool = False,
) -> AsyncIterator[str]:
    page = _page(prefix, include_internal)
    held = lease(url, api_key=api_key)
    try:
        async for name in _apages(held.engine.aexecute, page, _same):
            yield name
    finally:
        last = held.release()
        if last is not None:
            await last.aclose()


def forget(namespace: str, *, url: str | None = None, api_key: str | None = None) -> bool:
    """Delete every key and log of ``namespace`` in one transaction; whether it held anything."""
    op = ops.Forget(check_name(namespace, "namespace"))
    held = lease(url, api_key=api_key)
    try:
        return bool(held.engine.execute(op))
    finally:
        held.release()


async def aforget(namespace: str, *, url: str | None = None, api_key: str | None = None) -> bool:
    op = ops.Forget(check_name(namespace, "namespace"))
    held = lease(url, api_key=api_key)
    try:
        return bool(await held.engine.aexecute(op))
    finally:
        last = held.release()
        if last is not None:
            await last.aclose()
