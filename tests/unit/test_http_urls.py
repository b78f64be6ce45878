"""The HTTP engine and the URL it is given: a server under a path, a path that reaches no
botwire server, a missing or wrong API key. Real servers on real sockets."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from botwire import AsyncMemory, AuthenticationFailed, ConfigurationError, Memory, NotFound
from botwire.engines import open_engine
from botwire.server import Settings, create_app
from botwire.server.auth import bootstrap_op

PREFIX = "/api"


async def _plain_404(scope: Any, receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    await send(
        {"type": "http.response.start", "status": 404, "headers": [(b"content-type", b"text/html")]}
    )
    await send({"type": "http.response.body", "body": b"<html><h1>404 Not Found</h1></html>"})


def under_prefix(app: Any) -> Any:
    """``app`` served under ``PREFIX``, as a reverse proxy does; other paths: a plain 404."""

    async def routed(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            return await app(scope, receive, send)
        if not scope["path"].startswith(PREFIX + "/"):
            return await _plain_404(scope, receive, send)
        cut = len(PREFIX)
        inner = dict(scope, path=scope["path"][cut:], raw_path=scope["raw_path"][cut:])
        return await app(inner, receive, send)

    return routed


class Served:
    """An ASGI app under uvicorn in a thread, on a free local port."""

    def __init__(self, app: Any) -> None:
        import uvicorn

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            assert self.thread.is_alive() and time.monotonic() < deadline, "no server"
            time.sleep(0.02)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(20)


@pytest.fixture(scope="module")
def proxied(tmp_path_factory) -> Iterator[tuple[int, str]]:
    """(port, admin key) of a botwire server reachable only under ``PREFIX``."""
    url = f"sqlite:///{tmp_path_factory.mktemp('proxied')}/server.db"
    engine = open_engine(url)
    secret, op = bootstrap_op()
    assert engine.execute(op)
    served = Served(under_prefix(create_app(Settings(database=url), engine=engine)))
    yield served.port, secret
    served.stop()
    engine.close()


class Counting:
    """An ASGI app that counts the HTTP requests it is sent."""

    def __init__(self, app: Any) -> None:
        self.app, self.requests = app, 0

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        self.requests += scope["type"] == "http"
        await self.app(scope, receive, send)


@pytest.fixture(scope="module")
def direct(tmp_path_factory) -> Iterator[tuple[int, str, Counting]]:
    """(port, admin key, request counter) of a botwire server at the root of its host."""
    url = f"sqlite:///{tmp_path_factory.mktemp('direct')}/server.db"
    engine = open_engine(url)
    secret, op = bootstrap_op()
    assert engine.execute(op)
    counting = Counting(create_app(Settings(database=url), engine=engine))
    served = Served(counting)
    yield served.port, secret, counting
    served.stop()
    engine.close()


@pytest.fixture(scope="module")
def plain() -> Iterator[int]:
    served = Served(_plain_404)
    yield served.port
    served.stop()


@pytest.fixture(autouse=True)
def no_key_in_env(monkeypatch):
    monkeypatch.delenv("BOTWIRE_API_KEY", raising=False)


def test_a_server_under_a_path_is_reached_there(proxied, ns):
    port, key = proxied
    with Memory(ns, url=f"http://{key}@127.0.0.1:{port}{PREFIX}") as m:
        assert m.set("k", {"v": 1}) == 1
        assert m.get("k") == {"v": 1}
        assert "k" in m and m.info("k").version == 1
        assert m.get("missing") is None and "missing" not in m and m.info("missing") is None
        assert list(m.keys()) == ["k"]
        assert m.delete("k") and not m.delete("k")
        with pytest.raises(NotFound):
            m["k"]


async def test_a_server_under_a_path_is_reached_there_async(proxied, ns):
    port, key = proxied
    async with AsyncMemory(ns, url=f"http://{key}@127.0.0.1:{port}{PREFIX}/") as m:
        assert await m.set("k", 1) == 1
        assert await m.get("k") == 1 and await m.exists("k")
        assert await m.get("missing") is None and not await m.exists("missing")


def _wrong_path_calls(m: Memory) -> list[Any]:
    return [
        lambda: m.get("k"),
        lambda: "k" in m,
        lambda: m.info("k"),
        lambda: m.set("k", 1),
        lambda: m.delete("k"),
        lambda: m["k"],
        lambda: m.get_many(["a", "b"]),
    ]


@pytest.mark.parametrize("path", ["", "/wrong"])
def test_a_path_without_botwire_is_a_configuration_error_not_a_missing_key(proxied, ns, path):
    port, key = proxied
    with Memory(ns, url=f"http://{key}@127.0.0.1:{port}{path}") as m:
        for call in _wrong_path_calls(m):
            with pytest.raises(ConfigurationError) as err:
                call()
            message = str(err.value)
            assert not isinstance(err.value, KeyError)
            assert f"http://127.0.0.1:{port}{path}" in message and key not in message
            assert "not a botwire server" in message and "check the path" in message.lower()
    with Memory(ns, url=f"http://{key}@127.0.0.1:{port}{PREFIX}") as m:
        assert not m.exists("k")  # nothing was stored


def test_a_wrong_path_on_a_botwire_server_is_a_configuration_error(direct, ns):
    port, key, _ = direct
    with Memory(ns, url=f"http://{key}@127.0.0.1:{port}/api") as m:  # no proxy strips /api
        for call in _wrong_path_calls(m):
            with pytest.raises(ConfigurationError, match="not a botwire server"):
                call()


def test_a_missing_key_costs_one_request(direct, ns):
    port, key, counting = direct
    with Memory(ns, url=f"http://{key}@127.0.0.1:{port}") as m:
        for check in (lambda: "missing" not in m, lambda: m.info("missing") is None):
            before = counting.requests
            assert check()
            assert counting.requests - before == 1


def test_a_server_that_is_not_botwire_is_a_configuration_error(plain, ns):
    with Memory(ns, url=f"http://bw_secret@127.0.0.1:{plain}") as m:
        for call in _wrong_path_calls(m):
            with pytest.raises(ConfigurationError, match="not a botwire server"):
                call()


async def test_a_server_that_is_not_botwire_is_a_configuration_error_async(plain, ns):
    async with AsyncMemory(ns, url=f"http://bw_secret@127.0.0.1:{plain}") as m:
        with pytest.raises(ConfigurationError, match="not a botwire server"):
            await m.get("k")
        with pytest.raises(ConfigurationError, match="not a botwire server"):
            await m.exists("k")


@pytest.mark.parametrize("given", ["none", "wrong"])
def test_an_unauthorized_answer_says_how_to_pass_the_key(proxied, ns, given):
    port, _ = proxied
    user = "bw_not_a_real_key@" if given == "wrong" else ""
    with Memory(ns, url=f"http://{user}127.0.0.1:{port}{PREFIX}") as m:
        for call in (lambda: m.get("k"), lambda: "k" in m, lambda: m.set("k", 1)):
            with pytest.raises(AuthenticationFailed) as err:
                call()
            message = str(err.value)
            assert "BOTWIRE_API_KEY" in message and "api_key=" in message
            assert "http(s)://KEY@host" in message
            assert ("no API key was given" in message) is (given == "none")
            assert ("the API key given is not valid" in message) is (given == "wrong")
            server = f"the botwire server at http://127.0.0.1:{port}{PREFIX}"
            assert f"{server} refused the request because " in message
            assert "given by the botwire server" not in message
            assert "bw_not_a_real_key" not in message
