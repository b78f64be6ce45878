"""Pipecat: the caller's memory in a pipeline, as one ``FrameProcessor`` and four tools.

Put :class:`BotWireMemoryProcessor` between the user context aggregator and the LLM (where
Pipecat's own mem0 service goes)::

    memory = BotWireMemoryProcessor("+14155550123", url="sqlite:///calls.db")
    pipeline = Pipeline([transport.input(), stt, aggregators.user(), memory, llm, tts,
                         transport.output(), aggregators.assistant()])

What it does, frame by frame:

``setup``                        reads the caller's memory (``AsyncCallMemory.context``)
first ``LLMContextFrame``        adds that text to the context as one system message, once
each ``LLMContextFrame``         optionally searches the memory with the caller's last message
                                 and keeps one "relevant memory" message just before it
``LLMContextUserTurnFrame``      records what the caller said (after that turn's search, so a
                                 turn never finds itself)
``LLMContextAssistantTurnFrame`` records what the bot said (the assistant aggregator sends it
                                 upstream, through this processor)
``cleanup``                      records the call (``end_call``, idempotent); closes the memory
                                 if the processor opened it

A storage error is logged and the frame goes on: a memory outage never stops a call.
:func:`memory_tools` / :func:`register_memory_tools` give the LLM ``recall_memory``,
``remember``, ``remember_fact`` and ``forget``, answered exactly as the webhooks answer them.
Needs ``pipecat-ai>=1.13`` (``pip install './botwire[pipecat]'``).
"""

from __future__ import annotations

from ..adapters import require
from ..errors import MissingDependency

_frames = require("pipecat.frames.frames", "pipecat", "botwire.voice.pipecat")
if not hasattr(_frames, "LLMContextUserTurnFrame"):  # added in pipecat-ai 1.13
    raise MissingDependency(
        "botwire.voice.pipecat",
        "pipecat",
        ImportError("pipecat-ai 1.13 or newer is needed (LLMContextUserTurnFrame)"),
    )

import logging  # noqa: E402
from collections.abc import Awaitable, Callable  # noqa: E402
from typing import Any  # noqa: E402

from pipecat.frames.frames import (  # noqa: E402
    Frame,
    LLMContextAssistantTurnFrame,
    LLMContextFrame,
    LLMContextUserTurnFrame,
)
from pipecat.processors.aggregators.llm_context import (  # noqa: E402
    LLMContext,
    LLMSpecificMessage,
    standard_message_text,
)
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor  # noqa: E402

try:  # pipecat-ai >= 1.14
    from pipecat.adapters.llm.schemas.function_schema import FunctionSchema  # noqa: E402
except ImportError:  # pragma: no cover - pipecat-ai 1.13
    from pipecat.adapters.schemas.function_schema import FunctionSchema  # noqa: E402

from ..errors import BotWireError, InvalidInput  # noqa: E402
from .call import AsyncCallMemory  # noqa: E402
from .config import VoiceConfig  # noqa: E402

__all__ = [
    "BotWireMemoryProcessor",
    "memory_tools",
    "register_memory_tools",
    "end_call_on_disconnect",
    "MEMORY_HEADER",
    "RECALL_HEADER",
]

log = logging.getLogger(__name__)

MEMORY_HEADER = "What you remember about this caller from earlier calls:"
RECALL_HEADER = "Stored memory that may be relevant to the caller's last message:"
_NOTHING_FOUND = "Nothing stored"  # how core.recall starts when nothing matched
_ROLES = ("system", "developer", "user")


