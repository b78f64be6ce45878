"""A botwire server inside this process, reachable at a URL without a socket.

``InProcessServer(app)`` runs the application (and its lifespan) on an event loop in a
background thread and mounts it at ``base_url``: every ``Memory(ns, url=base_url)`` in this
process then talks to it through the HTTP engine, byte for byte as over a network, but through
ASGI calls. For tests and single-process embedding; other processes cannot reach it.

    >>> server = InProcessServer(create_app(settings))     # doctest: +SKIP
    >>> Memory("ns", url=server.url(key)).set("k", 1)       # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import httpx

from ..engines.http import mount, unmount


class _Bridge(httpx.BaseTransport, httpx.AsyncBaseTransport):
    """Hands each request to the ASGI app on the server's own loop, from any thread or loop
    (as a real server runs apart from its clients)."""

    def __init__(self, app: Any, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 0))
        self._loop = loop

    async def _exchange(self, request: httpx.Request) -> httpx.Response:
        resp = await self._transport.handle_async_request(request)
        body = await resp.aread()
        return httpx.Response(resp.status_code, headers=resp.headers, content=body)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        return asyncio.run_coroutine_threadsafe(self._exchange(request), self._loop).result()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        future = asyncio.run_coroutine_threadsafe(self._exchange(request), self._loop)
        return await asyncio.wrap_future(future)


class InProcessServer:
    def __init__(self, app: Any, base_url: str = "http://botwire.inprocess") -> None:
        self.app, self.base_url = app, base_url.rstrip("/")
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self._lifespan = app.router.lifespan_context(app)
        self._run(self._lifespan.__aenter__())
        bridge = _Bridge(app, self._loop)
        mount(self.base_url, bridge, bridge)

    def url(self, api_key: str | None = None) -> str:
        if not api_key:
            return self.base_url
        scheme, rest = self.base_url.split("://", 1)
        return f"{scheme}://{api_key}@{rest}"

    def _run(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    def close(self) -> None:
        unmount(self.base_url)
        self._run(self._lifespan.__aexit__(None, None, None))
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    def __enter__(self) -> InProcessServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
