"""The voice docs (docs/voice.md and a page per platform) are true, not decorative.

- Every ```json block parses. The tool definitions name exactly botwire's tools, their required
  parameters are the ones ``core.tool`` needs (checked by running it), and each definition,
  sent the way its platform sends it, is answered by a real server.
- Every ```bash block with ``curl`` runs as written (bash, openssl, curl) against a
  ``botwire serve`` process configured by the page's own ``export`` block, is accepted (2xx),
  and answers exactly what the block after it shows.
- The settings, endpoints and tools tables, the memory text example, the ``botwire voice
  configure`` options and the Python examples match the code.
"""

from __future__ import annotations

import calendar
import json
import os
import re
import shutil
import subprocess
import time
import xml.etree.ElementTree as ET
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner
from servers import ServerProcess, free_port

from botwire import Memory
from botwire.cli import main
from botwire.server import Settings, create_app
from botwire.server import voice as voice_routes
from botwire.voice import TOOLS, CallEnd, ToolError, core
from botwire.voice.facts import Origin
from botwire.voice.settings import SECRETS, VoiceSettings, env_name
from botwire.voice.signatures import sign_retell
from botwire.voice_cli import configure

DOCS = Path(__file__).resolve().parents[2] / "docs"
PAGES = ("voice", "vapi", "retell", "elevenlabs", "twilio", "telnyx")
PLATFORMS = ("vapi", "retell", "elevenlabs")  # the pages with tool definitions
TOOL_TYPE = {"vapi": "function", "retell": "custom", "elevenlabs": "webhook"}
HOST = "https://<your-server>"
FENCE = re.compile(r"^```(\w*)\n(.*?)^```[ \t]*$", re.S | re.M)
PLACEHOLDER = re.compile(r"<(BOTWIRE_[A-Z0-9_]+)>")
CALLER = "+14155550199"  # the probes' caller: never the one of the docs' examples
SHELL = all(shutil.which(tool) for tool in ("bash", "openssl", "curl"))
needs_shell = pytest.mark.skipif(not SHELL, reason="needs bash, openssl and curl")


@dataclass(frozen=True)
class Block:
    page: str
    index: int
    lang: str
    text: str

    @property
    def id(self) -> str:
        return f"{self.page}-{self.index}"


def blocks(page: str) -> list[Block]:
    text = (DOCS / f"{page}.md").read_text(encoding="utf-8")
    return [Block(page, i, m[1], m[2]) for i, m in enumerate(FENCE.finditer(text))]


def page_text(page: str) -> str:
    return (DOCS / f"{page}.md").read_text(encoding="utf-8")


def is_config(block: Block) -> bool:
    """A server's settings: ``export BOTWIRE_...`` lines, then ``botwire serve``."""
    return (
        block.lang == "bash"
        and "export BOTWIRE_" in block.text
        and re.search(r"^botwire serve\b", block.text, re.M) is not None
    )


def is_request(block: Block) -> bool:
    return block.lang == "bash" and "curl " in block.text


def requests_with_config() -> list[tuple[Block, Block, Block | None]]:
    """(request, the config block before it, the block after it) for every curl example."""
    out = []
    for page in PAGES:
        found = blocks(page)
        for i, block in enumerate(found):
            if is_request(block):
                configs = [b for b in found[:i] if is_config(b)]
                assert configs, f"{block.id}: a curl example with no server settings before it"
                out.append((block, configs[-1], found[i + 1] if i + 1 < len(found) else None))
    return out


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("BOTWIRE_")}


# -- servers configured as the pages say ---------------------------------------------------


