"""AutoGen memory over botwire: ``BotWireMemory``, an ``autogen_core.memory.Memory``.

Each added :class:`~autogen_core.memory.MemoryContent` is one entry of a botwire log (``log``,
default ``"autogen"``) in the namespace: ``[content]``, ``[content, metadata]`` or, for markdown,
``[content, metadata, "#"]``; a list, so that only the content and metadata are searchable.
:meth:`BotWireMemory.query` ranks the entries by keyword relevance with
:meth:`botwire.AsyncMemory.search` (SQLite FTS5 / PostgreSQL full text);
:meth:`BotWireMemory.update_context` queries with the last user message and adds the matches
to the model context as one ``SystemMessage``, as AutoGen's own memories do.

It is also an AutoGen component: ``dump_component()`` / ``Memory.load_component(...)``. API keys
are never written into a dumped config (see :meth:`BotWireMemory._to_config`).
"""

from __future__ import annotations

from . import require

require("autogen_core", "autogen", "botwire.adapters.autogen")

import asyncio  # noqa: E402
import json  # noqa: E402
from collections.abc import Awaitable  # noqa: E402
from typing import Any, TypeVar  # noqa: E402

from autogen_core import CancellationToken, Component  # noqa: E402
from autogen_core.memory import (  # noqa: E402
    Memory,
    MemoryContent,
    MemoryMimeType,
    MemoryQueryResult,
    UpdateContextResult,
)
from autogen_core.model_context import ChatCompletionContext  # noqa: E402
from autogen_core.models import SystemMessage, UserMessage  # noqa: E402
from pydantic import BaseModel, Field, SecretStr  # noqa: E402
from typing_extensions import Self  # noqa: E402

from .._codec import check_int, check_name  # noqa: E402
from .._search import MAX_LIMIT, MAX_QUERY_CHARS  # noqa: E402
from .._wire import redact  # noqa: E402
from ..errors import InvalidInput, UnsupportedValue  # noqa: E402
from ..memory import AsyncMemory, Memory as SyncMemory, SearchHit  # noqa: E402

__all__ = ["BotWireMemory", "BotWireMemoryConfig"]

T = TypeVar("T")

# The mime types stored, the type their content must have, and the marker that follows the
# metadata in an entry (see _entry). Markers have no letters or digits: nothing to index.
_KINDS: dict[str, tuple[type, str | None]] = {
    MemoryMimeType.TEXT.value: (str, None),
    MemoryMimeType.JSON.value: (dict, None),
    MemoryMimeType.MARKDOWN.value: (str, "#"),
}
_STORABLE = ", ".join(_KINDS)


class BotWireMemoryConfig(BaseModel):
    """The component config of :class:`BotWireMemory` (``component_config_schema``)."""

    namespace: str
    """The botwire namespace (one per customer, user or tenant)."""
    url: str | None = None
    """Where the memory lives; None resolves ``BOTWIRE_URL`` etc. when loaded. Dumped without
    credentials (see ``BotWireMemory._to_config``)."""
    api_key: SecretStr | None = None
    """A botwire server API key for hand-written configs; ``dump_component`` never writes it.
    Without one, the key comes from ``BOTWIRE_API_KEY`` (or the URL)."""
    log: str = "autogen"
    """The log of the namespace holding the memory contents."""
    k: int = Field(default=5, ge=1, le=MAX_LIMIT)
    """How many contents a query returns at most."""
    score_threshold: float | None = None
    """Leave out matches scoring below this (the scale is the database's own)."""
    name: str | None = None
    """An identifier for this memory; defaults to the namespace."""


