"""LiveKit Agents: the caller's memory in an ``Agent`` and its ``AgentSession``.

The shortest way is :class:`BotWireAgent`, an ``Agent`` that does all of it::

    async def entrypoint(ctx: JobContext):
        await ctx.connect()
        caller = await ctx.wait_for_participant()
        memory = call_memory(caller, url="sqlite:///calls.db")   # None: not a phone caller
        end_call_on_shutdown(ctx, memory)
        agent = BotWireAgent(memory=memory, instructions="...")
        await agent.load_memory()          # before start: the first reply already knows them
        session = AgentSession(stt=..., llm=..., tts=..., vad=...)
        await session.start(agent, room=ctx.room)

or the same hooks one by one, in an agent of your own:

``caller_number(participant)``       the caller's E.164 number, from ``sip.phoneNumber``
``call_memory(participant, ...)``    an ``AsyncCallMemory`` for them (``platform="livekit"``,
                                     ``call_id`` from ``sip.callID``)
``load_memory(agent, memory)``       before ``session.start`` (or in ``on_enter``): the caller's
                                     memory as one system message of the agent's chat context
``recall_into(turn_ctx, msg, mem)``  in ``on_user_turn_completed``: what is stored about the
                                     caller's words, for this reply only
``record_conversation(session, m)``  every user and assistant message of the session, in order
``end_call_on_shutdown(ctx, m)``     when the job ends: the call record, then ``aclose``
``memory_tools(memory)``             ``recall_memory``, ``remember``, ``remember_fact``,
                                     ``forget`` as function tools

A storage error is logged and the agent goes on without memory. Needs ``livekit-agents>=1.2``
(``pip install './botwire[livekit]'``).
"""

from __future__ import annotations

from ..adapters import require

require("livekit.agents", "livekit", "botwire.voice.livekit")

import asyncio  # noqa: E402
import logging  # noqa: E402
import weakref  # noqa: E402
from typing import Any  # noqa: E402

from livekit.agents import Agent, AgentSession, JobContext, function_tool  # noqa: E402
from livekit.agents.llm import ChatContext, ChatMessage  # noqa: E402

from ..errors import BotWireError, InvalidInput  # noqa: E402
from .call import AsyncCallMemory  # noqa: E402
from .config import VoiceConfig  # noqa: E402
from .phone import InvalidNumber, to_e164  # noqa: E402
from .records import CallEnd  # noqa: E402

__all__ = [
    "BotWireAgent",
    "caller_number",
    "call_memory",
    "load_memory",
    "recall_into",
    "record_conversation",
    "end_call",
    "end_call_on_shutdown",
    "memory_tools",
    "MEMORY_HEADER",
    "RECALL_HEADER",
]

log = logging.getLogger(__name__)

MEMORY_HEADER = "What you remember about this caller from earlier calls:"
RECALL_HEADER = "Stored memory that may be relevant to the caller's last message:"
PHONE_ATTRIBUTE = "sip.phoneNumber"
CALL_ID_ATTRIBUTE = "sip.callID"
_NOTHING_FOUND = "Nothing stored"  # how core.recall starts when nothing matched
_ROLES = ("system", "developer")


def caller_number(participant: Any, default_country: str | None = None) -> str | None:
    """The participant's phone number as E.164, or None (not a phone caller, or withheld)."""
    raw = (getattr(participant, "attributes", None) or {}).get(PHONE_ATTRIBUTE)
    if not raw:
        return None
    try:
        return to_e164(raw, default_country)
    except InvalidNumber:
        return None


def call_memory(
    participant: Any,
    *,
    url: str | None = None,
    api_key: str | None = None,
    config: VoiceConfig | None = None,
) -> AsyncCallMemory | None:
    """An :class:`AsyncCallMemory` for the SIP participant's number, or None without one."""
    number = caller_number(participant, config.default_country if config else None)
    if number is None:
        return None
    call_id = (participant.attributes or {}).get(CALL_ID_ATTRIBUTE) or None
    return AsyncCallMemory(
        number, url=url, api_key=api_key, config=config, platform="livekit", call_id=call_id
    )


