"""HTTP/1.1 with deadlines: uvicorn's httptools protocol, closing connections that send slowly.

uvicorn bounds only the idle time between requests (``timeout_keep_alive``). Here a connection
has ``header_timeout`` seconds from opening, or from a request's first byte, to the end of that
request's headers, then ``body_timeout`` seconds to the end of its body. When time runs out, a
request that had begun is answered 408 (unless an answer is already being written) and the
connection is closed, so a client sending a byte a second holds a connection for seconds, not
forever.
"""

from __future__ import annotations

import asyncio
import functools
import json
from collections.abc import Callable

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from .config import Settings

_MESSAGE = "the request was not received in time"
_BODY = json.dumps({"error": {"code": "request_timeout", "message": _MESSAGE}}).encode()
TIMEOUT_RESPONSE = b"".join(
    [
        b"HTTP/1.1 408 Request Timeout\r\n",
        b"content-type: application/json\r\n",
        b"content-length: %d\r\n" % len(_BODY),
        b"connection: close\r\n\r\n",
        _BODY,
    ]
)


@functools.cache
def timeouts() -> tuple[float, float]:
    """``(header_timeout, body_timeout)`` in this worker, as ``botwire serve`` exported them."""
    settings = Settings.from_env()
    return settings.header_timeout, settings.body_timeout


class DeadlineProtocol(HttpToolsProtocol):
    """``HttpToolsProtocol`` with one timer per connection, re-armed at each stage of a request."""

    _timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm(timeouts()[0], self._expire)  # silent: nothing was asked yet

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._arm(timeouts()[0], self._headers_late)

    def on_headers_complete(self) -> None:
        super().on_headers_complete()
        self._arm(timeouts()[1], self._body_late)

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._disarm()

    def _arm(self, seconds: float, expire: Callable[[], None]) -> None:
        self._disarm()
        self._timer = self.loop.call_later(seconds, expire)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _headers_late(self) -> None:
        previous = self.cycle  # this request has no cycle yet: the one before it, if any
        self._expire(answer=previous is None or previous.response_complete)

    def _body_late(self) -> None:
        self._expire(answer=not self.pipeline and not self.cycle.response_started)

    def _expire(self, answer: bool = False) -> None:
        self._timer = None
        if self.transport.is_closing():
            return
        if answer:
            self.transport.write(TIMEOUT_RESPONSE)
        cycle = self.cycle
        if cycle is not None and not cycle.response_complete:
            cycle.disconnected = True  # the application reads a disconnect and writes nothing
            cycle.message_event.set()
        self.transport.close()
