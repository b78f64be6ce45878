"""Webhook authentication for the voice platforms: Retell, ElevenLabs, Vapi and Twilio
(Telnyx's Ed25519 is in its own module, as it needs PyNaCl).

Pure functions over the raw request: no I/O, stdlib only, every comparison constant-time.
Each ``verify_*`` returns a *replay token* identifying this exact signed request (the same
request gives the same token, another request another token) or raises ``SignatureError``,
whose ``reason`` is one of ``missing``, ``malformed``, ``stale``, ``forged`` and whose message
never contains a secret or an expected digest. Tokens start with the platform's name, so one
replay store serves them all.

An empty or non-string secret is a configuration error (``WebhookConfigError``, a
``ValueError``), never "accept anything". Secrets given as ``str`` are encoded UTF-8.

The ``sign_*`` functions produce what each platform sends; tests, docs and the demo use them.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import BotWireError, ConfigurationError

__all__ = [
    "SignatureError",
    "WebhookConfigError",
    "VapiAuth",
    "verify_retell",
    "verify_elevenlabs",
    "ElevenLabsStream",
    "verify_vapi",
    "verify_twilio",
    "twilio_algorithm",
    "verify_shared_secret",
    "sign_retell",
    "sign_elevenlabs",
    "sign_vapi_hmac",
    "sign_twilio",
]

_MESSAGES = {
    "missing": "the webhook's signature or secret header is missing",
    "malformed": "the webhook's signature header is malformed",
    "stale": "the webhook's timestamp is outside the accepted window",
    "forged": "the webhook's signature or secret does not match",
}
_DIGESTS: dict[str, Callable[[], Any]] = {
    "sha256": hashlib.sha256,
    "sha1": hashlib.sha1,
    "sha512": hashlib.sha512,
}
_MODES = ("secret", "bearer", "hmac")
_ENCODINGS = ("hex", "base64")
_DEFAULT_PORTS = {"https": "443", "http": "80"}
TWILIO_SHA1 = "HMAC_SHA1"  # the auth token's signature; a SharedKey's may be HMAC_SHA256
_MAX_TIMESTAMP_DIGITS = 18  # beyond the year 33000 even in milliseconds: certainly stale

_RETELL = re.compile(r"v=([0-9]+),d=([0-9a-f]{64})")
_DIGITS = re.compile(r"[0-9]+")
_HEX = re.compile(r"[0-9a-fA-F]+")
_BASE64 = re.compile(r"[A-Za-z0-9+/]+={0,2}")
_TWILIO_DIGESTS: dict[str, Callable[[], Any]] = {
    "HMAC_SHA1": hashlib.sha1,
    "HMAC_SHA256": hashlib.sha256,
}
_TWILIO_FORMS = {  # base64 of a 20- and a 32-byte digest
    "HMAC_SHA1": re.compile(r"[A-Za-z0-9+/]{27}="),
    "HMAC_SHA256": re.compile(r"[A-Za-z0-9+/]{43}="),
}
_HOST_PORT = re.compile(r"(\[[^\]]*\]|[^:\[\]]*):([0-9]+)")


class SignatureError(BotWireError):
    """A webhook failed authentication; ``reason``: missing, malformed, stale or forged.

    Uncaught by the server it answers 401 (``code`` ``unauthorized``).
    """

    code = "unauthorized"

    def __init__(self, reason: str) -> None:
        super().__init__(_MESSAGES[reason])
        self.reason = reason


class WebhookConfigError(ConfigurationError, ValueError):
    """A webhook secret or verification setting is empty or unknown."""


@dataclass(frozen=True)
class VapiAuth:
    """How Vapi authenticates its server-URL requests (all of it configurable on Vapi's side).

    ``mode``: ``secret`` (``secret_header`` equals the secret), ``bearer``
    (``Authorization: Bearer <secret>``) or ``hmac`` (``signature_header`` holds
    ``prefix`` + HMAC(secret, ``"{timestamp}."`` + body) in ``encoding``, the timestamp, in
    seconds or milliseconds, in ``timestamp_header``, at most ``tolerance_s`` from now; with
    ``include_timestamp`` False, HMAC(secret, body) alone, and no timestamp is read).
    """

    mode: str
    secret: str
    secret_header: str = "x-vapi-secret"
    signature_header: str = "x-signature"
    timestamp_header: str = "x-timestamp"
    prefix: str = ""
    encoding: str = "hex"
    algorithm: str = "sha256"
    tolerance_s: int = 300
    include_timestamp: bool = True

    def __post_init__(self) -> None:
        _choice("Vapi auth mode", self.mode, _MODES)
        _choice("Vapi signature encoding", self.encoding, _ENCODINGS)
        _choice("Vapi signature algorithm", self.algorithm, tuple(_DIGESTS))
        _key(self.secret, "the Vapi secret")
        for name in ("secret_header", "signature_header", "timestamp_header"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value.strip():
                raise WebhookConfigError(f"VapiAuth.{name} must be a header name, not {value!r}")
        if not isinstance(self.prefix, str):
            raise WebhookConfigError("VapiAuth.prefix must be a string")
        if not isinstance(self.include_timestamp, bool):
            raise WebhookConfigError("VapiAuth.include_timestamp must be True or False")
        _tolerance(self.tolerance_s, "VapiAuth.tolerance_s")


# --- Retell -------------------------------------------------------------------------------


def verify_retell(
    body: bytes,
    header: str | None,
    api_key: str,
    *,
    now_ms: int | None = None,
    tolerance_ms: int = 300_000,
) -> str:
    """Check ``X-Retell-Signature: v=<timestamp_ms>,d=<hex>`` against the raw body."""
    key = _key(api_key, "the Retell API key")
    _tolerance(tolerance_ms, "tolerance_ms")
    match = _RETELL.fullmatch(_present(header))
    if match is None:
        raise SignatureError("malformed")
    stamp, given = match.groups()
    expected = _retell_digest(_raw(body), key, stamp)
    if not hmac.compare_digest(given.encode(), expected.encode()):
        raise SignatureError("forged")
    now = time.time_ns() // 1_000_000 if now_ms is None else now_ms
    _fresh(stamp, now, tolerance_ms)
    return f"retell:{expected}"


def sign_retell(body: bytes, api_key: str, timestamp_ms: int) -> str:
    """The ``X-Retell-Signature`` value Retell sends for ``body`` at ``timestamp_ms``."""
    stamp = _stamp(timestamp_ms)
    digest = _retell_digest(_raw(body), _key(api_key, "the Retell API key"), stamp)
    return f"v={stamp},d={digest}"


def _retell_digest(body: bytes, key: bytes, stamp: str) -> str:
    return hmac.new(key, body + stamp.encode(), hashlib.sha256).hexdigest()


# --- ElevenLabs ---------------------------------------------------------------------------


def verify_elevenlabs(
    body: bytes,
    header: str | None,
    secret: str,
    *,
    now: float | None = None,
    tolerance_s: int = 1800,
) -> str:
    """Check ``ElevenLabs-Signature: t=<unix_s>,v0=<hex>[,v0=<hex>...]`` against the raw body.

    Parts may come in any order with spaces after the commas; any one ``v0`` may match;
    unknown parts are ignored.
    """
    stream = ElevenLabsStream(header, secret, tolerance_s=tolerance_s)
    stream.update(_raw(body))
    return stream.verify(now=now)


class ElevenLabsStream:
    """:func:`verify_elevenlabs` for a body read piece by piece (``post_call_audio`` can be
    larger than the server keeps in memory): the header is checked at once, each piece goes
    through the HMAC as it arrives, and :meth:`verify` compares at the end, in constant time."""

    def __init__(self, header: str | None, secret: str, *, tolerance_s: int = 1800) -> None:
        key = _key(secret, "the ElevenLabs webhook secret")
        _tolerance(tolerance_s, "tolerance_s")
        self._stamp, self._candidates = _elevenlabs_parts(_present(header))
        self._tolerance = tolerance_s
        self._mac = hmac.new(key, f"{self._stamp}.".encode(), hashlib.sha256)

    def update(self, piece: bytes) -> None:
        self._mac.update(piece)

    def verify(self, *, now: float | None = None) -> str:
        """The replay token, or :class:`SignatureError` (forged, then stale)."""
        expected = self._mac.hexdigest().encode()
        matched = False
        for candidate in self._candidates:
            matched |= hmac.compare_digest(candidate.lower().encode(), expected)
        if not matched:
            raise SignatureError("forged")
        _fresh(self._stamp, time.time() if now is None else now, self._tolerance)
        return f"elevenlabs:{expected.decode()}"


def sign_elevenlabs(body: bytes, secret: str, timestamp: int) -> str:
    """The ``ElevenLabs-Signature`` value ElevenLabs sends for ``body`` at ``timestamp``."""
    stamp = _stamp(timestamp)
    digest = _elevenlabs_digest(_raw(body), _key(secret, "the ElevenLabs webhook secret"), stamp)
    return f"t={stamp},v0={digest}"


def _elevenlabs_parts(header: str) -> tuple[str, list[str]]:
    stamps: list[str] = []
    candidates: list[str] = []
    for part in header.split(","):
        name, equals, value = part.strip().partition("=")
        if not equals:
            raise SignatureError("malformed")
        if name == "t":
            stamps.append(value)
        elif name == "v0":
            candidates.append(value)
    if len(stamps) != 1 or not _DIGITS.fullmatch(stamps[0]) or not candidates:
        raise SignatureError("malformed")
    if not all(_HEX.fullmatch(c) and len(c) == 64 for c in candidates):
        raise SignatureError("malformed")
    return stamps[0], candidates


def _elevenlabs_digest(body: bytes, key: bytes, stamp: str) -> str:
    return hmac.new(key, f"{stamp}.".encode() + body, hashlib.sha256).hexdigest()


# --- Vapi ---------------------------------------------------------------------------------


def verify_vapi(
    body: bytes, headers: Mapping[str, str], auth: VapiAuth, *, now: float | None = None
) -> str:
    """Check a Vapi request the way ``auth`` says; ``headers`` is matched case-insensitively.

    In ``secret`` and ``bearer`` modes nothing in the request is signed, so the replay token is
    a digest of the body (Vapi's bodies carry the event's timestamp).
    """
    raw = _raw(body)
    if auth.mode == "secret":
        _same_secret(_header(headers, auth.secret_header), auth.secret)
        return f"vapi:body:{hashlib.sha256(raw).hexdigest()}"
    if auth.mode == "bearer":
        _same_secret(_bearer(_header(headers, "authorization")), auth.secret)
        return f"vapi:body:{hashlib.sha256(raw).hexdigest()}"
    return _verify_vapi_hmac(raw, headers, auth, time.time() if now is None else now)


def sign_vapi_hmac(body: bytes, auth: VapiAuth, timestamp: int | None = None) -> dict[str, str]:
    """The headers Vapi sends with ``body`` at ``timestamp`` (seconds or milliseconds); with
    ``auth.include_timestamp`` False the signature of the body alone, and no timestamp."""
    if auth.mode != "hmac":
        raise WebhookConfigError(
            f"sign_vapi_hmac needs a VapiAuth in mode 'hmac', not {auth.mode!r}"
        )
    stamp = _stamp(timestamp) if auth.include_timestamp else None
    digest = _vapi_digest(_raw(body), auth, stamp)
    headers = {auth.signature_header: auth.prefix + _encode(digest, auth.encoding)}
    if stamp is not None:
        headers[auth.timestamp_header] = stamp
    return headers


def _verify_vapi_hmac(body: bytes, headers: Mapping[str, str], auth: VapiAuth, now: float) -> str:
    given = _vapi_signature(headers, auth)
    stamp = _vapi_timestamp(headers, auth) if auth.include_timestamp else None
    digest = _vapi_digest(body, auth, stamp)
    if not hmac.compare_digest(given.encode(), _encode(digest, auth.encoding).encode()):
        raise SignatureError("forged")
    if stamp is not None:
        _vapi_fresh(stamp, now, auth.tolerance_s)
    return f"vapi:{digest.hex()}"


def _vapi_signature(headers: Mapping[str, str], auth: VapiAuth) -> str:
    """The signature header's digest without its prefix (hex in lower case)."""
    given = _present(_header(headers, auth.signature_header))
    if auth.prefix and given.startswith(auth.prefix):
        given = given[len(auth.prefix) :]
    if not _encoded_form(given, auth.encoding):
        raise SignatureError("malformed")
    return given.lower() if auth.encoding == "hex" else given


def _vapi_timestamp(headers: Mapping[str, str], auth: VapiAuth) -> str:
    stamp = _present(_header(headers, auth.timestamp_header)).strip()
    if not _DIGITS.fullmatch(stamp):
        raise SignatureError("malformed")
    return stamp


def _vapi_fresh(stamp: str, now: float, tolerance: float) -> None:
    """A timestamp in seconds, or in milliseconds past 10**12, within ``tolerance`` of now."""
    if len(stamp) > _MAX_TIMESTAMP_DIGITS:
        raise SignatureError("stale")
    seconds = int(stamp) / 1000 if int(stamp) > 10**12 else int(stamp)
    if abs(now - seconds) > tolerance:
        raise SignatureError("stale")


def _vapi_digest(body: bytes, auth: VapiAuth, stamp: str | None) -> bytes:
    """HMAC(secret, ``"{stamp}."`` + body), or of the body alone when ``stamp`` is None."""
    key = _key(auth.secret, "the Vapi secret")
    signed = body if stamp is None else f"{stamp}.".encode() + body
    return hmac.new(key, signed, _DIGESTS[auth.algorithm]).digest()


def _encode(digest: bytes, encoding: str) -> str:
    return digest.hex() if encoding == "hex" else base64.b64encode(digest).decode()


def _encoded_form(value: str, encoding: str) -> bool:
    pattern = _HEX if encoding == "hex" else _BASE64
    return pattern.fullmatch(value) is not None


def _header(headers: Mapping[str, str], name: str) -> str | None:
    wanted = name.lower()
    value = headers.get(wanted)
    if value is not None:
        return value
    for key, value in headers.items():
        if isinstance(key, str) and key.lower() == wanted:
            return value
    return None


def _bearer(value: str | None) -> str | None:
    if value is None or value == "":
        return value
    if not isinstance(value, str):
        raise SignatureError("malformed")
    scheme, _, token = value.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise SignatureError("malformed")
    return token.strip()


# --- Twilio -------------------------------------------------------------------------------


def verify_twilio(
    url: str,
    params: Sequence[tuple[str, str]],
    header: str | None,
    key: str,
    *,
    algorithm: str = TWILIO_SHA1,
) -> str:
    """Check ``X-Twilio-Signature`` for the public ``url`` Twilio called and its form ``params``.

    ``key`` is the auth token (``HMAC_SHA1``, Twilio's default), or the secret of the SharedKey
    a Webhook Setting signs with, by the ``algorithm`` its
    ``X-Twilio-Webhooks-Signature-Settings`` header names (:func:`twilio_algorithm`). Like
    Twilio's own validator, a URL with its scheme's default port is also tried without it, and
    one without a port also with it.
    """
    secret = _key(key, "the Twilio signing key")
    given = _present(header)
    if algorithm not in _TWILIO_DIGESTS or not _TWILIO_FORMS[algorithm].fullmatch(given):
        raise SignatureError("malformed")
    payload = _twilio_params(params)
    matched = False
    for candidate in _twilio_urls(url):
        expected = _twilio_digest(candidate, payload, secret, algorithm)
        matched |= hmac.compare_digest(given.encode(), expected.encode())
    if not matched:
        raise SignatureError("forged")
    return f"twilio:{given}"


def sign_twilio(
    url: str, params: Sequence[tuple[str, str]], key: str, *, algorithm: str = TWILIO_SHA1
) -> str:
    """The ``X-Twilio-Signature`` Twilio sends for ``url`` and its form ``params``."""
    _choice("Twilio signature algorithm", algorithm, tuple(_TWILIO_DIGESTS))
    secret = _key(key, "the Twilio signing key")
    return _twilio_digest(url, _twilio_params(params), secret, algorithm)


def twilio_algorithm(settings: str | None) -> str:
    """The algorithm an ``X-Twilio-Webhooks-Signature-Settings`` header
    (``key=<SharedKey sid>,algorithm=HMAC_SHA256``) names; ``HMAC_SHA1`` when it names none."""
    for part in (settings or "").split(","):
        name, equals, value = part.partition("=")
        if equals and name.strip() == "algorithm" and value.strip():
            return value.strip().upper()
    return TWILIO_SHA1


def _twilio_params(params: Sequence[tuple[str, str]]) -> str:
    return "".join(k + v for k, v in sorted((str(k), str(v)) for k, v in params))


def _twilio_digest(url: str, payload: str, key: bytes, algorithm: str) -> str:
    digest = hmac.new(key, _utf8(url + payload), _TWILIO_DIGESTS[algorithm]).digest()
    return base64.b64encode(digest).decode()


def _twilio_urls(url: str) -> list[str]:
    """``url`` and, for http(s), the same URL with the default port added or removed."""
    scheme, sep, rest = url.partition("://")
    default = _DEFAULT_PORTS.get(scheme.lower())
    if not sep or default is None:
        return [url]
    end = min((i for i in (rest.find(c) for c in "/?#") if i >= 0), default=len(rest))
    userinfo, at, hostport = rest[:end].rpartition("@")
    match = _HOST_PORT.fullmatch(hostport)
    if match is None:
        other = f"{hostport}:{default}"
    elif match.group(2) == default:
        other = match.group(1)
    else:
        return [url]
    return [url, f"{scheme}://{userinfo}{at}{other}{rest[end:]}"]


# --- shared secret headers ----------------------------------------------------------------


def verify_shared_secret(value: str | None, secret: str) -> str:
    """Check a configured secret header (ElevenLabs initiation webhook, server tools).

    Nothing in such a request is signed, so there is nothing to record against replays: the
    token is ``""`` and the caller skips its replay check.
    """
    _same_secret(value, secret)
    return ""


def _same_secret(value: str | None, secret: str) -> None:
    key = _key(secret, "the shared secret")
    given = _present(value)
    matched = hmac.compare_digest(_utf8(given), key)
    if not given.isascii():  # a header decoded as latin-1 that carried UTF-8 bytes
        try:
            matched |= hmac.compare_digest(given.encode("latin-1"), key)
        except UnicodeEncodeError:
            pass
    if not matched:
        raise SignatureError("forged")


# --- shared helpers -----------------------------------------------------------------------


def _present(value: str | None) -> str:
    """The header's value; ``missing`` when absent or empty, ``malformed`` when not text."""
    if value is None or value == "":
        raise SignatureError("missing")
    if not isinstance(value, str):
        raise SignatureError("malformed")
    return value


def _fresh(stamp: str, now: float, tolerance: float) -> None:
    if len(stamp) > _MAX_TIMESTAMP_DIGITS or abs(now - int(stamp)) > tolerance:
        raise SignatureError("stale")


def _key(secret: str | bytes, what: str) -> bytes:
    if isinstance(secret, (bytes, bytearray)):
        key = bytes(secret)
    elif isinstance(secret, str):
        key = _utf8(secret)
    else:
        raise WebhookConfigError(f"{what} must be a string, not {type(secret).__name__}")
    if not key:
        raise WebhookConfigError(f"{what} is empty: configure it to accept webhooks")
    return key


def _raw(body: bytes) -> bytes:
    if isinstance(body, (bytes, bytearray, memoryview)):
        return bytes(body)
    raise TypeError(f"the body must be the raw request bytes, not {type(body).__name__}")


def _stamp(timestamp: int | None) -> str:
    if isinstance(timestamp, bool) or not isinstance(timestamp, int) or timestamp < 0:
        raise ValueError(f"a timestamp must be a non-negative int, not {timestamp!r}")
    return str(timestamp)


def _tolerance(value: float, name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
        raise WebhookConfigError(f"{name} must be a non-negative number, not {value!r}")


def _choice(what: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise WebhookConfigError(f"{what} must be one of {', '.join(allowed)}, not {value!r}")


def _utf8(text: str) -> bytes:
    return text.encode("utf-8", "surrogatepass")
