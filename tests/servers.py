"""A real botwire server in a child process, on a real socket, for tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerProcess:
    """``python -m botwire serve`` with its own ``BOTWIRE_HOME``; ``admin_key`` after start.
    ``args`` are more options for ``serve``; ``settings`` become ``BOTWIRE_*`` variables."""

    def __init__(
        self, database: str, home: Path, workers: int = 1, args: tuple[str, ...] = (),
        **settings: object,
    ) -> None:
        self.database, self.home, self.workers, self.args = database, Path(home), workers, args
        self.settings = settings
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self.admin_key = ""

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("BOTWIRE_")}
        env["BOTWIRE_HOME"] = str(self.home)
        for name, value in self.settings.items():
            env[f"BOTWIRE_{name.upper()}"] = str(value)
        return env

    def start(self, port: int | None = None, until: str = "/readyz") -> ServerProcess:
        """Start, and wait until ``until`` answers 200 (``/healthz``: the process is up)."""
        self.home.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        log = open(self.home / "server.log", "ab")  # noqa: SIM115 - closed with the process
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "botwire",
                "serve",
                "--port",
                str(self.port),
                "--database",
                self.database,
                "--workers",
                str(self.workers),
                *self.args,
            ],
            env=self.env(),
            stdout=log,
            stderr=log,
            stdin=subprocess.DEVNULL,
        )
        log.close()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited {self.proc.returncode}:\n{self.log()}")
            try:
                if httpx.get(self.base + until, timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        else:
            self.stop()
            raise RuntimeError(f"server did not become ready:\n{self.log()}")
        key_file = self.home / "admin.key"
        self.admin_key = key_file.read_text().strip() if key_file.exists() else self.admin_key
        return self

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, key: str | None = None) -> str:
        return f"http://{key or self.admin_key}@127.0.0.1:{self.port}"

    def log(self) -> str:
        path = self.home / "server.log"
        return path.read_text(errors="replace")[-4000:] if path.exists() else ""

    def stop(self, sig: int = signal.SIGTERM) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        code, self.proc = self.proc.returncode, None
        return code


class Served:
    """A ``ServerProcess`` over ``database`` and the test's own engine on the same database
    (keys made, storage read); ``restart`` keeps the port."""

    def __init__(self, database: str, home: Path, **settings: object) -> None:
        from botwire.engines import open_engine

        self.database = database
        self.process = ServerProcess(database, home, **settings)
        self.engine = open_engine(database)

    def start(self) -> "Served":
        self.process.start()
        return self

    def restart(self) -> None:
        port = self.process.port
        self.process.stop()
        self.process.start(port=port)

    def close(self) -> None:
        self.process.stop()
        self.engine.close()

    @property
    def base(self) -> str:
        return self.process.base
