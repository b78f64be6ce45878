"""Framework imports for the adapter tests: skip with the extra to install, or fail in CI.

``make test`` installs every framework, so nothing skips there. Run by hand without one, its
tests skip with the ``pip install`` that enables them, unless ``BOTWIRE_TEST_REQUIRE_ADAPTERS=1``
(set by ``.ci/run``), where a missing framework fails instead.
"""

from __future__ import annotations

import importlib
import os
import uuid
from types import ModuleType
from typing import Any

import pytest

REQUIRE_ADAPTERS_ENV = "BOTWIRE_TEST_REQUIRE_ADAPTERS"


def need(module: str, extra: str) -> ModuleType:
    """Import ``module`` for a test module, or skip it (fail in CI) naming ``botwire[extra]``."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        reason = f"{module} is not installed (./botwire[{extra}]): {exc}"
        if os.environ.get(REQUIRE_ADAPTERS_ENV, "").strip() not in ("", "0", "false", "no"):
            pytest.fail(f"{reason} (and {REQUIRE_ADAPTERS_ENV}=1)", pytrace=False)
        pytest.skip(reason, allow_module_level=True)
        raise  # unreachable: skip raises


def unique_ns(tag: str = "t") -> str:
    """A namespace no other test uses (``conftest`` is ambiguous under tests/adapters)."""
    return f"{tag}-{uuid.uuid4().hex[:12]}"


# Settings that would redirect a Memory away from the URL a test asked for.
ENGINE_ENV = ("BOTWIRE_URL", "BOTWIRE_DATABASE_URL", "BOTWIRE_MAX_VALUE_BYTES", "BOTWIRE_API_KEY")


class CountingEngine:
    """Passes every op to the real engine and records it: counts round trips, sync or async."""

    def __init__(self, engine: Any) -> None:
        self.engine = engine
        self.ops: list[str] = []

    def execute(self, op: Any) -> Any:
        self.ops.append(type(op).__name__)
        return self.engine.execute(op)

    async def aexecute(self, op: Any) -> Any:
        self.ops.append("async " + type(op).__name__)
        return await self.engine.aexecute(op)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.engine, name)


SECRET = "hunter2"  # a database password that must never be shown


def with_password(postgres_url: str, where: str) -> str:
    """The test schema's URL carrying ``SECRET`` as its password, in the URL's user part
    (``where="user-part"``) or as an option; the test server trusts, so it is ignored."""
    assert postgres_url.startswith("postgresql://postgres@")
    if where == "user-part":
        return postgres_url.replace("postgres@", f"postgres:{SECRET}@", 1)
    return f"{postgres_url}&password={SECRET}"
