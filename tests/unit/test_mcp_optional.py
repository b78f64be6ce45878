"""Without the mcp extra, botwire and its server work; /mcp and `botwire mcp` say what to
install (after the key check), never a 500."""

from __future__ import annotations

import json
import os
import subprocess
import sys

CODE = """
import sys; sys.modules['mcp'] = None; sys.modules['mcp_types'] = None
import asyncio, json, httpx, botwire
from botwire.server import Settings, create_app
from botwire.voice.settings import VoiceSettings
app = create_app(Settings(database='sqlite:///' + sys.argv[1]),
                 voice_settings=VoiceSettings(vapi_secret='vapi-secret-for-mcp'))
async def go():
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url='http://t') as c:
            out = []
            for headers in ({}, {'Authorization': 'Bearer vapi-secret-for-mcp'}):
                r = await c.post('/mcp', json={}, headers=headers)
                out.append([r.status_code, r.json()['error']['code'], r.json()['error']['message']])
            print(json.dumps(out))
asyncio.run(go())
"""


def run(args: list[str], tmp_path) -> subprocess.CompletedProcess[str]:
    env = {"PATH": os.environ.get("PATH", ""), "BOTWIRE_HOME": str(tmp_path)}
    return subprocess.run(args, capture_output=True, text=True, timeout=120, env=env)


def test_the_server_without_the_extra_says_what_to_install(tmp_path):
    done = run([sys.executable, "-c", CODE, str(tmp_path / "x.db")], tmp_path)
    assert done.returncode == 0, done.stderr
    (anonymous, voice) = json.loads(done.stdout.strip().splitlines()[-1])
    assert anonymous[:2] == [401, "unauthorized"]  # the key is checked first
    assert voice[:2] == [501, "not_installed"]
    assert 'pip install "./botwire[mcp]"' in voice[2]


def test_botwire_mcp_without_the_extra_says_what_to_install(tmp_path):
    code = "import sys; sys.modules['mcp'] = None; sys.modules['mcp_types'] = None\n"
    code += "from botwire.cli import main; main(['mcp'])"
    done = run([sys.executable, "-c", code], tmp_path)
    assert done.returncode != 0
    assert "botwire[mcp]" in done.stderr and "Traceback" not in done.stderr
