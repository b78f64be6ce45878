"""The voice webhooks on a real server process over a real socket, configured from the
environment as in production; the summariser runs after the answer has been sent."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest
from servers import ServerProcess
from voicekit import fixture

from botwire import Memory
from botwire.voice.signatures import sign_elevenlabs

pytestmark = pytest.mark.processes
HERE = Path(__file__).parent


@pytest.fixture
def server(tmp_path, monkeypatch):
    gate = tmp_path / "gate"
    monkeypatch.setenv("VOICE_TEST_GATE", str(gate))
    monkeypatch.setenv("PYTHONPATH", str(HERE))
    proc = ServerProcess(
        f"sqlite:///{tmp_path}/voice.db",
        tmp_path / "home",
        vapi_secret="sock-secret",
        vapi_assistant_id="asst_sock",
        voice_summarizer="gated_summarizer:summarise",
    ).start()
    yield proc, gate
    proc.stop()


def test_answer_comes_before_the_summariser_and_the_summary_lands(server):
    proc, gate = server
    headers = {"x-vapi-secret": "sock-secret"}
    with httpx.Client(base_url=proc.base, timeout=10) as client:
        assert (
            client.post("/voice/vapi", content=fixture("vapi/assistant-request.json")).status_code
            == 401
        )
        r = client.post(
            "/voice/vapi", content=fixture("vapi/end-of-call-report.json"), headers=headers
        )
        assert r.status_code == 200  # answered while the summariser waits for the gate
        assert not gate.exists()
        with Memory("phone:+14155550123", url=proc.url()) as memory:
            assert memory.get("last_call")["summary"] == "Caller asked to reschedule."
            gate.touch()
            deadline = time.monotonic() + 20
            while memory.get("last_call")["summary"] != "hook saw 2 turns":
                assert time.monotonic() < deadline, proc.log()
                time.sleep(0.05)
        r = client.post(
            "/voice/vapi", content=fixture("vapi/assistant-request.json"), headers=headers
        )
        variables = r.json()["assistantOverrides"]["variableValues"]
        assert variables["last_call_summary"] == "hook saw 2 turns"
    assert "sock-secret" not in proc.log()


def test_post_call_audio_beyond_the_body_limit_over_a_socket(tmp_path):
    """ElevenLabs sends post_call_audio chunked; 9 MiB is past the default 8 MiB limit."""
    proc = ServerProcess(
        f"sqlite:///{tmp_path}/voice.db", tmp_path / "home", elevenlabs_webhook_secret="wsec"
    ).start()
    try:
        head = b'{"type":"post_call_audio","data":{"conversation_id":"abc","full_audio":"'
        body = head + b"QUFB" * (9 * 1024 * 1024 // 4) + b'"}}'
        header = sign_elevenlabs(body, "wsec", int(time.time()))
        chunks = (body[i : i + 65536] for i in range(0, len(body), 65536))
        with httpx.Client(base_url=proc.base, timeout=30) as client:
            r = client.post(
                "/voice/elevenlabs/post-call",
                content=chunks,
                headers={"elevenlabs-signature": header},
            )
            assert (r.status_code, r.json()) == (200, {}), proc.log()
            forged = sign_elevenlabs(body[:-1], "wsec", int(time.time()))
            r = client.post(
                "/voice/elevenlabs/post-call",
                content=body,
                headers={"elevenlabs-signature": forged},
            )
            assert r.status_code == 401
    finally:
        proc.stop()
