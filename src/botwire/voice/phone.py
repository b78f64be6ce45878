"""Phone numbers: E.164 normalisation and the mapping from a caller's number to a namespace.

Voice platforms send the caller as E.164 (``+14155550123``) nearly always, but SIP trunks and
hand-typed numbers arrive as ``(415) 555-0123``, ``0044 20 7946 0958`` or ``tel:+1-415...``.
``to_e164`` accepts those; a national number (no ``+`` or ``00``) needs the country calling code
it belongs to (``default_country``), because guessing it would file two customers together.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Union

from ..errors import InvalidInput

_SEPARATORS = re.compile(r"[\s().\-/]")
_DIGITS = re.compile(r"\d{1,15}")
_EXTENSION = re.compile(r"(?:;ext=|;|x|ext\.?|#)\d*$", re.IGNORECASE)
# Caller ids that are not numbers: withheld, web and app calls.
_ANONYMOUS = {"", "anonymous", "unknown", "restricted", "private", "unavailable", "266696687"}


class InvalidNumber(InvalidInput):
    """The caller id is not a phone number that can name a caller (withheld, malformed)."""


class Withheld(InvalidNumber):
    """The caller id is withheld (anonymous, restricted, or none at all)."""


class MissingCountryCode(InvalidNumber):
    """A national number (no ``+`` or ``00``) and no ``default_country`` to complete it."""


def to_e164(raw: object, default_country: str | None = None) -> str:
    """``raw`` as E.164 (``+`` and up to 15 digits), or raise :class:`InvalidNumber`.

    >>> to_e164("tel:+1 (415) 555-0123")
    '+14155550123'
    >>> to_e164("0044 20 7946 0958")
    '+442079460958'
    >>> to_e164("415 555 0123", default_country="1")
    '+14155550123'
    """
    if raw is None:
        raise Withheld("the caller id is withheld")
    if not isinstance(raw, str):
        raise InvalidNumber(f"a phone number must be a str, not {type(raw).__name__}")
    text = raw.strip()
    if text.lower() in _ANONYMOUS:
        raise Withheld("the caller id is withheld")
    text = re.sub(r"^(?:tel:|sip:)", "", text, flags=re.IGNORECASE).split("@", 1)[0]
    text = _EXTENSION.sub("", _SEPARATORS.sub("", text))
    if text.startswith("+"):
        digits = text[1:]
    elif text.startswith("00"):
        digits = text[2:]
    elif default_country:
        digits = _national(text, default_country)
    else:
        raise MissingCountryCode(
            f"{_shown(raw)} has no country code (+...); set default_country, the calling code "
            "it belongs to"
        )
    if not _DIGITS.fullmatch(digits) or digits[0] == "0" or len(digits) < 7:
        raise InvalidNumber(f"{_shown(raw)} is not a phone number")
    return "+" + digits


def _national(text: str, country: str) -> str:
    """Digits of a number dialled without ``+``: ``0`` trunk prefix dropped, ``country`` added;
    11+ digits that already start with ``country`` (``14155550123``) are taken as international."""
    if len(text) > 10 and text.startswith(country):
        return text
    return country + (text[1:] if text.startswith("0") else text)


def _shown(raw: str) -> str:
    return repr(raw if len(raw) <= 40 else raw[:40] + "...")


NumberMap = Union[str, Callable[[str], str]]
DEFAULT_NAMESPACE = "phone:{e164}"


def namespace_for(e164: str, mapping: NumberMap = DEFAULT_NAMESPACE) -> str:
    """The namespace of the caller at ``e164``: a template (``{e164}``, ``{digits}``) or a function.

    >>> namespace_for("+14155550123")
    'phone:+14155550123'
    >>> namespace_for("+14155550123", "customer-{digits}")
    'customer-14155550123'
    """
    if callable(mapping):
        return mapping(e164)
    return mapping.format(e164=e164, digits=e164[1:])


def check_template(template: str) -> str:
    """Raise :class:`InvalidInput` unless ``template`` names the number exactly once."""
    try:
        filled = template.format(e164="+1", digits="1")
    except (KeyError, IndexError, ValueError) as exc:
        raise InvalidInput(
            f"namespace template {template!r} may use only {{e164}} and {{digits}}"
        ) from exc
    if filled == template:
        raise InvalidInput(f"namespace template {template!r} must contain {{e164}} or {{digits}}")
    return template
