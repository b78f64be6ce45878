"""``CallMemory``: the caller's memory inside a pipeline that runs its own audio loop.

>>> with CallMemory("+14155550123") as call:            # doctest: +SKIP
...     prompt = SYSTEM + call.context(budget=1500)
...     call.record_turn("user", "Hi, it's Ana again")
...     call.remember("customer_name", "Ana")
...     call.end_call(summary="Ana asked about her order")

The same plans as the webhooks (``core``), so a call taken in process and one taken through a
platform leave the same records.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import threading
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from ..engines.base import Engine
from ..errors import BotWireError, InvalidInput
from ..memory import AsyncMemory, Memory
from . import core, facts
from .facts import Fact, Origin
from .config import VoiceConfig
from .phone import namespace_for, to_e164
from .records import CONVERSATION, CallEnd, Turn, normalise_role


log = logging.getLogger("botwire.voice")
FAILED = "the summariser failed for %s call %s"


class _CallBase:
    def __init__(
        self,
        phone_number: str,
        *,
        url: str | None = None,
        api_key: str | None = None,
        engine: Engine | None = None,
        config: VoiceConfig | None = None,
        platform: str = "app",
        call_id: str | None = None,
    ) -> None:
        self.config = config or VoiceConfig()
        self.number = to_e164(phone_number, self.config.default_country)
        self.namespace = namespace_for(self.number, self.config.namespace)
        self.platform = platform
        self.call_id = call_id or uuid.uuid4().hex
        self.started_at = time.time()
        self._turns: list[Turn] = []
        self._ended = False
        self._open(url, api_key, engine)

    def _open(self, url: str | None, api_key: str | None, engine: Engine | None) -> None:
        raise NotImplementedError

    def _origin(self, source: str = "api") -> Origin:
        return Origin(source, self.platform, self.call_id)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.number!r}, namespace={self.namespace!r})"

    def _turn(self, role: str, text: str) -> dict[str, Any]:
        normal = normalise_role(role)
        if normal is None:
            raise InvalidInput(f"role must be 'user' or 'assistant', not {role!r}")
        if not isinstance(text, str):
            raise InvalidInput(f"text must be a str, not {type(text).__name__}")
        turn = Turn(normal, text, time.time())
        self._turns.append(turn)
        return {
            "role": turn.role,
            "text": text,
            "call_id": self.call_id,
            "platform": self.platform,
            "ts": turn.ts,
        }

    def _end(self, summary: str | None, outcome: str | None) -> CallEnd:
        for name, value in (("summary", summary), ("outcome", outcome)):
            if value is not None and not isinstance(value, str):
                raise InvalidInput(f"{name} must be a str or None, not {type(value).__name__}")
        now = time.time()
        return CallEnd(
            platform=self.platform,
            call_id=self.call_id,
            caller=self.number,
            started_at=self.started_at,
            ended_at=now,
            summary=summary,
            outcome=outcome,
        )

    def _with_turns(self, event: CallEnd) -> CallEnd:
        # turns were stored as they happened; the summariser still gets to read them
        return CallEnd(**{**event.__dict__, "turns": tuple(self._turns)})


class CallMemory(_CallBase):
    """The memory of the caller at ``phone_number`` for one call (sync)."""

    def _open(self, url: str | None, api_key: str | None, engine: Engine | None) -> None:
        self.memory = Memory(self.namespace, url=url, api_key=api_key, engine=engine)
        self._threads: list[threading.Thread] = []

    def context(self, budget: int | None = None) -> str:
        """Prompt-ready text: facts, open items, recent calls newest first, notes."""
        return self.briefing(budget).memory

    def variables(self, budget: int | None = None) -> dict[str, str]:
        """``memory`` plus one string per fact (``customer_name``, ``last_call_summary``, ...)."""
        return self.briefing(budget).variables

    def briefing(self, budget: int | None = None) -> core.Briefing:
        plan = core.briefing(_budget(budget, self.config), self.config.variables)
        return core.run(plan, self.memory)

    def record_turn(self, role: str, text: str) -> None:
        """Append one turn to the caller's conversation log now (it survives a crash)."""
        self.memory.log(CONVERSATION).append(self._turn(role, text))

    def tool(self, name: str, args: dict[str, Any]) -> str:
        """Answer one in-call tool (``core.TOOLS``) as the webhooks do: mistakes and outages are
        answered in words for the agent, never raised."""
        try:
            return core.run(core.tool(name, args, self._origin("tool")), self.memory)
        except BotWireError as exc:
            return _tool_failure(name, exc)

    def recall(self, query: str, limit: int = 5) -> str:
        return core.run(core.recall(query, limit), self.memory)

    def remember(self, key: str, value: Any) -> str:
        """Set a fact, recorded as written by this process (``source="api"``) in this call."""
        return core.run(core.remember(key, value, self._origin()), self.memory)

    def remember_fact(self, text: str) -> str:
        return core.run(core.remember_fact(text, self.call_id), self.memory)

    def forget(self, key: str) -> str:
        return core.run(core.forget(key, self._origin()), self.memory)

    def fact(self, key: str) -> Fact | None:
        """The fact under ``key`` with where it came from (source, platform, call, time)."""
        return core.run(facts.fact(key), self.memory)

    def facts(self) -> dict[str, Fact]:
        """Every fact of the caller, each with its provenance."""
        return core.run(facts.all_facts(), self.memory)

    def history(self, key: str) -> list[Fact]:
        """The fact's last writes (``facts.HISTORY``), newest first; removals included."""
        return core.run(facts.history(key), self.memory)

    def end_call(self, summary: str | None = None, outcome: str | None = None) -> CallEnd:
        """Record the call (once; later calls do nothing) and run the summariser in a thread."""
        event = self._end(summary, outcome)
        if not self._ended:
            core.run(core.end_call(event, self.config.facts), self.memory)
            self._ended = True
            if self.config.summarizer is not None:
                worker = threading.Thread(target=self._summarise, args=(event,), daemon=False)
                worker.start()
                self._threads.append(worker)
        return event

    def _summarise(self, event: CallEnd) -> None:
        try:
            result = self.config.summarizer(self._with_turns(event))  # type: ignore[misc]
            if inspect.isawaitable(result):
                result = asyncio.run(_awaited(result))
            later = event.summarised(result)
            if later is not None:
                core.run(core.end_call(later, self.config.facts), self.memory)
        except Exception:  # the call is stored; a failing hook only loses its summary
            log.exception(FAILED, event.platform, event.call_id)

    def close(self) -> None:
        """Wait for a running summariser, then release the memory."""
        for worker in self._threads:
            worker.join()
        self.memory.close()

    def __enter__(self) -> CallMemory:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncCallMemory(_CallBase):
    """The memory of the caller at ``phone_number`` for one call (asyncio)."""

    def _open(self, url: str | None, api_key: str | None, engine: Engine | None) -> None:
        self.memory = AsyncMemory(self.namespace, url=url, api_key=api_key, engine=engine)
        self._tasks: set[asyncio.Task[None]] = set()

    async def context(self, budget: int | None = None) -> str:
        return (await self.briefing(budget)).memory

    async def variables(self, budget: int | None = None) -> dict[str, str]:
        return (await self.briefing(budget)).variables

    async def briefing(self, budget: int | None = None) -> core.Briefing:
        plan = core.briefing(_budget(budget, self.config), self.config.variables)
        return await core.arun(plan, self.memory)

    async def record_turn(self, role: str, text: str) -> None:
        await self.memory.log(CONVERSATION).append(self._turn(role, text))

    async def tool(self, name: str, args: dict[str, Any]) -> str:
        """Answer one in-call tool (``core.TOOLS``); mistakes and outages in words."""
        try:
            return await core.arun(core.tool(name, args, self._origin("tool")), self.memory)
        except BotWireError as exc:
            return _tool_failure(name, exc)

    async def recall(self, query: str, limit: int = 5) -> str:
        return await core.arun(core.recall(query, limit), self.memory)

    async def remember(self, key: str, value: Any) -> str:
        return await core.arun(core.remember(key, value, self._origin()), self.memory)

    async def remember_fact(self, text: str) -> str:
        return await core.arun(core.remember_fact(text, self.call_id), self.memory)

    async def forget(self, key: str) -> str:
        return await core.arun(core.forget(key, self._origin()), self.memory)

    async def fact(self, key: str) -> Fact | None:
        return await core.arun(facts.fact(key), self.memory)

    async def facts(self) -> dict[str, Fact]:
        return await core.arun(facts.all_facts(), self.memory)

    async def history(self, key: str) -> list[Fact]:
        return await core.arun(facts.history(key), self.memory)

    async def end_call(self, summary: str | None = None, outcome: str | None = None) -> CallEnd:
        """Record the call (once) and start the summariser as a task; ``aclose`` waits for it."""
        event = self._end(summary, outcome)
        if not self._ended:
            await core.arun(core.end_call(event, self.config.facts), self.memory)
            self._ended = True
            if self.config.summarizer is not None:
                task = asyncio.get_running_loop().create_task(self._summarise(event))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
        return event

    async def _summarise(self, event: CallEnd) -> None:
        await summarise_into(self.config, self._with_turns(event), self._store)

    async def _store(self, event: CallEnd) -> Any:
        return await core.arun(core.end_call(event, self.config.facts), self.memory)

    async def aclose(self) -> None:
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.memory.aclose()

    async def __aenter__(self) -> AsyncCallMemory:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