class BotWireMemory(Memory, Component[BotWireMemoryConfig]):
    """AutoGen memory persisted in a botwire namespace, recalled by keyword search.

    A drop-in for ``ListMemory`` / ``ChromaDBVectorMemory``: ``memory=[BotWireMemory("user-42")]``
    on an ``AssistantAgent``. ``namespace`` may also be an open :class:`botwire.AsyncMemory`,
    which the caller keeps owning (``close()`` then leaves it open).

    Args:
        namespace: the botwire namespace, or an ``AsyncMemory``.
        url: ``sqlite:///...``, ``postgresql://...`` or ``http(s)://...``; None: the default.
        api_key: a botwire server API key (else ``BOTWIRE_API_KEY`` or the URL's user part).
        log: the log in the namespace that holds the contents.
        k: the most contents one query returns.
        score_threshold: leave out matches scoring below it (engine-specific scale).
        name: an identifier for this memory (default: the namespace).
    """

    component_type = "memory"
    component_config_schema = BotWireMemoryConfig
    component_provider_override = "botwire.adapters.autogen.BotWireMemory"

    def __init__(
        self,
        namespace: str | AsyncMemory,
        *,
        url: str | None = None,
        api_key: str | None = None,
        log: str = "autogen",
        k: int = 5,
        score_threshold: float | None = None,
        name: str | None = None,
    ) -> None:
        self._k = _check_k(k)
        self._score_threshold = _check_threshold(score_threshold)
        if isinstance(namespace, AsyncMemory):
            if url is not None or api_key is not None:
                raise InvalidInput("pass url / api_key or an AsyncMemory, not both")
            self._memory, self._owned = namespace, False
            self._url: str | None = namespace.engine.url
        elif isinstance(namespace, SyncMemory):
            raise UnsupportedValue(
                "BotWireMemory is async: pass a namespace or a botwire.AsyncMemory, not a Memory"
            )
        else:
            check_name(namespace, "namespace")
            check_name(log, "log name")  # before opening anything
            self._memory, self._owned = AsyncMemory(namespace, url=url, api_key=api_key), True
            self._url = url
        self._log = self._memory.log(log)
        if name is not None and not isinstance(name, str):
            raise InvalidInput(f"name must be a str or None, not {type(name).__name__}")
        self._name = name if name is not None else self._memory.namespace
        self._closed = False

    @property
    def name(self) -> str:
        return self._name

    @property
    def namespace(self) -> str:
        return self._memory.namespace

    @property
    def log_name(self) -> str:
        return self._log.name

    @property
    def k(self) -> int:
        return self._k

    def __repr__(self) -> str:
        return f"BotWireMemory({self.namespace!r}, log={self.log_name!r}, k={self._k})"

    # -- autogen_core.memory.Memory -----------------------------------------------------------

    async def add(
        self, content: MemoryContent, cancellation_token: CancellationToken | None = None
    ) -> None:
        """Append ``content`` to the log. Text, markdown (str) and JSON (dict) contents only;
        anything else raises (``UnsupportedValue`` / ``InvalidInput``) and stores nothing."""
        self._check_open()
        await _cancellable(self._log.append(_entry(content)), cancellation_token)

    async def query(
        self,
        query: str | MemoryContent = "",
        cancellation_token: CancellationToken | None = None,
        **kwargs: Any,
    ) -> MemoryQueryResult:
        """The stored contents matching words of ``query``, most relevant first.

        At most ``k`` results (``k=`` here overrides it; so does ``score_threshold=``); each
        result's ``metadata["score"]`` is its relevance (higher is better; compare scores only
        within one result). A query without searchable words returns nothing.
        """
        self._check_open()
        k = _check_k(kwargs.pop("k")) if "k" in kwargs else self._k
        threshold = _check_threshold(kwargs.pop("score_threshold", self._score_threshold))
        if kwargs:
            raise TypeError(f"BotWireMemory.query got unexpected arguments {sorted(kwargs)}")
        text = _query_text(query)
        hits = await _cancellable(self._search(text, k, threshold), cancellation_token)
        return MemoryQueryResult(results=[_content(h.value, h.score) for h in hits])

    async def update_context(self, model_context: ChatCompletionContext) -> UpdateContextResult:
        """Query with the last user message; add the matches as one ``SystemMessage``."""
        text = _last_user_text(await model_context.get_messages())
        if not text:
            return UpdateContextResult(memories=MemoryQueryResult(results=[]))
        found = await self.query(text)
        if found.results:
            lines = [f"{i}. {_render(m.content)}" for i, m in enumerate(found.results, 1)]
            await model_context.add_message(
                SystemMessage(content="\nRelevant memory content:\n" + "\n".join(lines))
            )
        return UpdateContextResult(memories=found)

    async def clear(self) -> None:
        """Delete every stored content (this memory's log only; the namespace's keys and
        other logs stay)."""
        self._check_open()
        await self._log.clear()

    async def close(self) -> None:
        """Release the storage (an ``AsyncMemory`` passed in stays open). Idempotent."""
        if self._closed:
            return
        self._closed = True
        if self._owned:
            await self._memory.aclose()

    # -- component config ----------------------------------------------------------------------

    def _to_config(self) -> BotWireMemoryConfig:
        """The config to rebuild this memory. Secrets stay out: no ``api_key``, and the URL
        without its password (and, for a server URL, without the key in its user part)."""
        return BotWireMemoryConfig(
            namespace=self.namespace,
            url=None if self._url is None else redact(self._url),
            log=self.log_name,
            k=self._k,
            score_threshold=self._score_threshold,
            name=None if self._name == self.namespace else self._name,
        )

    @classmethod
    def _from_config(cls, config: BotWireMemoryConfig) -> Self:
        return cls(
            config.namespace,
            url=config.url,
            api_key=config.api_key.get_secret_value() if config.api_key else None,
            log=config.log,
            k=config.k,
            score_threshold=config.score_threshold,
            name=config.name,
        )

    # -- internals ------------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError(f"{self!r} is closed")

    async def _search(self, text: str, k: int, threshold: float | None) -> list[SearchHit]:
        """The best ``k`` hits in this memory's log. Search covers the whole namespace, so other
        keys and logs may take places in a result; ask for more until ``k`` are ours."""
        limit = min(max(4 * k, 20), MAX_LIMIT)
        while True:
            hits = await self._memory.search(text, limit=limit)
            mine = [
                h for h in hits
                if h.log == self._log.name and (threshold is None or h.score >= threshold)
            ]
            exhausted = len(hits) < limit or limit >= MAX_LIMIT
            below = threshold is not None and bool(hits) and hits[-1].score < threshold
            if len(mine) >= k or exhausted or below:
                return mine[:k]
            limit = min(limit * 4, MAX_LIMIT)


