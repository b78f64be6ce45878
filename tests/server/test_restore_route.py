"""POST /v1/namespaces/{ns}/restore and GET /v1/namespaces/{ns}/logs: who may, and what a bad
block or a namespace holding other data answers."""

from __future__ import annotations

from botwire.engines import base as ops
from botwire.engines.base import Entry, LogDump, Row
from botwire.transfer import render


def block(ns: str, value: str = '"x"') -> str:
    op = ops.Restore(
        ns,
        (Row("k", value, 4, 1000.0, 2000.0, None, 0),),
        (LogDump("calls", 3, (Entry(3, '{"n":3}', 1500.0),)),),
        floor=2,
    )
    return "\n".join(render(op)) + "\n"


async def restore(api, ns, text, key=None, **params):
    return await api.call(
        "POST", f"/v1/namespaces/{ns}/restore", key=key, content=text, params=params
    )


async def test_restore_imports_then_is_unchanged_then_refuses_other_data(api):
    r = await restore(api, "acme:1", block("acme:1"))
    assert r.status_code == 200 and r.json() == {"result": "imported"}
    assert (await restore(api, "acme:1", block("acme:1"))).json() == {"result": "unchanged"}
    r = await restore(api, "acme:1", block("acme:1", '"other"'))
    assert r.status_code == 409
    err = r.json()["error"]
    assert err["code"] == "namespace_not_empty" and err["namespace"] == "acme:1"
    assert (await api.call("GET", "/v1/namespaces/acme:1/keys/k")).json() == "x"
    r = await restore(api, "acme:1", block("acme:1", '"other"'), replace="true")
    assert r.json() == {"result": "imported"}
    stats = (await api.call("GET", "/v1/namespaces/acme:1")).json()
    assert stats["version_floor"] == 4  # above the version it held before
    logs = (await api.call("GET", "/v1/namespaces/acme:1/logs")).json()
    assert logs == {"logs": [{"name": "calls", "last_seq": 3, "count": 1}]}


async def test_restore_needs_admin_on_the_namespace(api):
    writer = api.make_key(["acme:"], "write")
    r = await restore(api, "acme:2", block("acme:2"), key=writer)
    assert r.status_code == 403
    other_admin = api.make_key(["globex:"], "admin")
    assert (await restore(api, "acme:2", block("acme:2"), key=other_admin)).status_code == 403
    assert (await api.call("GET", "/v1/namespaces/acme:2")).json()["keys"] == 0


async def test_a_bad_block_is_400_and_writes_nothing(api):
    good = block("acme:3")
    cases = {
        "the URL's namespace": (block("acme:4"), "the URL names 'acme:3'"),
        "a cut block": ("\n".join(good.splitlines()[:-1]), "has no end line"),
        "an edited value": (good.replace('"x"', '"y"'), "checksum does not match"),
        "not JSON": ("{nope\n", "not valid JSON"),
    }
    for what, (text, message) in cases.items():
        r = await restore(api, "acme:3", text)
        assert r.status_code == 400, what
        assert message in r.json()["error"]["message"], (what, r.json())
    assert (await api.call("GET", "/v1/namespaces/acme:3")).json()["keys"] == 0