async def summarise_into(
    config: VoiceConfig, event: CallEnd, store: Callable[[CallEnd], Awaitable[Any]]
) -> None:
    """Run the summariser and ``store`` its summary as the call's ``summary`` part; a failure
    is logged (the call itself is stored already)."""
    try:
        later = event.summarised(await summarise(config, event))
        if later is not None:
            await store(later)
    except Exception:
        log.exception(FAILED, event.platform, event.call_id)


async def summarise(config: VoiceConfig, event: CallEnd) -> str | None:
    """Run the configured summariser off the event loop (a sync one in a thread)."""
    hook = config.summarizer
    if hook is None:
        return None
    if inspect.iscoroutinefunction(hook):
        return await hook(event)  # type: ignore[no-any-return]
    result = await asyncio.to_thread(hook, event)
    return await result if inspect.isawaitable(result) else result  # type: ignore[return-value]


async def _awaited(result: Any) -> Any:
    return await result


def _tool_failure(name: str, exc: BotWireError) -> str:
    if isinstance(exc, (core.ToolError, InvalidInput)):
        return str(exc)
    log.warning("botwire: tool %s failed: %s", name, exc)
    return "The memory is unavailable right now."


def _budget(budget: int | None, config: VoiceConfig) -> int:
    if budget is None:
        return config.budget
    if type(budget) is not int or budget < 0:
        raise InvalidInput(f"budget must be an int >= 0, not {budget!r}")
    return budget
