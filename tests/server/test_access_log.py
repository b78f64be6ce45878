"""``botwire serve`` says what it does: its start lines and, with ``--access-log``, one line per
request by route template, never a namespace name or a key."""

from __future__ import annotations

import re

import httpx
import pytest

from servers import ServerProcess

NS = "acme-private-ns"
VOICE = {"vapi_secret": "vapi-shared-secret", "twilio_auth_token": "twilio-token"}


def access_lines(log: str) -> list[str]:
    return [line for line in log.splitlines() if "botwire.access" in line]


def full_log(server: ServerProcess) -> str:
    return (server.home / "server.log").read_text()


def test_access_log_lines_name_templates_not_namespaces_or_keys(tmp_path):
    server = ServerProcess(
        f"sqlite:///{tmp_path}/a.db", tmp_path / "home", args=("--access-log",), **VOICE
    ).start()
    auth = {"Authorization": f"Bearer {server.admin_key}"}
    guess = "bw_not-a-real-key-0123456789"
    with httpx.Client(base_url=server.base, timeout=10) as client:
        put = client.put(f"/v1/namespaces/{NS}/keys/order", json="ORDER-789", headers=auth)
        assert put.status_code == 200
        assert client.get(f"/v1/namespaces/{NS}/keys", headers=auth).status_code == 200
        bad = client.get(f"/v1/namespaces/{NS}/keys/order", headers={"X-API-Key": guess})
        assert bad.status_code == 401
        assert client.get(f"/nowhere/{NS}").status_code == 404
        assert client.post("/voice/vapi", json={}).status_code == 401  # unsigned
    server.stop()
    log = full_log(server)
    lines = [line for line in access_lines(log) if " /readyz " not in line]  # start()'s polls
    assert len(lines) == 5, log
    expected = [
        ("PUT", "/v1/namespaces/{ns}/keys/{key}", 200),
        ("GET", "/v1/namespaces/{ns}/keys", 200),
        ("GET", "/v1/namespaces/{ns}/keys/{key}", 401),
        ("GET", "unmatched", 404),
        ("POST", "/voice/vapi", 401),
    ]
    for line, (method, template, status) in zip(lines, expected, strict=True):
        assert re.search(
            rf"^\d{{4}}-\d\d-\d\d \d\d:\d\d:\d\d.* [0-9a-f]{{16}} {method} "
            rf"{re.escape(template)} {status} \d+\.\dms$",
            line,
        ), line
    assert put.headers["x-request-id"] in lines[0]
    assert bad.headers["x-request-id"] in lines[2]
    assert NS not in log and guess not in log
    assert server.admin_key not in "\n".join(lines)
    assert "voice: vapi webhooks at /voice/vapi" in log
    assert "voice: twilio webhooks at /voice/twilio, /voice/twilio/status" in log
    assert "voice: not configured (404): retell, elevenlabs" in log
    assert f"database: sqlite:///{tmp_path}/a.db" in log


@pytest.fixture
def postgres_with_password(postgres_schema_url):
    """This session's PostgreSQL schema, its URL given a password (trust auth ignores it)."""
    scheme, _, rest = postgres_schema_url.partition("://")
    userinfo, at, host = rest.partition("@")
    if not at:
        pytest.skip("the test PostgreSQL URL names no user")
    return f"{scheme}://{userinfo.partition(':')[0]}:hunter2@{host}"


def test_start_lines_name_the_database_without_its_password(tmp_path, postgres_with_password):
    server = ServerProcess(postgres_with_password, tmp_path / "home").start()
    assert httpx.get(server.base + "/healthz", timeout=10).status_code == 200
    server.stop()
    log = full_log(server)
    assert "hunter2" not in log
    expected = postgres_with_password.replace(":hunter2@", "@").partition("?")[0]
    assert f"database: {expected}" in log
    assert "voice: not configured (404): vapi, retell, elevenlabs, twilio" in log
    assert access_lines(log) == []  # off unless asked for


async def test_plain_starlette_routes_are_logged_by_their_template(make_api, caplog):
    api = await make_api(access_log=True)
    with caplog.at_level("INFO", logger="botwire.access"):
        assert (await api.call("GET", "/openapi.json", key=False)).status_code == 200
        assert (await api.call("GET", "/docs", key=False)).status_code == 200
    logged = [r.getMessage() for r in caplog.records if r.name == "botwire.access"]
    assert [m.split()[1:4] for m in logged] == [
        ["GET", "/openapi.json", "200"],
        ["GET", "/docs", "200"],
    ]
