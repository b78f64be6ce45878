"""Each platform's payloads in, platform-neutral events out (``records``), and answers back.

A platform is one module with one :class:`Platform` (its name, routes, secrets, ``verify``,
``parse`` and answers), listed in ``registry.PLATFORMS``; the server's one pipeline and the CLI
take everything platform-shaped from there.

Parsing is defensive: platforms move fields between versions (PLATFORMS notes in the tests'
fixtures), so every reader tries the known places in turn. A body that is not what the endpoint
takes raises :class:`Malformed` (the server answers 400); an event the endpoint does not act on
parses to ``None`` (answered 2xx and ignored).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Protocol, Union

from ...errors import InvalidInput
from ..core import Briefing
from ..records import CallEnd, CallStart, ToolCall

if TYPE_CHECKING:
    from ..settings import VoiceSettings


class Malformed(InvalidInput):
    """The webhook body is not what this endpoint takes."""


def load_json(body: bytes) -> dict[str, Any]:
    """The body as a JSON object, or :class:`Malformed`."""
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise Malformed("the body is not JSON") from None
    if not isinstance(data, dict):
        raise Malformed(f"the body is a JSON {type(data).__name__}, not an object")
    return data


def dig(data: Any, *path: str) -> Any:
    """``data[p0][p1]...``, or None where any step is missing or not an object."""
    for step in path:
        if not isinstance(data, dict):
            return None
        data = data.get(step)
    return data


def first_str(*values: Any) -> str | None:
    for value in values:
        if isinstance(value, str) and value.strip():
            return value.strip()
    return None


def number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def ms(value: Any) -> float | None:
    seconds = number(value)
    return None if seconds is None else seconds / 1000.0


def iso(value: Any) -> float | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def arguments(raw: Any) -> dict[str, Any]:
    """Tool arguments sent as an object or as a JSON string of one."""
    if raw is None or raw == "":
        return {}
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except ValueError:
            raise Malformed("tool arguments are a string but not JSON") from None
    if not isinstance(raw, dict):
        raise Malformed(f"tool arguments must be an object, not {type(raw).__name__}")
    return raw


def flag(
    value: Any,
    yes: tuple[str, ...] = ("true", "success"),
    no: tuple[str, ...] = ("false", "failure"),
) -> bool | None:
    """A platform's success flag (bool, or a word) as True / False / None (unknown)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        word = value.strip().lower()
        return True if word in yes else False if word in no else None
    return None


# -- the seam -----------------------------------------------------------------------------

Kind = Literal["events", "start", "tool", "end"]  # what a route's requests carry
Event = Union[CallStart, list[ToolCall], CallEnd, None]  # None: acknowledged, nothing done
ToolResult = tuple[ToolCall, str, bool]  # the call, the answer's text, whether it succeeded


@dataclass(frozen=True)
class Route:
    """One webhook endpoint: ``path`` is a template (``{name}`` a path parameter); no value in
    the ``secret`` setting (the key its requests are checked with: a secret, or Telnyx's public
    key), no endpoint (404)."""

    path: str
    kind: Kind
    secret: str
    summary: str
    streamed: bool = False  # the body is verified piece by piece and may not be kept
    listed: bool = True  # shown by ``botwire voice show``
    method: str = "POST"


@dataclass(frozen=True)
class Inbound:
    """One request as a platform sees it: ``body`` is empty and ``kept`` False when a streamed
    route did not keep it."""

    route: Route
    headers: Mapping[str, str]
    body: bytes
    url: str  # as the platform called it (``public_url`` behind a proxy)
    params: Mapping[str, str] = field(default_factory=dict)
    kept: bool = True


@dataclass(frozen=True)
class Answer:
    """A reply: JSON when ``media_type`` is None, else text; no body for None."""

    body: Any = None
    status: int = 200
    media_type: str | None = None


@dataclass(frozen=True)
class Option:
    """A ``botwire voice configure <platform>`` option and the setting it writes."""

    flag: str
    setting: str
    help: str | None = None
    secret: bool = False  # asked for at a hidden prompt when not given; never shown
    choices: tuple[str, ...] = ()
    default: str = ""  # a platform's own setting (``<platform>_...``) when not set
    required: bool = True  # a secret asked for when not given; False: only for a bare flag


class Incremental(Protocol):
    """A signature checked over a body that arrives in pieces; ``verify`` -> replay token."""

    def update(self, piece: bytes) -> None: ...

    def verify(self) -> str: ...


class Platform:
    """One voice platform. ``verify`` raises ``SignatureError`` (401) or returns the request's
    replay token (None: nothing signed to remember); ``parse`` raises :class:`Malformed`."""

    name: ClassVar[str]
    about: ClassVar[str]  # the help of ``botwire voice configure <name>``
    options: ClassVar[tuple[Option, ...]]
    replay_ttl: ClassVar[float]
    routes: ClassVar[tuple[Route, ...]]
    ack: ClassVar[Answer] = Answer({})  # to a call end, and to events not acted on

    def check(self, settings: VoiceSettings) -> None:
        """Refuse (``ValueError``) settings of this platform that could never verify a request."""

    def verify(self, settings: VoiceSettings, inbound: Inbound) -> str | None:
        raise NotImplementedError

    def stream(self, settings: VoiceSettings, inbound: Inbound) -> Incremental:
        """The incremental check of a ``streamed`` route (``inbound`` has no body yet)."""
        raise NotImplementedError

    def skips(self, head: bytes) -> bool:
        """Whether a streamed body, seen this far, is hashed but not kept."""
        return False

    def parse(self, settings: VoiceSettings, inbound: Inbound) -> Event:
        raise NotImplementedError

    def answer_start(
        self, settings: VoiceSettings, start: CallStart, briefing: Briefing, namespace: str | None
    ) -> Answer:
        """The answer to ``start``: ``briefing`` for the caller at ``namespace`` (None: unknown)."""
        raise NotImplementedError

    def answer_tools(self, results: list[ToolResult]) -> Answer:
        """One tool call a request, unless the platform sends several."""
        ((_, text, ok),) = results
        return self.answer_tool(text, ok)

    def answer_tool(self, text: str, ok: bool) -> Answer:
        raise NotImplementedError
