"""LangChain: chat message history and key-value stores kept in botwire.

``BotWireChatHistory`` is a ``BaseChatMessageHistory``: one conversation (a session id) is one
append-only botwire log, ``"session:<id>"`` in the namespace ``"chat"`` unless told otherwise.
Each message is one log entry ``{"ts": <Unix seconds>, "message": message_to_dict(message)}``,
so adding messages never rewrites earlier ones and reading them back is exact.

``BotWireStore`` (any JSON value) and ``BotWireByteStore`` (``bytes``, for LangChain's
``ByteStore`` users such as ``CacheBackedEmbeddings``) are ``BaseStore[str, ...]`` over the keys
of one namespace.

Every class takes ``namespace``, ``url`` and ``api_key`` like :class:`botwire.Memory`, or an
existing ``memory=``; the async methods run through :class:`botwire.AsyncMemory`.
"""

from __future__ import annotations

from . import Closing, require

require("langchain_core", "langchain", "botwire.adapters.langchain")

import base64  # noqa: E402
import binascii  # noqa: E402
import hashlib  # noqa: E402
import reprlib  # noqa: E402
import time  # noqa: E402
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence  # noqa: E402
from typing import Any, Generic, TypeVar  # noqa: E402

from langchain_core.chat_history import BaseChatMessageHistory  # noqa: E402
from langchain_core.messages import (  # noqa: E402
    BaseMessage,
    message_to_dict,
    messages_from_dict,
)
from langchain_core.stores import BaseStore  # noqa: E402

from .._codec import check_int, check_name, check_names, check_ttl  # noqa: E402
from .._wire import redact  # noqa: E402
from ..errors import InvalidInput, InvalidKey, UnsupportedValue  # noqa: E402
from ..memory import AsyncMemory, Log, LogEntry, Memory  # noqa: E402

__all__ = [
    "BotWireChatHistory",
    "BotWireStore",
    "BotWireByteStore",
    "session_log_name",
    "DEFAULT_CHAT_NAMESPACE",
    "DEFAULT_STORE_NAMESPACE",
]

DEFAULT_CHAT_NAMESPACE = "chat"
DEFAULT_STORE_NAMESPACE = "langchain"

SESSION_PREFIX = "session:"
HASHED_PREFIX = "session-sha256:"  # differs from SESSION_PREFIX at its 8th character

_short = reprlib.Repr()
_short.maxstring = 60


def session_log_name(session_id: str) -> str:
    """The botwire log name that holds the chat history of ``session_id``.

    ``"session:" + session_id`` when that is a valid log name (at most 512 characters, no NUL,
    no lone surrogate); otherwise ``"session-sha256:"`` and the SHA-256 of the id's UTF-8 bytes
    (lone surrogates encoded as themselves), in hex. The two prefixes differ, so every str maps
    to its own log name, and the same one in every process.
    """
    if type(session_id) is not str:
        raise InvalidKey(f"session_id must be a str, not {type(session_id).__name__}")
    name = SESSION_PREFIX + session_id
    try:
        return check_name(name, "log name")
    except InvalidKey:
        digest = hashlib.sha256(session_id.encode("utf-8", "surrogatepass")).hexdigest()
        return HASHED_PREFIX + digest


