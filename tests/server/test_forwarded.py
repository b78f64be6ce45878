"""Who is the client: the socket's address, unless the operator names the proxies to believe.

Failed keys are throttled per client, and a valid key always passes."""

from __future__ import annotations

import httpx
import pytest
from click.testing import CliRunner

from botwire.cli import main
from botwire.errors import ConfigurationError
from botwire.server import Settings
from servers import ServerProcess


@pytest.fixture
def serve(tmp_path):
    started = []

    def start(*args: str) -> ServerProcess:
        home = tmp_path / f"home{len(started)}"
        server = ServerProcess(f"sqlite:///{home}/f.db", home, args=args).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


def call(server: ServerProcess, key: str, forwarded_for: str | None = None) -> int:
    headers = {"Authorization": f"Bearer {key}"}
    if forwarded_for is not None:
        headers["X-Forwarded-For"] = forwarded_for
    return httpx.get(server.base + "/v1/namespaces", headers=headers, timeout=10).status_code


def test_spoofed_forwarded_for_is_ignored_and_valid_keys_still_pass(serve):
    server = serve()
    statuses = [call(server, f"bw_guess{i}", f"203.0.113.{i}") for i in range(40)]
    assert statuses == [401] * 20 + [429] * 20  # throttled by the socket's address
    assert call(server, "bw_guess", "198.51.100.1") == 429  # a fresh header does not help
    assert call(server, server.admin_key) == 200  # a valid key from that address still passes
    assert call(server, server.admin_key, "203.0.113.1") == 200


def test_forwarded_for_is_honoured_from_a_listed_proxy(serve):
    server = serve("--forwarded-allow-ips", "127.0.0.1")
    assert [call(server, "bw_guess", "198.51.100.7") for _ in range(21)] == [401] * 20 + [429]
    assert call(server, "bw_guess", "198.51.100.8") == 401  # another client behind the proxy
    assert call(server, "bw_guess") == 401  # the proxy's own address is another client too
    assert call(server, server.admin_key, "198.51.100.7") == 200


def test_a_proxy_that_is_not_an_address_is_refused_by_name():
    with pytest.raises(ConfigurationError, match="forwarded_allow_ips"):
        Settings(forwarded_allow_ips=("proxy.internal",))
    assert Settings(forwarded_allow_ips=("10.0.0.0/8", "::1", "*")).forwarded_allow_ips
    result = CliRunner().invoke(main, ["serve", "--forwarded-allow-ips", "10.0.0.1,nope"])
    assert result.exit_code != 0 and "forwarded_allow_ips" in result.output
