"""botwire's call tools as a Model Context Protocol server (the official ``mcp`` SDK, the
``botwire[mcp]`` extra): one low-level ``Server`` whose tools are ``voice.core``'s, answered by
whichever transport builds it (``/mcp`` on ``botwire serve``, ``botwire mcp`` on stdio).

The transport decides whose memory a tool touches (``Answer``): over HTTP the call, never an
argument (``server/mcp.py``); on stdio the operator. Mistakes and refusals are tool errors
(``isError``), said in words a voice model can repeat, never protocol failures.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

try:
    import mcp_types as types
    from mcp.server import Server, ServerRequestContext
except ImportError as exc:  # the extra is missing
    from .errors import MissingDependency

    raise MissingDependency("the MCP server", "mcp", exc) from exc

from ._version import __version__

INSTRUCTIONS = (
    "Memory of the person on this call, kept between calls. Call get_caller_context at the "
    "start; recall_memory to look something up; remember or remember_fact when they tell you "
    "something worth keeping. The caller is fixed by the call: you cannot look up anyone else."
)
CALLER = {
    "type": "string",
    "description": "The caller's phone number in international form, like +14155550123.",
}


@dataclass(frozen=True)
class Spec:
    name: str
    description: str
    properties: dict[str, Any] = field(default_factory=dict)
    required: tuple[str, ...] = ()

    def tool(self, caller: bool) -> types.Tool:
        properties, required = dict(self.properties), list(self.required)
        if caller:
            properties["caller"], required = CALLER, ["caller", *required]
        schema = {"type": "object", "properties": properties, "required": required}
        return types.Tool(name=self.name, description=self.description, input_schema=schema)


def _text(description: str) -> dict[str, str]:
    return {"type": "string", "description": description}


SPECS = (
    Spec(
        "get_caller_context",
        "What is remembered about this caller: known facts, open items, recent calls and "
        "notes, as short lines. Use it at the start of the call.",
    ),
    Spec(
        "recall_memory",
        "Search what is remembered about this caller for a few keywords; answers the "
        "matching facts, calls, things they said and notes, one per line.",
        {
            "query": _text("A few keywords, like 'order refund'."),
            "limit": {"type": "integer", "minimum": 1, "maximum": 20, "default": 5},
        },
        ("query",),
    ),
    Spec(
        "remember",
        "Keep one fact about this caller under a short key, replacing what the key held. "
        "Keys starting with open: record something still open.",
        {
            "key": _text("A short name, like customer_name or open:refund."),
            "value": {"description": "The fact: text, a number, or a small object."},
        },
        ("key", "value"),
    ),
    Spec(
        "remember_fact",
        "Note one sentence about this caller, for later calls.",
        {"text": _text("The sentence, like 'Prefers email over SMS'.")},
        ("text",),
    ),
    Spec(
        "forget",
        "Remove the fact kept under a key (an open: key closes the open item).",
        {"key": _text("The key to remove.")},
        ("key",),
    ),
    Spec("list_memories", "Every fact and open item kept about this caller, one per line."),
)
BY_NAME = {spec.name: spec for spec in SPECS}  # MCP_TOOLS, each with its description

#: ``answer(request context, tool name, arguments) -> (text, ok)``
Answer = Callable[[ServerRequestContext, str, dict[str, Any]], Awaitable[tuple[str, bool]]]


def build(answer: Answer, caller_argument: bool = False) -> Server:
    """The tool server. ``caller_argument``: the tools take the caller as an argument (only for
    an operator's own client, never for a call's model)."""
    tools = [spec.tool(caller_argument) for spec in SPECS]

    async def list_tools(
        ctx: ServerRequestContext, params: types.PaginatedRequestParams | None
    ) -> types.ListToolsResult:
        return types.ListToolsResult(tools=tools)

    async def call_tool(
        ctx: ServerRequestContext, params: types.CallToolRequestParams
    ) -> types.CallToolResult:
        if params.name not in BY_NAME:
            known = ", ".join(BY_NAME)
            return result(f"unknown tool {params.name!r}; botwire answers {known}", False)
        return result(*await answer(ctx, params.name, dict(params.arguments or {})))

    return Server(
        "botwire",
        version=__version__,
        instructions=INSTRUCTIONS,
        on_list_tools=list_tools,
        on_call_tool=call_tool,
    )


def result(text: str, ok: bool) -> types.CallToolResult:
    return types.CallToolResult(
        content=[types.TextContent(type="text", text=text)], is_error=not ok
    )