class _Memories:
    """A ``Memory`` and an ``AsyncMemory`` on one namespace and one engine.

    Built from ``namespace`` / ``url`` / ``api_key``, each holds the shared engine (so either
    one, kept alone, keeps it open) and ``close`` releases both. Built from a caller's
    ``Memory`` / ``AsyncMemory``, the other one borrows its engine, and the caller closes it.
    """

    def __init__(
        self,
        namespace: str | None,
        default_namespace: str,
        url: str | None,
        api_key: str | None,
        memory: Memory | AsyncMemory | None,
    ) -> None:
        self.owned = memory is None
        if memory is None:
            ns = default_namespace if namespace is None else namespace
            self.memory = Memory(ns, url=url, api_key=api_key)
            self.amemory = AsyncMemory(ns, url=url, api_key=api_key)
            return
        if namespace is not None or url is not None or api_key is not None:
            raise InvalidInput("pass memory= or namespace / url / api_key, not both")
        if isinstance(memory, Memory):
            self.memory = memory
            self.amemory = AsyncMemory(
                memory.namespace, engine=memory.engine, max_value_bytes=memory.max_value_bytes
            )
        elif isinstance(memory, AsyncMemory):
            self.amemory = memory
            self.memory = Memory(
                memory.namespace, engine=memory.engine, max_value_bytes=memory.max_value_bytes
            )
        else:
            raise InvalidInput(
                f"memory must be a botwire Memory or AsyncMemory, not {type(memory).__name__}"
            )

    def close(self) -> None:
        if self.owned:
            self.memory.close()
            self.amemory.close()

    async def aclose(self) -> None:
        if self.owned:
            self.memory.close()  # not the last holder: the AsyncMemory still holds the engine
            await self.amemory.aclose()

    def url(self) -> str:
        return redact(self.memory.engine.url)




# -- chat history ------------------------------------------------------------------------------


class BotWireChatHistory(Closing, BaseChatMessageHistory):
    """LangChain chat message history in a botwire log, shared by every process on the storage.

    ``BotWireChatHistory(session_id)`` keeps the conversation ``session_id`` in the log
    ``session_log_name(session_id)`` (``"session:<id>"``) of the namespace ``"chat"`` in the
    default storage. Give ``namespace`` per customer or tenant (an API key of the botwire
    server can be limited to it), ``url`` / ``api_key`` for PostgreSQL or a botwire server, or
    an existing ``memory=`` (``Memory`` or ``AsyncMemory``) to use its namespace and engine.

    ``last=N`` makes ``messages`` the newest N messages only; the log keeps everything.

    >>> history = BotWireChatHistory("call-555-0123")      # doctest: +SKIP
    >>> history.add_messages([HumanMessage("hi"), AIMessage("hello")])  # doctest: +SKIP
    """

    def __init__(
        self,
        session_id: str,
        *,
        namespace: str | None = None,
        url: str | None = None,
        api_key: str | None = None,
        last: int | None = None,
        memory: Memory | AsyncMemory | None = None,
    ) -> None:
        log_name = session_log_name(session_id)
        if last is not None:
            check_int(last, "last", minimum=1)
        super().__init__()
        self.session_id = session_id
        self.log_name = log_name
        self.last = last
        self._memories = self._held = _Memories(
            namespace, DEFAULT_CHAT_NAMESPACE, url, api_key, memory
        )
        self.memory = self._memories.memory
        self.namespace = self.memory.namespace
        self.log: Log = self.memory.log(log_name)
        self._alog = self._memories.amemory.log(log_name)

    def __repr__(self) -> str:
        window = "" if self.last is None else f", last={self.last}"
        return (
            f"{type(self).__name__}({_short.repr(self.session_id)}, "
            f"namespace={self.namespace!r}{window}, url={self._memories.url()!r})"
        )

    @property
    def messages(self) -> list[BaseMessage]:  # type: ignore[override]
        """The stored messages, oldest first (the newest ``last`` when it was given)."""
        entries = self.log.read() if self.last is None else self.log.read(last=self.last)
        return self._messages(entries)

    async def aget_messages(self) -> list[BaseMessage]:
        entries = await (
            self._alog.read() if self.last is None else self._alog.read(last=self.last)
        )
        return self._messages(entries)

    def add_messages(self, messages: Sequence[BaseMessage]) -> None:
        """Append ``messages`` to the log in one write: all of them, or none on an error."""
        entries = self._entries(messages)
        if entries:
            try:
                self.log.extend(entries)
            except UnsupportedValue as exc:
                raise _explain(entries, exc) from exc

    async def aadd_messages(self, messages: Sequence[BaseMessage]) -> None:
        entries = self._entries(messages)
        if entries:
            try:
                await self._alog.extend(entries)
            except UnsupportedValue as exc:
                raise _explain(entries, exc) from exc

    def clear(self) -> None:
        """Delete every message of this session (other sessions are untouched)."""
        self.log.clear()

    async def aclear(self) -> None:
        await self._alog.clear()

    def _entries(self, messages: Sequence[BaseMessage]) -> list[dict[str, Any]]:
        if isinstance(messages, BaseMessage):
            raise UnsupportedValue("add_messages takes a list of messages: add_messages([message])")
        if isinstance(messages, (str, bytes, Mapping)):
            raise UnsupportedValue(
                f"add_messages takes a list of messages, not a {type(messages).__name__}; "
                "nothing was stored"
            )
        batch = list(messages)
        for i, message in enumerate(batch):
            if not isinstance(message, BaseMessage):
                raise UnsupportedValue(
                    f"add_messages takes LangChain messages (BaseMessage); item {i} is a "
                    f"{type(message).__name__}; nothing was stored"
                )
        now = time.time()
        return [{"ts": now, "message": message_to_dict(m)} for m in batch]

    def _messages(self, entries: list[LogEntry]) -> list[BaseMessage]:
        messages = []
        for entry in entries:
            value = entry.value
            try:
                messages.extend(messages_from_dict([value["message"]]))
            except (KeyError, TypeError, ValueError) as exc:  # pydantic's errors are ValueErrors
                raise UnsupportedValue(
                    f"entry {entry.seq} of log {self.log_name!r} in namespace "
                    f"{self.namespace!r} is not a chat message entry: {_short.repr(value)}"
                ) from exc
        return messages


