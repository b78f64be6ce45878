"""The botwire 0.2 client's wire protocol, served by /memory with /v1's auth, scopes and quotas."""

from __future__ import annotations

import base64

import pytest

from botwire._wire import segment


def as_url_user(key: str) -> dict[str, str]:
    """What an http client sends for http://KEY@host:8421."""
    return {"Authorization": "Basic " + base64.b64encode(f"{key}:".encode()).decode()}


async def test_put_get_delete_list(api):
    h = as_url_user(api.admin)
    r = await api.call(
        "PUT", "/memory/customer-555/last_order", key=False, headers=h, json={"value": "ORDER-789"}
    )
    assert r.status_code == 200
    assert r.json() == {
        "namespace": "customer-555",
        "key": "last_order",
        "stored": True,
        "bytes": len('"ORDER-789"'),
    }
    r = await api.call("GET", "/memory/customer-555/last_order", key=False, headers=h)
    body = r.json()
    assert body["value"] == "ORDER-789" and body["namespace"] == "customer-555"
    assert body["key"] == "last_order"
    assert isinstance(body["created_at"], float) and body["updated_at"] >= body["created_at"]
    await api.call(
        "PUT", "/memory/customer-555/prefs", key=False, headers=h, json={"value": '{"lang": "en"}'}
    )
    r = await api.call("GET", "/memory/customer-555", key=False, headers=h)
    listing = r.json()
    assert listing["namespace"] == "customer-555" and listing["count"] == 2
    assert [k["key"] for k in listing["keys"]] == ["prefs", "last_order"]  # newest first
    assert set(listing["keys"][0]) == {"key", "bytes", "updated_at"}
    r = await api.call("GET", "/memory/customer-555", key=False, headers=h, params={"limit": 1})
    assert [k["key"] for k in r.json()["keys"]] == ["prefs"]
    r = await api.call("DELETE", "/memory/customer-555/last_order", key=False, headers=h)
    assert r.json() == {"deleted": True, "namespace": "customer-555", "key": "last_order"}
    r = await api.call("GET", "/memory/customer-555/last_order", key=False, headers=h)
    assert r.status_code == 404 and isinstance(r.json()["detail"], str)
    r = await api.call("DELETE", "/memory/customer-555/last_order", key=False, headers=h)
    assert r.status_code == 404 and "detail" in r.json()


async def test_strings_stay_strings_and_v1_values_come_back_as_json_text(api):
    await api.call("PUT", "/memory/n/s", json={"value": '{"x": 1}'})
    assert (await api.call("GET", "/v1/namespaces/n/keys/s")).json() == '{"x": 1}'
    await api.call("PUT", "/v1/namespaces/n/keys/obj", json={"x": [1, 2]})
    assert (await api.call("GET", "/memory/n/obj")).json()["value"] == '{"x":[1,2]}'


@pytest.mark.parametrize("body", [{"value": 5}, {"value": None}, {}, ["x"], "x"])
async def test_non_string_values_are_refused(api, body):
    r = await api.call("PUT", "/memory/n/k", json=body)
    assert r.status_code == 400 and "detail" in r.json()
    assert (await api.call("GET", "/memory/n/k")).status_code == 404


async def test_keys_with_slashes_and_odd_characters(api):
    for key in ("a/b/c", "sp ace", "ключ"):
        r = await api.call("PUT", f"/memory/n/{segment(key)}", json={"value": key})
        assert r.status_code == 200
        assert (await api.call("GET", f"/memory/n/{segment(key)}")).json()["value"] == key
    r = await api.call("PUT", "/memory/n/raw/slash", json={"value": "v"})  # as 0.2 sent it
    assert (await api.call("GET", "/v1/namespaces/n/keys/raw%2Fslash")).json() == "v"


async def test_same_auth_scopes_and_quotas(make_api):
    api = await make_api(writes_per_day=1)
    assert (await api.call("GET", "/memory/n/k", key=False)).status_code == 401
    scoped = api.make_key(["acme:"], "write")
    r = await api.call("PUT", "/memory/other/k", key=scoped, json={"value": "v"})
    assert r.status_code == 403
    assert (await api.call("GET", "/memory/other", key=scoped)).status_code == 403
    assert (
        await api.call("PUT", "/memory/acme:1/k", key=scoped, json={"value": "v"})
    ).status_code == 200
    r = await api.call("PUT", "/memory/acme:1/k2", key=scoped, json={"value": "v"})
    assert r.status_code == 429 and "retry-after" in r.headers and "detail" in r.json()


@pytest.mark.parametrize("limit", [0, 1001, -1])
async def test_limit_out_of_range(api, limit):
    r = await api.call("GET", "/memory/n", params={"limit": limit})
    assert r.status_code == 400


async def test_auth_and_validation_errors_carry_detail_too(api):
    r = await api.call("GET", "/memory/n/k", key=False)
    assert r.status_code == 401 and r.json()["detail"] and r.json()["error"]["code"]
    r = await api.call("GET", "/memory/n", params={"limit": "x"})
    assert r.status_code == 422 and "detail" in r.json()
    r = await api.call("GET", "/v1/namespaces/n/keys/k", key=False)
    assert "detail" not in r.json()


async def test_the_listing_hides_botwire_bookkeeping_and_pages_exactly(api):
    """``~`` names (a voice call's ``~call/...`` claims) stay out of the 0.2 listing as they stay
    out of ``/v1``'s, and newer ones do not use up ``limit``: the database skips them."""
    from botwire import AsyncMemory

    ns = "phone:+14155550123"
    memory = AsyncMemory(ns, engine=api.engine)
    for key in ("a", "b", "c"):
        r = await api.call("PUT", f"/memory/{segment(ns)}/{key}", json={"value": key})
        assert r.status_code == 200
    for part in ("end", "ended", "analyzed", "status", "summary"):  # written last: the newest
        await memory.set(f"~call/elevenlabs/conv1/{part}", {"state": "done"})
    r = await api.call("GET", f"/memory/{segment(ns)}")
    assert r.status_code == 200
    listing = r.json()
    assert (listing["count"], [k["key"] for k in listing["keys"]]) == (3, ["c", "b", "a"])
    r = await api.call("GET", f"/memory/{segment(ns)}", params={"limit": 2})
    assert (r.json()["count"], [k["key"] for k in r.json()["keys"]]) == (2, ["c", "b"])
    assert await memory.count(include_internal=True) == 8  # hidden, not gone
