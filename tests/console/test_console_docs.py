"""docs/console.md agrees with the code: its pictures exist (the browser tests take them), its
settings are the server's, with their defaults."""

from __future__ import annotations

import re
from dataclasses import fields
from pathlib import Path

from consolekit import SCREENSHOTS

from botwire.server.config import Settings

DOC = Path(__file__).resolve().parents[2] / "docs" / "console.md"


def test_every_picture_exists():
    pictures = re.findall(r"!\[[^\]]+\]\(console/([^)]+)\)", DOC.read_text())
    assert pictures
    missing = [p for p in pictures if not (SCREENSHOTS / p).is_file()]
    assert missing == []
    taken = (Path(__file__).parent / "test_browser.py").read_text()
    for picture in pictures:
        assert f'"{picture.removesuffix(".png")}"' in taken, picture


def test_the_settings_table_is_the_servers():
    rows = re.findall(r"^\| `BOTWIRE_(CONSOLE\w*)` \| `([^`]+)` \|", DOC.read_text(), re.M)
    defaults = {f.name: f.default for f in fields(Settings) if f.name.startswith("console")}
    assert {name.lower() for name, _ in rows} == set(defaults)
    for name, shown in rows:
        default = defaults[name.lower()]
        assert shown == ("on" if default is True else str(int(default))), name
