"""The /v1 API as a client that is not botwire's own sees it: statuses, headers, error bodies."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from botwire._wire import CODES, make_cursor, segment

HOSTILE = ["a/b", "..", ".", "?x=1#y", "100%", "sp ace", "ключ", "🙂", "a\\b", "%2F", "+"]


def k(ns: str, key: str) -> str:
    return f"/v1/namespaces/{segment(ns)}/keys/{segment(key)}"


def assert_error(resp, status: int, code: str) -> dict:
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert set(body) == {"error"}
    assert body["error"]["code"] == code
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    assert CODES[code][0] == status
    return body["error"]


async def test_put_get_roundtrip_with_etag_and_metadata(api):
    r = await api.call("PUT", k("cust", "order"), content=b'{"id": "A-1", "n": 1.5}')
    assert r.status_code == 200 and r.json() == {"version": 1}
    assert r.headers["etag"] == '"1"'
    r = await api.call("GET", k("cust", "order"))
    assert r.status_code == 200
    assert r.json() == {"id": "A-1", "n": 1.5}
    assert r.headers["etag"] == '"1"' and r.headers["x-botwire-version"] == "1"
    assert float(r.headers["x-botwire-created-at"]) > 0
    assert "x-botwire-expires-at" not in r.headers
    r = await api.call("HEAD", k("cust", "order"))
    assert r.status_code == 200 and r.content == b"" and r.headers["etag"] == '"1"'


@pytest.mark.parametrize("name", HOSTILE)
async def test_any_characters_in_namespace_and_key(api, name):
    r = await api.call("PUT", k(name, name), content=json.dumps(name))
    assert r.status_code == 200, r.text
    r = await api.call("GET", k(name, name))
    assert r.json() == name
    listing = await api.call("GET", f"/v1/namespaces/{segment(name)}/keys")
    assert [i["key"] for i in listing.json()["keys"]] == [name]
    found = await api.call("GET", "/v1/namespaces", params={"prefix": name})
    assert name in found.json()["namespaces"]


async def test_compare_and_set_with_if_match_and_if_none_match(api):
    path = k("cas", "k")
    r = await api.call("PUT", path, content=b"1", headers={"If-None-Match": "*"})
    assert r.status_code == 200 and r.json()["version"] == 1
    r = await api.call("PUT", path, content=b"2", headers={"If-None-Match": "*"})
    err = assert_error(r, 412, "version_conflict")
    assert err["current_version"] == 1
    r = await api.call("PUT", path, content=b"3", headers={"If-Match": '"7"'})
    assert assert_error(r, 412, "version_conflict")["current_version"] == 1
    r = await api.call("PUT", path, content=b"4", headers={"If-Match": '"1"'})
    assert r.status_code == 200 and r.json()["version"] == 2
    assert (await api.call("GET", path)).json() == 4
    r = await api.call("PUT", path, content=b"5", headers={"If-Match": "junk"})
    assert_error(r, 400, "invalid_input")
    assert (await api.call("GET", path)).json() == 4


@pytest.mark.parametrize("tag", [b'"\xb2"', b'"' + b"9" * 30 + b'"', b'"99999999999999999999"'])
async def test_odd_if_match_tags_are_400(api, tag):
    r = await api.call("PUT", k("cas", "odd"), content=b"1", headers={"If-Match": tag})
    assert_error(r, 400, "invalid_input")


async def test_if_match_zero_never_matches(api):
    r = await api.call("PUT", k("cas", "absent"), content=b"1", headers={"If-Match": '"0"'})
    assert_error(r, 412, "version_conflict")
    assert_error(await api.call("GET", k("cas", "absent")), 404, "not_found")


async def test_delete_with_if_match(api):
    path = k("cas", "del")
    assert (await api.call("PUT", path, content=b"1")).json()["version"] == 1
    r = await api.call("DELETE", path, headers={"If-Match": '"7"'})
    assert assert_error(r, 412, "version_conflict")["current_version"] == 1
    r = await api.call("DELETE", path, headers={"If-None-Match": "*"})
    assert "If-Match" in assert_error(r, 400, "invalid_input")["message"]
    assert (await api.call("GET", path)).json() == 1
    r = await api.call("DELETE", path, headers={"If-Match": '"1"'})
    assert r.status_code == 200 and r.json() == {"deleted": True}
    r = await api.call("DELETE", path, headers={"If-Match": '"1"'})
    assert assert_error(r, 412, "version_conflict")["current_version"] == 0


async def test_a_body_cut_short_by_a_disconnect_is_not_stored(api):
    app = api.client._transport.app
    messages = [
        {"type": "http.request", "body": b'"12', "more_body": True},
        {"type": "http.disconnect"},
    ]
    sent = []

    async def receive():
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message):
        sent.append(message)

    scope = {
        "type": "http", "method": "PUT", "path": "/v1/namespaces/n/keys/cut",
        "raw_path": b"/v1/namespaces/n/keys/cut", "query_string": b"", "root_path": "",
        "scheme": "http", "http_version": "1.1", "server": ("t", 80), "client": ("10.0.0.1", 1),
        "headers": [(b"authorization", f"Bearer {api.admin}".encode()),
                    (b"content-length", b"6")],
    }
    await app(scope, receive, send)
    assert sent[0]["status"] == 400
    assert_error(await api.call("GET", k("n", "cut")), 404, "not_found")


async def test_ttl_hides_the_key(api):
    r = await api.call("PUT", k("ttl", "k"), content=b"1", params={"ttl": "0.05"})
    assert r.status_code == 200
    got = await api.call("GET", k("ttl", "k"))
    assert float(got.headers["x-botwire-expires-at"]) > float(got.headers["x-botwire-created-at"])
    import asyncio

    await asyncio.sleep(0.1)
    assert_error(await api.call("GET", k("ttl", "k")), 404, "not_found")
    assert_error(
        await api.call("PUT", k("ttl", "k"), content=b"1", params={"ttl": "-1"}),
        400,
        "invalid_input",
    )


async def test_batch_incr_logs_listing_and_forget(api):
    r = await api.call(
        "POST", "/v1/namespaces/b/batch/set", json={"items": {"x": 1, "y": [1, 2]}, "ttl": None}
    )
    assert r.json() == {"versions": {"x": 1, "y": 1}}
    r = await api.call("POST", "/v1/namespaces/b/batch/get", json={"keys": ["x", "y", "z"]})
    assert r.json() == {"items": {"x": 1, "y": [1, 2]}}
    r = await api.call("POST", "/v1/namespaces/b/batch/get", json={"keys": ["x"], "meta": True})
    assert r.json()["items"]["x"]["version"] == 1
    r = await api.call("POST", "/v1/namespaces/b/keys/x/incr", json={"by": 41})
    assert r.json() == {"value": 42}
    assert_error(await api.call("POST", "/v1/namespaces/b/keys/y/incr"), 409, "not_an_integer")
    r = await api.call("POST", "/v1/namespaces/b/logs/calls", json={"entries": [{"a": 1}, 2]})
    assert r.json() == {"seqs": [1, 2]}
    r = await api.call("GET", "/v1/namespaces/b/logs/calls", params={"last": 1})
    assert [e["value"] for e in r.json()["entries"]] == [2]
    r = await api.call("GET", "/v1/namespaces/b/logs/calls", params={"after": 0, "limit": 10})
    assert [e["seq"] for e in r.json()["entries"]] == [1, 2]
    assert (await api.call("GET", "/v1/namespaces/b/logs/calls/count")).json() == {"count": 2}
    stats = (await api.call("GET", "/v1/namespaces/b")).json()
    assert stats["keys"] == 2 and stats["bytes"] > 0
    assert (await api.call("DELETE", "/v1/namespaces/b")).json() == {"forgotten": True}
    assert (await api.call("GET", "/v1/namespaces/b")).json()["keys"] == 0


async def test_listing_pages_with_opaque_cursor(api):
    items = {f"k{i:03}": i for i in range(25)}
    await api.call("POST", "/v1/namespaces/p/batch/set", json={"items": items})
    seen, cursor = [], None
    while True:
        params = {"limit": 10, **({"cursor": cursor} if cursor else {})}
        page = (await api.call("GET", "/v1/namespaces/p/keys", params=params)).json()
        seen += [i["key"] for i in page["keys"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == sorted(items)


@pytest.mark.parametrize("cursor", ["nope", "!!!", make_cursor("x")[:-3] + "@@", "e30"])
async def test_bad_cursor_is_400(api, cursor):
    r = await api.call("GET", "/v1/namespaces/p/keys", params={"cursor": cursor})
    assert_error(r, 400, "invalid_cursor")


@pytest.mark.parametrize(
    "method, path, body, status, code",
    [
        ("PUT", "/v1/namespaces/n/keys/k", b"{not json", 400, "malformed_json"),
        ("PUT", "/v1/namespaces/n/keys/k", b"NaN", 400, "malformed_json"),
        ("PUT", "/v1/namespaces/n/keys/k", b"", 400, "malformed_json"),
        ("PUT", "/v1/namespaces/n/keys/k", b"\xff\xfe\x00", 400, "malformed_json"),
        ("PUT", "/v1/namespaces/n/keys/" + "x" * 513, b"1", 400, "invalid_key"),
        ("PUT", "/v1/namespaces/n/keys/a%00b", b"1", 400, "invalid_key"),
        ("PUT", "/v1/namespaces/n/keys/%FF", b"1", 400, "invalid_input"),
        ("POST", "/v1/namespaces/n/batch/set", b"[1]", 400, "invalid_input"),
        ("POST", "/v1/namespaces/n/batch/set", b'{"items": [1]}', 400, "invalid_input"),
        ("POST", "/v1/namespaces/n/batch/get", b'{"keys": "k"}', 400, "invalid_input"),
        ("POST", "/v1/namespaces/n/batch/get", b'{"keys": [""]}', 400, "invalid_key"),
        ("POST", "/v1/namespaces/n/keys/k/incr", b'{"by": 1.5}', 400, "invalid_input"),
        ("POST", "/v1/namespaces/n/logs/l", b'{"entries": {}}', 400, "invalid_input"),
        ("GET", "/v1/namespaces/n/keys?limit=0", None, 400, "invalid_input"),
        ("GET", "/v1/namespaces/n/keys?limit=abc", None, 422, "invalid_request"),
        ("GET", "/v1/namespaces/n/logs/l?after=-1", None, 400, "invalid_input"),
        ("GET", f"/v1/namespaces/n/logs/l?after={2**63}", None, 400, "invalid_input"),
        ("GET", "/v1/namespaces/n/logs/l?last=100001", None, 400, "invalid_input"),
        ("POST", "/v1/namespaces/n/keys/k/incr", b'{"by": 1e400}', 400, "malformed_json"),
        ("GET", "/v1/namespaces/n/search?q=x&limit=0", None, 400, "invalid_input"),
        ("GET", "/v1/namespaces/n/search?q=x&limit=1001", None, 400, "invalid_input"),
        ("GET", "/v1/namespaces/n/search", None, 422, "invalid_request"),
        ("GET", "/v1/namespaces/n/search?q=" + "x" * 4097, None, 400, "invalid_input"),
        ("GET", "/v1/nowhere", None, 404, "no_such_route"),
        ("PATCH", "/v1/namespaces/n/keys/k", b"1", 405, "method_not_allowed"),
        ("GET", "/v1/namespaces/n/keys/missing", None, 404, "not_found"),
        ("DELETE", "/v1/namespaces/n/keys/missing", None, 404, "not_found"),
    ],
)
async def test_bad_requests_get_4xx_and_store_nothing(api, method, path, body, status, code):
    r = await api.call(method, path, content=body)
    assert_error(r, status, code)
    listing = await api.call("GET", "/v1/namespaces/n/keys")
    assert listing.json()["keys"] == []


async def test_value_and_body_limits(make_api):
    api = await make_api(max_value_bytes=100, max_body_bytes=1000)
    r = await api.call("PUT", k("n", "k"), content=json.dumps("x" * 200))
    err = assert_error(r, 413, "value_too_large")
    assert err["limit"] == 100
    r = await api.call("PUT", k("n", "k"), content=b'"' + b"x" * 5000 + b'"')
    assert_error(r, 413, "body_too_large")

    async def chunks():
        for _ in range(20):
            yield b" " * 100  # no Content-Length: counted as it streams in

    r = await api.call("PUT", k("n", "k"), content=chunks())
    assert_error(r, 413, "body_too_large")
    assert (await api.call("GET", "/v1/namespaces/n/keys")).json()["keys"] == []


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    method=st.sampled_from(["GET", "PUT", "POST", "DELETE", "HEAD"]),
    path=st.lists(
        st.sampled_from(
            [
                "v1",
                "namespaces",
                "keys",
                "logs",
                "batch",
                "get",
                "set",
                "incr",
                "count",
                "%",
                "%ZZ",
                "%00",
                "..",
                "-",
                "x" * 600,
                "\u00e9",
            ]
        ),
        max_size=6,
    ),
    body=st.one_of(
        st.none(),
        st.binary(max_size=64),
        st.sampled_from(
            [
                b"{}",
                b"[]",
                b'{"items": {"": 1}}',
                b'{"keys": [1]}',
                b'{"entries": [NaN]}',
                b'{"by": "1"}',
                b"[" * 5000,
                b'{"prefixes": [1], "rights": "god"}',
            ]
        ),
    ),
    query=st.sampled_from(
        [
            "",
            "?limit=-5",
            "?cursor=%FF",
            "?last=x",
            "?ttl=nan",
            "?ttl=1e999",
            "?prefix=",
            "?values=maybe",
            "?q=%00%FF&limit=x",
        ]
    ),
)
async def test_no_request_gets_a_500(api, method, path, body, query):
    url = "/v1/" + "/".join(path) + query
    r = await api.call(method, url, content=body)
    assert r.status_code < 500, (method, url, body, r.status_code, r.text)
    if r.status_code >= 400 and method != "HEAD":
        assert "error" in r.json()


async def test_search_answers_hits_with_values(api):
    await api.call("PUT", "/v1/namespaces/s/keys/order", json={"item": "blue kettle"})
    await api.call("POST", "/v1/namespaces/s/logs/calls", json={"entries": ["kettle leaks"]})
    await api.call("PUT", "/v1/namespaces/s2/keys/order", json="kettle")
    r = await api.call("GET", "/v1/namespaces/s/search", params={"q": "the kettles"})
    assert r.status_code == 200
    hits = r.json()["hits"]
    assert sorted((h["key"], h["log"], h["seq"]) for h in hits if h["key"]) == [
        ("order", None, None)]
    assert {(h["log"], h["seq"], json.dumps(h["value"])) for h in hits if h["log"]} == {
        ("calls", 1, '"kettle leaks"')}
    assert all(isinstance(h["score"], float) and h["ts"] > 0 for h in hits)
    r = await api.call("GET", "/v1/namespaces/s/search", params={"q": "kettle", "limit": 1})
    assert len(r.json()["hits"]) == 1
    r = await api.call("GET", "/v1/namespaces/s/search", params={"q": "the"})
    assert r.json() == {"hits": []}


async def test_health_openapi_docs_and_metrics(api):
    assert (await api.call("GET", "/healthz", key=False)).json() == {"status": "ok"}
    assert (await api.call("GET", "/readyz", key=False)).json() == {"status": "ready"}
    spec = (await api.call("GET", "/openapi.json", key=False)).json()
    assert "/v1/namespaces/{ns}/keys/{key}" in spec["paths"]
    assert "/memory/{namespace}/{key}" in spec["paths"]
    assert (await api.call("GET", "/docs", key=False)).status_code == 200
    assert_error(await api.call("GET", "/metrics", key=False), 401, "unauthorized")
    await api.call("GET", k("m", "missing"))
    text = (await api.call("GET", "/metrics")).text
    assert (
        'botwire_requests_total{method="GET",route="/v1/namespaces/{ns}/keys/{key}",status="404"}'
        in text
    )
    assert "botwire_request_duration_seconds_bucket" in text
    assert 'botwire_errors_total{code="not_found"}' in text


async def test_cors_is_off_unless_configured(api, make_api):
    pre = {"Origin": "https://app.example", "Access-Control-Request-Method": "PUT"}
    r = await api.call("OPTIONS", k("n", "k"), key=False, headers=pre)
    assert "access-control-allow-origin" not in r.headers
    open_api = await make_api(cors_origins=("https://app.example",))
    r = await open_api.call("OPTIONS", k("n", "k"), key=False, headers=pre)
    assert r.headers["access-control-allow-origin"] == "https://app.example"
    for path in (k("n", "k"), "/v1/namespaces/n/keys"):  # the fast path's answers too
        r = await open_api.call("GET", path, headers={"Origin": "https://app.example"})
        assert r.headers["access-control-allow-origin"] == "https://app.example"


async def test_integer_fields_take_integral_json_numbers(api):
    """JSON Schema's integer: 41.0 is 41 in `by` and in a key's quotas; 1.5 is still refused."""
    r = await api.call("POST", "/v1/namespaces/f/keys/n/incr", json={"by": 41.0})
    assert r.status_code == 200 and r.json() == {"value": 41}
    body = {"prefixes": ["f:"], "rights": "read", "writes_per_day": 10.0, "max_bytes": 340.0}
    r = await api.call("POST", "/v1/keys", json=body)
    assert r.status_code == 201 and (r.json()["writes_per_day"], r.json()["max_bytes"]) == (10, 340)
    assert type(r.json()["max_bytes"]) is int
    r = await api.call("POST", "/v1/keys", json={**body, "max_bytes": 340.5})
    assert_error(r, 400, "invalid_input")
