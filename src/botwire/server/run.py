"""``botwire serve``: say what will be served, create the first admin key if there is none,
then run uvicorn.

uvicorn handles SIGTERM / Ctrl-C gracefully: it stops accepting connections and lets in-flight
requests finish (up to ``timeout_graceful_shutdown``) before the application closes its engine.
Every acknowledged write was committed before its answer was sent. Connections are bounded in
number (``max_connections``) and in the time they may take to send a request
(``server.protocol``); ``X-Forwarded-For`` is believed only from ``forwarded_allow_ips``.
Several workers keep their metrics in one directory made before they start, so ``/metrics``
sums them all (``server.metrics``).
"""

from __future__ import annotations

import copy
import logging
import logging.config
import os
import sys
import threading
import time
from contextlib import suppress
from typing import Any

from .._wire import redact
from ..engines import home_dir, open_engine
from ..errors import StorageUnavailable
from ..voice.platforms.registry import BY_NAME
from ..voice.settings import VoiceSettings
from .auth import bootstrap_op
from .config import Settings
from .metrics import shared_by_workers

ADMIN_KEY_FILE = "admin.key"
log = logging.getLogger("botwire.server")


def admin_key_path() -> str:
    return os.path.join(home_dir(), ADMIN_KEY_FILE)


def save_admin_key(secret: str) -> str:
    """Write the key for the local CLI, readable by this user only (0600)."""
    path = admin_key_path()
    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, (secret + "\n").encode())
    finally:
        os.close(fd)
    return path


def bootstrap(settings: Settings) -> str | None:
    """On the first start against a database: make the admin key, show it once, save it. When
    the database does not answer, the server starts anyway; a thread makes the key once it does."""
    try:
        return _first_admin_key(settings)
    except StorageUnavailable as exc:
        log.warning("the database is not reachable; the first admin key waits for it: %s", exc)
        later = threading.Thread(
            target=_first_admin_key_later, args=(settings,), name="botwire-bootstrap", daemon=True
        )
        later.start()
        return None


def _first_admin_key_later(settings: Settings, every: float = 1.0) -> None:
    while True:
        time.sleep(every)
        with suppress(StorageUnavailable):
            _first_admin_key(settings)
            return


def _first_admin_key(settings: Settings) -> str | None:
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
    logging_config = log_config()
    logging.config.dictConfig(logging_config)
    announce(settings)
    bootstrap(settings)
    os.environ.update(settings.environ())  # the workers read their settings from here
    with shared_by_workers(settings.workers) as metrics_dir:  # set before the workers start
        if metrics_dir is not None:
            log.info("metrics: kept in %s (multiprocess mode: /metrics sums them)", metrics_dir)
        run_uvicorn(settings, logging_config)


def run_uvicorn(settings: Settings, logging_config: dict[str, Any]) -> None:
    import uvicorn

    uvicorn.run(
        "botwire.server.app:app_from_env",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        http="botwire.server.protocol:DeadlineProtocol",
        ws="none",
        proxy_headers=bool(settings.forwarded_allow_ips),
        forwarded_allow_ips=",".join(settings.forwarded_allow_ips),
        limit_concurrency=settings.max_connections,
        backlog=settings.backlog,
        timeout_graceful_shutdown=30,
        access_log=False,  # botwire.access instead: route templates, not paths with names
        server_header=False,
        log_config=logging_config,
        log_level="info",
    )


def log_config() -> dict[str, Any]:
    """uvicorn's logging, and botwire's loggers (``botwire.access`` too) on stderr with the time."""
    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    config["formatters"]["botwire"] = {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}
    config["handlers"]["botwire"] = {
        "class": "logging.StreamHandler",
        "formatter": "botwire",
        "stream": "ext://sys.stderr",
    }
    config["loggers"]["botwire"] = {"handlers": ["botwire"], "level": "INFO", "propagate": False}
    return config


def announce(settings: Settings) -> None:
    """Log where the data is kept (without secrets) and which voice webhooks will answer."""
    log.info("database: %s", redact(settings.database))
    enabled = VoiceSettings.load().enabled()
    for platform in (p for p, on in enabled.items() if on):
        log.info("voice: %s webhooks at %s", platform, ", ".join(webhook_paths(platform)))
    off = [p for p, on in enabled.items() if not on]
    if off:
        log.info("voice: not configured (404): %s", ", ".join(off))


def webhook_paths(platform: str) -> list[str]:
    return [route.path for route in BY_NAME[platform].routes]
