"""Agent-framework adapters: thin shells over :class:`botwire.Memory`.

Each adapter module imports its framework at the top, so it is imported only when asked for;
``import botwire`` never needs a framework. ``require`` turns a missing framework into
:class:`botwire.MissingDependency`, whose message names the extra to install::

    botwire.adapters.langchain   pip install './botwire[langchain]'
    botwire.adapters.langgraph   pip install './botwire[langgraph]'
    botwire.adapters.autogen     pip install './botwire[autogen]'
    botwire.adapters.crewai      pip install './botwire[crewai]'
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any, TypeVar

from ..errors import MissingDependency
from ..memory import Memory

__all__ = ["require", "chat_history_class", "Closing", "open_memory"]


def require(module: str, extra: str, feature: str) -> ModuleType:
    """Import ``module`` or raise :class:`MissingDependency` naming ``botwire[extra]``."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingDependency(feature, extra, exc) from exc


def open_memory(
    owner: str, namespace: str | None, url: str | None, api_key: str | None, memory: Memory | None
) -> Memory:
    """The memory an adapter works on: ``memory`` as given, or one opened on ``namespace``."""
    if memory is None:
        if namespace is None:
            raise TypeError(f"{owner} needs a namespace or a memory")
        return Memory(namespace, url=url, api_key=api_key)
    if url is not None or api_key is not None:
        raise ValueError("give url / api_key or an open memory, not both")
    if namespace is not None and namespace != memory.namespace:
        raise ValueError(f"namespace {namespace!r} differs from the memory's {memory.namespace!r}")
    return memory


def chat_history_class() -> type:
    """``BotWireChatHistory``, or a stand-in whose constructor says which extra to install.

    ``botwire.BotWireChatHistory`` resolves through this, so ``from botwire import *`` works
    without LangChain and the error comes where the class is used.
    """
    try:
        from .langchain import BotWireChatHistory
    except MissingDependency as exc:
        missing = exc

        class BotWireChatHistory:  # type: ignore[no-redef]
            """Placeholder: LangChain is not installed (``pip install './botwire[langchain]'``)."""

            def __init__(self, *args: Any, **kwargs: Any) -> None:
                raise MissingDependency("BotWireChatHistory", "langchain") from missing

    return BotWireChatHistory


class Closing:
    """``close`` / ``aclose`` and both context managers, for an adapter whose ``_held`` (its
    memories, or its plan runner) has ``close`` and ``aclose``."""

    _held: Any

    def close(self) -> None:
        """Release the engine this object opened (nothing, when it was given one)."""
        self._held.close()

    async def aclose(self) -> None:
        """``close``, also closing the engine's async resources when this was the last holder."""
        await self._held.aclose()

    def __enter__(self: _C) -> _C:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self: _C) -> _C:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


_C = TypeVar("_C", bound=Closing)