async def load_memory(
    target: Agent | ChatContext,
    memory: AsyncCallMemory,
    *,
    budget: int | None = None,
    role: str = "system",
) -> str:
    """Add the caller's memory to ``target`` (an agent's chat context, or a ``ChatContext``)
    as one message, once. Returns the text added (``""`` if the storage failed)."""
    _check(memory, role)
    _check_budget(budget)
    if not isinstance(target, (Agent, ChatContext)):
        raise InvalidInput(f"target must be an Agent or a ChatContext, not {type(target).__name__}")
    try:
        content = f"{MEMORY_HEADER}\n{await memory.context(budget)}"
    except BotWireError as exc:
        log.warning("botwire: cannot read the memory of %s: %s", memory.number, exc)
        return ""
    ctx = target.chat_ctx.copy() if isinstance(target, Agent) else target
    if not any(_text(item) == content for item in ctx.items):
        ctx.add_message(role=role, content=content)  # type: ignore[arg-type]
    if isinstance(target, Agent):
        await target.update_chat_ctx(ctx)
    return content


async def recall_into(
    turn_ctx: ChatContext,
    new_message: ChatMessage,
    memory: AsyncCallMemory,
    *,
    limit: int = 3,
    role: str = "system",
) -> str | None:
    """Search the memory with the caller's new message and add what matched to ``turn_ctx``
    (this reply's context only). Returns the matches, or None when nothing matched."""
    _check(memory, role)
    if type(limit) is not int or not 1 <= limit <= 20:
        raise InvalidInput(f"limit must be an int from 1 to 20, not {limit!r}")
    query = (new_message.text_content or "").strip()
    if not query:
        return None
    try:
        found = await memory.recall(query[-1000:], limit)
    except BotWireError as exc:
        log.warning("botwire: recall failed: %s", exc)
        return None
    if found.startswith(_NOTHING_FOUND):
        return None
    turn_ctx.add_message(role=role, content=f"{RECALL_HEADER}\n{found}")  # type: ignore[arg-type]
    return found


class _Recorder:
    """Records a session's messages in the order they were added, one after another."""

    def __init__(self, session: AgentSession, memory: AsyncCallMemory) -> None:
        self.session = session
        self.memory = memory
        self._last: asyncio.Task[None] | None = None
        session.on("conversation_item_added", self.on_item)

    def on_item(self, event: Any) -> None:
        item = event.item
        if getattr(item, "type", None) != "message" or item.role not in ("user", "assistant"):
            return
        text = item.text_content or ""
        if text.strip():
            self._last = asyncio.get_running_loop().create_task(
                self._record(self._last, item.role, text)
            )

    async def _record(self, before: asyncio.Task[None] | None, role: str, text: str) -> None:
        if before is not None:
            await asyncio.wait({before})
        try:
            await self.memory.record_turn(role, text)
        except BotWireError as exc:
            log.warning("botwire: cannot record a turn (%s): %s", role, exc)

    async def stop(self) -> None:
        self.session.off("conversation_item_added", self.on_item)
        if self._last is not None:
            await asyncio.wait({self._last})


_recorders: weakref.WeakKeyDictionary[AsyncCallMemory, _Recorder] = weakref.WeakKeyDictionary()


def record_conversation(session: AgentSession, memory: AsyncCallMemory) -> None:
    """Record every user and assistant message of ``session`` in the caller's conversation log
    (once per session and memory; :func:`end_call` waits for the last one)."""
    _check(memory)
    current = _recorders.get(memory)
    if current is not None and current.session is session:
        return
    if current is not None:
        raise InvalidInput("this memory already records another session")
    _recorders[memory] = _Recorder(session, memory)


async def end_call(
    memory: AsyncCallMemory, summary: str | None = None, outcome: str | None = None
) -> CallEnd:
    """Stop recording (after the turns still being written) and record the call, once."""
    recorder = _recorders.pop(memory, None)
    if recorder is not None:
        await recorder.stop()
    return await memory.end_call(summary=summary, outcome=outcome)


