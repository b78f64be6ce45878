"""API keys: where they are accepted, what they may touch, and that nothing leaks across scopes."""

from __future__ import annotations

import base64
import hashlib
import sqlite3

import pytest

from botwire._wire import segment


def basic(user: str, password: str = "") -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


async def test_every_request_needs_a_valid_key(api):
    r = await api.call("GET", "/v1/namespaces/a/keys/k", key=False)
    assert r.status_code == 401 and r.json()["error"]["code"] == "unauthorized"
    assert r.headers["www-authenticate"].startswith("Bearer")
    r = await api.call("GET", "/v1/namespaces/a/keys/k", key="bw_not-a-key")
    assert r.status_code == 401


@pytest.mark.parametrize(
    "how", ["bearer", "x-api-key", "basic-user", "basic-password", "basic-name-and-key"]
)
async def test_key_accepted_in_each_documented_place(api, how):
    headers = {
        "bearer": {"Authorization": f"Bearer {api.admin}"},
        "x-api-key": {"X-API-Key": api.admin},
        "basic-user": basic(api.admin),
        "basic-password": basic("", api.admin),
        "basic-name-and-key": basic("agent-7", api.admin),
    }[how]
    r = await api.call("PUT", "/v1/namespaces/a/keys/k", key=False, headers=headers, content=b"1")
    assert r.status_code == 200, r.text


async def test_keys_are_stored_hashed(api, tmp_path):
    secret = api.make_key(["acme:"], "write")
    db = sqlite3.connect(tmp_path / "server.db")
    stored = db.execute("SELECT hash, prefixes FROM botwire_api_keys").fetchall()
    dump = "\n".join(db.iterdump())
    assert secret not in dump and api.admin not in dump
    assert hashlib.sha256(secret.encode()).hexdigest() in {h for h, _ in stored}


async def test_read_key_cannot_write_and_write_key_cannot_forget(api):
    reader = api.make_key(["t:"], "read")
    writer = api.make_key(["t:"], "write")
    await api.call("PUT", "/v1/namespaces/t:1/keys/k", content=b"1")
    assert (await api.call("GET", "/v1/namespaces/t:1/keys/k", key=reader)).status_code == 200
    r = await api.call("PUT", "/v1/namespaces/t:1/keys/k", key=reader, content=b"2")
    assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden"
    assert (
        await api.call("PUT", "/v1/namespaces/t:1/keys/k", key=writer, content=b"3")
    ).status_code == 200
    assert (await api.call("DELETE", "/v1/namespaces/t:1", key=writer)).status_code == 403
    assert (await api.call("GET", "/v1/namespaces/t:1/keys/k")).json() == 3


# Every endpoint that names a namespace, with a body that would succeed for an allowed key.
ENDPOINTS = [
    ("GET", "/keys/k", None),
    ("HEAD", "/keys/k", None),
    ("PUT", "/keys/k", b'"stolen"'),
    ("DELETE", "/keys/k", None),
    ("POST", "/keys/k/incr", b'{"by": 1}'),
    ("GET", "/keys", None),
    ("GET", "/keys?values=true", None),
    ("DELETE", "/keys", None),
    ("POST", "/batch/get", b'{"keys": ["k"]}'),
    ("POST", "/batch/set", b'{"items": {"k": "stolen"}}'),
    ("GET", "", None),
    ("DELETE", "", None),
    ("POST", "/logs/l", b'{"entries": ["stolen"]}'),
    ("GET", "/logs/l?last=5", None),
    ("GET", "/logs/l/count", None),
    ("DELETE", "/logs/l", None),
    ("GET", "/search?q=secret", None),
]


async def _seed_b(api) -> None:
    await api.call("PUT", "/v1/namespaces/b:1/keys/k", content=b"7")
    await api.call("POST", "/v1/namespaces/b:1/logs/l", json={"entries": ["secret"]})


