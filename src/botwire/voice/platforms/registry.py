"""Every platform the server answers: a new one is its module and one line here."""

from __future__ import annotations

from . import Platform, Route
from .elevenlabs import ElevenLabs
from .retell import Retell
from .telnyx import Telnyx
from .twilio import Twilio
from .vapi import Vapi

PLATFORMS: tuple[Platform, ...] = (Vapi(), Retell(), ElevenLabs(), Twilio(), Telnyx())
BY_NAME = {platform.name: platform for platform in PLATFORMS}


def routes() -> list[tuple[Platform, Route]]:
    return [(platform, route) for platform in PLATFORMS for route in platform.routes]