class BotWireMemoryProcessor(FrameProcessor):
    """The caller's memory for one call, kept in step with the LLM context.

    ``memory``: an :class:`~botwire.voice.AsyncCallMemory`, or the caller's phone number (then
    the processor opens one on ``url`` / ``api_key`` / ``config`` with ``platform="pipecat"``,
    and closes it at cleanup). ``budget``: most characters of the memory text (default: the
    config's). ``recall_limit``: matches added per turn; 0 turns the per-turn search off.
    ``role``: the role of the added messages (``system``; ``developer`` as mem0 does).
    """

    def __init__(
        self,
        memory: AsyncCallMemory | str,
        *,
        url: str | None = None,
        api_key: str | None = None,
        config: VoiceConfig | None = None,
        call_id: str | None = None,
        budget: int | None = None,
        recall_limit: int = 3,
        role: str = "system",
        **kwargs: Any,
    ) -> None:
        self.memory, self._owned = _open(memory, url, api_key, config, call_id)
        if type(recall_limit) is not int or not 0 <= recall_limit <= 20:
            raise InvalidInput(f"recall_limit must be an int from 0 to 20, not {recall_limit!r}")
        if role not in _ROLES:
            raise InvalidInput(f"role must be one of {', '.join(_ROLES)}, not {role!r}")
        if budget is not None and (type(budget) is not int or budget < 0):
            raise InvalidInput(f"budget must be an int >= 0, not {budget!r}")
        super().__init__(**kwargs)
        self._budget = budget
        self._recall_limit = recall_limit
        self._role = role
        self._briefing: dict[str, str] | None = None
        self._recall: dict[str, str] | None = None
        self._last_query: str | None = None
        self._pending: list[str] = []  # the caller's turns, recorded after their search

    async def load(self) -> str:
        """The memory text added to the context (read once; ``""`` if storage failed)."""
        if self._briefing is None:
            try:
                text = await self.memory.context(self._budget)
            except BotWireError as exc:
                log.warning("botwire: cannot read the memory of %s: %s", self.memory.number, exc)
                return ""
            self._briefing = {"role": self._role, "content": f"{MEMORY_HEADER}\n{text}"}
        return self._briefing["content"]

    async def end_call(self, summary: str | None = None, outcome: str | None = None) -> None:
        """Record what is still pending and the call itself (only the first time counts)."""
        await self._flush()
        try:
            await self.memory.end_call(summary=summary, outcome=outcome)
        except BotWireError as exc:
            log.warning("botwire: cannot record the end of the call: %s", exc)

    async def setup(self, setup: Any) -> None:
        await super().setup(setup)
        await self.load()

    async def cleanup(self) -> None:
        await super().cleanup()
        await self.end_call()
        if self._owned:
            await self.memory.aclose()

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, LLMContextFrame):
            await self._before_inference(frame)
        elif isinstance(frame, LLMContextUserTurnFrame):
            if frame.text.strip():
                self._pending.append(frame.text)
        elif isinstance(frame, LLMContextAssistantTurnFrame):
            await self._flush()
            await self._record("assistant", frame.text)
        await self.push_frame(frame, direction)

    async def _before_inference(self, frame: LLMContextFrame) -> None:
        context = frame.context
        if await self.load() and self._briefing not in context.get_messages():
            messages: list[Any] = list(context.get_messages())
            messages.insert(_after_instructions(messages), self._briefing)
            context.set_messages(messages)
        if self._recall_limit:
            await self._update_recall(context)
        if not getattr(frame, "speculation", False):
            await self._flush()

    async def _update_recall(self, context: LLMContext) -> None:
        messages: list[Any] = list(context.get_messages())
        last = _last_user(messages)
        if last is None:
            return
        query = standard_message_text(messages[last]).strip()
        if not query or query == self._last_query:
            return
        self._last_query = query
        try:
            found = await self.memory.recall(query[-1000:], self._recall_limit)
        except BotWireError as exc:
            log.warning("botwire: recall failed: %s", exc)
            return
        if self._recall in messages:
            old = messages.index(self._recall)
            del messages[old]
            if old < last:
                last -= 1
        self._recall = None
        if not found.startswith(_NOTHING_FOUND):
            self._recall = {"role": self._role, "content": f"{RECALL_HEADER}\n{found}"}
            messages.insert(last, self._recall)
        context.set_messages(messages)

    async def _flush(self) -> None:
        pending, self._pending = self._pending, []
        for text in pending:
            await self._record("user", text)

    async def _record(self, role: str, text: str) -> None:
        if not text.strip():
            return
        try:
            await self.memory.record_turn(role, text)
        except BotWireError as exc:
            log.warning("botwire: cannot record a turn (%s): %s", role, exc)


