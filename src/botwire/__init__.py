"""botwire: persistent memory for voice AI agents and agent frameworks.

>>> from botwire import Memory
>>> memory = Memory("customer-555-0123")      # doctest: +SKIP
>>> memory.set("last_order", "ORDER-789")     # doctest: +SKIP
>>> memory.get("last_order")                  # doctest: +SKIP
'ORDER-789'
"""

from typing import Any

from ._version import __version__
from .errors import (
    AuthenticationFailed,
    BotWireError,
    ConfigurationError,
    InvalidInput,
    InvalidKey,
    MissingDependency,
    NamespaceNotEmpty,
    NotFound,
    PermissionDenied,
    QuotaExceeded,
    StorageUnavailable,
    UnsupportedValue,
    ValueTooLarge,
    VersionConflict,
)
from .memory import AsyncLog, AsyncMemory, KeyInfo, Log, LogEntry, Memory, SearchHit
from .namespaces import aforget, anamespaces, forget, namespaces

__all__ = [
    "__version__",
    "Memory",
    "AsyncMemory",
    "Log",
    "AsyncLog",
    "LogEntry",
    "KeyInfo",
    "SearchHit",
    "BotWireChatHistory",
    "namespaces",
    "forget",
    "anamespaces",
    "aforget",
    "BotWireError",
    "InvalidInput",
    "InvalidKey",
    "ValueTooLarge",
    "UnsupportedValue",
    "NotFound",
    "VersionConflict",
    "NamespaceNotEmpty",
    "QuotaExceeded",
    "StorageUnavailable",
    "AuthenticationFailed",
    "PermissionDenied",
    "ConfigurationError",
    "MissingDependency",
]


def __getattr__(name: str) -> Any:
    # BotWireChatHistory needs langchain-core, imported only when the class is asked for.
    if name == "BotWireChatHistory":
        from .adapters import chat_history_class

        value = globals()[name] = chat_history_class()
        return value
    raise AttributeError(f"module 'botwire' has no attribute {name!r}")
