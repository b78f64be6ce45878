"""CrewAI tools over botwire: an agent remembers, recalls, lists and forgets facts.

Four :class:`crewai.tools.BaseTool` subclasses bound to one botwire namespace::

    remember(key, value)      store a fact under a key (overwrites)
    recall(query, limit=5)    the fact stored under exactly ``query``, then a keyword search
    list_memories(prefix="")  the stored facts, in key order
    forget(key)               delete a fact

``botwire_tools(namespace, url=..., api_key=...)`` returns all four, sharing one
:class:`botwire.Memory`. Every tool answers with a short sentence an LLM can read; a bad key or
value comes back as a message saying that nothing was stored, not as an exception. The async
``arun`` path goes through :class:`botwire.AsyncMemory` on the same engine.
"""

from __future__ import annotations

from . import open_memory, require

require("crewai", "crewai", "botwire.adapters.crewai")

import json  # noqa: E402
from typing import Any  # noqa: E402

from crewai.tools import BaseTool  # noqa: E402
from pydantic import BaseModel, Field, PrivateAttr  # noqa: E402

from ..errors import InvalidInput, InvalidKey, UnsupportedValue  # noqa: E402
from ..memory import AsyncMemory, Memory, SearchHit  # noqa: E402

__all__ = [
    "BotWireForgetTool",
    "BotWireListTool",
    "BotWireRecallTool",
    "BotWireRememberTool",
    "BotWireTool",
    "botwire_tools",
]

# What an LLM sees of one value: enough to answer from, never a whole document.
MAX_VALUE_CHARS = 500
MAX_RECALL = 20
MAX_LISTED = 50
_MISSING: Any = object()


class RememberInput(BaseModel):
    key: str = Field(description="A short name for the fact, e.g. 'preferred_language'.")
    value: Any = Field(
        description="The fact: text, a number, true/false, a list or an object (any JSON value)."
    )


class RecallInput(BaseModel):
    query: str = Field(
        description="A key stored earlier, or words to search for in keys and stored facts."
    )
    limit: int = Field(default=5, ge=1, le=MAX_RECALL, description="At most this many facts.")


class ListInput(BaseModel):
    prefix: str = Field(default="", description="Only keys starting with this ('' for all).")


class ForgetInput(BaseModel):
    key: str = Field(description="The key of the fact to delete.")


def _show(value: Any) -> str:
    """A value as the model reads it: text as-is, anything else as compact JSON, cut short."""
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    if len(text) > MAX_VALUE_CHARS:
        text = text[: MAX_VALUE_CHARS - 3] + "..."
    return text


def _refused(action: str, exc: Exception) -> str:
    return f"Could not {action}: {exc}. Nothing was changed."


def _recall_text(query: str, exact: Any, hits: list[SearchHit], limit: int) -> str:
    """The fact under key ``query`` (unless ``exact`` is ``_MISSING``), then the search hits."""
    lines = [] if exact is _MISSING else [f"- {query}: {_show(exact)}"]
    for hit in hits:
        if len(lines) == limit:
            break
        if hit.key is None:
            lines.append(f"- {hit.log} #{hit.seq}: {_show(hit.value)}")
        elif exact is _MISSING or hit.key != query:
            lines.append(f"- {hit.key}: {_show(hit.value)}")
    if not lines:
        return f"Nothing saved matches {query!r}."
    return f"Found {len(lines)} for {query!r}:\n" + "\n".join(lines)


def _list_text(prefix: str, items: list[tuple[str, Any]], more: bool) -> str:
    where = f" with keys starting {prefix!r}" if prefix else ""
    if not items:
        return f"No facts stored{where}."
    lines = [f"- {key}: {_show(value)}" for key, value in items]
    head = f"{len(items)} fact{'s' if len(items) > 1 else ''} stored{where}"
    if more:
        head = f"The first {len(items)} facts stored{where} (more exist: give a longer prefix)"
    return head + ":\n" + "\n".join(lines)


class BotWireTool(BaseTool):
    """A CrewAI tool bound to one botwire namespace.

    Give ``namespace`` (with ``url`` / ``api_key`` as for :class:`botwire.Memory`), or an open
    ``memory``; tools built from one ``memory`` share it. ``tool.memory`` is that Memory:
    close it (``tool.memory.close()``) when the tools are no longer used.
    """

    namespace: str = Field(default="", description="The botwire namespace this tool uses.")
    _memory: Memory = PrivateAttr()
    _amemory: AsyncMemory | None = PrivateAttr(default=None)

    def __init__(
        self,
        namespace: str | None = None,
        *,
        url: str | None = None,
        api_key: str | None = None,
        memory: Memory | None = None,
        **data: Any,
    ) -> None:
        given = data.pop("namespace", None)  # pydantic may pass the field by keyword
        if namespace is None and memory is None:
            namespace = given
        memory = open_memory(type(self).__name__, namespace, url, api_key, memory)
        super().__init__(namespace=memory.namespace, **data)
        self._memory = memory

    @property
    def memory(self) -> Memory:
        return self._memory

    def _async(self) -> AsyncMemory:
        """An AsyncMemory on the same engine (the Memory keeps that engine open)."""
        if self._amemory is None:
            self._amemory = AsyncMemory(
                self._memory.namespace,
                engine=self._memory.engine,
                max_value_bytes=self._memory.max_value_bytes,
            )
        return self._amemory

    def __deepcopy__(self, memo: dict[int, Any] | None = None) -> BotWireTool:
        # Copies (CrewAI copies agents and crews) share the open Memory: a database handle is
        # not data to duplicate.
        return self.model_copy()


