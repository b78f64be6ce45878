"""The console's templates: Jinja2 with autoescaping on for every template, so whatever a
caller's memory holds (``<script>`` in a fact's value) is shown as text."""

from __future__ import annotations

import json
import time
from functools import cache
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader

from ..._wire import segment
from ...voice import context

TEMPLATES = Path(__file__).parent / "templates"


def when(ts: Any) -> str:
    """A Unix time as UTC, to the second; a dash when there is none."""
    if not isinstance(ts, (int, float)) or isinstance(ts, bool):
        return "—"
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(ts))


def duration(seconds: Any) -> str:
    if not isinstance(seconds, (int, float)) or isinstance(seconds, bool) or seconds < 0:
        return "—"
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes} min {rest:02d} s" if minutes else f"{rest} s"


def pretty(value: Any) -> str:
    """A value as an operator reads it: a string as it is, anything else as indented JSON."""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, indent=2, sort_keys=True)


def size(n: Any) -> str:
    if not isinstance(n, int):
        return "—"
    for unit in ("bytes", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return str(n)


@cache
def environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=True,  # every template, whatever its name
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(
        segment=segment, when=when, duration=duration, pretty=pretty, text=context.text, size=size
    )
    return env


SECTIONS = {"caller.html": "callers", "search.html": "callers", "forget.html": "callers"}


def page(name: str, **values: Any) -> str:
    """Template ``name`` filled in; ``section`` names the navigation entry it belongs to."""
    section = SECTIONS.get(name, name.removesuffix(".html"))
    return environment().get_template(name).render(section=section, **values)
