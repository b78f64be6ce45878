"""CrewAI adapter: tools for agents, and a storage backend for CrewAI's own memory.

::

    from crewai import Agent
    from crewai.memory import Memory as CrewMemory
    from botwire.adapters.crewai import BotWireStorage, botwire_tools

    agent = Agent(role=..., goal=..., backstory=..., tools=botwire_tools("customer-555-0123"))
    memory = CrewMemory(storage=BotWireStorage("support-crew"), embedder=...)

See docs/crewai.md. Needs ``pip install './botwire[crewai]'``.
"""

from __future__ import annotations

from . import require

require("crewai", "crewai", "botwire.adapters.crewai")

from .crewai_storage import BotWireStorage  # noqa: E402
from .crewai_tools import (  # noqa: E402
    BotWireForgetTool,
    BotWireListTool,
    BotWireRecallTool,
    BotWireRememberTool,
    BotWireTool,
    botwire_tools,
)

__all__ = [
    "BotWireForgetTool",
    "BotWireListTool",
    "BotWireRecallTool",
    "BotWireRememberTool",
    "BotWireStorage",
    "BotWireTool",
    "botwire_tools",
]
