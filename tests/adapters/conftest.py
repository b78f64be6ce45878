"""The adapters' engines: the embedded file, PostgreSQL and a server, in turn."""

from __future__ import annotations

from typing import Any

import pytest
from frameworks import ENGINE_ENV

ENGINES = ["sqlite_url", "postgres_url", "http_sqlite_url"]


@pytest.fixture(params=ENGINES, ids=[e.removesuffix("_url") for e in ENGINES])
def url(request: Any, monkeypatch: Any) -> str:
    for name in ENGINE_ENV:
        monkeypatch.delenv(name, raising=False)
    return request.getfixturevalue(request.param)  # type: ignore[no-any-return]
