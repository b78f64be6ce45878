"""The install lines the docs give work, and none of them fetches the index's other `botwire`.

The name `botwire` on the package index is the older hosted-service client (0.2.1): an install
line that names it without a local path or URL would install that package and no `botwire`
command. The wheel built here is installed into a fresh virtualenv the way the README says.
"""

from __future__ import annotations

import re
import subprocess
import sys
import venv
from pathlib import Path

import pytest

from botwire import __version__
from botwire.errors import MissingDependency, install_hint

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
# `pip install botwire`, `pip install 'botwire[server]'`, `pip install -U botwire`, ...
FROM_INDEX = re.compile(
    r"""pip install\s+(?:-\S+\s+)*["']?botwire(?:\[[^\]]*\])?["']?(?!\s*@)(?:\s|$|`)"""
)


def install_lines() -> list[tuple[str, str]]:
    return [
        (doc.name, line.strip())
        for doc in DOCS
        for line in doc.read_text(encoding="utf-8").splitlines()
        if "pip install" in line
    ]


def test_no_doc_installs_botwire_from_the_package_index():
    lines = install_lines()
    assert len(lines) >= 10  # the docs do give install lines
    wrong = [
        (doc, line)
        for doc, line in lines
        if FROM_INDEX.search(line) and "gives you that client" not in line
    ]
    assert wrong == []


def test_the_pattern_catches_the_old_forms():
    for line in ("pip install botwire", "pip install 'botwire[server]'", 'pip install "botwire"'):
        assert FROM_INDEX.search(line), line
    for line in ('pip install "./botwire[server]"', "pip install 'botwire[x] @ git+https://h/r'"):
        assert not FROM_INDEX.search(line), line


def test_missing_extra_message_points_at_the_source_install():
    message = str(MissingDependency("LangChain support", "langchain"))
    assert 'pip install "./botwire[langchain]"' in message and "0.2.1" in message
    assert install_hint("server") in str(MissingDependency("the server", "server"))


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> tuple[Path, str]:
    out = tmp_path_factory.mktemp("dist")
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", str(ROOT), "-w", str(out), "-v"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    (built,) = out.glob("botwire-*.whl")
    return built, proc.stdout + proc.stderr


def test_the_wheel_builds_without_packaging_warnings(wheel):
    built, log = wheel
    assert built.name == f"botwire-{__version__}-py3-none-any.whl"
    assert "BuildBackendWarning" not in log and "SetuptoolsDeprecationWarning" not in log


def test_the_readme_wheel_install_gives_the_botwire_command(wheel, tmp_path):
    built, _ = wheel
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    py, cli = env_dir / "bin" / "python", env_dir / "bin" / "botwire"
    proc = subprocess.run(
        [str(py), "-m", "pip", "install", "--quiet", str(built)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    version = subprocess.run([str(cli), "--version"], capture_output=True, text=True, timeout=60)
    assert version.returncode == 0 and __version__ in version.stdout
    # the core imports with no extra installed, and a missing extra says how to add it
    probe = "import botwire; from botwire.errors import install_hint; print(install_hint('server'))"
    out = subprocess.run([str(py), "-c", probe], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and "./botwire[server]" in out.stdout, out.stderr


def test_every_install_target_in_the_docs_is_a_path_or_a_requirement_with_a_url():
    from packaging.requirements import InvalidRequirement, Requirement

    targets = re.findall(r"""pip install\s+(?:-\S+\s+)*["']([^"']+)["']""", "\n".join(
        line for _, line in install_lines()
    ))
    assert any("git+" in t for t in targets)
    for target in targets:
        if target.startswith(("./", "dist/")):  # a checkout or a wheel, with extras
            assert re.fullmatch(r"[\w./-]+(\[[\w,-]+\])?", target), target
            continue
        try:
            requirement = Requirement(target)
        except InvalidRequirement as exc:
            raise AssertionError(f"pip cannot read {target!r}: {exc}") from None
        assert requirement.name != "botwire" or requirement.url, target