_JSON_SCALARS = (str, int, float, bool, type(None))


def _not_json(value: Any, path: str) -> str | None:
    """Where in ``value`` the first part JSON cannot hold exactly is, as a path; None if nowhere."""
    if type(value) in _JSON_SCALARS:
        return None
    if isinstance(value, list):
        for i, item in enumerate(value):
            found = _not_json(item, f"{path}[{i}]")
            if found:
                return found
        return None
    if isinstance(value, dict):
        for key, item in value.items():
            if type(key) is not str:
                return f"{path} has a {type(key).__name__} key {_short.repr(key)}"
            found = _not_json(item, f"{path}[{key!r}]")
            if found:
                return found
        return None
    return f"{path} is a {type(value).__name__}"


def _explain(entries: list[dict[str, Any]], exc: UnsupportedValue) -> UnsupportedValue:
    """``exc`` naming the message and the field that cannot be stored."""
    for i, entry in enumerate(entries):
        found = _not_json(entry["message"]["data"], "data")
        if found:
            kind = entry["message"]["type"]
            return UnsupportedValue(
                f"message {i} ({kind}) cannot be stored: {found}, not a JSON value (use str, "
                "int, float, bool, None, list or dict with str keys); nothing was stored"
            )
    return exc


# -- key-value stores --------------------------------------------------------------------------

V = TypeVar("V")


