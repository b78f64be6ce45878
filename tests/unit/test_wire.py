"""Error answers become the same exceptions the embedded engines raise, ours or a proxy's."""

from __future__ import annotations

import json

import pytest

from botwire import (
    AuthenticationFailed,
    InvalidInput,
    NotFound,
    PermissionDenied,
    QuotaExceeded,
    StorageUnavailable,
    VersionConflict,
)
from botwire._wire import error_body, raise_for_error


@pytest.mark.parametrize(
    "status, exc",
    [(401, AuthenticationFailed), (403, PermissionDenied), (404, NotFound),
     (412, VersionConflict), (413, InvalidInput), (429, QuotaExceeded),
     (400, InvalidInput), (502, StorageUnavailable), (503, StorageUnavailable)],
)
def test_answers_that_are_not_ours_map_by_status(status, exc):
    with pytest.raises(exc):
        raise_for_error(status, b"<html>proxy says no</html>", {"retry-after": "7"})


def test_quota_keeps_retry_after_from_a_proxy_and_from_us():
    with pytest.raises(QuotaExceeded) as caught:
        raise_for_error(429, b"slow down", {"retry-after": "7"})
    assert caught.value.retry_after == 7
    body = json.dumps(error_body("too_many_auth_failures", "wait")).encode()
    with pytest.raises(AuthenticationFailed) as failed:
        raise_for_error(429, body, {"retry-after": "30"})
    assert failed.value.retry_after == 30


def test_version_conflict_carries_the_current_version():
    body = json.dumps(error_body("version_conflict", "x", current_version=4, expected=2))
    with pytest.raises(VersionConflict) as caught:
        raise_for_error(412, body.encode(), {}, key="k")
    assert caught.value.current_version == 4 and caught.value.key == "k"


@pytest.mark.parametrize(
    "url, shown",
    [
        ("postgresql://app:s3cret@db:5432/x", "postgresql://app@db:5432/x"),
        ("postgresql://:s3cret@db/x", "postgresql://db/x"),
        ("http://bw_live_key@host:8421", "http://host:8421"),
        ("https://bw_live_key:@host/api", "https://host/api"),
        ("HTTPS://:bw_live_key@host", "HTTPS://host"),
        ("postgresql://app@db/x", "postgresql://app@db/x"),  # a user name alone is no secret
        ("sqlite:////tmp/botwire.db", "sqlite:////tmp/botwire.db"),
        ("sqlite:///relative.db?timeout=5", "sqlite:///relative.db?timeout=5"),
        (
            "postgresql://app@db/x?sslmode=require&password=s3cret&sslpassword=s3cret",
            "postgresql://app@db/x?sslmode=require",
        ),
        (
            "postgresql://app@db/x?options=-csearch_path%3Ds&PASSWORD=s3cret",
            "postgresql://app@db/x?options=-csearch_path%3Ds",
        ),
        ("http://host/api?api_key=s3cret&timeout=3", "http://host/api?timeout=3"),
        ("http://host?key=s3cret&token=s3cret", "http://host"),
        ("postgresql://u:s3cret@[::1]:5432/x", "postgresql://u@[::1]:5432/x"),
        ("http://k:s3cret@[::1", "http://[::1"),  # not even a valid URL
        ("postgresql://u:p@ss:s3cret@db/x", "postgresql://u@db/x"),  # an unescaped @
        ("/tmp/x.db", "/tmp/x.db"),
        # raw ? # / in a password (libpq takes ? and #): the userinfo ends at the right @
        ("postgresql://postgres:hun?s3cret@127.0.0.1:5432/t", "postgresql://postgres@127.0.0.1:5432/t"),
        ("postgresql://u:s3#cret@db/x?sslmode=require", "postgresql://u@db/x?sslmode=require"),
        ("postgresql://u:s3/cret@db/x", "postgresql://u@db/x"),
        ("postgresql://u:?s3cret@db", "postgresql://u@db"),
        ("postgresql://u:s3?c@ret@db/x", "postgresql://u@db/x"),
        ("https://bw_live_key:s3?cret@host:8421", "https://host:8421"),
        # an @ in the path or query is no userinfo
        ("http://host/api?email=a@b.com&key=s3cret", "http://host/api?email=a@b.com"),
        ("http://host?email=a@b.com&token=s3cret", "http://host?email=a@b.com"),
        ("postgresql://db/x?user=app@srv&password=s3cret", "postgresql://db/x?user=app@srv"),
        ("postgresql://db:5432/x?user=app@srv", "postgresql://db:5432/x?user=app@srv"),
        # libpq conninfo strings: secret values masked, quoted or with escapes
        (
            "host=db.internal user=app password=s3cret dbname=app",
            "host=db.internal user=app password=*** dbname=app",
        ),
        ("host=db password = 'a s3cret \\' b' port=5432", "host=db password = *** port=5432"),
        ("host=db PASSWORD=s3\\ cret sslpassword='s3cret", "host=db PASSWORD=*** sslpassword=***"),
        ("password=s3cret", "password=***"),
        ("/tmp/password=x.db", "/tmp/password=x.db"),  # a path, not a conninfo pair
    ],
)
def test_redact_hides_passwords_and_api_keys(url, shown):
    from botwire._wire import redact

    assert redact(url) == shown
    assert "s3cret" not in redact(url) and "bw_live_key" not in redact(url)


def test_memory_repr_never_shows_an_api_key():
    from botwire import Memory

    with Memory("ns", url="http://bw_secret_value@127.0.0.1:9") as m:
        assert "bw_secret_value" not in repr(m)


def test_a_request_timeout_is_storage_unavailable_for_the_client():
    from botwire.server.protocol import TIMEOUT_RESPONSE

    body = TIMEOUT_RESPONSE.split(b"\r\n\r\n", 1)[1]  # what the server writes on a deadline
    with pytest.raises(StorageUnavailable, match="not received in time"):
        raise_for_error(408, body, {})