async def _state_of_b(api) -> tuple:
    keys = (await api.call("GET", "/v1/namespaces/b:1/keys", params={"values": True})).json()
    log = (await api.call("GET", "/v1/namespaces/b:1/logs/l", params={"last": 10})).json()
    return keys, log


@pytest.mark.parametrize("method, suffix, body", ENDPOINTS)
@pytest.mark.parametrize("target", ["b:1", "b:missing", "a"])
async def test_auth_matrix_a_key_for_a_never_touches_b(api, method, suffix, body, target):
    # "a" is the bare prefix without its ":": still outside the key's "a:" scope
    await _seed_b(api)
    before = await _state_of_b(api)
    key = api.make_key(["a:"], "admin")
    r = await api.call(method, f"/v1/namespaces/{segment(target)}{suffix}", key=key, content=body)
    assert r.status_code == 403, (method, suffix, r.status_code, r.text)
    if method != "HEAD":
        err = r.json()["error"]
        assert err["code"] == "forbidden"
        assert "secret" not in r.text and "7" not in err["message"].replace(target, "")
    assert await _state_of_b(api) == before


async def test_listings_are_filtered_by_scope(api):
    for ns in ("a:1", "a:2", "b:1", "ab", "c"):
        await api.call("PUT", f"/v1/namespaces/{segment(ns)}/keys/k", content=b"1")
    key = api.make_key(["a:", "c"], "read")
    got = (await api.call("GET", "/v1/namespaces", key=key)).json()["namespaces"]
    assert got == ["a:1", "a:2", "c"]
    got = (await api.call("GET", "/v1/namespaces", key=key, params={"prefix": "a"})).json()
    assert got["namespaces"] == ["a:1", "a:2"]
    got = (await api.call("GET", "/v1/namespaces", key=key, params={"prefix": "b"})).json()
    assert got["namespaces"] == []
    page = (await api.call("GET", "/v1/namespaces", key=key, params={"limit": 1})).json()
    assert page["namespaces"] == ["a:1"] and page["next_cursor"]
    rest = await api.call("GET", "/v1/namespaces", key=key, params={"cursor": page["next_cursor"]})
    assert rest.json()["namespaces"] == ["a:2", "c"]


async def test_key_admin_create_list_revoke(api):
    r = await api.call(
        "POST", "/v1/keys", json={"prefixes": ["acme:"], "rights": "admin", "name": "acme admin"}
    )
    assert r.status_code == 201
    made = r.json()
    acme_admin = made["key"]
    assert acme_admin.startswith("bw_") and made["prefixes"] == ["acme:"]
    # a scoped admin makes keys only inside its own prefixes, and sees only those
    r = await api.call(
        "POST", "/v1/keys", key=acme_admin, json={"prefixes": ["acme:eu:"], "rights": "write"}
    )
    assert r.status_code == 201
    child = r.json()
    r = await api.call(
        "POST", "/v1/keys", key=acme_admin, json={"prefixes": [""], "rights": "read"}
    )
    assert r.status_code == 403
    r = await api.call("POST", "/v1/keys", key=acme_admin, json={"prefixes": ["other:"]})
    assert r.status_code == 403
    listed = (await api.call("GET", "/v1/keys", key=acme_admin)).json()["keys"]
    assert {k["id"] for k in listed} == {made["id"], child["id"]}
    assert all("key" not in k and "hash" not in k for k in listed)
    everything = (await api.call("GET", "/v1/keys")).json()["keys"]
    assert len(everything) == 3  # with the bootstrap admin
    writer = child["key"]
    assert (
        await api.call("PUT", "/v1/namespaces/acme:eu:1/keys/k", key=writer, content=b"1")
    ).status_code == 200
    assert (await api.call("GET", "/v1/keys", key=writer)).status_code == 403
    r = await api.call("DELETE", f"/v1/keys/{child['id']}", key=acme_admin)
    assert r.json() == {"revoked": True}
    assert (await api.call("GET", "/v1/namespaces/acme:eu:1/keys/k", key=writer)).status_code == 401
    assert (await api.call("DELETE", f"/v1/keys/{child['id']}")).status_code == 404