class _KeyValueStore(Closing, BaseStore[str, V], Generic[V]):
    def __init__(
        self,
        namespace: str | None = None,
        *,
        url: str | None = None,
        api_key: str | None = None,
        memory: Memory | AsyncMemory | None = None,
        ttl: float | None = None,
    ) -> None:
        self.ttl = check_ttl(ttl)
        self._memories = self._held = _Memories(
            namespace, DEFAULT_STORE_NAMESPACE, url, api_key, memory
        )
        self.memory = self._memories.memory
        self._amemory = self._memories.amemory
        self.namespace = self.memory.namespace

    def __repr__(self) -> str:
        ttl = "" if self.ttl is None else f", ttl={self.ttl!r}"
        return f"{type(self).__name__}({self.namespace!r}{ttl}, url={self._memories.url()!r})"

    def _encode(self, value: V) -> Any:
        return value

    def _decode(self, key: str, value: Any) -> V:
        return value  # type: ignore[no-any-return]  # BotWireStore: V is Any

    def _mapping(self, key_value_pairs: Sequence[tuple[str, V]]) -> dict[str, Any]:
        if isinstance(key_value_pairs, (str, bytes, Mapping)):
            raise InvalidInput(
                f"mset takes a sequence of (key, value) pairs, not a "
                f"{type(key_value_pairs).__name__}; nothing was stored"
            )
        mapping: dict[str, Any] = {}
        for pair in key_value_pairs:
            if not isinstance(pair, (tuple, list)) or len(pair) != 2:
                raise InvalidInput(
                    f"mset takes (key, value) pairs, not {_short.repr(pair)}; nothing was stored"
                )
            key, value = pair
            mapping[check_name(key)] = self._encode(value)
        return mapping

    def _values(self, keys: Sequence[str], found: dict[str, Any]) -> list[V | None]:
        return [self._decode(k, found[k]) if k in found else None for k in keys]

    def mget(self, keys: Sequence[str]) -> list[V | None]:
        """The values of ``keys`` in order, ``None`` for missing ones: one read."""
        keys = check_names(keys)
        return self._values(keys, self.memory.get_many(keys))

    async def amget(self, keys: Sequence[str]) -> list[V | None]:
        keys = check_names(keys)
        return self._values(keys, await self._amemory.get_many(keys))

    def mset(self, key_value_pairs: Sequence[tuple[str, V]]) -> None:
        """Store every pair in one write, all or none; a repeated key keeps its last value."""
        mapping = self._mapping(key_value_pairs)
        if mapping:
            self.memory.set_many(mapping, ttl=self.ttl)

    async def amset(self, key_value_pairs: Sequence[tuple[str, V]]) -> None:
        mapping = self._mapping(key_value_pairs)
        if mapping:
            await self._amemory.set_many(mapping, ttl=self.ttl)

    def mdelete(self, keys: Sequence[str]) -> None:
        """Delete ``keys`` (missing ones are ignored); every key is checked before any delete."""
        for key in dict.fromkeys(check_names(keys)):
            self.memory.delete(key)

    async def amdelete(self, keys: Sequence[str]) -> None:
        for key in dict.fromkeys(check_names(keys)):
            await self._amemory.delete(key)

    def yield_keys(self, *, prefix: str | None = None) -> Iterator[str]:
        """Every key starting with ``prefix``, in code-point order, fetched page by page."""
        yield from self.memory.keys(prefix or "")

    async def ayield_keys(self, *, prefix: str | None = None) -> AsyncIterator[str]:
        async for key in self._amemory.keys(prefix or ""):
            yield key


class BotWireStore(_KeyValueStore[Any]):
    """A LangChain ``BaseStore[str, Any]`` over the keys of one botwire namespace.

    ``BotWireStore(namespace=None, *, url=None, api_key=None, memory=None, ttl=None)``: the
    namespace ``"langchain"`` unless given, in the storage ``url`` picks (as for ``Memory``).

    Values are JSON values (``None``, ``bool``, ``int``, finite ``float``, ``str``, ``list``,
    ``dict`` with ``str`` keys), returned exactly as stored; anything else raises
    ``UnsupportedValue`` and stores nothing. Keys are 1-512 characters without NUL. ``ttl``
    (seconds) makes every ``mset`` expire. ``mget`` and ``mset`` are one round trip each.
    """


class BotWireByteStore(_KeyValueStore[bytes]):
    """A LangChain ``ByteStore`` (``BaseStore[str, bytes]``) over one botwire namespace.

    Each value is stored as its standard base64 text (a JSON string), so a value may hold up
    to 3/4 of ``max_value_bytes`` bytes. For ``CacheBackedEmbeddings`` and other users of
    LangChain's ``ByteStore``.
    """

    def _encode(self, value: bytes) -> Any:
        if not isinstance(value, (bytes, bytearray, memoryview)):
            raise UnsupportedValue(
                f"{type(self).__name__} stores bytes, not {type(value).__name__}; "
                "nothing was stored"
            )
        return base64.b64encode(value).decode("ascii")

    def _decode(self, key: str, value: Any) -> bytes:
        try:
            if isinstance(value, str):
                return base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            pass
        raise UnsupportedValue(
            f"key {key!r} of namespace {self.namespace!r} does not hold base64 bytes: "
            f"{_short.repr(value)}"
        )