async def _cancellable(work: Awaitable[T], token: CancellationToken | None) -> T:
    if token is None:
        return await work
    task = asyncio.ensure_future(work)
    token.link_future(task)  # cancels the task if the token is (or gets) cancelled
    return await task


def _entry(content: object) -> list[Any]:
    """The log entry of a ``MemoryContent``; raises for what cannot be stored.

    A JSON list, so that no field name reaches the keyword index: ``[content]``,
    ``[content, metadata]``, or ``[content, metadata, "#"]`` for markdown. A str content is
    text/plain, a dict application/json.
    """
    if not isinstance(content, MemoryContent):
        raise UnsupportedValue(f"add takes a MemoryContent, not {type(content).__name__}")
    mime, body = _mime(content.mime_type), content.content
    if mime not in _KINDS:
        raise InvalidInput(f"BotWireMemory stores {_STORABLE} contents, not {mime}")
    wanted, marker = _KINDS[mime]
    if not isinstance(body, wanted):
        raise UnsupportedValue(
            f"{mime} content must be a {wanted.__name__}, not {type(body).__name__}"
        )
    if content.metadata is not None and not isinstance(content.metadata, dict):
        raise UnsupportedValue(f"metadata must be a dict, not {type(content.metadata).__name__}")
    metadata = content.metadata or {}  # the core rejects what is not JSON
    if marker is not None:
        return [body, metadata, marker]
    return [body, metadata] if metadata else [body]


def _check_k(k: object) -> int:
    value = check_int(k, "k", minimum=1)
    if value > MAX_LIMIT:
        raise InvalidInput(f"k is {value}; a query returns at most {MAX_LIMIT}")
    return value


def _check_threshold(threshold: object) -> float | None:
    if threshold is None:
        return None
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)):
        raise InvalidInput(f"score_threshold must be a number or None, not {threshold!r}")
    return float(threshold)


def _mime(mime_type: MemoryMimeType | str) -> str:
    return mime_type.value if isinstance(mime_type, MemoryMimeType) else str(mime_type)


def _content(value: Any, score: float) -> MemoryContent:
    """A log entry as a ``MemoryContent``, ``metadata["score"]`` added. Entries written to the
    log by other means read as text (or JSON for a dict)."""
    mime, body, metadata = _decode(value)
    return MemoryContent(content=body, mime_type=mime, metadata={**metadata, "score": score})


def _decode(value: Any) -> tuple[MemoryMimeType, str | dict[str, Any], dict[str, Any]]:
    if isinstance(value, list) and 1 <= len(value) <= 3 and isinstance(value[0], (str, dict)):
        body, rest = value[0], value[1:]
        markdown = len(rest) == 2 and rest[1] == "#" and isinstance(body, str)
        if (not rest or isinstance(rest[0], dict)) and (len(rest) < 2 or markdown):
            metadata = dict(rest[0]) if rest else {}
            if markdown:
                return MemoryMimeType.MARKDOWN, body, metadata
            return _plain(body), body, metadata
    if isinstance(value, (str, dict)):
        return _plain(value), value, {}
    return MemoryMimeType.TEXT, json.dumps(value, ensure_ascii=False), {}


def _plain(body: str | dict[str, Any]) -> MemoryMimeType:
    return MemoryMimeType.JSON if isinstance(body, dict) else MemoryMimeType.TEXT


def _query_text(query: object) -> str:
    if isinstance(query, MemoryContent):
        body = query.content
        if isinstance(body, dict):
            query = json.dumps(body, ensure_ascii=False)
        elif isinstance(body, str):
            query = body
        else:
            raise UnsupportedValue(f"cannot search by {type(body).__name__} content: use text")
    if not isinstance(query, str):
        raise UnsupportedValue(f"query must be a str or MemoryContent, not {type(query).__name__}")
    return _clip(query)


def _clip(text: str) -> str:
    """At most ``MAX_QUERY_CHARS``, cut at a space (the core reads only 32 words anyway)."""
    if len(text) <= MAX_QUERY_CHARS:
        return text
    cut = text[:MAX_QUERY_CHARS]
    space = cut.rfind(" ")
    return cut[:space] if space > 0 else cut


def _last_user_text(messages: list[Any]) -> str:
    for message in reversed(messages):
        if isinstance(message, UserMessage):
            if isinstance(message.content, str):
                return message.content
            return "\n".join(part for part in message.content if isinstance(part, str))
    return ""


def _render(body: Any) -> str:
    return json.dumps(body, ensure_ascii=False) if isinstance(body, dict) else str(body)
