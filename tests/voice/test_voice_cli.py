"""``botwire voice configure | show``: secrets into a 0600 file, never shown; bad values refused."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from botwire.voice.settings import VoiceSettings

BIN = Path(sys.executable).parent / "botwire"


@pytest.fixture
def run(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("BOTWIRE_")}
    env["BOTWIRE_HOME"] = str(tmp_path)

    def run(*args: str, stdin: str = "", ok: bool = True, **extra: str):
        done = subprocess.run(
            [str(BIN), "voice", *args],
            input=stdin,
            capture_output=True,
            text=True,
            env={**env, **extra},
            timeout=60,
        )
        assert (done.returncode == 0) is ok, done.stderr
        return done

    return run


def test_configure_writes_a_private_file_and_show_hides_secrets(run, tmp_path):
    run("configure", "vapi", "--assistant-id", "asst_7", stdin="vapi-top-secret\n")
    run("configure", "retell", "--secret", "key_retell_123")
    run("configure", "twilio", "--auth-token", "tw_tok", "--public-url", "https://mem.example")
    path = tmp_path / "voice.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    saved = json.loads(path.read_text())
    assert saved["vapi_secret"] == "vapi-top-secret" and saved["vapi_assistant_id"] == "asst_7"

    out = run("show").stdout
    for secret in ("vapi-top-secret", "key_retell_123", "tw_tok"):
        assert secret not in out
    assert '"vapi_secret": "set"' in out and '"elevenlabs_webhook_secret": "not set"' in out
    assert "vapi: enabled: https://mem.example/voice/vapi" in out
    assert "elevenlabs: not configured" in out

    loaded = VoiceSettings.load(str(path))
    assert loaded.enabled() == {
        "vapi": True,
        "retell": True,
        "elevenlabs": False,
        "twilio": True,
        "telnyx": False,
    }
    assert "vapi-top-secret" not in repr(loaded)


def test_environment_overrides_the_file(run, tmp_path, monkeypatch):
    run("configure", "retell", "--secret", "from-file")
    monkeypatch.setenv("BOTWIRE_RETELL_API_KEY", "from-env")
    monkeypatch.setenv("BOTWIRE_VOICE_BUDGET", "900")
    settings = VoiceSettings.load(str(tmp_path / "voice.json"))
    assert settings.retell_api_key == "from-env" and settings.budget == 900


@pytest.mark.parametrize(
    "args",
    [
        ("callers", "--namespace", "no-number-here"),
        ("callers", "--namespace", "{nope}"),
        ("callers", "--default-country", "+44"),
        ("callers", "--budget", "-1"),
        ("twilio", "--auth-token", "t", "--public-url", "mem.example"),
        ("callers", "--summarizer", "no_such_module_xyz:f"),
    ],
)
def test_bad_settings_are_refused_and_nothing_is_written(run, tmp_path, args):
    done = run("configure", *args, ok=False)
    assert "Error" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "voice.json").exists()


def test_a_broken_file_is_a_clear_error(tmp_path):
    path = tmp_path / "voice.json"
    path.write_text('{"vapi_secret": "x", "vapi_secrt": "typo"}')
    with pytest.raises(Exception, match="unknown voice settings vapi_secrt"):
        VoiceSettings.load(str(path))
    path.write_text("{not json")
    with pytest.raises(Exception, match="cannot read voice settings"):
        VoiceSettings.load(str(path))
