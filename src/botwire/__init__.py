"""botwire: persistent memory for voice AI agents and agent frameworks.

>>> from botwire import Memory
>>> memory = Memory("customer-555-0123")      # doctest: +SKIP
>>> memory.set("last_order", "ORDER-789")     # doctest: +SKIP
>>> memory.get("last_order")                  # doctest: +SKIP
'ORDER-789'
"""

from ._version import __version__
from .errors import (
    AuthenticationFailed,
    BotWireError,
    ConfigurationError,
    InvalidInput,
    InvalidKey,
    MissingDependency,
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
    "QuotaExceeded",
    "StorageUnavailable",
    "AuthenticationFailed",
    "PermissionDenied",
    "ConfigurationError",
    "MissingDependency",
]

