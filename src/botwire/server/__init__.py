"""The botwire server: the engine protocol over HTTP, with API keys, quotas and metrics.

Needs the ``server`` extra (``pip install "./botwire[server]"`` from a checkout).
Start it with ``botwire serve``.
"""

from __future__ import annotations

try:
    import fastapi  # noqa: F401
except ImportError as exc:  # pragma: no cover - exercised without the extra
    from ..errors import ConfigurationError, install_hint

    raise ConfigurationError(
        f"the botwire server needs its extra: {install_hint('server')}"
    ) from exc

from .app import app_from_env, create_app
from .config import Settings

__all__ = ["Settings", "create_app", "app_from_env"]
