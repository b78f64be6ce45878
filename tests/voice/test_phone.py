"""Caller ids to E.164, and E.164 to a namespace."""

from __future__ import annotations

import pytest
from hypothesis import given, strategies as st

from botwire.errors import InvalidInput
from botwire.voice import InvalidNumber, namespace_for, to_e164
from botwire.voice.config import VoiceConfig


@pytest.mark.parametrize(
    "raw, country, expected",
    [
        ("+14155550123", None, "+14155550123"),
        ("+1 (415) 555-0123", None, "+14155550123"),
        ("tel:+1-415-555-0123", None, "+14155550123"),
        ("sip:+14155550123@trunk.example;user=phone", None, "+14155550123"),
        ("0044 20 7946 0958", None, "+442079460958"),
        ("+44 (0)20 7946 0958".replace("(0)", ""), None, "+442079460958"),
        ("+14155550123;ext=12", None, "+14155550123"),
        (" +14155550123 ", None, "+14155550123"),
        ("415 555 0123", "1", "+14155550123"),
        ("14155550123", "1", "+14155550123"),
        ("020 7946 0958", "44", "+442079460958"),
    ],
)
def test_numbers_normalise(raw, country, expected):
    assert to_e164(raw, country) == expected


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "anonymous",
        "Restricted",
        "unknown",
        "266696687",
        "415 555 0123",
        "+",
        "+0123456789",
        "+1234567890123456",
        "+1415abc0123",
        "+12",
        "client:alice",
        None,
        14155550123,
    ],
)
def test_bad_or_withheld_numbers_are_refused(raw):
    with pytest.raises(InvalidNumber):
        to_e164(raw)


@given(st.text(max_size=40))
def test_any_text_normalises_or_is_refused_cleanly(raw):
    try:
        out = to_e164(raw)
    except InvalidNumber:
        return
    assert out[0] == "+" and out[1:].isdigit() and 7 <= len(out) - 1 <= 15
    assert to_e164(out) == out  # idempotent


def test_namespace_mapping():
    assert namespace_for("+14155550123") == "phone:+14155550123"
    assert namespace_for("+14155550123", "acme/{digits}") == "acme/14155550123"
    assert namespace_for("+14155550123", lambda n: f"crm-{n[-4:]}") == "crm-0123"


@pytest.mark.parametrize("template", ["static", "{e164", "{other}", "{0}"])
def test_bad_templates_are_refused(template):
    with pytest.raises(InvalidInput):
        VoiceConfig(namespace=template)
