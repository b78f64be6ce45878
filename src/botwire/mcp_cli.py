"""``botwire mcp``: the call tools over stdio, for desktop clients (Claude Desktop, Cursor), on
the embedded database or, with ``--url``, a botwire server (its API key bounds what is reached).

With ``--caller`` every tool works on that one caller; without it the operator's client names
the caller in each tool call (a desktop client is its operator's, not a caller's model).
"""

from __future__ import annotations

import asyncio
from typing import Any

import click

from .errors import AuthenticationFailed, BotWireError, InvalidInput, PermissionDenied
from .memory import AsyncMemory
from .voice import core
from .voice.config import VoiceConfig
from .voice.facts import Origin
from .voice.phone import InvalidNumber, namespace_for, to_e164


class Desk:
    """The answers of one ``botwire mcp`` process: one engine, the callers it may reach."""

    def __init__(self, held: AsyncMemory, config: VoiceConfig, caller: str | None) -> None:
        self.held, self.config = held, config
        self.fixed = self.namespace(caller) if caller else None

    def namespace(self, number: str) -> str:
        return namespace_for(to_e164(number, self.config.default_country), self.config.namespace)

    async def answer(self, ctx: Any, name: str, args: dict[str, Any]) -> tuple[str, bool]:
        number = args.pop("caller", None)
        try:
            ns = self.fixed or self.namespace(_given(number))
            memory = AsyncMemory(ns, engine=self.held.engine)
            plan = core.tool(name, args, Origin("mcp", "desktop"), self.config.budget)
            return await core.arun(plan, memory), True
        except (InvalidNumber, core.ToolError, InvalidInput, PermissionDenied) as exc:
            return str(exc), False
        except AuthenticationFailed:
            return "The botwire server refused this API key.", False
        except BotWireError as exc:  # the server or the database is away: said, not raised
            return f"The memory could not be reached: {exc}", False


def _given(number: Any) -> str:
    if number is None or (isinstance(number, str) and not number.strip()):
        raise core.ToolError(
            "missing argument 'caller': the caller's phone number, like +14155550123"
        )
    if not isinstance(number, str):
        raise core.ToolError("argument 'caller' must be a string, like \"+14155550123\"")
    return number


@click.command("mcp")
@click.option(
    "--url",
    default=None,
    help="Database or server URL (default: BOTWIRE_URL, BOTWIRE_DATABASE_URL, else the "
    "embedded SQLite file).",
)
@click.option("--api-key", default=None, envvar="BOTWIRE_API_KEY", help="For a server --url.")
@click.option("--caller", default=None, help="Work on this caller only (a phone number).")
def mcp(url: str | None, api_key: str | None, caller: str | None) -> None:
    """The call tools over stdio (Model Context Protocol), for desktop clients."""
    from .mcp_tools import build  # needs the mcp extra: a clear error when it is missing
    from .voice.settings import VoiceSettings

    config = VoiceSettings.load().core()
    try:
        asyncio.run(_serve(build, url, api_key, config, caller))
    except InvalidNumber as exc:
        raise click.BadParameter(str(exc), param_hint="--caller") from None


async def _serve(
    build: Any, url: str | None, api_key: str | None, config: VoiceConfig, caller: str | None
) -> None:
    from mcp.server.stdio import stdio_server

    async with AsyncMemory("~botwire:mcp", url=url, api_key=api_key) as held:
        desk = Desk(held, config, caller)
        server = build(desk.answer, caller_argument=desk.fixed is None)
        async with stdio_server() as (read, write):
            await server.run(read, write, server.create_initialization_options())
