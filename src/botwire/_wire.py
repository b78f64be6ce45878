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
import re
import time
from typing import Any
from urllib.parse import quote, unquote

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
    "no_such_route": (404, errors.ConfigurationError),  # a path that is not botwire's API
    "method_not_allowed": (405, errors.InvalidInput),
    # the request did not arrive in time (server/protocol.py): the link, not the request, failed
    "request_timeout": (408, errors.StorageUnavailable),
    "not_an_integer": (409, errors.UnsupportedValue),
    "namespace_not_empty": (409, errors.NamespaceNotEmpty),
    "version_conflict": (412, errors.VersionConflict),
    "value_too_large": (413, errors.ValueTooLarge),
    "body_too_large": (413, errors.InvalidInput),
    "storage_quota_exceeded": (413, errors.QuotaExceeded),
    "unsupported_value": (422, errors.UnsupportedValue),
    "invalid_request": (422, errors.InvalidInput),
    "write_quota_exceeded": (429, errors.QuotaExceeded),
    "too_many_auth_failures": (429, errors.AuthenticationFailed),
    "not_installed": (501, errors.MissingDependency),  # an endpoint whose extra is missing
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


def error_of(body: bytes) -> dict[str, Any] | None:
    """The ``error`` of a botwire error body, or None for any other body (a proxy's page)."""
    try:
        err = json.loads(body)["error"]
        if isinstance(err, dict) and isinstance(err["code"], str) and "message" in err:
            return err
    except (ValueError, KeyError, TypeError):
        pass
    return None


def raise_for_error(status: int, body: bytes, headers: Any, *, key: str = "") -> None:
    """Raise the exception for an error answer (status >= 400), also for an answer that
    is not ours (a proxy's 502 or 429, say): then the status alone decides."""
    err = error_of(body)
    if err is not None:
        code, message = err["code"], str(err["message"])
    else:
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
    if cls is errors.NamespaceNotEmpty:
        raise errors.NamespaceNotEmpty(str(err.get("namespace", "")), message)
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


# query options that hold a secret (libpq's password and sslpassword; API keys, tokens)
SECRET_OPTIONS = frozenset(
    {"password", "sslpassword", "api_key", "apikey", "key", "token", "access_token", "secret"}
)


def redact(url: str) -> str:
    """``url`` without its secrets, for reprs, logs and messages: no password, no user part in
    an http(s) URL (it is the API key), no secret query option (``SECRET_OPTIONS``); scheme,
    database user, host, port, path and the other options are kept as written. Text that is not
    a URL (a libpq conninfo, ``host=db password=...``) keeps everything but the values of its
    secret options, shown as ``***``.

    A password may hold a raw ``@``, ``?``, ``#`` or ``/`` (libpq takes the first three): the
    userinfo ends at the first ``@`` followed by something that reads as a host, so no part of
    such a password is shown."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return _SECRET_PAIR.sub(_masked_pair, url)
    at = _userinfo_end(rest)
    userinfo, host_and_tail = (rest[:at], rest[at + 1 :]) if at >= 0 else ("", rest)
    end = min((i for i in map(host_and_tail.find, "/?#") if i >= 0), default=len(host_and_tail))
    host, tail = host_and_tail[:end], host_and_tail[end:]
    user = "" if scheme.lower() in ("http", "https") else userinfo.partition(":")[0]
    netloc = f"{user}@{host}" if user else host
    return f"{scheme}://{netloc}{_without_secret_options(tail)}"


def _userinfo_end(rest: str) -> int:
    """The index of the ``@`` that ends the userinfo in ``rest`` (a URL after ``://``), or -1.

    It is the first ``@`` after which comes a host (up to the next ``/``, ``?`` or ``#``: no
    ``@``, ``=``, ``&`` or space), before which comes a user name (up to the first ``:``: no
    ``/``, ``?``, ``#`` or bracket) and that is not ``host:port/`` (an ``@`` in the path or
    query)."""
    at = rest.find("@")
    while at >= 0:
        after = rest[at + 1 :]
        host = after[: min((i for i in map(after.find, "/?#") if i >= 0), default=len(after))]
        user, colon, password = rest[:at].partition(":")
        if (
            not _NOT_IN_HOST.search(host)
            and not _NOT_IN_USER.search(user)
            and not (colon and _PORT_THEN_PATH.match(password))
        ):
            return at
        at = rest.find("@", at + 1)
    return -1


_NOT_IN_HOST = re.compile(r"[@=&\s]")
_NOT_IN_USER = re.compile(r"[/?#\[\]]")
_PORT_THEN_PATH = re.compile(r"\d+/")  # libpq reads host:5432/db...@ as no userinfo too
# libpq conninfo pairs: key = value, the value unquoted (backslash escapes) or in single quotes
_SECRET_PAIR = re.compile(
    r"(?P<key>(?<![^\s])(?:" + "|".join(sorted(SECRET_OPTIONS)) + r")\s*=\s*)"
    r"(?P<value>'(?:[^'\\]|\\.)*(?:'|\\?$)|(?:[^\s\\]|\\.)*\\?)",
    re.IGNORECASE | re.DOTALL,
)


def _masked_pair(match: re.Match[str]) -> str:
    return match.group("key") + "***"


def _without_secret_options(tail: str) -> str:
    path, question, rest = tail.partition("?")
    if not question:
        return tail
    query, hash_, fragment = rest.partition("#")
    kept = [
        option
        for option in query.split("&")
        if unquote(option.partition("=")[0]).lower() not in SECRET_OPTIONS
    ]
    return path + ("?" + "&".join(kept) if kept else "") + hash_ + fragment
