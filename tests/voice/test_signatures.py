"""Webhook signatures: the platforms' test vectors, the fixture bodies, each scheme's properties."""

from __future__ import annotations

import base64
import hashlib
import hmac
import string
from pathlib import Path
from urllib.parse import parse_qsl

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from starlette.datastructures import Headers

from botwire.errors import BotWireError
from botwire.voice.signatures import (
    SignatureError,
    VapiAuth,
    WebhookConfigError,
    sign_elevenlabs,
    sign_retell,
    sign_twilio,
    sign_vapi_hmac,
    verify_elevenlabs,
    verify_retell,
    verify_shared_secret,
    verify_twilio,
    verify_vapi,
)

FIXTURES = Path(__file__).parent / "fixtures"
REASONS = {"missing", "malformed", "stale", "forged"}
HEX = "0123456789abcdef"
B64 = string.ascii_letters + string.digits + "+/"

bodies = st.binary(max_size=512)
nonempty_bodies = st.binary(min_size=1, max_size=512)
secrets = st.text(min_size=1, max_size=64).filter(lambda s: s.encode("utf-8", "surrogatepass"))
stamps_ms = st.integers(min_value=0, max_value=4_102_444_800_000)
stamps_s = st.integers(min_value=0, max_value=4_102_444_800)
garbage = st.one_of(
    st.none(),
    st.just(""),
    st.text(max_size=200),
    st.text(alphabet="tvd0=,; .-:abcdef0123456789ABCDEF\t", max_size=200),
)

RETELL_BODY = b'{"event":"call_ended"}'
RETELL_D = "07024cabe7dd8f6d1c6e4a8324ca92c812e6ad4a7ee506c04f7e462e3321823e"
ELEVEN_BODY = (
    b'{"type":"post_call_transcription","event_timestamp":1739537297,'
    b'"data":{"conversation_id":"abc"}}'
)
ELEVEN_V0 = "6e321e2044a124192e73090ae6cd11a39fe97800cc3e4e6361404552a92914b0"
TWILIO_URL = "https://mycompany.com/myapp.php?foo=1&bar=2"
TWILIO_PARAMS = [
    ("CallSid", "CA1234567890ABCDE"),
    ("Caller", "+12349013030"),
    ("Digits", "1234"),
    ("From", "+12349013030"),
    ("To", "+18005551212"),
]
TWILIO_SIG = "0/KCTR6DLpKmkAf8muzZqo1nDgQ="


def fixtures(platform: str) -> list[Path]:
    paths = sorted((FIXTURES / platform).iterdir())
    assert paths, platform
    return paths


def rejected(reason: str | set[str], call, *args, secrets=(), **kwargs) -> SignatureError:
    """Run ``call``; it must raise SignatureError for ``reason``, saying nothing secret."""
    with pytest.raises(SignatureError) as info:
        call(*args, **kwargs)
    err = info.value
    allowed = {reason} if isinstance(reason, str) else reason
    assert err.reason in allowed, (err.reason, allowed)
    text = f"{err} {err!r} {err.args!r}"
    for secret in secrets:
        assert secret not in text
    return err


def could_match(value: str | None, secret: str) -> bool:
    """Whether a header value would carry the secret (as text, or as UTF-8 read as latin-1)."""
    if value is None:
        return False
    try:
        as_latin1 = value.encode("latin-1")
    except UnicodeEncodeError:
        as_latin1 = b""
    return value == secret or as_latin1 == secret.encode("utf-8", "surrogatepass")


def change_char(value: str, index: int, alphabet: str, pick: int) -> str:
    index %= len(value)
    choices = [c for c in alphabet if c != value[index]]
    return value[:index] + choices[pick % len(choices)] + value[index + 1 :]


def change_byte(body: bytes, index: int, delta: int) -> bytes:
    index %= len(body)
    return body[:index] + bytes([(body[index] + delta) % 256]) + body[index + 1 :]


# --- the platforms' test vectors ----------------------------------------------------------


def test_retell_vector() -> None:
    header = f"v=1700000000000,d={RETELL_D}"
    assert sign_retell(RETELL_BODY, "test-api-key", 1700000000000) == header
    token = verify_retell(RETELL_BODY, header, "test-api-key", now_ms=1700000000000)
    assert token == f"retell:{RETELL_D}"


def test_elevenlabs_vector() -> None:
    header = f"t=1739537297,v0={ELEVEN_V0}"
    assert sign_elevenlabs(ELEVEN_BODY, "wsec_test", 1739537297) == header
    token = verify_elevenlabs(ELEVEN_BODY, header, "wsec_test", now=1739537297)
    assert token == f"elevenlabs:{ELEVEN_V0}"


def test_twilio_vector() -> None:
    assert sign_twilio(TWILIO_URL, TWILIO_PARAMS, "12345") == TWILIO_SIG
    assert verify_twilio(TWILIO_URL, TWILIO_PARAMS, TWILIO_SIG, "12345") == f"twilio:{TWILIO_SIG}"
    shuffled = list(reversed(TWILIO_PARAMS))
    assert verify_twilio(TWILIO_URL, shuffled, TWILIO_SIG, "12345") == f"twilio:{TWILIO_SIG}"


