"""A ``botwire serve`` process (real socket) over a PostgreSQL cluster of the test's own, which
the tests stop (``pg_ctl stop -m immediate``, like a crash) and start again."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import NamedTuple

import httpx
import pytest

from botwire import Memory
from pg_cluster import Cluster, private_cluster
from servers import ServerProcess

WITHIN = 4.0  # seconds: "within ~2 s" (a 503 during an outage, resuming after it), generously


@pytest.fixture
def stopped_cluster():
    with private_cluster(running=False) as cluster:
        yield cluster


@pytest.fixture
def cluster():
    with private_cluster() as cluster:
        yield cluster


def _serve(cluster: Cluster, home: Path, until: str = "/readyz") -> ServerProcess:
    return ServerProcess(cluster.url, home, writes_per_day=0).start(until=until)


def _until(check, what: str) -> float:
    """Seconds until ``check()`` is true, failing after WITHIN."""
    started = time.monotonic()
    while not check():
        assert time.monotonic() - started < WITHIN, f"{what}: not within {WITHIN} s"
        time.sleep(0.02)
    return time.monotonic() - started


def test_a_server_started_before_its_database_serves_once_the_database_answers(
    stopped_cluster, tmp_path
):
    server = _serve(stopped_cluster, tmp_path / "home", until="/healthz")
    try:
        with httpx.Client(base_url=server.base, timeout=30) as http:
            assert http.get("/healthz").status_code == 200
            started = time.monotonic()
            not_ready = http.get("/readyz")
            assert not_ready.status_code == 503 and not_ready.headers["retry-after"] == "1"
            assert time.monotonic() - started < WITHIN
            write = http.put("/v1/namespaces/n/keys/k", json=1, headers=_bearer("bw_not_yet"))
            assert write.status_code == 503 and int(write.headers["Retry-After"]) >= 1

            stopped_cluster.start()
            _until(lambda: http.get("/readyz").status_code == 200, "ready")
            key_file = server.home / "admin.key"
            _until(key_file.exists, "the first admin key")
            key = key_file.read_text().strip()
            assert http.put("/v1/namespaces/n/keys/k", json=1, headers=_bearer(key)).is_success
        with Memory("n", url=server.url(key)) as m:
            assert m.get("k") == 1
    finally:
        server.stop()


def test_writes_through_an_outage_get_503_fast_and_every_acknowledged_one_is_kept(
    cluster, tmp_path
):
    server = _serve(cluster, tmp_path / "home")
    writer = _Writer(server.base, server.admin_key)
    try:
        writer.start()
        time.sleep(0.5)
        cluster.stop()
        time.sleep(WITHIN + 1)  # longer than any request may take
        cluster.start()
        restarted = time.monotonic()
        _until(lambda: writer.acknowledged_after(restarted), "writes after the restart")
        time.sleep(0.3)
        writer.finish()

        answers = writer.answers
        assert {a.status for a in answers} == {200, 503}
        assert max(a.seconds for a in answers) < WITHIN  # each answered fast
        assert all(a.retry_after for a in answers if a.status == 503)
        acknowledged = {a.i for a in answers if a.status == 200}
        with Memory("outage", url=server.url()) as m:
            stored = m.get_many([f"k{i}" for i in acknowledged])
        assert stored == {f"k{i}": i for i in acknowledged}
    finally:
        writer.finish()
        server.stop()


class _Answer(NamedTuple):
    i: int
    status: int
    seconds: float
    retry_after: str | None
    at: float  # when it came (monotonic)


class _Writer(threading.Thread):
    """Writes ``k<i> = i`` in a loop, one request at a time, keeping each answer."""

    def __init__(self, base: str, key: str) -> None:
        super().__init__(daemon=True)
        self.http = httpx.Client(base_url=base, headers=_bearer(key), timeout=30)
        self.answers: list[_Answer] = []
        self.stopping = threading.Event()

    def run(self) -> None:
        i = 0
        while not self.stopping.is_set():
            started = time.monotonic()
            answer = self.http.put(f"/v1/namespaces/outage/keys/k{i}", json=i)
            at = time.monotonic()
            retry = answer.headers.get("Retry-After")
            self.answers.append(_Answer(i, answer.status_code, at - started, retry, at))
            i += 1
            time.sleep(0.01)

    def acknowledged_after(self, moment: float) -> bool:
        return any(a.status == 200 and a.at > moment for a in self.answers)

    def finish(self) -> None:
        self.stopping.set()
        if self.is_alive():
            self.join(30)
        self.http.close()


def _bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}
