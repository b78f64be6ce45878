"""How callers are found and briefed: one ``VoiceConfig`` for the server and ``CallMemory``."""

from __future__ import annotations

import importlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Union

from ..errors import ConfigurationError, InvalidInput
from .context import DEFAULT_BUDGET
from .facts import Policies
from .phone import DEFAULT_NAMESPACE, NumberMap, check_template
from .records import CallEnd

#: ``summarizer(call) -> summary or None``: called after a call ends, never before the answer.
Summarizer = Callable[[CallEnd], Union[str, None, Awaitable[Union[str, None]]]]


@dataclass(frozen=True)
class VoiceConfig:
    """``namespace``: a template with ``{e164}`` / ``{digits}``, or a function of the E.164 number.
    ``default_country``: calling code for numbers that arrive without one (``"1"``, ``"44"``).
    ``budget``: the most characters of the ``memory`` variable. ``variables``: names always
    present in the answer (as "" when unknown). ``summarizer``: see :data:`Summarizer`.
    ``facts``: the policies of extracted fields (``voice.facts.Policies``)."""

    namespace: NumberMap = DEFAULT_NAMESPACE
    default_country: str | None = None
    budget: int = DEFAULT_BUDGET
    variables: tuple[str, ...] = ("customer_name",)
    summarizer: Summarizer | None = None
    facts: Policies = Policies()  # what the platforms' extracted fields become

    def __post_init__(self) -> None:
        if isinstance(self.namespace, str):
            check_template(self.namespace)
        elif not callable(self.namespace):
            raise InvalidInput("namespace must be a template string or a function of the number")
        if self.default_country is not None and not (
            self.default_country.isdigit() and 1 <= len(self.default_country) <= 3
        ):
            raise InvalidInput(
                f"default_country must be a calling code of 1-3 digits, like '1' or '44', "
                f"not {self.default_country!r}"
            )
        if type(self.budget) is not int or self.budget < 0:
            raise InvalidInput(f"budget must be an int >= 0, not {self.budget!r}")


def load_summarizer(path: str) -> Summarizer:
    """``package.module:function`` -> the function (``BOTWIRE_VOICE_SUMMARIZER``)."""
    module, _, name = path.partition(":")
    if not module or not name:
        raise ConfigurationError(f"summarizer {path!r} must look like 'package.module:function'")
    try:
        found: Any = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as exc:
        raise ConfigurationError(f"cannot load summarizer {path!r}: {exc}") from exc
    if not callable(found):
        raise ConfigurationError(f"summarizer {path!r} is not callable")
    return found  # type: ignore[no-any-return]