def test_vapi_hmac_matches_the_documented_formula() -> None:
    auth = VapiAuth("hmac", "vapi-secret")
    body = b'{"message":{"type":"status-update"}}'
    expected = hmac.new(b"vapi-secret", b"1724000000." + body, hashlib.sha256).hexdigest()
    headers = sign_vapi_hmac(body, auth, 1724000000)
    assert headers == {"x-signature": expected, "x-timestamp": "1724000000"}
    assert verify_vapi(body, headers, auth, now=1724000000) == f"vapi:{expected}"


# --- the fixture bodies, signed and verified ---------------------------------------------


@pytest.mark.parametrize("path", fixtures("retell"), ids=lambda p: p.name)
def test_retell_fixtures(path: Path) -> None:
    body = path.read_bytes()
    header = sign_retell(body, "key_retell", 1714608491736)
    assert verify_retell(body, header, "key_retell", now_ms=1714608491736 + 1000)
    rejected("forged", verify_retell, body + b" ", header, "key_retell", now_ms=1714608491736)


@pytest.mark.parametrize("path", fixtures("elevenlabs"), ids=lambda p: p.name)
def test_elevenlabs_fixtures(path: Path) -> None:
    body = path.read_bytes()
    header = sign_elevenlabs(body, "wsec_fixture", 1739537297)
    assert verify_elevenlabs(body, header, "wsec_fixture", now=1739537297 + 60)
    rejected("forged", verify_elevenlabs, body.strip(), header, "wsec_fixture", now=1739537297)


@pytest.mark.parametrize("path", fixtures("vapi"), ids=lambda p: p.name)
@pytest.mark.parametrize(
    "auth",
    [
        VapiAuth("hmac", "vapi-secret"),
        VapiAuth("hmac", "vapi-secret", prefix="sha256=", encoding="base64"),
        VapiAuth("hmac", "vapi-secret", algorithm="sha1", signature_header="X-Vapi-Signature"),
        VapiAuth("hmac", "vapi-secret", algorithm="sha512", timestamp_header="X-Vapi-Timestamp"),
    ],
    ids=["default", "base64-prefix", "sha1", "sha512"],
)
def test_vapi_fixtures_hmac(path: Path, auth: VapiAuth) -> None:
    body = path.read_bytes()
    for stamp, now in ((1724000000000, 1724000000.5), (1724000000, 1724000000)):
        headers = sign_vapi_hmac(body, auth, stamp)
        assert verify_vapi(body, Headers(headers), auth, now=now).startswith("vapi:")
        rejected("forged", verify_vapi, body[:-1], Headers(headers), auth, now=now)


@pytest.mark.parametrize("path", fixtures("vapi"), ids=lambda p: p.name)
def test_vapi_fixtures_secret_and_bearer(path: Path) -> None:
    body = path.read_bytes()
    token = f"vapi:body:{hashlib.sha256(body).hexdigest()}"
    secret = VapiAuth("secret", "s3cret-value")
    bearer = VapiAuth("bearer", "s3cret-value")
    assert verify_vapi(body, Headers({"X-Vapi-Secret": "s3cret-value"}), secret) == token
    assert verify_vapi(body, {"authorization": "Bearer s3cret-value"}, bearer) == token
    assert verify_vapi(body, {"Authorization": "bearer  s3cret-value "}, bearer) == token
    rejected(
        "forged",
        verify_vapi,
        body,
        {"x-vapi-secret": "s3cret-valuE"},
        secret,
        secrets=["s3cret-value"],
    )
    rejected(
        "forged",
        verify_vapi,
        body,
        {"authorization": "Bearer nope"},
        bearer,
        secrets=["s3cret-value"],
    )
    rejected("malformed", verify_vapi, body, {"authorization": "Basic s3cret-value"}, bearer)
    rejected("malformed", verify_vapi, body, {"authorization": "Bearer "}, bearer)
    rejected("missing", verify_vapi, body, {}, secret)
    rejected("missing", verify_vapi, body, {"x-vapi-secret": ""}, secret)
    rejected("missing", verify_vapi, body, {"x-vapi-secret": "s3cret-value"}, bearer)


def test_twilio_fixture_form() -> None:
    form = (FIXTURES / "twilio" / "voice-webhook.form").read_text().strip()
    params = parse_qsl(form, keep_blank_values=True)
    assert ("From", "+14155550123") in params
    url = "https://mem.example/voice/twilio?tenant=acme"
    header = sign_twilio(url, params, "twilio-token")
    assert verify_twilio(url, params, header, "twilio-token") == f"twilio:{header}"
    changed = [(k, v + "0" if k == "From" else v) for k, v in params]
    rejected("forged", verify_twilio, url, changed, header, "twilio-token")
    rejected("forged", verify_twilio, url + "&x=1", params, header, "twilio-token")


