"""Twilio's two signatures: the auth token's HMAC-SHA1, and a SharedKey's (HMAC-SHA256 or -SHA1)
when a Webhook Setting signs with one and says so in ``X-Twilio-Webhooks-Signature-Settings``.

Both sign the same string (the full URL, then each form parameter's name and value, sorted by
name) and send base64 in ``X-Twilio-Signature``; the vectors are the official SDK's
(``twilio==9.13.0``, ``twilio.request_validator``), which these tests also run when installed.
"""

from __future__ import annotations

import logging
from urllib.parse import urlencode

import pytest

from botwire.voice.signatures import (
    SignatureError,
    WebhookConfigError,
    sign_twilio,
    twilio_algorithm,
    verify_twilio,
)

from voicekit import PUBLIC

URL = "https://mycompany.com/myapp.php?foo=1&bar=2"
PARAMS = [
    ("CallSid", "CA1234567890ABCDE"),
    ("Caller", "+12349013030"),
    ("Digits", "1234"),
    ("From", "+12349013030"),
    ("To", "+18005551212"),
]
# RequestValidator("12345").compute_signature(URL, dict(PARAMS), algorithm), twilio 9.13.0
SHA1 = "0/KCTR6DLpKmkAf8muzZqo1nDgQ="
SHA256 = "Rmm4Vzj+Ky7JGoWXMCsZDZuHDszLr9xvdbvitrDr4/M="
SETTINGS = "key=webhooks_sharedkey_0123456789abcdef,algorithm=HMAC_SHA256"
CALLER = "+14155550123"
STATUS = [("CallSid", "CA1"), ("From", CALLER), ("CallStatus", "completed")]


def reason(call, *args, **kwargs) -> str:
    with pytest.raises(SignatureError) as refused:
        call(*args, **kwargs)
    return refused.value.reason


# -- the scheme ----------------------------------------------------------------------------


def test_the_sdks_vectors():
    assert sign_twilio(URL, PARAMS, "12345") == SHA1
    assert sign_twilio(URL, PARAMS, "12345", algorithm="HMAC_SHA256") == SHA256
    token = verify_twilio(URL, PARAMS[::-1], SHA256, "12345", algorithm="HMAC_SHA256")
    assert token == f"twilio:{SHA256}"


def test_a_signature_of_the_other_algorithm_or_key_is_refused():
    assert reason(verify_twilio, URL, PARAMS, SHA1, "12345", algorithm="HMAC_SHA256") == "malformed"
    assert reason(verify_twilio, URL, PARAMS, SHA256, "12345") == "malformed"
    assert reason(verify_twilio, URL, PARAMS, SHA256, "54321", algorithm="HMAC_SHA256") == "forged"
    changed = PARAMS[:-1] + [("To", "+18005551213")]
    assert reason(verify_twilio, URL, changed, SHA256, "12345", algorithm="HMAC_SHA256") == "forged"


def test_an_unknown_algorithm_is_refused():
    assert reason(verify_twilio, URL, PARAMS, SHA256, "12345", algorithm="HMAC_SHA512") == (
        "malformed"
    )
    with pytest.raises(WebhookConfigError, match="HMAC_SHA1, HMAC_SHA256"):
        sign_twilio(URL, PARAMS, "12345", algorithm="sha256")


@pytest.mark.parametrize(
    "header, algorithm",
    [
        (SETTINGS, "HMAC_SHA256"),
        ("algorithm=HMAC_SHA256, key=webhooks_sharedkey_1", "HMAC_SHA256"),
        ("key=webhooks_sharedkey_1,algorithm=hmac_sha256", "HMAC_SHA256"),
        ("key=webhooks_sharedkey_1,algorithm=HMAC_SHA1", "HMAC_SHA1"),
        ("key=webhooks_sharedkey_1", "HMAC_SHA1"),
        ("key=webhooks_sharedkey_1,algorithm=", "HMAC_SHA1"),
        ("", "HMAC_SHA1"),
        (None, "HMAC_SHA1"),
        ("key=webhooks_sharedkey_1,algorithm=HMAC_SHA512", "HMAC_SHA512"),
    ],
)
def test_the_settings_header_names_the_algorithm(header, algorithm):
    assert twilio_algorithm(header) == algorithm


