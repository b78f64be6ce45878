"""A PostgreSQL cluster of a test's own (initdb + pg_ctl in a temporary directory), to stop and
start at will. Run as root, the server runs as the ``postgres`` user.

Without PostgreSQL's binaries the tests using it skip, unless ``BOTWIRE_TEST_REQUIRE_POSTGRES=1``.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from servers import free_port

REQUIRE_POSTGRES_ENV = "BOTWIRE_TEST_REQUIRE_POSTGRES"


class Cluster:
    def __init__(self, bindir: str, root: Path, port: int) -> None:
        self.bindir, self.root, self.port = bindir, root, port
        self.url = f"postgresql://postgres@127.0.0.1:{port}/postgres"

    def _run(self, tool: str, *args: str) -> None:
        as_owner = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        command = [*as_owner, os.path.join(self.bindir, tool), *args]
        subprocess.run(command, check=True, capture_output=True, timeout=120)

    def init(self) -> None:
        self._run("initdb", "-D", str(self.root / "data"), "-A", "trust", "-U", "postgres",
                  "--no-sync", "-E", "UTF8")

    def start(self) -> None:
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run("pg_ctl", "-D", str(self.root / "data"), "-o", options,
                  "-l", str(self.root / "server.log"), "-w", "start")

    def stop(self, mode: str = "immediate") -> None:
        """``immediate``: the server processes die at once, like a crash (fsync is off, but
        the operating system keeps what they wrote)."""
        self._run("pg_ctl", "-D", str(self.root / "data"), "-m", mode, "-w", "stop")


def _bindir() -> str | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if found:
        return os.path.dirname(found[-1])
    initdb = shutil.which("initdb")
    return os.path.dirname(initdb) if initdb else None


def _unavailable(reason: str) -> None:
    if os.environ.get(REQUIRE_POSTGRES_ENV, "").strip() not in ("", "0", "false", "no"):
        pytest.fail(f"{reason} (and {REQUIRE_POSTGRES_ENV}=1)", pytrace=False)
    pytest.skip(reason)


@contextmanager
def private_cluster(running: bool = True) -> Iterator[Cluster]:
    """A new cluster on a free port (started, or not), stopped and removed afterwards."""
    bindir = _bindir()
    if bindir is None:
        _unavailable("PostgreSQL's initdb and pg_ctl are not installed")
    root = Path(tempfile.mkdtemp(prefix="botwire-pg-"))
    cluster = Cluster(str(bindir), root, free_port())
    try:
        if os.geteuid() == 0:
            shutil.chown(root, "postgres")
        cluster.init()
    except (OSError, LookupError, subprocess.CalledProcessError) as exc:
        shutil.rmtree(root, ignore_errors=True)
        _unavailable(f"cannot make a PostgreSQL cluster: {exc}")
    try:
        if running:
            cluster.start()
        yield cluster
    finally:
        try:
            cluster.stop()
        except subprocess.CalledProcessError:
            pass  # it was not running
        shutil.rmtree(root, ignore_errors=True)