def test_shared_secret_for_elevenlabs_initiation_and_tools() -> None:
    assert verify_shared_secret("init-secret", "init-secret") == ""
    rejected("forged", verify_shared_secret, "init-secreT", "init-secret", secrets=["init-secret"])
    rejected("forged", verify_shared_secret, "init-secret ", "init-secret")
    rejected("missing", verify_shared_secret, None, "init-secret")
    rejected("missing", verify_shared_secret, "", "init-secret")


def test_shared_secret_non_ascii_header_as_starlette_decodes_it() -> None:
    secret = "pässwörd"
    assert verify_shared_secret(secret, secret) == ""
    as_latin1 = secret.encode("utf-8").decode("latin-1")  # how an ASGI server hands it over
    assert verify_shared_secret(as_latin1, secret) == ""
    rejected("forged", verify_shared_secret, "passwörd", secret)


# --- properties: sign then verify; any change is rejected ---------------------------------


@given(body=bodies, key=secrets, stamp=stamps_ms)
def test_retell_round_trip(body: bytes, key: str, stamp: int) -> None:
    header = sign_retell(body, key, stamp)
    assert verify_retell(body, header, key, now_ms=stamp) == "retell:" + header.split("d=")[1]


@given(
    body=nonempty_bodies,
    key=secrets,
    stamp=stamps_ms,
    index=st.integers(0),
    delta=st.integers(1, 255),
)
def test_retell_body_change(body: bytes, key: str, stamp: int, index: int, delta: int) -> None:
    header = sign_retell(body, key, stamp)
    rejected("forged", verify_retell, change_byte(body, index, delta), header, key, now_ms=stamp)
    rejected("forged", verify_retell, body + b"\n", header, key, now_ms=stamp)
    rejected("forged", verify_retell, body[:-1], header, key, now_ms=stamp)


@given(body=bodies, key=secrets, stamp=stamps_ms, other=st.integers(0, 10**25))
def test_retell_timestamp_change(body: bytes, key: str, stamp: int, other: int) -> None:
    assume(other != stamp)
    digest = sign_retell(body, key, stamp).split("d=")[1]
    for forged in (f"v={other},d={digest}", f"v=0{stamp},d={digest}"):
        rejected({"forged", "stale"}, verify_retell, body, forged, key, now_ms=stamp)


@given(body=bodies, key=secrets, stamp=stamps_ms, index=st.integers(0, 63), pick=st.integers(0))
def test_retell_signature_change(body: bytes, key: str, stamp: int, index: int, pick: int) -> None:
    header = sign_retell(body, key, stamp)
    prefix, digest = header.split("d=")
    forged = prefix + "d=" + change_char(digest, index, HEX, pick)
    rejected("forged", verify_retell, body, forged, key, now_ms=stamp, secrets=[digest])
    rejected("malformed", verify_retell, body, prefix + "d=" + digest.upper(), key, now_ms=stamp)


@given(body=bodies, key=secrets, other=secrets, stamp=stamps_ms)
def test_retell_other_secret(body: bytes, key: str, other: str, stamp: int) -> None:
    assume(other != key)
    header = sign_retell(body, key, stamp)
    rejected("forged", verify_retell, body, header, other, now_ms=stamp)


@given(body=bodies, header=garbage, key=secrets)
def test_retell_garbage_headers(body: bytes, header: str | None, key: str) -> None:
    rejected(REASONS, verify_retell, body, header, key, now_ms=1_700_000_000_000)


@given(body=bodies, key=secrets, stamp=stamps_s)
def test_elevenlabs_round_trip(body: bytes, key: str, stamp: int) -> None:
    header = sign_elevenlabs(body, key, stamp)
    digest = header.split("v0=")[1]
    assert verify_elevenlabs(body, header, key, now=stamp) == f"elevenlabs:{digest}"
    reordered = f"v0={'0' * 64}, v0={digest},  t={stamp}"
    assert verify_elevenlabs(body, reordered, key, now=stamp) == f"elevenlabs:{digest}"
    assert verify_elevenlabs(body, f"t={stamp},v1=xyz,v0={digest}", key, now=stamp)


@given(
    body=nonempty_bodies,
    key=secrets,
    stamp=stamps_s,
    index=st.integers(0),
    delta=st.integers(1, 255),
)
def test_elevenlabs_body_change(body: bytes, key: str, stamp: int, index: int, delta: int) -> None:
    header = sign_elevenlabs(body, key, stamp)
    rejected("forged", verify_elevenlabs, change_byte(body, index, delta), header, key, now=stamp)
    rejected("forged", verify_elevenlabs, body + b" ", header, key, now=stamp)


@given(body=bodies, key=secrets, stamp=stamps_s, other=st.integers(0, 10**25))
def test_elevenlabs_timestamp_change(body: bytes, key: str, stamp: int, other: int) -> None:
    assume(other != stamp)
    digest = sign_elevenlabs(body, key, stamp).split("v0=")[1]
    for forged in (f"t={other},v0={digest}", f"t=0{stamp},v0={digest}"):
        rejected({"forged", "stale"}, verify_elevenlabs, body, forged, key, now=stamp)


