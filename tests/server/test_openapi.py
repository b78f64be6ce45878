"""The OpenAPI document says what the server answers; /docs works offline.

schemathesis runs against a real server process (``botwire serve`` over a temp SQLite file) with
its default checks, so an answer the document does not declare fails here.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from urllib.parse import urljoin

import httpx
import pytest

from botwire._wire import CODES, make_cursor
from servers import ServerProcess

EXAMPLES = 15  # per operation and phase: about 20 s on two busy cores

# Every phase, stateful included (sequences of calls linked through their parameters).
PHASES = "examples,coverage,fuzzing,stateful"

# A cursor is opaque: only a ``next_cursor`` the server made is one (any other string is 400
# ``invalid_cursor``, which JSON Schema cannot tell apart), so schemathesis is given a real one.
ST_CONFIG = f'[parameters]\n"query.cursor" = "{make_cursor("")}"\n'
# A restore's body is an export's block, checked by its counts and checksum, which no schema
# can say: a schema-valid string is still refused with 400 (its other answers are checked).
ST_CONFIG += (
    '\n[[operations]]\ninclude-path = "/v1/namespaces/{ns}/restore"\n'
    "checks.positive_data_acceptance.enabled = false\n"
)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    home = tmp_path_factory.mktemp("openapi")
    # no quotas: a schema-valid write must succeed, and 413 storage_quota_exceeded is not one
    server = ServerProcess(f"sqlite:///{home}/st.db", home, writes_per_day=0, max_bytes=0)
    yield server.start()
    server.stop()


def test_schemathesis_finds_the_document_true(server, tmp_path):
    config = tmp_path / "schemathesis.toml"
    config.write_text(ST_CONFIG)
    command = [
        str(Path(sys.executable).with_name("st")),
        "--config-file",
        str(config),
        "run",
        f"{server.base}/openapi.json",
        "--header",
        f"Authorization: Bearer {server.admin_key}",
        "--max-examples",
        str(EXAMPLES),
        "--phases",
        PHASES,
        "--generation-deterministic",
        "--workers",
        "1",
        "--no-color",
    ]
    run = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    report = run.stdout + run.stderr
    assert run.returncode == 0, report[-6000:]
    assert "only 401/403 responses" not in report, "the admin key was not accepted"
    generated = re.search(r"(\d+) generated", report)
    assert generated and int(generated[1]) >= 500, report[-3000:]  # every phase ran cases
    assert re.search(r"Stateful \(in ", report), report[-3000:]


@pytest.fixture
def document(api):
    async def get():
        response = await api.call("GET", "/openapi.json", key=False)
        assert response.status_code == 200
        return response.json()

    return get


async def test_errors_are_declared_with_our_body(document):
    doc = await document()
    assert set(doc["components"]["schemas"]) == {"ErrorBody", "ErrorDetail", "LegacyErrorBody"}
    put = doc["paths"]["/v1/namespaces/{ns}/keys/{key}"]["put"]["responses"]
    assert {"400", "401", "403", "412", "413", "422", "429", "503"} <= set(put)
    for status, answer in put.items():
        if status != "200":
            schema = answer["content"]["application/json"]["schema"]
            assert schema == {"$ref": "#/components/schemas/ErrorBody"}
            assert all(CODES[code][0] == int(status) for code in re.findall(r"`(\w+)`",
                                                                            answer["description"]))
    legacy = doc["paths"]["/memory/{namespace}/{key}"]["get"]["responses"]["404"]
    assert legacy["content"]["application/json"]["schema"]["$ref"].endswith("/LegacyErrorBody")


async def test_metrics_are_declared_as_prometheus_text(document):
    answers = (await document())["paths"]["/metrics"]["get"]["responses"]
    assert list(answers["200"]["content"]) == ["text/plain"]
    assert "WWW-Authenticate" in answers["401"]["headers"]


async def test_voice_webhooks_are_left_out_on_purpose(document):
    assert not [path for path in (await document())["paths"] if path.startswith("/voice/")]


@pytest.mark.parametrize(
    ("path", "allowed"),
    [
        ("/v1/keys", "GET, POST"),
        ("/v1/namespaces/n/keys/k", "DELETE, GET, HEAD, PUT"),
        ("/memory/n/k", "DELETE, GET, PUT"),
    ],
)
async def test_405_lists_every_method_of_the_path(api, path, allowed):
    response = await api.call("TRACE", path)
    assert response.status_code == 405
    assert response.headers["allow"] == allowed
    assert response.json()["error"]["code"] == "method_not_allowed"


@pytest.mark.parametrize("prefix", ["", "/api"])
async def test_docs_page_names_no_other_host_and_its_assets_load(api, prefix):
    """Also through a proxy that serves botwire under /api (it strips the prefix)."""
    app = api.client._transport.app

    async def proxy(scope, receive, send):
        if scope["type"] == "http":
            cut = len(prefix)
            assert scope["path"].startswith(prefix + "/")
            scope = dict(scope, path=scope["path"][cut:], raw_path=scope["raw_path"][cut:])
        await app(scope, receive, send)

    transport = httpx.ASGITransport(app=proxy)
    async with httpx.AsyncClient(transport=transport, base_url="http://botwire.test") as http:
        page = await http.get(f"{prefix}/docs")
        assert page.status_code == 200
        assert not re.findall(r"https?://", page.text)
        assets = re.findall(r'(?:href|src)="([^"]+)"|url: \'([^\']+)\'', page.text)
        links = [a or b for a, b in assets]
        assert len(links) == 4  # the stylesheet, the favicon, the script and the document
        for link in links:
            response = await http.get(urljoin(f"{prefix}/docs", link))
            assert response.status_code == 200, link
            assert len(response.content) > 500


async def test_docs_assets_are_only_swagger_ui(api):
    response = await api.call("GET", "/docs/assets/..%2Fcore.py", key=False)
    assert response.status_code == 404
