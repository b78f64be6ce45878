"""What the botwire server and its HTTP client agree on, written once: error codes, cursors,
path quoting. Imported by both sides; needs nothing beyond the standard library.

Every error answer has one body, ``{"error": {"code": "...", "message": "..."}}`` (plus
``current_version`` for a version conflict), and each code maps to one status and one
exception class. The client turns a code back into the exception the embedded engines raise,
so code written against ``Memory`` behaves the same against a server.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import time
from typing import Any
from urllib.parse import quote, urlsplit

from . import errors

# code -> (HTTP status, exception class raised by the client)
CODES: dict[str, tuple[int, type[errors.BotWireError]]] = {
    "invalid_key": (400, errors.InvalidKey),
    "invalid_input": (400, errors.InvalidInput),
    "malformed_json": (400, errors.InvalidInput),
    "invalid_cursor": (400, errors.InvalidInput),
    "unauthorized": (401, errors.AuthenticationFailed),
    "forbidden": (403, errors.PermissionDenied),
    "not_found": (404, errors.NotFound),
    "method_not_allowed": (405, errors.InvalidInput),
    "not_an_integer": (409, errors.UnsupportedValue),
    "version_conflict": (412, errors.VersionConflict),
    "value_too_large": (413, errors.ValueTooLarge),
    "body_too_large": (413, errors.InvalidInput),
    "storage_quota_exceeded": (413, errors.QuotaExceeded),
    "unsupported_value": (422, errors.UnsupportedValue),
    "invalid_request": (422, errors.InvalidInput),
    "write_quota_exceeded": (429, errors.QuotaExceeded),
    "too_many_auth_failures": (429, errors.AuthenticationFailed),
    "storage_unavailable": (503, errors.StorageUnavailable),
    "internal": (500, errors.StorageUnavailable),
}

API_KEY_PREFIX = "bw_"


def error_body(code: str, message: str, **extra: Any) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, **extra}}


_BY_STATUS = {
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    412: "version_conflict",
    413: "body_too_large",
    429: "write_quota_exceeded",
    503: "storage_unavailable",
}


def raise_for_error(status: int, body: bytes, headers: Any, *, key: str = "") -> None:
    """Raise the exception for an error answer (status >= 400), also for an answer that
    is not ours (a proxy's 502 or 429, say): then the status alone decides."""
    try:
        err = json.loads(body)["error"]
        code, message = str(err["code"]), str(err["message"])
    except (ValueError, KeyError, TypeError):
        code = _BY_STATUS.get(status, "internal" if status >= 500 else "invalid_request")
        message = f"the server answered {status}: {body[:200]!r}"
        err = {}
    cls = CODES.get(code, (status, errors.BotWireError))[1]
    if cls is errors.VersionConflict:
        raise errors.VersionConflict(
            key, int(err.get("expected", -1)), int(err.get("current_version", 0))
        )
    if cls is errors.ValueTooLarge:
        raise errors.ValueTooLarge(int(err.get("size", 0)), int(err.get("limit", 0)))
    if cls is errors.QuotaExceeded:
        raise errors.QuotaExceeded(message, retry_after=retry_after(headers))
    exc = cls(message)
    if status == 429:  # too many failed keys: when to try again
        exc.retry_after = retry_after(headers)  # type: ignore[attr-defined]
    raise exc


def retry_after(headers: Any) -> float | None:
    raw = headers.get("retry-after")
    try:
        return float(raw) if raw is not None else None
    except ValueError:
        return None


def seconds_to_utc_midnight(now: float | None = None) -> int:
    now = time.time() if now is None else now
    return max(1, math.ceil(86400 - now % 86400))


# -- cursors: opaque to API users, the last key (or namespace) of the page --------------------


def make_cursor(after: str) -> str:
    raw = json.dumps({"after": after}, ensure_ascii=False).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def read_cursor(cursor: str) -> str:
    """The ``after`` inside a cursor, or ``InvalidInput`` for anything not made here."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        after = json.loads(raw)["after"]
    except (ValueError, KeyError, TypeError, binascii.Error):
        raise errors.InvalidInput(
            f"bad cursor {cursor[:80]!r}: pass next_cursor back as given"
        ) from None
    if not isinstance(after, str):
        raise errors.InvalidInput("bad cursor: pass next_cursor back as given")
    return after


def segment(name: str) -> str:
    """One path segment: everything but letters, digits, ``-``, ``_`` and ``~`` percent-encoded
    (dots too, or clients and proxies would resolve a key named ``..`` as a path step)."""
    return quote(name, safe="").replace(".", "%2E")


def redact(url: str) -> str:
    """``url`` without its secrets (a password; the user part of an http URL is an API key),
    for reprs, logs and messages."""
    parts = urlsplit(url)
    if parts.password is None and not (parts.username and parts.scheme.startswith("http")):
        return url
    return parts._replace(netloc="***@" + parts.netloc.rpartition("@")[2]).geturl()