@given(body=bodies, key=secrets, stamp=stamps_s, index=st.integers(0, 63), pick=st.integers(0))
def test_elevenlabs_signature_change(
    body: bytes, key: str, stamp: int, index: int, pick: int
) -> None:
    header = sign_elevenlabs(body, key, stamp)
    prefix, digest = header.split("v0=")
    forged = prefix + "v0=" + change_char(digest, index, HEX, pick)
    rejected("forged", verify_elevenlabs, body, forged, key, now=stamp, secrets=[digest])


@given(body=bodies, key=secrets, other=secrets, stamp=stamps_s)
def test_elevenlabs_other_secret(body: bytes, key: str, other: str, stamp: int) -> None:
    assume(other != key)
    header = sign_elevenlabs(body, key, stamp)
    rejected("forged", verify_elevenlabs, body, header, other, now=stamp)


@given(body=bodies, header=garbage, key=secrets)
def test_elevenlabs_garbage_headers(body: bytes, header: str | None, key: str) -> None:
    rejected(REASONS, verify_elevenlabs, body, header, key, now=1_739_537_297)


vapi_auths = st.builds(
    VapiAuth,
    mode=st.just("hmac"),
    secret=secrets,
    prefix=st.sampled_from(["", "sha256=", "v1,"]),
    encoding=st.sampled_from(["hex", "base64"]),
    algorithm=st.sampled_from(["sha256", "sha1", "sha512"]),
)
vapi_stamps = st.one_of(stamps_s, stamps_ms.filter(lambda ms: ms > 10**12))


def vapi_now(stamp: int) -> float:
    return stamp / 1000 if stamp > 10**12 else stamp


@given(body=bodies, auth=vapi_auths, stamp=vapi_stamps)
def test_vapi_round_trip(body: bytes, auth: VapiAuth, stamp: int) -> None:
    headers = sign_vapi_hmac(body, auth, stamp)
    token = verify_vapi(body, headers, auth, now=vapi_now(stamp))
    assert token == verify_vapi(body, Headers(headers), auth, now=vapi_now(stamp))
    upper = {k.upper(): v for k, v in headers.items()}
    assert verify_vapi(body, upper, auth, now=vapi_now(stamp)) == token


@given(
    body=nonempty_bodies,
    auth=vapi_auths,
    stamp=vapi_stamps,
    index=st.integers(0),
    delta=st.integers(1, 255),
)
def test_vapi_body_change(body: bytes, auth: VapiAuth, stamp: int, index: int, delta: int) -> None:
    headers = sign_vapi_hmac(body, auth, stamp)
    now = vapi_now(stamp)
    rejected("forged", verify_vapi, change_byte(body, index, delta), headers, auth, now=now)


@given(body=bodies, auth=vapi_auths, stamp=vapi_stamps, other=st.integers(0, 10**25))
def test_vapi_timestamp_change(body: bytes, auth: VapiAuth, stamp: int, other: int) -> None:
    assume(other != stamp)
    headers = sign_vapi_hmac(body, auth, stamp)
    for forged in (str(other), f"0{stamp}"):
        changed = {**headers, auth.timestamp_header: forged}
        rejected({"forged", "stale"}, verify_vapi, body, changed, auth, now=vapi_now(stamp))


@given(body=bodies, auth=vapi_auths, stamp=vapi_stamps, index=st.integers(0), pick=st.integers(0))
def test_vapi_signature_change(
    body: bytes, auth: VapiAuth, stamp: int, index: int, pick: int
) -> None:
    headers = sign_vapi_hmac(body, auth, stamp)
    signature = headers[auth.signature_header][len(auth.prefix) :]
    digits = signature.rstrip("=")
    alphabet = HEX if auth.encoding == "hex" else B64
    changed = change_char(digits, index, alphabet, pick) + signature[len(digits) :]
    forged = {**headers, auth.signature_header: auth.prefix + changed}
    rejected("forged", verify_vapi, body, forged, auth, now=vapi_now(stamp), secrets=[signature])


@given(body=bodies, auth=vapi_auths, other=secrets, stamp=vapi_stamps)
def test_vapi_other_secret(body: bytes, auth: VapiAuth, other: str, stamp: int) -> None:
    assume(other != auth.secret)
    headers = sign_vapi_hmac(body, auth, stamp)
    wrong = VapiAuth(
        "hmac", other, prefix=auth.prefix, encoding=auth.encoding, algorithm=auth.algorithm
    )
    rejected("forged", verify_vapi, body, headers, wrong, now=vapi_now(stamp))


@given(
    body=bodies,
    auth=st.one_of(vapi_auths, st.builds(VapiAuth, st.sampled_from(["secret", "bearer"]), secrets)),
    headers=st.dictionaries(
        st.sampled_from(["x-signature", "X-Timestamp", "x-vapi-secret", "authorization", "other"]),
        garbage.filter(lambda v: v is not None),
    ),
)
def test_vapi_garbage_headers(body: bytes, auth: VapiAuth, headers: dict[str, str]) -> None:
    assume(not could_match(headers.get("x-vapi-secret"), auth.secret))
    scheme, _, token = (headers.get("authorization") or "").strip().partition(" ")
    assume(not (scheme.lower() == "bearer" and could_match(token.strip(), auth.secret)))
    rejected(REASONS, verify_vapi, body, headers, auth, now=1_724_000_000)


