"""Durability: once a write call returns, the data survives the death of the process."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap

import pytest

import botwire

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="needs SIGKILL")


def _run_and_kill(script: str, **kw) -> subprocess.CompletedProcess:
    code = (
        textwrap.dedent(
            """
        import os, signal, sys
        import botwire
        url, ns = sys.argv[1], sys.argv[2]
        m = botwire.Memory(ns, url=url)
        """
        )
        + textwrap.dedent(script)
        + "\nos.kill(os.getpid(), signal.SIGKILL)\n"
    )
    return subprocess.run(
        [sys.executable, "-c", code, kw["url"], kw["ns"]],
        capture_output=True,
        text=True,
        timeout=120,
    )


def _assert_killed(proc):
    assert proc.returncode == -signal.SIGKILL, (proc.returncode, proc.stdout, proc.stderr)


@pytest.mark.processes
def test_set_survives_sigkill(engine_url, ns):
    proc = _run_and_kill(
        """
        m.set("k", {"call": 42, "notes": ["a", "b"]})
        """,
        url=engine_url,
        ns=ns,
    )
    _assert_killed(proc)
    with botwire.Memory(ns, url=engine_url) as m:
        assert m.get("k") == {"call": 42, "notes": ["a", "b"]}


@pytest.mark.processes
def test_every_kind_of_write_survives_sigkill(engine_url, ns):
    proc = _run_and_kill(
        """
        m.set("doomed", 1)
        m.set_many({"a": 1, "b": [2]})
        m.incr("c", 7)
        m.delete("doomed")
        m.set("cas", "v", if_version=0)
        log = m.log("calls")
        log.append("first")
        log.extend(["second", "third"])
        m.set("last", "written just before the kill")
        """,
        url=engine_url,
        ns=ns,
    )
    _assert_killed(proc)
    with botwire.Memory(ns, url=engine_url) as m:
        assert m.get_many(["a", "b", "c", "doomed", "cas", "last"]) == {
            "a": 1,
            "b": [2],
            "c": 7,
            "cas": "v",
            "last": "written just before the kill",
        }
        assert [e.value for e in m.log("calls").read()] == ["first", "second", "third"]
        assert m.log("calls").append("fourth") == 4


@pytest.mark.processes
def test_kill_during_a_stream_of_writes_keeps_what_returned(engine_url, ns):
    # the child reports each write after it returns; everything reported must be there
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            textwrap.dedent(
                """
                import os, signal, sys
                import botwire
                m = botwire.Memory(sys.argv[2], url=sys.argv[1])
                for i in range(200):
                    m.set(f"k{i:03d}", i)
                    print(i, flush=True)
                    if i == 150:
                        os.kill(os.getpid(), signal.SIGKILL)
                """
            ),
            engine_url,
            ns,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    _assert_killed(proc)
    reported = [int(line) for line in proc.stdout.split()]
    assert reported == list(range(151))
    with botwire.Memory(ns, url=engine_url) as m:
        assert m.get_many([f"k{i:03d}" for i in reported]) == {f"k{i:03d}": i for i in reported}
        assert m.count() == 151
