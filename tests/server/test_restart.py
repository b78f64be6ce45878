"""A server restart, graceful or not, keeps every write it acknowledged."""

from __future__ import annotations

import signal
import time

from botwire import Memory
from servers import ServerProcess


def test_restart_keeps_every_acknowledged_write(tmp_path):
    server = ServerProcess(f"sqlite:///{tmp_path}/r.db", tmp_path / "home", writes_per_day=0)
    server.start()
    acknowledged = {}
    with Memory("r", url=server.url()) as m:
        for i in range(200):
            m.set(f"k{i}", {"i": i, "t": time.time()})
            acknowledged[f"k{i}"] = i
        m.log("calls").extend(list(range(50)))
    assert server.stop() in (0, -15)  # SIGTERM: uvicorn shuts down, then re-raises it
    assert "Application shutdown complete" in server.log()
    server.start()
    with Memory("r", url=server.url()) as m:
        got = m.get_many(list(acknowledged))
        assert {k: v["i"] for k, v in got.items()} == acknowledged
        assert [e.value for e in m.log("calls").read()] == list(range(50))
        m.set("after-restart", True)
    server.stop(signal.SIGKILL)  # a crash: what was acknowledged is still there
    server.start()
    with Memory("r", url=server.url()) as m:
        assert m.get("after-restart") is True and len(m) == 201
    server.stop()