def _open(
    memory: AsyncCallMemory | str,
    url: str | None,
    api_key: str | None,
    config: VoiceConfig | None,
    call_id: str | None,
) -> tuple[AsyncCallMemory, bool]:
    if isinstance(memory, AsyncCallMemory):
        if url or api_key or config or call_id:
            raise InvalidInput(
                "url, api_key, config and call_id go with a phone number, "
                "not with an AsyncCallMemory (it has its own)"
            )
        return memory, False
    if isinstance(memory, str):
        opened = AsyncCallMemory(
            memory, url=url, api_key=api_key, config=config, platform="pipecat", call_id=call_id
        )
        return opened, True
    raise InvalidInput(
        f"memory must be an AsyncCallMemory or a phone number, not {type(memory).__name__}"
    )


def _after_instructions(messages: list[Any]) -> int:
    for i, message in enumerate(messages):
        if isinstance(message, LLMSpecificMessage) or message.get("role") not in _ROLES[:2]:
            return i
    return len(messages)


def _last_user(messages: list[Any]) -> int | None:
    for i in range(len(messages) - 1, -1, -1):
        message = messages[i]
        if not isinstance(message, LLMSpecificMessage) and message.get("role") == "user":
            return i
    return None


# -- tools ---------------------------------------------------------------------------------

_STRING = {"type": "string"}
_TOOLS: dict[str, tuple[str, dict[str, Any], list[str]]] = {
    "recall_memory": (
        "Search what is remembered about the caller: facts, earlier calls, notes.",
        {
            "query": {**_STRING, "description": "words to look for"},
            "limit": {"type": "integer", "description": "most results, 1-20 (default 5)"},
        },
        ["query"],
    ),
    "remember": (
        "Store one fact about the caller under a short key, replacing the old value.",
        {
            "key": {**_STRING, "description": "e.g. customer_name, preferred_language"},
            "value": {**_STRING, "description": "the value to keep"},
        },
        ["key", "value"],
    ),
    "remember_fact": (
        "Note something about the caller, in one sentence, for later calls.",
        {"text": {**_STRING, "description": "the note"}},
        ["text"],
    ),
    "forget": (
        "Delete a fact stored under a key (for example when the caller asks).",
        {"key": {**_STRING, "description": "the key to delete"}},
        ["key"],
    ),
}

Handler = Callable[[Any], Awaitable[None]]


def memory_tools(memory: AsyncCallMemory, *, with_handlers: bool = True) -> list[FunctionSchema]:
    """The four memory tools as ``FunctionSchema`` s for ``LLMContext(tools=...)``.

    With ``with_handlers`` (default) each schema carries its handler, which the LLM service
    registers by itself wherever the schema is advertised.
    """
    if not isinstance(memory, AsyncCallMemory):
        raise InvalidInput(f"memory must be an AsyncCallMemory, not {type(memory).__name__}")
    return [
        FunctionSchema(
            name,
            description,
            properties,
            required,
            handler=_handler(memory, name) if with_handlers else None,
        )
        for name, (description, properties, required) in _TOOLS.items()
    ]


def register_memory_tools(llm: Any, memory: AsyncCallMemory) -> list[FunctionSchema]:
    """``llm.register_function`` for each memory tool; returns their schemas (no handlers)."""
    schemas = memory_tools(memory, with_handlers=False)
    for schema in schemas:
        llm.register_function(schema.name, _handler(memory, schema.name))
    return schemas


def _handler(memory: AsyncCallMemory, name: str) -> Handler:
    async def handle(params: Any) -> None:
        await params.result_callback(await memory.tool(name, dict(params.arguments or {})))

    handle.__name__ = f"botwire_{name}"
    return handle


def end_call_on_disconnect(transport: Any, processor: BotWireMemoryProcessor) -> None:
    """Record the call as soon as the transport says the client left (before the pipeline's
    cleanup, which would record it too)."""

    async def on_client_disconnected(transport: Any, *args: Any) -> None:
        await processor.end_call()

    transport.add_event_handler("on_client_disconnected", on_client_disconnected)