def test_the_sdk_agrees():
    validator = pytest.importorskip("twilio.request_validator")
    cases = [
        (URL, PARAMS),
        ("https://mem.example/voice/twilio/status", STATUS),
        ("https://mem.example:443/voice/twilio?tenant=a", [("Body", "héllo wörld"), ("A", "")]),
    ]
    for url, params in cases:
        for algorithm in ("HMAC_SHA1", "HMAC_SHA256"):
            ours = sign_twilio(url, params, "sk-secret", algorithm=algorithm)
            sdk = validator.RequestValidator("sk-secret")
            assert sdk.compute_signature(url, dict(params), algorithm) == ours
            assert sdk.validate(url, dict(params), ours, algorithm)
            assert verify_twilio(url, params, ours, "sk-secret", algorithm=algorithm)
    for header in (SETTINGS, "key=k", "key=k,algorithm=HMAC_SHA1", "", None):
        assert validator.get_signature_algorithm(header) == twilio_algorithm(header)


# -- through the endpoints -----------------------------------------------------------------


async def post(platforms, path, params, signature, settings=None):
    headers = {"x-twilio-signature": signature, "content-type": "application/x-www-form-urlencoded"}
    if settings is not None:
        headers["x-twilio-webhooks-signature-settings"] = settings
    return await platforms.client.post(path, content=urlencode(params).encode(), headers=headers)


@pytest.mark.parametrize("path", ["/voice/twilio", "/voice/twilio/status"])
async def test_a_shared_key_signature_is_accepted_once(make_platforms, path):
    platforms = await make_platforms(twilio_shared_key="sk-secret")
    url = PUBLIC + path
    good = sign_twilio(url, STATUS, "sk-secret", algorithm="HMAC_SHA256")
    for signature, settings in (
        (good, None),  # no settings header: the auth token's HMAC-SHA1 is expected
        (sign_twilio(url, STATUS, "12345", algorithm="HMAC_SHA256"), SETTINGS),
        (sign_twilio(url, STATUS, "sk-secret"), SETTINGS),
        (
            sign_twilio(url, STATUS + [("Extra", "1")], "sk-secret", algorithm="HMAC_SHA256"),
            SETTINGS,
        ),
        (good, "key=webhooks_sharedkey_1,algorithm=HMAC_SHA512"),
    ):
        assert (await post(platforms, path, STATUS, signature, settings)).status_code == 401
    assert await platforms.namespaces() == []
    assert (await post(platforms, path, STATUS, good, SETTINGS)).status_code in (200, 204)
    replay = await post(platforms, path, STATUS, good, SETTINGS)
    assert replay.status_code == 401 and "replay" in replay.json()["error"]["message"]


async def test_the_auth_token_still_signs_beside_a_shared_key(make_platforms):
    platforms = await make_platforms(twilio_shared_key="sk-secret")
    path = "/voice/twilio/status"
    assert (await platforms.twilio(path, STATUS)).status_code == 204  # no settings header
    other = [("CallSid", "CA2"), *STATUS[1:]]
    sha1 = sign_twilio(PUBLIC + path, other, "sk-secret")  # a Setting signing with HMAC_SHA1
    assert (await post(platforms, path, other, sha1, "key=webhooks_sharedkey_1")).status_code == 204
    calls = [
        e.value["call_id"] for e in await platforms.memory("phone:+14155550123").log("calls").read()
    ]
    assert sorted(calls) == ["CA1", "CA2"]


async def test_a_shared_key_signature_without_a_shared_key_is_refused(platforms, caplog):
    path = "/voice/twilio/status"
    signature = sign_twilio(PUBLIC + path, STATUS, "12345", algorithm="HMAC_SHA256")
    with caplog.at_level(logging.WARNING, logger="botwire.voice"):
        r = await post(platforms, path, STATUS, signature, SETTINGS)
    assert r.status_code == 401 and r.json()["error"]["code"] == "unauthorized"
    assert "no shared key is configured (BOTWIRE_TWILIO_SHARED_KEY" in caplog.text
    assert await platforms.namespaces() == []
