"""``Edge`` gives every request an id: on every response, in ``state.REQUEST_ID`` meanwhile."""

from __future__ import annotations

import re

import httpx
import pytest
from starlette.responses import PlainTextResponse

from botwire.engines import open_engine
from botwire.server import Settings, create_app
from botwire.server.state import REQUEST_ID

HEX_ID = re.compile(r"[0-9a-f]{16}")


@pytest.mark.parametrize(
    "method, path",
    [
        ("GET", "/healthz"),  # FastAPI
        ("GET", "/v1/namespaces/n/keys/missing"),  # the fast path
        ("PUT", "/v1/namespaces/n/keys/k"),
        ("GET", "/v1/namespaces/n/keys"),
        ("POST", "/voice/vapi"),  # a webhook Edge answers (404: not configured)
        ("GET", "/no/such/route"),
    ],
)
async def test_every_answer_carries_a_new_request_id(api, method, path):
    answers = [await api.call(method, path, json=1) for _ in range(2)]
    ids = [r.headers["x-request-id"] for r in answers]
    assert all(HEX_ID.fullmatch(i) for i in ids) and ids[0] != ids[1]


async def test_an_oversize_body_refused_early_carries_one_too(make_api):
    api = await make_api(max_body_bytes=10)
    r = await api.call("PUT", "/v1/namespaces/n/keys/k", content=b"1" * 11)
    assert r.status_code == 413 and HEX_ID.fullmatch(r.headers["x-request-id"])


@pytest.mark.parametrize("given", ["abc", "req-1.2_3", "A" * 64])
async def test_a_safe_incoming_id_is_kept(api, given):
    r = await api.call("GET", "/v1/namespaces/n/keys/k", headers={"X-Request-Id": given})
    assert r.headers["x-request-id"] == given


@pytest.mark.parametrize("given", ["", "a b", "A" * 65, "<script>", "id;drop", "é"])
async def test_an_unsafe_incoming_id_is_replaced(api, given):
    headers = {"X-Request-Id": given.encode("utf-8")}
    r = await api.call("GET", "/healthz", headers=headers)
    assert HEX_ID.fullmatch(r.headers["x-request-id"])


async def test_the_id_is_the_context_variable_during_the_request_only(tmp_path):
    url = f"sqlite:///{tmp_path}/e.db"
    engine = open_engine(url)
    app = create_app(Settings(database=url), engine=engine)

    @app.get("/which")
    async def which() -> PlainTextResponse:
        return PlainTextResponse(REQUEST_ID.get() or "")

    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            r = await client.get("/which")
            assert r.text == r.headers["x-request-id"] and HEX_ID.fullmatch(r.text)
            r = await client.get("/which", headers={"X-Request-Id": "call-42"})
            assert r.text == "call-42"
    assert REQUEST_ID.get() is None
    engine.close()
