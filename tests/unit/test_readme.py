"""Every ```python block of README.md runs, in order, against a fresh BOTWIRE_HOME."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parents[2] / "README.md"


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.S)


def test_readme_has_examples():
    assert len(python_blocks()) >= 6


def test_readme_examples_run(tmp_path, monkeypatch, capsys):
    for name in ("BOTWIRE_URL", "BOTWIRE_DATABASE_URL", "BOTWIRE_MAX_VALUE_BYTES"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("BOTWIRE_HOME", str(tmp_path))
    scope: dict = {}
    for block in python_blocks():
        exec(compile(block, str(README), "exec"), scope)
    scope["memory"].close()
    out = capsys.readouterr().out
    assert "is not a JSON value" in out
    assert "someone else wrote first; now at version" in out
    assert (tmp_path / "botwire.db").exists()
