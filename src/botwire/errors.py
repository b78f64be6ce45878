"""Every error botwire raises, in one tree.

::

    BotWireError
    ├── InvalidInput (ValueError)        bad key, TTL, argument or value content
    │   ├── InvalidKey                   empty, longer than 512 characters, NUL, not a str
    │   └── ValueTooLarge                encoded value above ``max_value_bytes``
    ├── UnsupportedValue (TypeError)     not a JSON value; ``incr`` on a value that is not an int
    ├── NotFound (KeyError)              ``m[key]`` / ``del m[key]`` on a missing key
    ├── VersionConflict                  compare-and-set lost; ``.current_version``
    ├── NamespaceNotEmpty                an import found other data in a namespace; ``.namespace``
    ├── QuotaExceeded                    a quota is used up; ``.retry_after`` (seconds or None)
    ├── StorageUnavailable               database or server down, locked past the timeout
    ├── AuthenticationFailed             the server did not accept the API key (HTTP 401)
    ├── PermissionDenied                 the API key may not do this here (HTTP 403)
    ├── ConfigurationError               bad URL or setting
    │   └── MissingDependency (ImportError)  an optional extra is not installed; names the extra
    └── BackupError (botwire.backup)     a backup or restore refused or failed

Errors a subclass of a builtin can be caught either way: ``except ValueError`` catches
``InvalidKey``. Driver errors (``sqlite3``, ``psycopg``) never escape an engine: they are
mapped to ``StorageUnavailable`` (or re-raised as a bug) at the engine boundary, with the
original chained as ``__cause__``.
"""

from __future__ import annotations

__all__ = [
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


class BotWireError(Exception):
    """Base class of every botwire error."""


class InvalidInput(BotWireError, ValueError):
    """An argument is out of range or a value's content cannot be stored."""


class InvalidKey(InvalidInput):
    """A key, namespace or log name is not a 1-512 character string without NUL."""


class ValueTooLarge(InvalidInput):
    """The encoded value is larger than the configured ``max_value_bytes``."""

    def __init__(self, size: int, limit: int, name: str = "value") -> None:
        super().__init__(
            f"{name} is {size} bytes encoded; the limit is {limit} bytes (raise it with "
            "Memory(..., max_value_bytes=N) or BOTWIRE_MAX_VALUE_BYTES; a botwire server reads "
            "its own BOTWIRE_MAX_VALUE_BYTES); nothing was stored"
        )
        self.size = size
        self.limit = limit


class UnsupportedValue(BotWireError, TypeError):
    """The value is not a JSON value (or, for ``incr``, the stored value is not an int)."""


class NotFound(BotWireError, KeyError):
    """The key does not exist (or has expired)."""

    def __str__(self) -> str:
        return Exception.__str__(self)


class VersionConflict(BotWireError):
    """A compare-and-set write found another version; nothing was written."""

    def __init__(self, key: str, expected: int, current_version: int) -> None:
        state = "absent" if current_version == 0 else f"at version {current_version}"
        super().__init__(f"key {key!r} is {state}, not at version {expected}")
        self.key = key
        self.expected = expected
        self.current_version = current_version


class NamespaceNotEmpty(BotWireError):
    """An import would overwrite a namespace that holds other data; nothing was written."""

    def __init__(self, namespace: str, message: str | None = None) -> None:
        super().__init__(
            message
            or f"namespace {namespace!r} already holds different data; "
            "import with --replace (replace=True) to overwrite it"
        )
        self.namespace = namespace


class QuotaExceeded(BotWireError):
    """A quota is used up; ``retry_after`` says when to try again (seconds, or None)."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class StorageUnavailable(BotWireError):
    """The storage could not be reached or stayed locked past the timeout."""


class AuthenticationFailed(BotWireError):
    """The botwire server did not accept the API key (missing, unknown or revoked)."""


class PermissionDenied(BotWireError):
    """The API key's scopes do not cover this namespace, or lack the right needed."""


class ConfigurationError(BotWireError):
    """A URL, setting or optional dependency is wrong or missing."""


class MissingDependency(ConfigurationError, ImportError):
    """An optional extra is not installed; the message names the ``pip install`` that fixes it."""

    def __init__(self, feature: str, extra: str, cause: BaseException | None = None) -> None:
        detail = f" ({cause})" if cause is not None else ""
        super().__init__(
            f"{feature} needs the optional dependencies of botwire[{extra}]: "
            f"{install_hint(extra)}{detail}"
        )
        self.extra = extra


def install_hint(extra: str) -> str:
    """How to add an extra: botwire installs from its source (the package index's ``botwire`` is
    another project, the older 0.2.1 hosted-service client)."""
    return (
        f'pip install "./botwire[{extra}]" from a checkout or wheel of botwire (not from the '
        "package index, whose 'botwire' is the older 0.2.1 client; see the README's Install)"
    )