param_lists = st.lists(st.tuples(st.text(max_size=20), st.text(max_size=40)), max_size=12)
twilio_urls = st.sampled_from(
    [
        "https://mem.example/voice/twilio",
        "https://mem.example:443/voice/twilio?x=1",
        "http://10.0.0.5:8080/twilio",
        "https://user:pw@mem.example/twilio#frag",
    ]
)


@given(url=twilio_urls, params=param_lists, key=secrets, order=st.randoms())
def test_twilio_round_trip(url: str, params: list[tuple[str, str]], key: str, order) -> None:
    header = sign_twilio(url, params, key)
    shuffled = list(params)
    order.shuffle(shuffled)
    assert verify_twilio(url, shuffled, header, key) == f"twilio:{header}"


@given(
    url=twilio_urls,
    params=param_lists,
    key=secrets,
    extra=st.tuples(st.text(max_size=5), st.text(min_size=1, max_size=5)),
)
def test_twilio_param_change(url: str, params: list[tuple[str, str]], key: str, extra) -> None:
    header = sign_twilio(url, params, key)
    rejected("forged", verify_twilio, url, params + [extra], header, key)
    rejected("forged", verify_twilio, url + "/", params, header, key)
    if params:
        k, v = params[0]
        rejected("forged", verify_twilio, url, [(k, v + "x")] + params[1:], header, key)


@given(
    url=twilio_urls, params=param_lists, key=secrets, index=st.integers(0, 26), pick=st.integers(0)
)
def test_twilio_signature_change(
    url: str, params: list[tuple[str, str]], key: str, index: int, pick: int
) -> None:
    header = sign_twilio(url, params, key)
    forged = change_char(header[:27], index, B64, pick) + "="
    rejected("forged", verify_twilio, url, params, forged, key, secrets=[header])


@given(url=twilio_urls, params=param_lists, key=secrets, other=secrets)
def test_twilio_other_secret(url: str, params: list[tuple[str, str]], key: str, other: str) -> None:
    assume(other != key)
    rejected("forged", verify_twilio, url, params, sign_twilio(url, params, key), other)


@given(header=garbage, key=secrets)
def test_twilio_garbage_headers(header: str | None, key: str) -> None:
    assume(header != sign_twilio(TWILIO_URL, TWILIO_PARAMS, key))
    rejected(REASONS, verify_twilio, TWILIO_URL, TWILIO_PARAMS, header, key)


@given(value=garbage, secret=secrets)
def test_shared_secret_garbage(value: str | None, secret: str) -> None:
    assume(not could_match(value, secret))
    rejected(REASONS, verify_shared_secret, value, secret)


# --- timestamps: stale and future ---------------------------------------------------------


def test_retell_window_boundaries() -> None:
    v = 1_700_000_000_000
    header = sign_retell(RETELL_BODY, "k", v)
    for now in (v - 300_000, v + 300_000):
        assert verify_retell(RETELL_BODY, header, "k", now_ms=now)
    for now in (v - 300_001, v + 300_001, 0, v * 2):
        rejected("stale", verify_retell, RETELL_BODY, header, "k", now_ms=now)
    assert verify_retell(RETELL_BODY, header, "k", now_ms=v + 10_000, tolerance_ms=10_000)
    rejected(
        "stale", verify_retell, RETELL_BODY, header, "k", now_ms=v + 10_001, tolerance_ms=10_000
    )
    huge = sign_retell(RETELL_BODY, "k", 10**40)
    rejected("stale", verify_retell, RETELL_BODY, huge, "k", now_ms=v)


def test_retell_default_clock() -> None:
    import time

    now = time.time_ns() // 1_000_000
    assert verify_retell(RETELL_BODY, sign_retell(RETELL_BODY, "k", now), "k")
    rejected("stale", verify_retell, RETELL_BODY, sign_retell(RETELL_BODY, "k", now - 400_000), "k")


def test_elevenlabs_window_boundaries() -> None:
    t = 1_739_537_297
    header = sign_elevenlabs(ELEVEN_BODY, "s", t)
    for now in (t - 1800, t + 1800, t + 1799.999):
        assert verify_elevenlabs(ELEVEN_BODY, header, "s", now=now)
    for now in (t - 1800.5, t + 1800.001, t + 1801, 0):
        rejected("stale", verify_elevenlabs, ELEVEN_BODY, header, "s", now=now)
    assert verify_elevenlabs(ELEVEN_BODY, header, "s", now=t + 60, tolerance_s=60)
    rejected("stale", verify_elevenlabs, ELEVEN_BODY, header, "s", now=t + 61, tolerance_s=60)


