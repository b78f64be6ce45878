"""Memory for voice calls: webhooks for Vapi, Retell, ElevenLabs, Twilio and Telnyx (in the
server), and ``CallMemory`` for pipelines that run their own audio loop.

>>> from botwire.voice import CallMemory
>>> call = CallMemory("+14155550123")            # doctest: +SKIP
>>> call.context()                               # doctest: +SKIP
'Known facts:\\n- customer_name: Ana\\nRecent calls, newest first:\\n- 2025-08-18 10:05 UTC, ...'
"""

from .call import AsyncCallMemory, CallMemory
from .config import Summarizer, VoiceConfig
from .context import Snapshot
from .core import TOOLS, Briefing, ToolError
from .phone import InvalidNumber, namespace_for, to_e164
from .records import CallEnd, Turn, merge_calls

__all__ = [
    "CallMemory",
    "AsyncCallMemory",
    "VoiceConfig",
    "Summarizer",
    "Briefing",
    "Snapshot",
    "CallEnd",
    "Turn",
    "TOOLS",
    "ToolError",
    "InvalidNumber",
    "to_e164",
    "namespace_for",
    "merge_calls",
]
