"""Twilio Programmable Voice: the voice webhook (answered with TwiML) and the status callback."""

from __future__ import annotations

import logging
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl
from xml.sax.saxutils import escape

from ..core import Briefing
from ..records import CallEnd, CallStart
from ..signatures import TWILIO_SHA1, SignatureError, twilio_algorithm, verify_twilio
from . import Answer, Event, Inbound, Malformed, Option, Platform, Route, first_str, number

if TYPE_CHECKING:
    from ..settings import VoiceSettings

PLATFORM = "twilio"
FINAL = ("completed", "busy", "failed", "no-answer", "canceled")
SIGNATURE_SETTINGS = "x-twilio-webhooks-signature-settings"  # sent when a SharedKey signs
log = logging.getLogger("botwire.voice")


def form(body: bytes) -> list[tuple[str, str]]:
    """The url-encoded form, every pair kept (the signature covers repeated keys too)."""
    try:
        return parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=bool(body))
    except (UnicodeDecodeError, ValueError):
        raise Malformed("the body is not an application/x-www-form-urlencoded form") from None


def call_start(params: dict[str, str]) -> CallStart:
    return CallStart(
        PLATFORM,
        first_str(params.get("From"), params.get("Caller")),
        params.get("To"),
        first_str(params.get("CallSid")),
    )


def answer_start(briefing: Briefing, stream_url: str | None) -> str:
    """TwiML: the call's media to ``stream_url`` with the variables as stream parameters, or,
    with no stream configured, a greeting that shows the caller was recognised."""
    if stream_url:
        params = "".join(
            f"<Parameter name={_attr(k)} value={_attr(v)}/>" for k, v in briefing.variables.items()
        )
        body = f"<Connect><Stream url={_attr(stream_url)}>{params}</Stream></Connect>"
    else:
        name = briefing.variables.get("customer_name")
        body = f"<Say>{escape(f'Welcome back, {name}.' if name else 'Hello.')}</Say>"
    return f'<?xml version="1.0" encoding="UTF-8"?><Response>{body}</Response>'


def _attr(value: str) -> str:
    return '"' + escape(value, {'"': "&quot;", "\n": "&#10;", "\r": "&#13;", "\t": "&#9;"}) + '"'


def call_end(params: dict[str, str]) -> CallEnd | None:
    """A status callback with a final status; None for the ones before it (ringing, ...)."""
    status = params.get("CallStatus")
    ident = first_str(params.get("CallSid"))
    if ident is None:
        raise Malformed("a Twilio status callback needs CallSid")
    if status not in FINAL:
        return None
    duration = _int(params.get("CallDuration"))
    ended = _date(params.get("Timestamp"))
    return CallEnd(
        platform=PLATFORM,
        call_id=ident,
        caller=first_str(params.get("From"), params.get("Caller")),
        part="status",
        started_at=ended - duration if ended is not None and duration is not None else None,
        ended_at=ended,
        duration_s=duration,
        outcome=status,
    )


def signing_key(settings: VoiceSettings, signature_settings: str | None) -> tuple[str, str]:
    """The key and algorithm of a request: the auth token and ``HMAC_SHA1``, or, when Twilio
    sent ``X-Twilio-Webhooks-Signature-Settings``, the shared key and the algorithm it names."""
    if not signature_settings:
        return settings.twilio_auth_token, TWILIO_SHA1
    if not settings.twilio_shared_key:
        log.warning(
            "a Twilio webhook is signed with a SharedKey, and no shared key is configured "
            "(BOTWIRE_TWILIO_SHARED_KEY, 'botwire voice configure twilio --shared-key'): refused"
        )
        raise SignatureError("forged")
    return settings.twilio_shared_key, twilio_algorithm(signature_settings)


def _int(raw: str | None) -> float | None:
    return number(int(raw)) if raw and raw.isdigit() else None


def _date(raw: str | None) -> float | None:
    try:
        return parsedate_to_datetime(raw).timestamp() if raw else None
    except (TypeError, ValueError):
        return None


class Twilio(Platform):
    name = PLATFORM
    about = "Twilio: the auth token (or SharedKey) that signs webhooks, the public URL, the stream."
    options = (
        Option("--auth-token", "twilio_auth_token", "The Twilio auth token", True),
        Option(
            "--public-url",
            "public_url",
            "This server's public base URL, as Twilio calls it (behind a proxy).",
        ),
        Option("--stream-url", "twilio_stream_url", "wss:// URL to stream the call's audio to."),
        Option(
            "--shared-key",
            "twilio_shared_key",
            "The secret of a Twilio SharedKey, for webhooks a Webhook Setting signs with it",
            True,
            required=False,
        ),
    )
    replay_ttl = 3600.0
    routes = (
        Route(
            "/voice/twilio",
            "start",
            "twilio_auth_token",
            "Twilio voice webhook (answered with TwiML)",
        ),
        Route("/voice/twilio/status", "end", "twilio_auth_token", "Twilio call status callback"),
    )
    ack = Answer(status=204)

    def verify(self, settings: VoiceSettings, inbound: Inbound) -> str | None:
        header = inbound.headers.get("x-twilio-signature")
        key, algorithm = signing_key(settings, inbound.headers.get(SIGNATURE_SETTINGS))
        params = form(inbound.body)
        return verify_twilio(inbound.url, params, header, key, algorithm=algorithm)

    def parse(self, settings: VoiceSettings, inbound: Inbound) -> Event:
        params = dict(form(inbound.body))
        return call_start(params) if inbound.route.kind == "start" else call_end(params)

    def answer_start(
        self, settings: VoiceSettings, start: CallStart, briefing: Briefing, namespace: str | None
    ) -> Answer:
        twiml = answer_start(briefing, settings.twilio_stream_url or None)
        return Answer(twiml, media_type="application/xml")
