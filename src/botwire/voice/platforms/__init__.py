"""Each platform's payloads in, platform-neutral events out (``records``), and answers back.

Parsing is defensive: platforms move fields between versions (PLATFORMS notes in the tests'
fixtures), so every reader tries the known places in turn. A body that is not what the endpoint
takes raises :class:`Malformed` (the server answers 400); an event the endpoint does not act on
parses to ``None`` (answered 2xx and ignored).
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from ...errors import InvalidInput


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
