"""Slow and silent clients: raw sockets against a real ``botwire serve`` with small timeouts.

A client trickling its headers or body is answered 408 and closed after its timeout, while
other clients are served; open connections are bounded by ``max_connections``."""

from __future__ import annotations

import select
import selectors
import socket
import threading
import time

import httpx
import pytest
from click.testing import CliRunner

from botwire.cli import main
from botwire.errors import ConfigurationError
from botwire.server import Settings
from servers import ServerProcess

LIMITS = ("--header-timeout", "1", "--body-timeout", "1")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    home = tmp_path_factory.mktemp("slow")
    server = ServerProcess(f"sqlite:///{home}/s.db", home, args=LIMITS).start()
    yield server
    server.stop()


def connect(server: ServerProcess, first: bytes = b"") -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    if first:
        sock.sendall(first)
    return sock


def trickle(sock: socket.socket, data: bytes, within: float) -> tuple[float, bytes]:
    """Send ``data`` a byte every 0.1 s until the server closes; ``(seconds, what it sent)``."""
    start, received = time.monotonic(), b""
    for byte in data:
        if time.monotonic() - start > within:
            break
        try:
            sock.sendall(bytes([byte]))
        except OSError:  # the server has closed
            break
        time.sleep(0.1)
        readable, _, _ = select.select([sock], [], [], 0)
        if readable:
            received = read_all(sock)
            break
    sock.close()
    return time.monotonic() - start, received


def read_all(sock: socket.socket) -> bytes:
    chunks = []
    try:
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    except OSError:
        pass
    return b"".join(chunks)


def served_meanwhile(server: ServerProcess, slow: threading.Thread) -> list[int]:
    statuses = []
    while slow.is_alive():
        statuses.append(httpx.get(server.base + "/healthz", timeout=10).status_code)
        time.sleep(0.05)
    return statuses


def run_slow(target, *args) -> tuple[threading.Thread, list]:
    result: list = []
    thread = threading.Thread(target=lambda: result.append(target(*args)))
    thread.start()
    return thread, result


def test_a_client_trickling_its_headers_is_closed(server):
    sock = connect(server, b"GET /healthz HTTP/1.1\r\n")
    thread, result = run_slow(trickle, sock, b"X-Slow: " + b"a" * 200, 5)
    statuses = served_meanwhile(server, thread)
    seconds, answer = result[0]
    assert seconds < 5 and answer.startswith(b"HTTP/1.1 408 ")
    assert b'"request_timeout"' in answer
    assert statuses and set(statuses) == {200}


def test_a_client_trickling_its_body_is_closed_and_nothing_is_stored(server):
    head = (
        "PUT /v1/namespaces/slow/keys/k HTTP/1.1\r\nHost: x\r\n"
        f"Authorization: Bearer {server.admin_key}\r\nContent-Length: 200\r\n\r\n"
    )
    sock = connect(server, head.encode())
    thread, result = run_slow(trickle, sock, b'"' + b"a" * 198 + b'"', 5)
    statuses = served_meanwhile(server, thread)
    seconds, answer = result[0]
    assert seconds < 5 and answer.startswith(b"HTTP/1.1 408 ")
    assert statuses and set(statuses) == {200}
    auth = {"Authorization": f"Bearer {server.admin_key}"}
    r = httpx.get(server.base + "/v1/namespaces/slow/keys/k", headers=auth, timeout=10)
    assert r.status_code == 404


def test_500_unfinished_requests_neither_block_others_nor_stay_open(server):
    silent = [connect(server) for _ in range(100)]  # connected, never a byte
    unfinished = [connect(server, b"GET /healthz HTTP/1.1\r\nHost: x\r\n") for _ in range(400)]
    assert httpx.get(server.base + "/healthz", timeout=10).status_code == 200
    answers = closed_within(silent + unfinished, 5)
    assert len(answers) == 500, "some connections were still open after 5 s"
    assert [answers[s.fileno()] for s in silent] == [b""] * 100  # closed without a word
    assert all(answers[s.fileno()].startswith(b"HTTP/1.1 408 ") for s in unfinished)
    for sock in silent + unfinished:
        sock.close()


def closed_within(socks: list[socket.socket], seconds: float) -> dict[int, bytes]:
    """What each socket received before the server closed it, by file descriptor."""
    chosen = selectors.DefaultSelector()
    for sock in socks:
        sock.setblocking(False)
        chosen.register(sock, selectors.EVENT_READ, [])
    answers: dict[int, bytes] = {}
    deadline = time.monotonic() + seconds
    while len(answers) < len(socks) and time.monotonic() < deadline:
        for key, _ in chosen.select(timeout=0.1):
            try:
                chunk = key.fileobj.recv(65536)  # type: ignore[union-attr]
            except OSError:
                chunk = b""
            if chunk:
                key.data.append(chunk)
            else:
                answers[key.fd] = b"".join(key.data)
                chosen.unregister(key.fileobj)
    chosen.close()
    return answers


def test_connections_over_max_connections_are_refused_until_slow_ones_are_closed(tmp_path):
    args = (*LIMITS, "--max-connections", "20")
    server = ServerProcess(f"sqlite:///{tmp_path}/m.db", tmp_path / "home", args=args).start()
    try:
        held = [connect(server, b"GET /healthz HTTP/1.1\r\n") for _ in range(25)]
        time.sleep(0.2)  # accepted by the server
        assert httpx.get(server.base + "/healthz", timeout=10).status_code == 503
        closed_within(held, 5)
        assert httpx.get(server.base + "/healthz", timeout=10).status_code == 200
        for sock in held:
            sock.close()
    finally:
        server.stop()


@pytest.mark.parametrize(
    "option, value",
    [("--header-timeout", "0"), ("--body-timeout", "-1"), ("--max-connections", "0"),
     ("--backlog", "0")],
)
def test_bad_limits_are_refused_by_name(option, value):
    result = CliRunner().invoke(main, ["serve", option, value])
    assert result.exit_code != 0
    assert option[2:].replace("-", "_") in result.output


def test_limits_come_from_the_environment(monkeypatch):
    monkeypatch.setenv("BOTWIRE_HEADER_TIMEOUT", "2.5")
    monkeypatch.setenv("BOTWIRE_BODY_TIMEOUT", "7")
    monkeypatch.setenv("BOTWIRE_MAX_CONNECTIONS", "50")
    monkeypatch.setenv("BOTWIRE_BACKLOG", "64")
    settings = Settings.from_env()
    assert (settings.header_timeout, settings.body_timeout) == (2.5, 7.0)
    assert (settings.max_connections, settings.backlog) == (50, 64)
    monkeypatch.setenv("BOTWIRE_BODY_TIMEOUT", "soon")
    with pytest.raises(ConfigurationError, match="BOTWIRE_BODY_TIMEOUT"):
        Settings.from_env()