class BotWireRememberTool(BotWireTool):
    """``remember(key, value)``: store a fact; a later ``remember`` of the key replaces it."""

    name: str = "remember"
    description: str = (
        "Save a fact about the user or the conversation under a short key so it can be recalled "
        "later, also in future conversations. Saving to an existing key replaces its fact."
    )
    args_schema: type[BaseModel] = RememberInput

    def _run(self, key: str, value: Any = None, **_: Any) -> str:
        try:
            self._memory.set(key, value)
        except (InvalidInput, UnsupportedValue) as exc:
            return _refused(f"remember {key!r}", exc)
        return f"Remembered {key}: {_show(value)}"

    async def _arun(self, key: str, value: Any = None, **_: Any) -> str:
        try:
            await self._async().set(key, value)
        except (InvalidInput, UnsupportedValue) as exc:
            return _refused(f"remember {key!r}", exc)
        return f"Remembered {key}: {_show(value)}"


class BotWireRecallTool(BotWireTool):
    """``recall(query, limit=5)``: the fact stored under exactly ``query``, then search hits.

    The search is botwire's keyword search (:meth:`botwire.Memory.search`): any word of the
    query, stemmed, in key names, values and log entries of the namespace, best first.
    """

    name: str = "recall"
    description: str = (
        "Look up saved facts: give the key a fact was saved under, or a few words to search "
        "for in saved keys and facts."
    )
    args_schema: type[BaseModel] = RecallInput

    def _run(self, query: str, limit: int = 5, **_: Any) -> str:
        if not query.strip():
            return "Give a key or a few words to search for."
        try:
            value = self._memory.get(query, _MISSING)
        except InvalidKey:  # longer than any key: no exact match, search only
            value = _MISSING
        try:
            hits = self._memory.search(query, limit=limit)
        except InvalidInput as exc:
            return _refused(f"recall {query!r}", exc)
        return _recall_text(query, value, hits, limit)

    async def _arun(self, query: str, limit: int = 5, **_: Any) -> str:
        if not query.strip():
            return "Give a key or a few words to search for."
        memory = self._async()
        try:
            value = await memory.get(query, _MISSING)
        except InvalidKey:
            value = _MISSING
        try:
            hits = await memory.search(query, limit=limit)
        except InvalidInput as exc:
            return _refused(f"recall {query!r}", exc)
        return _recall_text(query, value, hits, limit)


class BotWireListTool(BotWireTool):
    """``list_memories(prefix="")``: the stored facts in key order, at most ``MAX_LISTED``."""

    name: str = "list_memories"
    description: str = (
        "List the saved facts (key and fact), optionally only keys starting with a prefix."
    )
    args_schema: type[BaseModel] = ListInput

    def _run(self, prefix: str = "", **_: Any) -> str:
        items: list[tuple[str, Any]] = []
        try:
            for item in self._memory.items(prefix):
                if len(items) == MAX_LISTED:
                    return _list_text(prefix, items, more=True)
                items.append(item)
        except InvalidInput as exc:
            return _refused(f"list keys starting {prefix!r}", exc)
        return _list_text(prefix, items, more=False)

    async def _arun(self, prefix: str = "", **_: Any) -> str:
        items: list[tuple[str, Any]] = []
        try:
            async for item in self._async().items(prefix):
                if len(items) == MAX_LISTED:
                    return _list_text(prefix, items, more=True)
                items.append(item)
        except InvalidInput as exc:
            return _refused(f"list keys starting {prefix!r}", exc)
        return _list_text(prefix, items, more=False)


class BotWireForgetTool(BotWireTool):
    """``forget(key)``: delete one fact."""

    name: str = "forget"
    description: str = "Delete the fact saved under a key, e.g. when the user asks to forget it."
    args_schema: type[BaseModel] = ForgetInput

    def _run(self, key: str, **_: Any) -> str:
        try:
            existed = self._memory.delete(key)
        except InvalidInput as exc:
            return _refused(f"forget {key!r}", exc)
        return _forget_text(key, existed)

    async def _arun(self, key: str, **_: Any) -> str:
        try:
            existed = await self._async().delete(key)
        except InvalidInput as exc:
            return _refused(f"forget {key!r}", exc)
        return _forget_text(key, existed)


def _forget_text(key: str, existed: bool) -> str:
    return f"Forgot {key}." if existed else f"Nothing was saved under {key!r}."


def botwire_tools(
    namespace: str | None = None,
    *,
    url: str | None = None,
    api_key: str | None = None,
    memory: Memory | None = None,
) -> list[BaseTool]:
    """The four botwire tools (remember, recall, list_memories, forget) on one namespace.

    They share one :class:`botwire.Memory`, created from ``namespace`` / ``url`` / ``api_key``
    or given as ``memory``. ``Agent(tools=botwire_tools("customer-555-0123"))``.
    """
    if memory is None:
        if namespace is None:
            raise TypeError("botwire_tools needs a namespace or a memory")
        memory = Memory(namespace, url=url, api_key=api_key)
    elif url is not None or api_key is not None:
        raise ValueError("give url / api_key or an open memory, not both")
    elif namespace is not None and namespace != memory.namespace:
        raise ValueError(f"namespace {namespace!r} differs from the memory's {memory.namespace!r}")
    return [
        BotWireRememberTool(memory=memory),
        BotWireRecallTool(memory=memory),
        BotWireListTool(memory=memory),
        BotWireForgetTool(memory=memory),
    ]
