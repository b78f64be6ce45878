"""Server settings: command-line options, else ``BOTWIRE_*`` environment variables, else defaults.

==========================  ===============================  =====================================
setting                     environment variable             default
==========================  ===============================  =====================================
host                        ``BOTWIRE_HOST``                 ``127.0.0.1``
port                        ``BOTWIRE_PORT``                 ``8421``
database                    ``BOTWIRE_DATABASE_URL``         SQLite file in ``$BOTWIRE_HOME``
workers                     ``BOTWIRE_WORKERS``              ``1``
writes_per_day              ``BOTWIRE_WRITES_PER_DAY``       ``1000`` per namespace (0: unlimited)
max_bytes                   ``BOTWIRE_MAX_BYTES``            ``52428800`` (50 MB) per namespace
max_value_bytes             ``BOTWIRE_MAX_VALUE_BYTES``      ``1048576`` (1 MiB)
max_body_bytes              ``BOTWIRE_MAX_BODY_BYTES``       ``8388608`` (8 MiB)
cors_origins                ``BOTWIRE_CORS_ORIGINS``         none (comma-separated list)
key_cache_seconds           ``BOTWIRE_KEY_CACHE_SECONDS``    ``2`` (how soon a revocation applies
                                                             on other replicas)
auth_failures               ``BOTWIRE_AUTH_FAILURES``        ``20`` failed attempts per client ...
auth_window                 ``BOTWIRE_AUTH_WINDOW``          ... in ``60`` seconds, then 429
forwarded_allow_ips         ``BOTWIRE_FORWARDED_ALLOW_IPS``  none: ``X-Forwarded-For`` is ignored
                                                             (comma-separated proxy addresses or
                                                             networks, ``*`` for any)
header_timeout              ``BOTWIRE_HEADER_TIMEOUT``       ``10`` seconds to receive the headers
body_timeout                ``BOTWIRE_BODY_TIMEOUT``         ``30`` seconds to receive the body
max_connections             ``BOTWIRE_MAX_CONNECTIONS``      ``1000`` open per worker, then 503
backlog                     ``BOTWIRE_BACKLOG``              ``2048`` connections waiting to be
                                                             accepted
access_log                  ``BOTWIRE_ACCESS_LOG``           off (one line per request on the
                                                             ``botwire.access`` logger)
console                     ``BOTWIRE_CONSOLE``              on (``/console``, docs/console.md)
console_idle                ``BOTWIRE_CONSOLE_IDLE``         ``1800`` seconds: a console session
                                                             unused this long ends ...
console_max_age             ``BOTWIRE_CONSOLE_MAX_AGE``      ... and any after ``43200`` (12 h)
==========================  ===============================  =====================================
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass, field, fields
from typing import Any

from .._codec import DEFAULT_MAX_VALUE_BYTES
from ..engines import default_path
from ..errors import ConfigurationError


@dataclass(frozen=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 8421
    database: str = ""
    workers: int = 1
    writes_per_day: int = 1000
    max_bytes: int = 50 * 1024 * 1024
    max_value_bytes: int = DEFAULT_MAX_VALUE_BYTES
    max_body_bytes: int = 8 * 1024 * 1024
    cors_origins: tuple[str, ...] = field(default=())
    key_cache_seconds: float = 2.0
    auth_failures: int = 20
    auth_window: float = 60.0
    forwarded_allow_ips: tuple[str, ...] = field(default=())
    header_timeout: float = 10.0
    body_timeout: float = 30.0
    max_connections: int = 1000
    backlog: int = 2048
    access_log: bool = False
    console: bool = True
    console_idle: float = 1800.0
    console_max_age: float = 43200.0

    def __post_init__(self) -> None:
        if not self.database:
            object.__setattr__(self, "database", "sqlite:///" + default_path())
        if not 0 <= self.port <= 65535:
            raise ConfigurationError(f"port {self.port} is not between 0 and 65535")
        for name in (
            "workers",
            "max_value_bytes",
            "max_body_bytes",
            "auth_failures",
            "max_connections",
            "backlog",
        ):
            if getattr(self, name) < 1:
                raise ConfigurationError(f"{name} must be at least 1")
        for name in ("writes_per_day", "max_bytes", "key_cache_seconds", "auth_window"):
            if getattr(self, name) < 0:
                raise ConfigurationError(f"{name} must not be negative")
        for name in ("header_timeout", "body_timeout"):
            if not getattr(self, name) > 0:
                raise ConfigurationError(f"{name} must be more than 0 seconds")
        for name in ("console_idle", "console_max_age"):
            if not getattr(self, name) > 0:
                raise ConfigurationError(f"{name} must be more than 0 seconds")
        for proxy in self.forwarded_allow_ips:
            _check_proxy(proxy)
        if self.database.split(":", 1)[0].lower() in ("http", "https"):
            raise ConfigurationError("the server stores in sqlite:// or postgresql://, not http")

    @classmethod
    def from_env(cls, **given: Any) -> Settings:
        """Settings from ``given`` (options that were set), then the environment."""
        values: dict[str, Any] = {}
        for f in fields(cls):
            if given.get(f.name) is not None:
                values[f.name] = given[f.name]
                continue
            env = "BOTWIRE_DATABASE_URL" if f.name == "database" else f"BOTWIRE_{f.name.upper()}"
            raw = os.environ.get(env)
            if raw:
                values[f.name] = _parse(f.name, env, raw, f.default)
        return cls(**values)

    def environ(self) -> dict[str, str]:
        """These settings as environment variables, for worker processes."""
        out = {}
        for f in fields(self):
            value = getattr(self, f.name)
            env = "BOTWIRE_DATABASE_URL" if f.name == "database" else f"BOTWIRE_{f.name.upper()}"
            out[env] = ",".join(value) if isinstance(value, tuple) else str(value)
        return out


_BOOLEANS = {word: True for word in ("1", "true", "yes", "on")}
_BOOLEANS.update({word: False for word in ("0", "false", "no", "off")})


def _check_proxy(proxy: str) -> None:
    if proxy == "*":
        return
    try:
        ipaddress.ip_network(proxy, strict=False)
    except ValueError:
        raise ConfigurationError(
            f"forwarded_allow_ips: {proxy!r} is not an IP address, a network (10.0.0.0/8) or *"
        ) from None


def _parse(name: str, env: str, raw: str, default: Any) -> Any:
    try:
        if isinstance(default, tuple):
            return tuple(o.strip() for o in raw.split(",") if o.strip())
        if isinstance(default, bool):
            return _BOOLEANS[raw.strip().lower()]
        if isinstance(default, int):
            return int(raw)
        if isinstance(default, float):
            return float(raw)
    except (ValueError, KeyError):
        raise ConfigurationError(f"{env}={raw!r} is not a valid {name}") from None
    return raw