@dataclass
class Server:
    base: str
    env: dict[str, str]  # the BOTWIRE_* variables the page's block exports
    proc: ServerProcess

    def resolve(self, value: Any) -> Any:
        """``value`` with ``https://<your-server>`` and ``<BOTWIRE_...>`` filled in."""
        if isinstance(value, dict):
            return {k: self.resolve(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.resolve(v) for v in value]
        if not isinstance(value, str):
            return value

        def setting(match: re.Match[str]) -> str:
            assert match[1] in self.env, f"{match[0]} is not set by the page's server block"
            return self.env[match[1]]

        return PLACEHOLDER.sub(setting, value.replace(HOST, self.base))


def exported(block: Block, base: str) -> dict[str, str]:
    """Run the block's shell (all but ``botwire ...`` lines) and keep what it exports."""
    lines = [ln for ln in block.text.splitlines() if not ln.lstrip().startswith("botwire ")]
    script = "set -e\n" + "\n".join(lines).replace(HOST, base) + "\nenv -0\n"
    out = subprocess.run(
        ["bash", "-c", script], env=clean_env(), capture_output=True, check=True, timeout=30
    ).stdout.decode()
    pairs = (item.split("=", 1) for item in out.split("\0") if "=" in item)
    return {k: v for k, v in pairs if k.startswith("BOTWIRE_")}


def start_server(block: Block, root: Path) -> Server:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = exported(block, base)
    assert env, f"{block.id} exports no BOTWIRE_* setting"
    home = root / block.id
    settings = {k[len("BOTWIRE_") :].lower(): v for k, v in env.items()}
    proc = ServerProcess(f"sqlite:///{home}.db", home, **settings).start(port)
    return Server(base, env, proc)


@pytest.fixture(scope="module")
def servers(tmp_path_factory) -> dict[str, Server]:
    """One ``botwire serve`` per server block of the docs, keyed by the block's id."""
    if not SHELL:
        pytest.skip("needs bash, openssl and curl")
    root = tmp_path_factory.mktemp("voice-docs")
    configs = [b for page in PAGES for b in blocks(page) if is_config(b)]
    with ThreadPoolExecutor(len(configs)) as pool:
        futures = {b.id: pool.submit(start_server, b, root) for b in configs}
    started = {k: f.result() for k, f in futures.items() if f.exception() is None}
    try:
        for future in futures.values():
            future.result()  # a server that did not start fails the tests that need it
        yield started
    finally:
        with ThreadPoolExecutor(len(configs)) as pool:
            list(pool.map(lambda s: s.proc.stop(), started.values()))


def page_server(servers: dict[str, Server], page: str) -> Server:
    """The server of the page's first server block."""
    first = next(b for b in blocks(page) if is_config(b))
    return servers[first.id]


# -- every JSON block parses ---------------------------------------------------------------


@pytest.mark.parametrize("page", PAGES)
def test_every_json_block_parses(page):
    found = [b for b in blocks(page) if b.lang == "json"]
    assert found or page == "twilio", f"{page}.md has no JSON"
    for block in found:
        try:
            json.loads(block.text)
        except ValueError as exc:
            pytest.fail(f"{block.id} is not JSON: {exc}\n{block.text}")


# -- tool definitions ----------------------------------------------------------------------


@dataclass(frozen=True)
class Tool:
    page: str
    definition: dict[str, Any]
    name: str
    url: str
    properties: dict[str, Any]  # what the LLM fills in
    required: frozenset[str]
    bound: dict[str, str]  # parameter -> the platform variable it is bound to

    @property
    def variant(self) -> str:
        return "args-only" if self.definition.get("args_at_root") else "default"


def parse_tool(page: str, d: dict[str, Any]) -> Tool:
    if page == "vapi":
        name, schema, url, binding = (
            d["function"]["name"],
            d["function"]["parameters"],
            d["server"]["url"],
            None,
        )
    elif page == "retell":
        name, schema, url, binding = d["name"], d["parameters"], d["url"], "const"
    else:
        name, schema, url, binding = (
            d["name"],
            d["api_schema"]["request_body_schema"],
            d["api_schema"]["url"],
            "dynamic_variable",
        )
    assert schema["type"] == "object", f"{page} {name}: parameters must be an object schema"
    props = schema["properties"]
    bound = {k: v[binding] for k, v in props.items() if binding and binding in v}
    required = set(schema.get("required", ()))
    assert required <= set(props), f"{page} {name}: required names an unknown parameter"
    assert all("type" in p for p in props.values()), f"{page} {name}: a parameter has no type"
    return Tool(
        page,
        d,
        name,
        url,
        {k: v for k, v in props.items() if k not in bound},
        frozenset(required - set(bound)),
        bound,
    )


def tools(page: str) -> list[Tool]:
    out = []
    for block in blocks(page):
        if block.lang == "json":
            data = json.loads(block.text)
            if isinstance(data, dict) and data.get("type") == TOOL_TYPE[page]:
                out.append(parse_tool(page, data))
    return out


ALL_TOOLS = [t for page in PLATFORMS for t in tools(page)]


@pytest.mark.parametrize("page", PLATFORMS)
def test_tool_definitions_name_exactly_botwires_tools(page):
    variants: dict[str, list[str]] = {}
    for tool in tools(page):
        variants.setdefault(tool.variant, []).append(tool.name)
    assert variants, f"{page}.md defines no tools"
    for variant, names in variants.items():
        assert sorted(names) == sorted(TOOLS), f"{page} ({variant}): {names}"


@pytest.mark.parametrize("tool", ALL_TOOLS, ids=lambda t: f"{t.page}-{t.variant}-{t.name}")
def test_tool_definition_is_wired_like_its_platform_wants(tool):
    d = tool.definition
    if tool.page == "vapi":
        assert tool.url == f"{HOST}/voice/vapi"
        assert {h.lower() for h in d["server"]["headers"]} == {"x-vapi-secret"}
    elif tool.page == "retell":
        assert d["method"] == "POST"
        if tool.variant == "args-only":
            assert tool.url == f"{HOST}/voice/retell/tools/{tool.name}"
            assert tool.bound == {"caller_id": "{{user_number}}", "call_id": "{{call_id}}"}
        else:
            assert tool.url == f"{HOST}/voice/retell/tools" and not tool.bound
    else:
        api = d["api_schema"]
        assert api["method"] == "POST"
        assert tool.url == f"{HOST}/voice/elevenlabs/tools/{tool.name}"
        assert set(api["request_headers"]) == {VoiceSettings().elevenlabs_secret_header}
        assert tool.bound == {
            "caller_id": "system__caller_id",
            "conversation_id": "system__conversation_id",
        }
        assert "caller_id" in d["api_schema"]["request_body_schema"]["required"]


def sample(name: str, schema: dict[str, Any]) -> Any:
    if schema["type"] == "integer":
        return 3
    return "sample_key" if name == "key" else f"sample {name}"


def sample_args(tool: Tool) -> dict[str, Any]:
    return {name: sample(name, schema) for name, schema in tool.properties.items()}


@pytest.mark.parametrize("tool", ALL_TOOLS, ids=lambda t: f"{t.page}-{t.variant}-{t.name}")
def test_tool_parameters_are_what_core_takes(tool, tmp_path):
    """With every documented parameter the tool runs; without a required one ``core.tool``
    says it is missing; without an optional one it still runs."""
    with Memory(f"phone:{CALLER}", url=f"sqlite:///{tmp_path}/probe.db") as memory:

        def run(args: dict[str, Any]) -> str:
            return core.run(
                core.tool(tool.name, args, Origin("tool", "docs", "call_probe")), memory
            )

        args = sample_args(tool)
        assert isinstance(run(args), str)
        for name in tool.properties:
            without = {k: v for k, v in args.items() if k != name}
            if name in tool.required:
                with pytest.raises(ToolError, match=f"missing argument '{name}'"):
                    run(without)
            else:
                assert isinstance(run(without), str), f"{name} is optional in the docs"


# -- the definitions, sent as each platform sends them, reach a real server ------------------


def send_vapi(server: Server, tool: Tool, args: dict[str, Any]) -> str:
    body = {
        "message": {
            "type": "tool-calls",
            "timestamp": int(time.time() * 1000),
            "call": {"id": "call_probe", "customer": {"number": CALLER}},
            "toolCallList": [
                {
                    "id": "toolu_probe",
                    "type": "function",
                    "function": {"name": tool.name, "arguments": args},
                }
            ],
        }
    }
    server_obj = server.resolve(tool.definition["server"])
    r = httpx.post(server_obj["url"], json=body, headers=server_obj["headers"], timeout=10)
    assert r.status_code == 200, r.text
    (result,) = r.json()["results"]
    assert result["toolCallId"] == "toolu_probe" and "result" in result, result
    return result["result"]


def send_retell(server: Server, tool: Tool, args: dict[str, Any]) -> str:
    values = {"{{user_number}}": CALLER, "{{call_id}}": "call_probe"}
    if tool.variant == "args-only":
        body = {**args, **{k: values[v] for k, v in tool.bound.items()}}
    else:
        body = {
            "name": tool.name,
            "args": args,
            "call": {"call_id": "call_probe", "direction": "inbound", "from_number": CALLER},
        }
    raw = json.dumps(body).encode()
    signature = sign_retell(raw, server.env["BOTWIRE_RETELL_API_KEY"], int(time.time() * 1000))
    r = httpx.post(
        server.resolve(tool.url),
        content=raw,
        timeout=10,
        headers={"X-Retell-Signature": signature, "Content-Type": "application/json"},
    )
    assert r.status_code == 200 and "result" in r.json(), r.text
    return r.json()["result"]


def send_elevenlabs(server: Server, tool: Tool, args: dict[str, Any]) -> str:
    values = {"system__caller_id": CALLER, "system__conversation_id": "conv_probe"}
    body = {**args, **{k: values[v] for k, v in tool.bound.items()}}
    headers = server.resolve(tool.definition["api_schema"]["request_headers"])
    r = httpx.post(server.resolve(tool.url), json=body, headers=headers, timeout=10)
    assert r.status_code == 200 and "result" in r.json(), r.text
    return r.json()["result"]


SENDERS = {"vapi": send_vapi, "retell": send_retell, "elevenlabs": send_elevenlabs}


@needs_shell
@pytest.mark.processes
@pytest.mark.parametrize("page", PLATFORMS)
def test_tool_definitions_reach_the_server(servers, page):
    server, send = page_server(servers, page), SENDERS[page]
    variants: dict[str, dict[str, Tool]] = {}
    for tool in tools(page):
        variants.setdefault(tool.variant, {})[tool.name] = tool
    for variant, tool in variants.items():
        key = f"probe_{variant.replace('-', '_')}"
        value = f"{variant} kettle"
        assert send(server, tool["remember"], {"key": key, "value": value}) == f"Remembered {key}."
        assert send(server, tool["recall_memory"], {"query": variant}) == f"{key}: {value}"
        assert send(server, tool["remember_fact"], {"text": "Prefers email"}) == "Noted."
        assert send(server, tool["forget"], {"key": key}) == f"Forgot {key}."


@needs_shell
@pytest.mark.processes
def test_vapi_server_settings_reach_the_server(servers):
    """The page's phone-number / assistant ``server`` JSON authenticates an assistant-request."""
    server = page_server(servers, "vapi")
    found = [json.loads(b.text) for b in blocks("vapi") if b.lang == "json"]
    settings = [d for d in found if "server" in d and "type" not in d]
    assert settings
    for d in settings:
        target = server.resolve(d["server"])
        body = {
            "message": {
                "type": "assistant-request",
                "call": {"id": "call_probe", "customer": {"number": CALLER}},
            }
        }
        r = httpx.post(target["url"], json=body, headers=target["headers"], timeout=10)
        assert r.status_code == 200, r.text
        assert r.json()["assistantId"] == server.env["BOTWIRE_VAPI_ASSISTANT_ID"]


# -- every signed curl example is accepted and answers what the docs show -----------------


REQUESTS = requests_with_config()


def same_xml(a: str, b: str) -> bool:
    def canon(text: str) -> str:
        return ET.canonicalize(xml_data=text.strip(), strip_text=True)

    return canon(a) == canon(b)


@needs_shell
@pytest.mark.processes
@pytest.mark.parametrize("request_block, config, answer", REQUESTS, ids=[r[0].id for r in REQUESTS])
def test_curl_example_is_accepted(servers, request_block, config, answer):
    server = servers[config.id]
    script = "set -eo pipefail\n" + request_block.text.replace(HOST, server.base)
    done = subprocess.run(
        ["bash", "-c", script],
        env={**clean_env(), **server.env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, (
        f"{request_block.id} was refused (curl exit {done.returncode}):\n{done.stdout}\n"
        f"{done.stderr}\n{server.proc.log()}"
    )
    if answer is not None and answer.lang == "json":
        shown = server.resolve(json.loads(answer.text))
        assert json.loads(done.stdout) == shown, f"{request_block.id} answered {done.stdout}"
    elif answer is not None and answer.lang == "xml":
        assert same_xml(done.stdout, answer.text), f"{request_block.id} answered {done.stdout}"
    else:
        assert done.stdout == "", f"{request_block.id} answered {done.stdout!r}, not 204"


def test_every_platform_page_has_a_signed_example():
    pages = {request.page for request, _, _ in REQUESTS}
    assert pages >= {"vapi", "retell", "elevenlabs", "twilio"}
    signed = [r for r, _, _ in REQUESTS if "openssl dgst" in r.text]
    assert {r.page for r in signed} == {"vapi", "retell", "elevenlabs", "twilio"}


# -- prompts use only variables the answer carries ----------------------------------------


@pytest.mark.parametrize("page", PLATFORMS)
def test_prompt_uses_variables_the_answer_always_has(page):
    prompts = [b.text for b in blocks(page) if b.lang == "text" and "{{memory}}" in b.text]
    assert prompts, f"{page}.md has no system prompt with {{{{memory}}}}"
    always = {"memory", *VoiceSettings().core().variables}
    for prompt in prompts:
        used = set(re.findall(r"\{\{\s*(\w+)\s*\}\}", prompt))
        assert "customer_name" in used
        assert used <= always, f"{page}: {used - always} is not in every answer"


# -- settings, endpoints, CLI ----------------------------------------------------------------


def table_rows(page: str) -> list[list[str]]:
    rows = []
    for line in page_text(page).splitlines():
        if line.startswith("|") and not re.match(r"\|\s*-", line):
            rows.append([c.strip() for c in line.strip().strip("|").split(" | ")])
    return rows


def code(cell: str) -> str | None:
    found = re.search(r"`([^`]*)`", cell)
    return found[1] if found else None


def settings_rows() -> list[list[str]]:
    return [
        r for r in table_rows("voice") if len(r) == 5 and (code(r[1]) or "").startswith("BOTWIRE_")
    ]


def test_settings_table_lists_every_setting_with_its_env_name_and_default():
    rows = settings_rows()
    documented = {code(r[0]): (code(r[1]), r[3]) for r in rows}
    expected = {n: (env_name(n), v) for n, v in VoiceSettings().values().items()}
    assert set(documented) == set(expected)
    for name, (env, default) in expected.items():
        shown_env, shown_default = documented[name]
        assert shown_env == env, name
        assert (code(shown_default) or "") == str(default), f"{name}: {shown_default}"


SAMPLE_VALUES = {
    "vapi_auth": "hmac",
    "vapi_signature_encoding": "base64",
    "vapi_signature_algorithm": "sha1",
    "budget": "1500",
    "public_url": "https://memory.example.com",
    "namespace": "tenant:{e164}",
    "default_country": "44",
    "summarizer": "json:dumps",
    "variables": "customer_name,memory",
    "twilio_stream_url": "wss://agent.example.com/media",
    "facts": "*=fill_if_empty, allergies=append, name->customer_name=overwrite",
    "telnyx_public_key": "iGtB96aTJO4SmJPzRPqW20Zc10AWCiN8OQLE5Tg330U=",
    "vapi_include_timestamp": "false",
}
SECRET_OPTIONS = {
    "vapi": ["--secret"],
    "retell": ["--secret"],
    "twilio": ["--auth-token"],
    "elevenlabs": ["--webhook-secret", "--tool-secret"],
    "callers": [],
    "facts": [],
    "telnyx": [],  # its public key is no secret: never asked for
}


@pytest.mark.parametrize("row", settings_rows(), ids=lambda r: code(r[0]))
def test_configure_option_writes_its_setting(row, tmp_path):
    setting, (platform, option) = code(row[0]), code(row[2]).split()
    value = SAMPLE_VALUES.get(setting, "sample-value")
    args = ["voice", "configure", platform, option, value]
    for secret in SECRET_OPTIONS[platform]:
        if secret != option:
            args += [secret, "other-secret"]
    path = tmp_path / "voice.json"
    done = CliRunner().invoke(
        main, args, env={"BOTWIRE_VOICE_CONFIG": str(path), "BOTWIRE_HOME": str(tmp_path)}
    )
    assert done.exit_code == 0, done.output
    stored = json.loads(path.read_text())
    assert str(stored[setting]) == value
    if setting in SECRETS:
        assert value not in done.output


def test_documented_configure_commands_exist():
    seen = 0
    for page in PAGES:
        commands = re.findall(r"botwire voice configure (\w+)([^\n`#]*)", page_text(page))
        for platform, rest in commands:
            command = configure.commands.get(platform)
            assert command is not None, f"{page}.md: no 'botwire voice configure {platform}'"
            options = {o for p in command.params for o in p.opts}
            for option in re.findall(r"(?<!\S)--[a-z][a-z-]*", rest):
                assert option in options, f"{page}.md: {platform} has no {option}"
            seen += 1
    assert seen >= 5


def test_endpoints_table_is_every_voice_route():
    cells = [code(r[0]) or "" for r in table_rows("voice")]
    documented = {cell for cell in cells if cell.startswith("/voice/")}
    routes = {route.path for route in voice_routes.router.routes}
    assert documented == routes


def test_platform_pages_name_only_real_endpoints():
    routes = {route.path for route in voice_routes.router.routes}
    for page in PLATFORMS + ("twilio",):
        for path in re.findall(r"<your-server>(/voice/[\w/<>{}-]*)", page_text(page)):
            path = re.sub(r"/tools/[^/]+$", "/tools/{name}", path)
            assert path in routes, f"{page}.md: {path}"


# -- the tools table and the memory text example ----------------------------------------------


def tool_rows() -> list[tuple[str, dict[str, Any], str]]:
    rows = []
    for r in table_rows("voice"):
        if len(r) == 4 and code(r[0]) in TOOLS:
            rows.append((code(r[0]), json.loads(code(r[2])), code(r[3])))
    return rows


def test_tools_table_answers_are_what_the_tools_answer(tmp_path):
    rows = tool_rows()
    assert {name for name, _, _ in rows} == set(TOOLS)
    with Memory("phone:+14155550123", url=f"sqlite:///{tmp_path}/tools.db") as memory:
        for name, args, shown in rows:
            try:
                answer = core.run(
                    core.tool(name, args, Origin("tool", "docs", "call_docs")), memory
                )
            except ToolError as exc:
                answer = str(exc)
            assert answer == shown, f"{name}({args})"


async def test_quota_answer_is_what_the_tools_table_says(tmp_path):
    """Over the caller's write quota a tool is answered in words, the sentence voice.md shows."""
    shown = re.search(r"write quota, a tool's answer is the error\s+`([^`]+)`", page_text("voice"))
    assert shown, "voice.md does not say what a tool answers over quota"
    app = create_app(
        Settings(database=f"sqlite:///{tmp_path}/quota.db", writes_per_day=1),
        voice_settings=VoiceSettings(elevenlabs_tool_secret="s"),
    )
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            answers = []
            for value in ("Ana", "Anna"):
                r = await client.post(
                    "/voice/elevenlabs/tools/remember",
                    headers={"x-botwire-secret": "s"},
                    json={"key": "customer_name", "value": value, "caller_id": CALLER},
                )
                answers.append(r.json())
    assert answers == [{"result": "Remembered customer_name."}, {"error": shown[1]}]


def memory_example() -> tuple[str, dict[str, str]]:
    found = blocks("voice")
    i = next(
        i for i, b in enumerate(found) if b.lang == "text" and b.text.startswith("Known facts:")
    )
    following = next(b for b in found[i + 1 :] if b.lang == "json")
    return found[i].text.rstrip("\n"), json.loads(following.text)


def utc(text: str) -> float:
    return float(calendar.timegm(time.strptime(text, "%Y-%m-%d %H:%M")))


def test_memory_example_is_what_the_server_builds(tmp_path):
    """The caller of the example, stored through the same plans as the webhooks."""
    shown_text, shown_variables = memory_example()
    caller = "+14155550123"
    with Memory(f"phone:{caller}", url=f"sqlite:///{tmp_path}/example.db") as m:
        for key, value in (
            ("customer_name", "Ana"),
            ("last_order", "ORDER-789"),
            ("allergies", ["peanuts"]),
            ("open:refund", "refund for ORDER-789 pending"),
        ):
            core.run(core.remember(key, value), m)
        core.run(
            core.end_call(
                CallEnd(
                    "vapi",
                    "c1",
                    caller,
                    ended_at=utc("2025-08-11 16:40"),
                    duration_s=45.0,
                    outcome="silence-timed-out",
                )
            ),
            m,
        )
        core.run(
            core.end_call(
                CallEnd(
                    "vapi",
                    "c2",
                    caller,
                    ended_at=utc("2025-08-18 10:05"),
                    duration_s=252.0,
                    summary="Ana asked whether her kettle shipped",
                    outcome="customer-ended-call",
                )
            ),
            m,
        )
        core.run(core.remember_fact("Calls from work between 9 and 5", "c1"), m)
        core.run(core.remember_fact("Prefers email over SMS", "c2"), m)
        briefing = core.run(core.briefing(2000, VoiceSettings().core().variables), m)
    assert briefing.memory == shown_text
    assert briefing.variables == shown_variables


# -- Python examples ---------------------------------------------------------------------------


def test_voice_python_examples_run(tmp_path, monkeypatch, capsys):
    for name in [k for k in os.environ if k.startswith("BOTWIRE_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("BOTWIRE_HOME", str(tmp_path))
    scope: dict[str, Any] = {}
    for block in [b for b in blocks("voice") if b.lang == "python"]:
        exec(compile(block.text, f"docs/voice.md block {block.index}", "exec"), scope)
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "premium api app"  # provenance and history
    assert [line.split()[1:] for line in out[1:3]] == [["api", "premium"], ["api", "basic"]]
    assert Memory(scope["call"].namespace).get("plan") == "basic"  # the undo
    out = out[3:]
    assert out[:2] == ["Remembered customer_name.", "Ana"]
    assert "Ana asked whether her kettle shipped" in "\n".join(out[2:])
    assert scope["summarise"](CallEnd("app", "c1", "+14155550123")) is None


@pytest.mark.parametrize("page", PAGES)
def test_python_snippets_compile(page):
    for block in [b for b in blocks(page) if b.lang == "python"]:
        compile(block.text, f"docs/{page}.md block {block.index}", "exec")