def end_call_on_shutdown(
    ctx: JobContext, memory: AsyncCallMemory | None, *, close: bool = True
) -> None:
    """When the job shuts down: :func:`end_call`, then ``memory.aclose()`` (unless ``close``
    is False). Nothing for a caller without a number (``memory`` None)."""
    if memory is None:
        return
    _check(memory)

    async def botwire_end_call() -> None:
        try:
            await end_call(memory)
        except BotWireError as exc:
            log.warning("botwire: cannot record the end of the call: %s", exc)
        finally:
            if close:
                await memory.aclose()

    ctx.add_shutdown_callback(botwire_end_call)


def memory_tools(memory: AsyncCallMemory) -> list[Any]:
    """``recall_memory``, ``remember``, ``remember_fact`` and ``forget`` as LiveKit function
    tools (``Agent(tools=...)``), answered exactly as the webhooks answer them."""
    _check(memory)

    @function_tool
    async def recall_memory(query: str, limit: int = 5) -> str:
        """Search what is remembered about the caller: facts, earlier calls, notes.

        Args:
            query: words to look for
            limit: most results, 1-20
        """
        return await memory.tool("recall_memory", {"query": query, "limit": limit})

    @function_tool
    async def remember(key: str, value: str) -> str:
        """Store one fact about the caller under a short key, replacing the old value.

        Args:
            key: e.g. customer_name, preferred_language
            value: the value to keep
        """
        return await memory.tool("remember", {"key": key, "value": value})

    @function_tool
    async def remember_fact(text: str) -> str:
        """Note something about the caller, in one sentence, for later calls.

        Args:
            text: the note
        """
        return await memory.tool("remember_fact", {"text": text})

    @function_tool
    async def forget(key: str) -> str:
        """Delete a fact stored under a key (for example when the caller asks).

        Args:
            key: the key to delete
        """
        return await memory.tool("forget", {"key": key})

    return [recall_memory, remember, remember_fact, forget]


class BotWireAgent(Agent):
    """An ``Agent`` with the caller's memory: loaded on enter, searched on every user turn
    (``recall_limit`` matches, 0 for none), every message recorded, the memory tools added
    (``with_tools``). ``memory`` None (no caller number) makes it a plain ``Agent``.

    A subclass that overrides ``on_enter`` or ``on_user_turn_completed`` calls ``super()``.
    """

    def __init__(
        self,
        *,
        memory: AsyncCallMemory | None,
        recall_limit: int = 3,
        budget: int | None = None,
        with_tools: bool = True,
        **kwargs: Any,
    ) -> None:
        if memory is not None:
            _check(memory)
        _check_budget(budget)
        if type(recall_limit) is not int or not 0 <= recall_limit <= 20:
            raise InvalidInput(f"recall_limit must be an int from 0 to 20, not {recall_limit!r}")
        if memory is not None and with_tools:
            kwargs["tools"] = [*(kwargs.get("tools") or []), *memory_tools(memory)]
        super().__init__(**kwargs)
        self.memory = memory
        self._recall_limit = recall_limit
        self._budget = budget
        self._loaded = False

    async def load_memory(self) -> str:
        """Add the caller's memory to this agent's chat context (once). ``on_enter`` does it
        too, but as a task the session does not wait for: awaited before ``session.start``,
        the very first reply is sure to have it."""
        if self.memory is None or self._loaded:
            return ""
        text = await load_memory(self, self.memory, budget=self._budget)
        self._loaded = bool(text)
        return text

    async def on_enter(self) -> None:
        if self.memory is not None:
            record_conversation(self.session, self.memory)
            await self.load_memory()

    async def on_user_turn_completed(self, turn_ctx: ChatContext, new_message: ChatMessage) -> None:
        if self.memory is not None and self._recall_limit:
            await recall_into(turn_ctx, new_message, self.memory, limit=self._recall_limit)


def _check(memory: Any, role: str = "system") -> None:
    if not isinstance(memory, AsyncCallMemory):
        raise InvalidInput(f"memory must be an AsyncCallMemory, not {type(memory).__name__}")
    if role not in _ROLES:
        raise InvalidInput(f"role must be one of {', '.join(_ROLES)}, not {role!r}")


def _check_budget(budget: Any) -> None:
    if budget is not None and (type(budget) is not int or budget < 0):
        raise InvalidInput(f"budget must be an int >= 0, not {budget!r}")


def _text(item: Any) -> str | None:
    return item.text_content if getattr(item, "type", None) == "message" else None
