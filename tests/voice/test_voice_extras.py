"""``import botwire.voice`` needs no framework; each integration names its extra when missing."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest


@pytest.mark.parametrize("framework, extra", [("pipecat", "pipecat"), ("livekit", "livekit")])
def test_without_the_framework_the_extra_is_named(framework, extra):
    code = f"""
        import sys
        sys.modules["{framework}"] = None
        import botwire.voice  # needs no framework
        try:
            import botwire.voice.{extra}
        except botwire.MissingDependency as exc:
            assert exc.extra == "{extra}", exc.extra
            print(exc)
    """
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    assert f"./botwire[{extra}]" in proc.stdout
    assert f"botwire.voice.{extra}" in proc.stdout