def test_elevenlabs_default_clock() -> None:
    import time

    now = int(time.time())
    assert verify_elevenlabs(ELEVEN_BODY, sign_elevenlabs(ELEVEN_BODY, "s", now), "s")
    rejected(
        "stale", verify_elevenlabs, ELEVEN_BODY, sign_elevenlabs(ELEVEN_BODY, "s", now - 3600), "s"
    )


@pytest.mark.parametrize(
    "stamp,now", [(1_724_000_000, 1_724_000_000), (1_724_000_000_000, 1_724_000_000)]
)
def test_vapi_window_boundaries(stamp: int, now: float) -> None:
    auth = VapiAuth("hmac", "vapi-secret", tolerance_s=300)
    headers = sign_vapi_hmac(b"{}", auth, stamp)
    for moment in (now - 300, now + 300):
        assert verify_vapi(b"{}", headers, auth, now=moment)
    for moment in (now - 300.01, now + 301, 0):
        rejected("stale", verify_vapi, b"{}", headers, auth, now=moment)


def test_vapi_default_clock() -> None:
    import time

    auth = VapiAuth("hmac", "vapi-secret")
    assert verify_vapi(b"{}", sign_vapi_hmac(b"{}", auth, int(time.time() * 1000)), auth)
    rejected("stale", verify_vapi, b"{}", sign_vapi_hmac(b"{}", auth, int(time.time()) - 600), auth)


def test_vapi_missing_and_malformed_headers() -> None:
    auth = VapiAuth("hmac", "vapi-secret", prefix="sha256=")
    headers = sign_vapi_hmac(b"{}", auth, 1_724_000_000)
    for name in ("x-signature", "x-timestamp"):
        partial = {k: v for k, v in headers.items() if k != name}
        rejected("missing", verify_vapi, b"{}", partial, auth, now=1_724_000_000)
    for name, value in (
        ("x-timestamp", "1.5"),
        ("x-timestamp", "-1"),
        ("x-signature", "sha256=xyz"),
    ):
        rejected("malformed", verify_vapi, b"{}", {**headers, name: value}, auth, now=1_724_000_000)


# --- Twilio: ports and repeated parameters ------------------------------------------------


@pytest.mark.parametrize(
    "signed,received",
    [
        ("https://mem.example/twilio?a=1", "https://mem.example:443/twilio?a=1"),
        ("https://mem.example:443/twilio?a=1", "https://mem.example/twilio?a=1"),
        ("http://mem.example/twilio", "http://mem.example:80/twilio"),
        ("http://mem.example:80/twilio", "http://mem.example/twilio"),
        ("https://u:p@mem.example:443/twilio", "https://u:p@mem.example/twilio"),
        ("https://[2001:db8::1]:443/twilio", "https://[2001:db8::1]/twilio"),
        ("https://mem.example:8443/twilio", "https://mem.example:8443/twilio"),
    ],
)
def test_twilio_default_port_variants(signed: str, received: str) -> None:
    header = sign_twilio(signed, TWILIO_PARAMS, "12345")
    assert verify_twilio(received, TWILIO_PARAMS, header, "12345") == f"twilio:{header}"


@pytest.mark.parametrize(
    "signed,received",
    [
        ("https://mem.example:8443/twilio", "https://mem.example/twilio"),
        ("https://mem.example/twilio", "https://mem.example:8443/twilio"),
        ("https://mem.example:80/twilio", "https://mem.example/twilio"),
        ("http://mem.example:443/twilio", "http://mem.example/twilio"),
        ("https://mem.example/twilio", "http://mem.example/twilio"),
    ],
)
def test_twilio_other_ports_are_not_interchangeable(signed: str, received: str) -> None:
    header = sign_twilio(signed, TWILIO_PARAMS, "12345")
    rejected("forged", verify_twilio, received, TWILIO_PARAMS, header, "12345")


def test_twilio_repeated_params_keep_every_value_sorted() -> None:
    url = "https://mem.example/twilio"
    params = [("Digits", "9"), ("To", "+1"), ("Digits", "1"), ("Digits", "5")]
    payload = url + "Digits1Digits5Digits9To+1"
    expected = base64.b64encode(hmac.new(b"tok", payload.encode(), hashlib.sha1).digest()).decode()
    assert sign_twilio(url, params, "tok") == expected
    assert verify_twilio(url, list(reversed(params)), expected, "tok")
    rejected("forged", verify_twilio, url, params[:-1], expected, "tok")
    rejected("forged", verify_twilio, url, params + [("Digits", "9")], expected, "tok")


def test_twilio_malformed_and_missing_headers() -> None:
    for header in (None, ""):
        rejected("missing", verify_twilio, TWILIO_URL, TWILIO_PARAMS, header, "12345")
    for header in (
        TWILIO_SIG[:-1],
        TWILIO_SIG + "=",
        " " + TWILIO_SIG,
        TWILIO_SIG.replace("/", "_"),
    ):
        rejected("malformed", verify_twilio, TWILIO_URL, TWILIO_PARAMS, header, "12345")


# --- header parsing -----------------------------------------------------------------------


