"""``botwire serve``: create the first admin key if there is none, then run uvicorn.

uvicorn handles SIGTERM / Ctrl-C gracefully: it stops accepting connections and lets in-flight
requests finish (up to ``timeout_graceful_shutdown``) before the application closes its engine.
Every acknowledged write was committed before its answer was sent.
"""

from __future__ import annotations

import os
import sys

from ..engines import home_dir, open_engine
from .auth import bootstrap_op
from .config import Settings

ADMIN_KEY_FILE = "admin.key"


def admin_key_path() -> str:
    return os.path.join(home_dir(), ADMIN_KEY_FILE)


def save_admin_key(secret: str) -> str:
    """Write the key for the local CLI, readable by this user only (0600)."""
    path = admin_key_path()
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, (secret + "\n").encode())
    finally:
        os.close(fd)
    return path


def bootstrap(settings: Settings) -> str | None:
    """On the first start against a database: make the admin key, show it once, save it."""
    engine = open_engine(settings.database)
    secret, op = bootstrap_op()
    try:
        if not engine.execute(op):
            return None
    finally:
        engine.close()
    path = save_admin_key(secret)
    bar = "=" * 72
    print(
        f"{bar}\nbotwire: first start, created an admin API key (shown only this once):\n\n"
        f"    {secret}\n\nSaved for the local CLI in {path} (mode 0600).\n"
        f"Create scoped keys for your agents: botwire keys create --prefix acme: --write\n{bar}",
        file=sys.stderr,
        flush=True,
    )
    return secret


def serve(settings: Settings) -> None:
    import uvicorn

    bootstrap(settings)
    os.environ.update(settings.environ())  # the workers read their settings from here
    uvicorn.run(
        "botwire.server.app:app_from_env",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        timeout_graceful_shutdown=30,
        access_log=False,
        server_header=False,
        log_level="info",
    )