@pytest.mark.parametrize(
    "body",
    [
        {"prefixes": []},
        {"prefixes": "acme:"},
        {"prefixes": ["a"], "rights": "root"},
        {"prefixes": ["a"], "writes_per_day": -1},
        {"prefixes": ["a"], "name": 5},
        {"prefixes": ["\x00"]},
    ],
)
async def test_bad_key_requests_are_400(api, body):
    r = await api.call("POST", "/v1/keys", json=body)
    assert r.status_code == 400, r.text
    assert len((await api.call("GET", "/v1/keys")).json()["keys"]) == 1


async def test_repeated_failures_from_one_client_are_throttled(make_api):
    api = await make_api(auth_failures=5, auth_window=60)
    for _ in range(5):
        assert (await api.call("GET", "/v1/namespaces", key="bw_guess")).status_code == 401
    r = await api.call("GET", "/v1/namespaces", key="bw_guess")
    assert r.status_code == 429 and r.json()["error"]["code"] == "too_many_auth_failures"
    assert 0 < int(r.headers["retry-after"]) <= 60
    r = await api.call("GET", "/v1/namespaces")  # a valid key from the same client still passes
    assert r.status_code == 200


async def test_a_scoped_admin_cannot_give_more_quota_than_it_has(make_api):
    api = await make_api(writes_per_day=100, max_bytes=10_000)
    acme = api.make_key(["acme:"], "admin", writes_per_day=5, max_bytes=1000)
    for limits in ({"writes_per_day": 0}, {"max_bytes": 0}, {"writes_per_day": 6},
                   {"max_bytes": 5000}):
        r = await api.call("POST", "/v1/keys", key=acme,
                           json={"prefixes": ["acme:1"], "rights": "write", **limits})
        assert r.status_code == 403, limits
    r = await api.call("POST", "/v1/keys", key=acme, json={"prefixes": ["acme:1"],
                                                          "rights": "write"})
    made = r.json()
    assert r.status_code == 201 and made["writes_per_day"] == 5 and made["max_bytes"] == 1000
    r = await api.call("POST", "/v1/keys", key=acme, json={"prefixes": ["acme:2"],
                                                          "writes_per_day": 2})
    assert r.status_code == 201 and r.json()["writes_per_day"] == 2
    # the unscoped admin may give anything
    r = await api.call("POST", "/v1/keys", json={"prefixes": ["x:"], "writes_per_day": 0})
    assert r.status_code == 201 and r.json()["writes_per_day"] == 0


async def test_a_spray_of_unknown_keys_never_evicts_a_valid_one(tmp_path):
    """Valid keys and unknown secrets are cached apart: 10k+ random keys from as many
    addresses leave a good key's cached lookup in place (seen here through a revocation made
    behind the cache's back, which a cached key outlives until its cache time ends)."""
    from botwire.engines import open_engine
    from botwire.engines.base import RevokeKey, SaveKey
    from botwire.errors import AuthenticationFailed
    from botwire.server.auth import KeyRing, new_key

    engine = open_engine(f"sqlite:///{tmp_path}/ring.db")
    try:
        secret, record = new_key("agent", ["acme:"], "write")
        assert engine.execute(SaveKey(record))
        ring = KeyRing(engine, cache_seconds=600, failures=5, window=60)
        assert (await ring.authenticate(secret, "10.0.0.1")).key.id == record.id
        assert engine.execute(RevokeKey(record.id, 1.0))
        for i in range(10_050):
            with pytest.raises(AuthenticationFailed):
                await ring.authenticate(f"bw_random{i}", f"10.1.{i // 250}.{i % 250}")
        assert (await ring.authenticate(secret, "10.0.0.1")).key.id == record.id
        ring.forget_cached()
        with pytest.raises(AuthenticationFailed):
            await ring.authenticate(secret, "10.0.0.1")
    finally:
        engine.close()