def test_retell_header_must_match_exactly() -> None:
    header = f"v=1700000000000,d={RETELL_D}"
    for bad in (
        header + " ",
        " " + header,
        header.replace(",", ", "),
        f"d={RETELL_D},v=1700000000000",
        header[:-1],
        header + "0",
        "v=١٧٠٠٠٠٠٠٠٠٠٠٠,d=" + RETELL_D,  # non-ASCII digits
        "v=,d=" + RETELL_D,
    ):
        rejected("malformed", verify_retell, RETELL_BODY, bad, "test-api-key", now_ms=1700000000000)
    for missing in (None, ""):
        rejected("missing", verify_retell, RETELL_BODY, missing, "test-api-key")


def test_elevenlabs_header_forms() -> None:
    now = 1739537297
    ok = (
        f"v0={ELEVEN_V0},t={now}",
        f"t={now}, v0={ELEVEN_V0}",
        f"t={now},v0={ELEVEN_V0.upper()}",
        f"t={now},v0={'ab' * 32},v0={ELEVEN_V0}",
        f"t={now},v0={ELEVEN_V0},v0={'ab' * 32}",
    )
    for header in ok:
        assert (
            verify_elevenlabs(ELEVEN_BODY, header, "wsec_test", now=now)
            == f"elevenlabs:{ELEVEN_V0}"
        )
    malformed = (
        f"t={now}",
        f"v0={ELEVEN_V0}",
        f"t={now},t={now},v0={ELEVEN_V0}",
        f"t=x{now},v0={ELEVEN_V0}",
        f"t={now},v0={ELEVEN_V0[:-1]}",
        f"t={now},v0={ELEVEN_V0},v0=nothex",
        f"t={now};v0={ELEVEN_V0}",
        f"t={now},,v0={ELEVEN_V0}",
    )
    for header in malformed:
        rejected("malformed", verify_elevenlabs, ELEVEN_BODY, header, "wsec_test", now=now)


def test_non_string_headers_are_malformed() -> None:
    rejected("malformed", verify_retell, RETELL_BODY, b"v=1,d=00", "k")  # type: ignore[arg-type]
    rejected("malformed", verify_elevenlabs, ELEVEN_BODY, 42, "k")  # type: ignore[arg-type]
    rejected("malformed", verify_twilio, TWILIO_URL, TWILIO_PARAMS, b"x", "k")  # type: ignore[arg-type]


# --- replay tokens ------------------------------------------------------------------------


def test_replay_tokens_identify_the_signed_request() -> None:
    t = 1_700_000_000_000
    same = [
        verify_retell(RETELL_BODY, sign_retell(RETELL_BODY, "k", t), "k", now_ms=t) for _ in "ab"
    ]
    assert same[0] == same[1]
    others = {
        same[0],
        verify_retell(RETELL_BODY, sign_retell(RETELL_BODY, "k", t + 1), "k", now_ms=t),
        verify_retell(b"{}", sign_retell(b"{}", "k", t), "k", now_ms=t),
        verify_retell(RETELL_BODY, sign_retell(RETELL_BODY, "k2", t), "k2", now_ms=t),
    }
    assert len(others) == 4

    s = t // 1000
    eleven = {
        verify_elevenlabs(b, sign_elevenlabs(b, "k", ts), "k", now=s)
        for b, ts in ((b"{}", s), (b"{}", s), (b"{}", s + 1), (b"[]", s))
    }
    assert len(eleven) == 3

    auth = VapiAuth("hmac", "k")
    vapi = {
        verify_vapi(b, sign_vapi_hmac(b, auth, ts), auth, now=s)
        for b, ts in ((b"{}", s), (b"{}", s), (b"{}", s + 1), (b"[]", s))
    }
    assert len(vapi) == 3
    base64_auth = VapiAuth("hmac", "k", encoding="base64", prefix="sha256=")
    assert verify_vapi(b"{}", sign_vapi_hmac(b"{}", base64_auth, s), base64_auth, now=s) in vapi

    twilio = {
        verify_twilio(u, p, sign_twilio(u, p, "k"), "k")
        for u, p in (
            (TWILIO_URL, TWILIO_PARAMS),
            (TWILIO_URL, TWILIO_PARAMS[::-1]),
            (TWILIO_URL, TWILIO_PARAMS[1:]),
            (TWILIO_URL + "&baz=3", TWILIO_PARAMS),
        )
    }
    assert len(twilio) == 3

    secret = VapiAuth("secret", "k")
    headers = {"x-vapi-secret": "k"}
    assert verify_vapi(b"{}", headers, secret) == verify_vapi(b"{}", headers, secret)
    assert verify_vapi(b"{}", headers, secret) != verify_vapi(b"[]", headers, secret)
    assert len({tok.split(":")[0] for tok in (*others, *eleven, *vapi, *twilio)}) == 4


@given(body=bodies, other=bodies, stamp=stamps_ms, key=secrets)
def test_replay_token_differs_for_different_requests(
    body: bytes, other: bytes, stamp: int, key: str
) -> None:
    assume(body != other)
    first = verify_retell(body, sign_retell(body, key, stamp), key, now_ms=stamp)
    again = verify_retell(body, sign_retell(body, key, stamp), key, now_ms=stamp)
    second = verify_retell(other, sign_retell(other, key, stamp), key, now_ms=stamp)
    assert first == again != second


