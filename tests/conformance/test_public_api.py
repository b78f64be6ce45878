"""What `import botwire` offers, and that it works without the optional PostgreSQL driver."""

from __future__ import annotations

import dataclasses
import inspect
import subprocess
import sys
import textwrap

import pytest

import botwire

PUBLIC = [
    "Memory",
    "AsyncMemory",
    "Log",
    "AsyncLog",
    "LogEntry",
    "KeyInfo",
    "SearchHit",
    "BotWireChatHistory",
    "namespaces",
    "forget",
    "anamespaces",
    "aforget",
]
ERRORS = [
    "BotWireError",
    "InvalidInput",
    "InvalidKey",
    "ValueTooLarge",
    "UnsupportedValue",
    "NotFound",
    "VersionConflict",
    "NamespaceNotEmpty",
    "QuotaExceeded",
    "StorageUnavailable",
    "AuthenticationFailed",
    "PermissionDenied",
    "ConfigurationError",
    "MissingDependency",
]


@pytest.mark.parametrize("name", PUBLIC + ERRORS)
def test_all_exports(name):
    assert name in botwire.__all__
    assert hasattr(botwire, name)


def test_all_names_exist():
    for name in botwire.__all__:
        assert hasattr(botwire, name), name


def test_star_import():
    scope: dict = {}
    exec("from botwire import *", scope)
    for name in PUBLIC + ERRORS:
        assert name in scope


def test_version():
    assert isinstance(botwire.__version__, str)
    assert botwire.__version__[0].isdigit()


@pytest.mark.parametrize("name", ERRORS)
def test_errors_are_exception_classes(name):
    cls = getattr(botwire, name)
    assert isinstance(cls, type) and issubclass(cls, Exception)
    assert issubclass(cls, botwire.BotWireError)


def test_dataclasses_are_frozen():
    for cls in (botwire.KeyInfo, botwire.LogEntry, botwire.SearchHit):
        assert dataclasses.is_dataclass(cls)
        assert cls.__dataclass_params__.frozen  # type: ignore[attr-defined]


def test_async_functions_are_coroutines_and_async_generators():
    assert inspect.iscoroutinefunction(botwire.aforget)
    assert not inspect.iscoroutinefunction(botwire.forget)
    assert not inspect.iscoroutinefunction(botwire.namespaces)


def test_memory_log_types(memory):
    assert isinstance(memory.log("x"), botwire.Log)


def test_memory_signature_is_keyword_only_after_namespace():
    params = inspect.signature(botwire.Memory).parameters
    assert list(params)[0] == "namespace"
    for name in ("url", "engine", "max_value_bytes"):
        assert params[name].kind is inspect.Parameter.KEYWORD_ONLY
        assert params[name].default is None


def test_import_and_use_without_psycopg(tmp_path):
    code = textwrap.dedent(
        """
        import sys
        sys.modules["psycopg"] = None          # import psycopg -> ImportError
        sys.modules["psycopg_pool"] = None
        import botwire
        assert "psycopg" not in [m for m in sys.modules if sys.modules[m] is not None]
        with botwire.Memory("ns", url=sys.argv[1]) as m:
            m.set("k", {"v": 1})
            assert m.get("k") == {"v": 1}
            m.log("l").append(1)
        assert list(botwire.namespaces(url=sys.argv[1])) == ["ns"]
        try:
            botwire.Memory("ns", url="postgresql://postgres@127.0.0.1/none").set("k", 1)
        except botwire.ConfigurationError as exc:
            assert "postgres" in str(exc).lower(), str(exc)
            print("ok")
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, f"sqlite:///{tmp_path}/nopg.db"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ok"
