"""What every request handler shares: one engine, the settings, keys, quotas and metrics."""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from ..engines.base import Engine
from .auth import KeyRing
from .config import Settings
from .metrics import Metrics
from .quotas import Quotas

# The id of the request being answered (set by ``app.Edge``; error bodies and log lines carry it).
REQUEST_ID: ContextVar[str | None] = ContextVar("botwire_request_id", default=None)


@dataclass
class Context:
    engine: Engine
    settings: Settings
    keyring: KeyRing
    quotas: Quotas
    metrics: Metrics
    voice: Any = None  # server.voice.Voices, set at startup
    mcp: Any = None  # server.mcp.Endpoint, set at startup when the mcp extra is installed

    @classmethod
    def build(cls, engine: Engine, settings: Settings) -> Context:
        keyring = KeyRing(
            engine,
            cache_seconds=settings.key_cache_seconds,
            failures=settings.auth_failures,
            window=settings.auth_window,
        )
        return cls(engine, settings, keyring, Quotas(engine, settings), Metrics())