# --- secrets never leak, configuration errors are loud ------------------------------------


def test_errors_never_show_secrets_or_expected_digests() -> None:
    body, key = RETELL_BODY, "test-api-key"
    cases = [
        (
            lambda: verify_retell(body, f"v=1700000000000,d={'0' * 64}", key, now_ms=1700000000000),
            [key, RETELL_D],
        ),
        (
            lambda: verify_elevenlabs(
                ELEVEN_BODY, f"t=1739537297,v0={'0' * 64}", "wsec_test", now=1739537297
            ),
            ["wsec_test", ELEVEN_V0],
        ),
        (
            lambda: verify_twilio(TWILIO_URL, TWILIO_PARAMS, "A" * 27 + "=", "12345"),
            ["12345", TWILIO_SIG],
        ),
        (
            lambda: verify_vapi(
                body, {"x-vapi-secret": "wrong"}, VapiAuth("secret", "vapi-s3cret")
            ),
            ["vapi-s3cret"],
        ),
        (
            lambda: verify_vapi(
                body, {"authorization": "Bearer vapi-s3cre"}, VapiAuth("bearer", "vapi-s3cret")
            ),
            ["vapi-s3cret"],
        ),
        (lambda: verify_shared_secret("nope", "shared-s3cret"), ["shared-s3cret"]),
    ]
    for call, secret_values in cases:
        err = rejected("forged", call, secrets=secret_values)
        assert err.__cause__ is None and err.__context__ is None
    auth = VapiAuth("hmac", "vapi-s3cret", encoding="base64")
    headers = sign_vapi_hmac(body, auth, 1724000000)
    expected = headers["x-signature"]
    forged = {
        **headers,
        "x-signature": "A" + expected[1:] if expected[0] != "A" else "B" + expected[1:],
    }
    rejected(
        "forged", verify_vapi, body, forged, auth, now=1724000000, secrets=["vapi-s3cret", expected]
    )


def test_signature_error_shape() -> None:
    err = SignatureError("stale")
    assert err.reason == "stale" and isinstance(err, BotWireError)
    assert err.code == "unauthorized"
    assert str(err) == "the webhook's timestamp is outside the accepted window"


@pytest.mark.parametrize("empty", ["", b""])
def test_empty_secrets_are_configuration_errors(empty) -> None:
    calls = [
        lambda: verify_retell(RETELL_BODY, f"v=1,d={RETELL_D}", empty),
        lambda: verify_elevenlabs(ELEVEN_BODY, f"t=1,v0={ELEVEN_V0}", empty),
        lambda: verify_twilio(TWILIO_URL, TWILIO_PARAMS, TWILIO_SIG, empty),
        lambda: verify_shared_secret("", empty),
        lambda: verify_shared_secret("anything", empty),
        lambda: sign_retell(b"", empty, 1),
        lambda: sign_elevenlabs(b"", empty, 1),
        lambda: sign_twilio(TWILIO_URL, [], empty),
        lambda: VapiAuth("secret", empty),
        lambda: VapiAuth("hmac", empty),
    ]
    for call in calls:
        with pytest.raises(ValueError, match="empty"):
            call()
        with pytest.raises(WebhookConfigError):
            call()


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"mode": "basic"}, "mode must be one of secret, bearer, hmac"),
        ({"encoding": "base32"}, "encoding must be one of hex, base64"),
        ({"algorithm": "md5"}, "algorithm must be one of sha256, sha1, sha512"),
        ({"secret": None}, "must be a string"),
        ({"signature_header": ""}, "signature_header must be a header name"),
        ({"tolerance_s": -1}, "tolerance_s must be a non-negative number"),
    ],
)
def test_vapi_auth_validation(kwargs: dict, match: str) -> None:
    settings = {"mode": "hmac", "secret": "s", **kwargs}
    with pytest.raises(ValueError, match=match):
        VapiAuth(**settings)


def test_other_bad_arguments() -> None:
    with pytest.raises(WebhookConfigError, match="mode 'hmac'"):
        sign_vapi_hmac(b"", VapiAuth("secret", "s"), 1)
    with pytest.raises(ValueError, match="timestamp"):
        sign_retell(b"", "k", -1)
    with pytest.raises(ValueError, match="timestamp"):
        sign_elevenlabs(b"", "k", "1")  # type: ignore[arg-type]
    with pytest.raises(WebhookConfigError, match="tolerance_ms"):
        verify_retell(RETELL_BODY, f"v=1,d={RETELL_D}", "k", tolerance_ms=-1)
    with pytest.raises(TypeError, match="raw request bytes"):
        verify_retell('{"event":"call_ended"}', f"v=1,d={RETELL_D}", "k")  # type: ignore[arg-type]
    assert sign_retell(bytearray(RETELL_BODY), b"test-api-key", 1700000000000).endswith(RETELL_D)
