"""How many round trips an op costs on PostgreSQL, counted on the wire: a TCP relay between
the engine and the server counts the times the client speaks again after the server answered.

incr, append and extend are one statement each; the call-start reads (facts, recent calls,
notes) go out together in one pipeline."""

from __future__ import annotations

import socket
import threading
from urllib.parse import urlsplit, urlunsplit

import pytest

from botwire import Memory
from botwire.voice import core


class Relay:
    """Forwards one port to PostgreSQL and counts round trips: a client send that follows a
    server send is the start of a new one."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.lock = threading.Lock()
        self.turns, self._server_spoke = 0, True
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection(self.target)
            for src, dst, from_client in ((client, server, True), (server, client, False)):
                threading.Thread(
                    target=self._pump, args=(src, dst, from_client), daemon=True
                ).start()

    def _pump(self, src: socket.socket, dst: socket.socket, from_client: bool) -> None:
        while True:
            try:
                data = src.recv(65536)
            except OSError:
                data = b""
            if not data:
                for s in (src, dst):
                    try:
                        s.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass
                return
            with self.lock:
                if from_client and self._server_spoke:
                    self.turns += 1
                self._server_spoke = not from_client
            dst.sendall(data)

    def count(self, action) -> int:
        with self.lock:
            self.turns, self._server_spoke = 0, True
        action()
        with self.lock:
            return self.turns


@pytest.fixture
def relayed(fresh_postgres_url):
    parts = urlsplit(fresh_postgres_url)
    relay = Relay(parts.hostname or "127.0.0.1", parts.port or 5432)
    netloc = (
        f"{parts.username}@127.0.0.1:{relay.port}" if parts.username else f"127.0.0.1:{relay.port}"
    )
    yield relay, urlunsplit(parts._replace(netloc=netloc))
    relay.listener.close()


def test_incr_append_extend_and_the_call_start_reads_take_one_round_trip(relayed):
    relay, url = relayed
    with Memory("+14155550123", url=url) as m:
        calls = m.log("calls")
        m.log("notes").append({"text": "allergic to peanuts"})
        plan = lambda: core.run(core.snapshot(), m)  # noqa: E731
        for _ in range(30):  # every pooled connection past psycopg's automatic prepare (5th use)
            m.incr("n")
            calls.append({"summary": "ordered"})
            calls.extend([{"a": 1}, {"b": 2}])
            m.set("name", "Ana")
            plan()
        assert relay.count(lambda: m.incr("n")) == 1
        assert relay.count(lambda: calls.append({"summary": "again"})) == 1
        assert relay.count(lambda: calls.extend([{"c": 3}, {"d": 4}])) == 1
        assert relay.count(lambda: m.set("pizza", "margherita")) == 1
        assert relay.count(plan) == 1
        # the same reads one by one: three
        def separately():
            return list(m.items(limit=200)), calls.read(last=20), m.log("notes").read(last=20)

        assert relay.count(separately) == 3
        snap = plan()
        assert snap.facts == {"n": 31, "name": "Ana", "pizza": "margherita"}
        assert snap.notes == ["allergic to peanuts"]


async def test_the_call_start_reads_take_one_round_trip_async(relayed):
    from botwire import AsyncMemory

    relay, url = relayed
    async with AsyncMemory("+14155550123", url=url) as m:
        await m.set("name", "Ana")
        for _ in range(30):
            await core.arun(core.snapshot(), m)
        with relay.lock:
            relay.turns, relay._server_spoke = 0, True
        snap = await core.arun(core.snapshot(), m)
        with relay.lock:
            assert relay.turns == 1
        assert snap.facts == {"name": "Ana"}
