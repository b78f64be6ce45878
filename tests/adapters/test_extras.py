"""Optional extras: `import botwire` needs no framework; a missing one names its extra."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

FRAMEWORKS = {  # adapter module -> (extra, framework modules it needs)
    "langchain": ("langchain", ["langchain_core"]),
    "langgraph": ("langgraph", ["langgraph", "langchain_core"]),
    "autogen": ("autogen", ["autogen_core"]),
    "crewai": ("crewai", ["crewai"]),
}
BLOCKED = sorted({m for _, mods in FRAMEWORKS.values() for m in mods})


def run(code: str, tmp_path) -> subprocess.CompletedProcess:
    prelude = "import sys\n" + "".join(f"sys.modules[{m!r}] = None\n" for m in BLOCKED)
    return subprocess.run(
        [sys.executable, "-c", prelude + textwrap.dedent(code), f"sqlite:///{tmp_path}/x.db"],
        capture_output=True, text=True, timeout=60,
    )


def test_import_botwire_and_use_it_without_any_framework(tmp_path):
    proc = run(
        """
        import botwire
        from botwire import *  # BotWireChatHistory resolves to a stand-in, not an ImportError
        with botwire.Memory("ns", url=sys.argv[1]) as m:
            m.set("k", "pumpkin soup")
            assert [h.key for h in m.search("soup")] == ["k"]
        loaded = [n for n in sys.modules if n.startswith(("langchain", "langgraph", "autogen",
                                                          "crewai"))]
        assert not [n for n in loaded if sys.modules[n] is not None], loaded
        print("ok")
        """,
        tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ok"


def test_chat_history_without_langchain_names_the_extra(tmp_path):
    proc = run(
        """
        import botwire
        try:
            botwire.BotWireChatHistory("session-1")
        except ImportError as exc:
            assert isinstance(exc, botwire.MissingDependency) and exc.extra == "langchain"
            print(exc)
        """,
        tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    assert "./botwire[langchain]" in proc.stdout


@pytest.mark.parametrize("adapter", sorted(FRAMEWORKS))
def test_each_adapter_without_its_framework_names_its_extra(adapter, tmp_path):
    extra = FRAMEWORKS[adapter][0]
    proc = run(
        f"""
        import botwire
        try:
            import botwire.adapters.{adapter}
        except botwire.MissingDependency as exc:
            assert exc.extra == {extra!r}
            print(exc)
        """,
        tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    assert f"./botwire[{extra}]" in proc.stdout
    assert f"botwire.adapters.{adapter}" in proc.stdout


def test_extras_are_declared():
    import tomllib
    from pathlib import Path

    project = tomllib.loads((Path(__file__).parents[2] / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    for extra, _ in FRAMEWORKS.values():
        assert extras[extra], extra
    (everything,) = extras["all"]
    assert everything.startswith("botwire[")
    assert {e for e, _ in FRAMEWORKS.values()} <= set(everything[8:-1].split(","))
