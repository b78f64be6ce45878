"""The deployment kit in deploy/: the systemd unit, the reverse proxies, the container image.

Each file is checked by the tool that reads it (``systemd-analyze``, ``nginx -t``, ``caddy
validate``) and run where it can be: the unit's command with its environment, nginx and Caddy
with the example configurations in front of a real ``botwire serve``. A missing tool skips its
tests with the reason, unless ``BOTWIRE_TEST_REQUIRE_DEPLOY=1`` or ``CI=true``, where it fails.
The image is built and run only where a builder and its base image are available (buildah and
``python:3.11-slim``), which CI does not have: there its Dockerfile is checked line by line.
"""

from __future__ import annotations

import inspect
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from servers import ServerProcess, free_port

from botwire import Memory
from botwire._version import __version__
from botwire.engines import open_engine
from botwire.server import Settings
from botwire.server import run as server_run
from botwire.voice.platforms.registry import PLATFORMS
from botwire.voice.settings import CORE, env_name

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
REQUIRE_ENV = "BOTWIRE_TEST_REQUIRE_DEPLOY"
BUILDAH_STORAGE_ENV = "BOTWIRE_TEST_BUILDAH_STORAGE"  # a buildah storage holding the base image
SITE = "memory.example.com"
DEFAULTS = Settings(database="sqlite:///unused.db")


def required() -> bool:
    flags = (os.environ.get(REQUIRE_ENV, ""), os.environ.get("CI", ""))
    return any(f.strip().lower() not in ("", "0", "false", "no") for f in flags)


def missing(reason: str):
    if required():
        pytest.fail(f"{reason} (and {REQUIRE_ENV}=1 or CI=true: must run)", pytrace=False)
    pytest.skip(reason)


def tool(name: str) -> str:
    path = shutil.which(name) or next(
        (p for p in (f"/usr/sbin/{name}", f"/usr/bin/{name}") if os.access(p, os.X_OK)), None
    )
    if path is None:
        missing(f"{name} is not installed (apt-get install {name})")
    return str(path)


# -- the systemd unit ----------------------------------------------------------------------------


def unit_entries(text: str) -> list[tuple[str, str, str]]:
    """(section, key, value) of a unit file, in order (keys may repeat)."""
    out, section = [], ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        key, _, value = line.partition("=")
        out.append((section, key.strip(), value.strip()))
    return out


UNIT_TEXT = (DEPLOY / "botwire.service").read_text()
UNIT = unit_entries(UNIT_TEXT)


def unit(key: str) -> list[str]:
    return [v for _, k, v in UNIT if k == key]


def one(key: str) -> str:
    values = unit(key)
    assert len(values) == 1, f"{key}= appears {len(values)} times in botwire.service"
    return values[0]


def venv_botwire() -> str:
    return str(Path(sys.executable).parent / "botwire")


def unit_here(tmp_path: Path) -> Path:
    """The unit, its ExecStart on this checkout's virtualenv (which exists)."""
    exec_start = one("ExecStart")
    assert exec_start.startswith("/opt/botwire/venv/bin/botwire ")
    path = tmp_path / "botwire.service"
    path.write_text(UNIT_TEXT.replace("/opt/botwire/venv/bin/botwire", venv_botwire()))
    return path


def test_the_unit_passes_systemd_analyze_verify(tmp_path):
    analyze = tool("systemd-analyze")
    done = subprocess.run(
        [analyze, "verify", str(unit_here(tmp_path))], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0 and not done.stderr.strip(), done.stderr + done.stdout


def test_the_unit_is_sandboxed_by_systemds_own_measure(tmp_path):
    analyze = tool("systemd-analyze")
    done = subprocess.run(
        [analyze, "security", "--offline=yes", "--no-pager", str(unit_here(tmp_path))],
        capture_output=True,
        text=True,
        timeout=60,
    )
    found = re.search(r"Overall exposure level for \S+: ([0-9.]+)", done.stdout + done.stderr)
    assert found, done.stdout[-2000:] + done.stderr
    assert float(found.group(1)) <= 2.0, done.stdout  # "OK"; a plain service scores 9.6


def graceful_seconds() -> float:
    """How long ``botwire serve`` waits for requests in flight after SIGTERM (server/run.py)."""
    found = re.search(r"timeout_graceful_shutdown=(\d+)", inspect.getsource(server_run))
    assert found, "run.serve no longer sets timeout_graceful_shutdown: update botwire.service"
    return float(found.group(1))


def test_the_unit_runs_botwire_as_its_own_user_with_its_state_directory():
    assert one("User") == one("Group") == "botwire"
    assert one("ExecStart") == "/opt/botwire/venv/bin/botwire serve"
    assert one("EnvironmentFile") == "/etc/botwire/botwire.env"
    assert one("StateDirectory") == "botwire" and one("StateDirectoryMode") == "0700"
    assert "BOTWIRE_HOME=/var/lib/botwire" in unit("Environment")
    assert one("ReadWritePaths") == "/var/lib/botwire"
    assert one("Restart") == "on-failure"
    for key, value in {
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "CapabilityBoundingSet": "",
    }.items():
        assert one(key) == value, key


def test_the_unit_stops_after_the_servers_graceful_shutdown_not_before():
    assert one("KillSignal") == "SIGTERM"  # what uvicorn shuts down gracefully on
    assert one("KillMode") == "mixed"  # the main process stops its workers itself
    assert float(one("TimeoutStopSec")) >= graceful_seconds() + 10  # then the engine closes


def systemd_environment(path: Path) -> dict[str, str]:
    """An EnvironmentFile= as systemd reads it: KEY=VALUE lines, # comments."""
    out = {}
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if line and not line.startswith(("#", ";")):
            key, sep, value = line.partition("=")
            assert sep and re.fullmatch(r"[A-Z_][A-Z0-9_]*", key), f"not KEY=VALUE: {raw!r}"
            out[key] = value
    return out


def known_variables() -> set[str]:
    server = set(DEFAULTS.environ())
    names = [*CORE, *(option.setting for p in PLATFORMS for option in p.options)]
    voice = {env_name(name) for name in names}
    return server | voice | {"BOTWIRE_HOME", "BOTWIRE_VOICE_CONFIG"}


def test_every_variable_the_env_example_names_is_a_botwire_setting():
    text = (DEPLOY / "botwire.env.example").read_text()
    named = set(re.findall(r"^#?(BOTWIRE_[A-Z0-9_]+)=", text, re.MULTILINE))
    assert named and not named - known_variables(), named - known_variables()


def test_the_env_example_is_settings_the_server_takes(monkeypatch):
    env = systemd_environment(DEPLOY / "botwire.env.example")
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    settings = Settings.from_env()
    assert settings.host == DEFAULTS.host and settings.port == DEFAULTS.port
    assert settings.forwarded_allow_ips == ("127.0.0.1",)  # the proxy on this machine


def test_a_mistyped_setting_in_the_env_file_is_refused_by_name(monkeypatch):
    monkeypatch.setenv("BOTWIRE_FORWARDED_ALLOW_IPS", "localhost")
    with pytest.raises(Exception, match="forwarded_allow_ips"):
        Settings.from_env()


def test_the_units_command_with_its_environment_serves_and_stops_on_its_kill_signal(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("BOTWIRE_")}
    env.update(v.split("=", 1) for v in unit("Environment"))
    env.update(systemd_environment(DEPLOY / "botwire.env.example"))
    port = free_port()
    env.update(BOTWIRE_HOME=str(tmp_path / "state"), BOTWIRE_PORT=str(port))
    argv = shlex.split(one("ExecStart").replace("/opt/botwire/venv/bin/botwire", venv_botwire()))
    with open(tmp_path / "journal.log", "wb") as journal:
        proc = subprocess.Popen(argv, env=env, stdout=journal, stderr=journal)
    try:
        base = f"http://127.0.0.1:{port}"
        wait_for(lambda: httpx.get(base + "/readyz", timeout=1).status_code == 200, proc)
        key = (tmp_path / "state" / "admin.key").read_text().strip()
        put = httpx.put(base + "/v1/namespaces/n/keys/k", json="kept", headers=bearer(key))
        assert put.status_code == 200
        proc.send_signal(getattr(signal, one("KillSignal")))
        code = proc.wait(float(one("TimeoutStopSec")))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert code in (0, -signal.SIGTERM)  # systemd counts both as a clean stop
    assert "Application shutdown complete" in (tmp_path / "journal.log").read_text()
    engine = open_engine(f"sqlite:///{tmp_path}/state/botwire.db")
    try:
        assert Memory("n", engine=engine).get("k") == "kept"
    finally:
        engine.close()


def wait_for(ready, proc: subprocess.Popen | None = None, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"exited {proc.returncode}")
        try:
            if ready():
                return
        except (httpx.HTTPError, OSError):
            pass
        time.sleep(0.05)
    raise AssertionError("not ready in time")


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


# -- the reverse proxies -------------------------------------------------------------------------


def self_signed(tmp_path: Path) -> tuple[Path, Path]:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [tool("openssl"), "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
         "-subj", f"/CN={SITE}", "-addext", f"subjectAltName=DNS:{SITE}",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    return cert, key


def replaced(text: str, changes: dict[str, str]) -> str:
    for old, new in changes.items():
        assert old in text, f"the example no longer has {old!r}: update this test"
        text = text.replace(old, new)
    return text


@dataclass
class Proxy:
    """A proxy running one of the examples on ``port`` (https) in front of ``upstream``."""

    name: str
    port: int
    proc: subprocess.Popen | None = None

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def nginx_config(tmp_path: Path, upstream: int, https: int, http: int) -> Path:
    """deploy/nginx.conf on these ports and a self-signed certificate, in a main config."""
    cert, key = self_signed(tmp_path)
    site = replaced(
        (DEPLOY / "nginx.conf").read_text(),
        {
            "server 127.0.0.1:8421;": f"server 127.0.0.1:{upstream};",
            "    listen 80;\n    listen [::]:80;\n": f"    listen 127.0.0.1:{http};\n",
            "    listen 443 ssl;\n    listen [::]:443 ssl;\n": f"    listen 127.0.0.1:{https} ssl;\n",  # noqa: E501
            f"/etc/letsencrypt/live/{SITE}/fullchain.pem": str(cert),
            f"/etc/letsencrypt/live/{SITE}/privkey.pem": str(key),
        },
    )  # fmt: skip
    (tmp_path / "site.conf").write_text(site)
    temp = "".join(
        f"    {kind}_temp_path {tmp_path / kind};\n"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    user = "user root;\n" if os.geteuid() == 0 else ""
    main = (
        f"{user}worker_processes 1;\npid {tmp_path / 'nginx.pid'};\n"
        f"error_log {tmp_path / 'error.log'} warn;\nevents {{ worker_connections 128; }}\n"
        f"http {{\n    access_log {tmp_path / 'access.log'};\n{temp}"
        f"    include {tmp_path / 'site.conf'};\n}}\n"
    )
    path = tmp_path / "nginx.conf"
    path.write_text(main)
    return path


def caddy_config(tmp_path: Path, upstream: int, https: int) -> Path:
    """deploy/Caddyfile on these ports and a self-signed certificate (no ACME, no admin API)."""
    cert, key = self_signed(tmp_path)
    text = replaced(
        (DEPLOY / "Caddyfile").read_text(),
        {
            "{\n\temail": "{\n\tadmin off\n\tauto_https disable_redirects\n\temail",
            f"\n{SITE} {{\n": f"\n{SITE}:{https} {{\n\ttls {cert} {key}\n",
            "reverse_proxy 127.0.0.1:8421": f"reverse_proxy 127.0.0.1:{upstream}",
        },
    )
    path = tmp_path / "Caddyfile"
    path.write_text(text)
    return path


def caddy_env(tmp_path: Path) -> dict[str, str]:
    return {**os.environ, "HOME": str(tmp_path), "XDG_DATA_HOME": str(tmp_path / "data"),
            "XDG_CONFIG_HOME": str(tmp_path / "config")}  # fmt: skip


def test_the_nginx_example_passes_nginx_t(tmp_path):
    nginx = tool("nginx")
    conf = nginx_config(tmp_path, 8421, free_port(), free_port())
    done = subprocess.run(
        [nginx, "-t", "-c", str(conf), "-e", str(tmp_path / "error.log")],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0 and "test is successful" in done.stderr, done.stderr


def test_the_caddyfile_passes_caddy_validate_and_is_formatted(tmp_path):
    caddy = tool("caddy")
    for path in (DEPLOY / "Caddyfile", caddy_config(tmp_path, 8421, free_port())):
        done = subprocess.run(
            [caddy, "validate", "--config", str(path), "--adapter", "caddyfile"],
            capture_output=True, text=True, timeout=60, env=caddy_env(tmp_path),
        )  # fmt: skip
        assert done.returncode == 0 and "Valid configuration" in done.stdout + done.stderr, (
            done.stdout + done.stderr
        )
    formatted = subprocess.run(
        [caddy, "fmt", str(DEPLOY / "Caddyfile")], capture_output=True, text=True, timeout=60
    )
    assert formatted.stdout == (DEPLOY / "Caddyfile").read_text()


def test_the_proxies_send_long_streams_and_the_servers_body_limit():
    nginx = (DEPLOY / "nginx.conf").read_text()
    sse = re.search(r"location /mcp/sse \{(.*?)\}", nginx, re.DOTALL)
    assert sse and "proxy_buffering off;" in sse.group(1)
    assert re.search(r"proxy_read_timeout (\d+)h;", sse.group(1))  # an hour, not nginx's 60 s
    limit = re.findall(r"^    client_max_body_size (\d+)m;", nginx, re.MULTILINE)
    assert [int(m) << 20 for m in limit] == [DEFAULTS.max_body_bytes]
    caddy = (DEPLOY / "Caddyfile").read_text()
    assert re.search(r"@other[^\n]*\n\trequest_body @other \{\n\t\tmax_size (\d+)MiB", caddy)
    size = re.search(r"request_body @other \{\n\t\tmax_size (\d+)MiB", caddy)
    assert size and int(size.group(1)) << 20 == DEFAULTS.max_body_bytes
    for text in (nginx, caddy):
        assert f"127.0.0.1:{DEFAULTS.port}" in text
        assert "BOTWIRE_FORWARDED_ALLOW_IPS=127.0.0.1" in text


def start_proxy(name: str, tmp_path: Path, upstream: int) -> Proxy:
    tmp_path.mkdir(parents=True, exist_ok=True)
    https = free_port()
    if name == "nginx":
        conf = nginx_config(tmp_path, upstream, https, free_port())
        argv = [tool("nginx"), "-c", str(conf), "-e", str(tmp_path / "error.log"),
                "-g", "daemon off;"]  # fmt: skip
        env = None
    else:
        conf = caddy_config(tmp_path, upstream, https)
        argv = [tool("caddy"), "run", "--config", str(conf), "--adapter", "caddyfile"]
        env = caddy_env(tmp_path)
    log = open(tmp_path / f"{name}.out", "wb")  # noqa: SIM115 - closed with the process
    proxy = Proxy(name, https, subprocess.Popen(argv, stdout=log, stderr=log, env=env))
    log.close()
    try:
        wait_for(lambda: socket.create_connection(("127.0.0.1", https), 1).close() is None,
                 proxy.proc, 30)  # fmt: skip
    except AssertionError:
        proxy.stop()
        raise AssertionError((tmp_path / f"{name}.out").read_text()[-3000:]) from None
    return proxy


def through(proxy: Proxy, client_ip: str = "127.0.0.1") -> httpx.Client:
    """An https client of the proxy from ``client_ip`` (any 127.x address is this machine)."""
    transport = httpx.HTTPTransport(verify=False, local_address=client_ip)
    return httpx.Client(
        transport=transport,
        base_url=f"https://127.0.0.1:{proxy.port}",
        headers={"Host": SITE},
        timeout=30,
    )


def get(client: httpx.Client, path: str, **kw) -> httpx.Response:
    return client.get(path, extensions={"sni_hostname": SITE}, **kw)


@pytest.fixture(params=["nginx", "caddy"])
def proxied(request, tmp_path):
    """``make(trusted)``: a botwire serve (believing the proxy when trusted) behind the proxy."""
    started: list = []

    def make(trusted: bool = True) -> tuple[ServerProcess, Proxy]:
        home = tmp_path / f"botwire{len(started)}"
        args = ("--forwarded-allow-ips", "127.0.0.1") if trusted else ()
        server = ServerProcess(f"sqlite:///{home}/botwire.db", home, args=args).start()
        started.append(server)
        proxy = start_proxy(request.param, tmp_path / f"{request.param}{len(started)}", server.port)
        started.append(proxy)
        return server, proxy

    yield make
    for thing in reversed(started):
        thing.stop()


def throttled_clients(server: ServerProcess, proxy: Proxy) -> dict[str, int]:
    """After 20 bad keys from 127.0.0.5: what a bad key gets from .5, from .6 and from .6 saying
    it is .5 in X-Forwarded-For, and what a valid key gets from .5."""
    with through(proxy, "127.0.0.5") as five, through(proxy, "127.0.0.6") as six:
        bad = [get(five, "/v1/namespaces", headers=bearer(f"bw_guess{i}")) for i in range(20)]
        assert [r.status_code for r in bad] == [401] * 20
        spoof = {**bearer("bw_guess"), "X-Forwarded-For": "127.0.0.5"}
        return {
            "five": get(five, "/v1/namespaces", headers=bearer("bw_guess")).status_code,
            "six": get(six, "/v1/namespaces", headers=bearer("bw_guess")).status_code,
            "six as five": get(six, "/v1/namespaces", headers=spoof).status_code,
            "valid from five": get(
                five, "/v1/namespaces", headers=bearer(server.admin_key)
            ).status_code,
        }


def test_through_the_proxy_botwire_sees_each_client_and_https(proxied):
    server, proxy = proxied(trusted=True)
    assert throttled_clients(server, proxy) == {
        "five": 429,  # throttled: the address the proxy saw
        "six": 401,  # another client behind the same proxy
        "six as five": 401,  # a client cannot claim another's address through the proxy
        "valid from five": 200,
    }
    with through(proxy) as client:
        cookie = get(client, "/console/sign-in").headers["set-cookie"]
    assert "secure" in cookie.lower()  # X-Forwarded-Proto: https believed


def test_without_the_forwarded_setting_every_client_is_the_proxy(proxied):
    server, proxy = proxied(trusted=False)
    statuses = throttled_clients(server, proxy)
    assert statuses["six"] == 429  # one client's bad keys throttle everyone behind the proxy
    assert statuses["valid from five"] == 200
    with through(proxy) as client:
        cookie = get(client, "/console/sign-in").headers["set-cookie"]
    assert "secure" not in cookie.lower()


def put_body(client: httpx.Client, size: int, key: str) -> httpx.Response:
    body = b'"' + b"x" * (size - 2) + b'"'
    return client.put(
        "/v1/namespaces/n/keys/big",
        content=body,
        headers={**bearer(key), "Content-Type": "application/json"},
        extensions={"sni_hostname": SITE},
    )


def test_the_proxy_passes_what_the_server_limits_and_refuses_past_it(proxied):
    server, proxy = proxied()
    with through(proxy) as client:
        at = put_body(client, DEFAULTS.max_body_bytes, server.admin_key)
        past = put_body(client, DEFAULTS.max_body_bytes + 1, server.admin_key)
    assert at.status_code == 413 and at.json()["error"]["code"] == "value_too_large"  # botwire's
    assert past.status_code == 413  # nginx refuses it itself; Caddy lets botwire say so
    if past.headers.get("content-type", "").startswith("application/json"):
        assert past.json()["error"]["code"] == "body_too_large"


def test_mcp_sse_streams_through_the_proxy(proxied):
    pytest.importorskip("mcp", reason="the mcp extra (./botwire[mcp]) serves /mcp/sse")
    server, proxy = proxied()
    with through(proxy) as client:
        headers = {**bearer(server.admin_key), "Accept": "text/event-stream"}
        with client.stream(
            "GET", "/mcp/sse", headers=headers, extensions={"sni_hostname": SITE}
        ) as response:
            assert response.status_code == 200
            first = next(response.iter_text())
    assert "event: endpoint" in first  # sent at once, not held in a buffer


# -- the container image -------------------------------------------------------------------------


def dockerfile() -> list[tuple[str, str]]:
    """(instruction, arguments) of deploy/Dockerfile, continuation lines joined."""
    text = re.sub(r"\\\n", " ", (DEPLOY / "Dockerfile").read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), " ".join(rest.split())))
    return out


def final_stage() -> list[tuple[str, str]]:
    lines = dockerfile()
    last = max(i for i, (word, _) in enumerate(lines) if word == "FROM")
    return lines[last:]


def instruction(word: str, lines: list[tuple[str, str]] | None = None) -> list[str]:
    return [rest for w, rest in (lines or final_stage()) if w == word]


def test_the_image_builds_from_python_311_slim_and_copies_only_what_exists():
    lines = dockerfile()
    assert all(rest.split()[0] == "python:3.11-slim" for rest in instruction("FROM", lines))
    sources = []
    for rest in instruction("COPY", lines):
        parts = rest.split()
        if not parts[0].startswith("--from="):
            sources += parts[:-1]
    assert sources, "the build copies nothing from the checkout"
    for source in sources:
        assert (ROOT / source).exists(), f"COPY {source}: not in the checkout"
    ignore = (DEPLOY / "Dockerfile.dockerignore").read_text().splitlines()
    kept = {line[1:].rstrip("/") for line in ignore if line.startswith("!")}
    assert {s.rstrip("/") for s in sources} <= kept, "the .dockerignore leaves out a COPY source"


def test_the_image_installs_extras_the_project_has():
    extras = re.search(r"ARG EXTRAS=(\S+)", "\n".join(f"{w} {r}" for w, r in dockerfile()))
    assert extras, "no ARG EXTRAS"
    names = set(extras.group(1).split(","))
    import tomllib  # Python 3.11: the image's

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert {"server", "postgres"} <= names <= set(project["optional-dependencies"])
    install = 'pip install --no-cache-dir ".[${EXTRAS}]"'
    assert any(install in r for r in instruction("RUN", dockerfile()))


def test_the_image_runs_botwire_serve_as_a_user_that_is_not_root_on_a_volume():
    stage = final_stage()
    users = instruction("USER", stage)
    assert users and users[-1] not in ("root", "0") and not users[-1].startswith("0:")
    words = [w for w, _ in stage]
    assert words.index("USER") < words.index("CMD")
    useradd = re.search(r"useradd --uid (\d+)", " ".join(instruction("RUN", stage)))
    assert useradd and int(useradd.group(1)) > 0 and users[-1] == "botwire"
    env = " ".join(instruction("ENV", stage))
    home = re.search(r"BOTWIRE_HOME=(\S+)", env)
    assert home and instruction("VOLUME", stage) == [f'["{home.group(1)}"]']
    assert instruction("EXPOSE", stage) == [str(DEFAULTS.port)]
    assert instruction("STOPSIGNAL", stage) == [one("KillSignal")]
    assert instruction("CMD", stage) == ['["botwire", "serve", "--host", "0.0.0.0"]']


def healthcheck_argv() -> list[str]:
    (check,) = instruction("HEALTHCHECK")
    exec_form = re.search(r"CMD (\[.*\])$", check)
    assert exec_form, "HEALTHCHECK CMD in exec form"
    argv = json.loads(exec_form.group(1))
    assert argv[0] == "python"
    return [sys.executable, *argv[1:]]


def test_the_images_healthcheck_passes_on_a_server_and_fails_without_one(tmp_path):
    server = ServerProcess(f"sqlite:///{tmp_path}/h.db", tmp_path / "home").start()
    try:
        env = {**os.environ, "BOTWIRE_PORT": str(server.port)}
        up = subprocess.run(healthcheck_argv(), env=env, capture_output=True, timeout=30)
    finally:
        server.stop()
    down = subprocess.run(healthcheck_argv(), env=env, capture_output=True, timeout=30)
    assert up.returncode == 0, up.stderr
    assert down.returncode != 0


def buildah() -> list[str]:
    path = shutil.which("buildah")
    storage = os.environ.get(BUILDAH_STORAGE_ENV, "")
    if path is None:
        pytest.skip("buildah is not installed: the image is checked by its Dockerfile only")
    if not storage:
        pytest.skip(f"{BUILDAH_STORAGE_ENV} is not set (a buildah storage with python:3.11-slim)")
    return [path, "--root", f"{storage}/storage", "--runroot", f"{storage}/run",
            "--storage-driver", "vfs"]  # fmt: skip


def test_the_image_builds_and_answers_its_healthcheck(tmp_path):
    b = buildah()
    tag = "localhost/botwire:deploy-test"
    recipe = str(DEPLOY / "Dockerfile")
    build = [*b, "bud", "--format", "docker", "--pull=never", "--isolation", "chroot",
             "--network", "host", "-f", recipe, "-t", tag, str(ROOT)]  # fmt: skip
    done = subprocess.run(build, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    box = subprocess.run([*b, "from", "--pull=never", tag], capture_output=True, text=True)
    name = box.stdout.strip().splitlines()[-1]
    port = free_port()
    run = [*b, "run", "--isolation", "chroot", "--network", "host", "--env",
           f"BOTWIRE_PORT={port}", name, "--"]  # fmt: skip
    proc = subprocess.Popen([*run, "botwire", "serve", "--host", "0.0.0.0"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        wait_for(lambda: httpx.get(f"http://127.0.0.1:{port}/readyz").status_code == 200, proc)
        argv = ["python", *healthcheck_argv()[1:]]
        assert subprocess.run([*run, *argv], timeout=60).returncode == 0
        who = subprocess.run([*run, "id", "-u"], capture_output=True, text=True, timeout=60)
        assert who.stdout.strip() not in ("", "0")
    finally:
        for pid in listening_pids(port):
            os.kill(pid, signal.SIGTERM)
        proc.wait(60)
        subprocess.run([*b, "rm", name], capture_output=True)


def listening_pids(port: int) -> list[int]:
    done = subprocess.run(["ss", "-ltnpH", f"sport = :{port}"], capture_output=True, text=True)
    return sorted({int(p) for p in re.findall(r"pid=(\d+)", done.stdout)})


# -- the docs and the changelog ------------------------------------------------------------------


def bench_capacity():
    sys.path.insert(0, str(ROOT / "bench"))
    try:
        import bench_capacity
    finally:
        sys.path.remove(str(ROOT / "bench"))
    return bench_capacity


def test_the_sizing_benchmark_reports_both_tables(capsys):
    small = ["--no-postgres", "--no-http", "--seconds", "0.2", "--reps", "1", "--callers", "20"]
    assert bench_capacity().main([*small, "--voice-callers", "2"]) == 0
    report = capsys.readouterr().out
    assert "| SQLite, Memory.set, 1 thread |" in report
    assert re.search(r"\| SQLite \| plain \| 20 \| [0-9,]+ \| \*\*[0-9,]+\*\* \|", report)
    assert re.search(r"\| SQLite \| voice \| 2 \| [0-9,]+ \|", report)


def test_the_deploy_docs_name_files_that_exist_and_commands_that_parse():
    text = (ROOT / "docs" / "deploy.md").read_text()
    for path in set(re.findall(r"\bdeploy/[A-Za-z0-9_.-]+", text)):
        assert (ROOT / path).exists(), path
    runs = re.findall(r"python bench/bench_capacity\.py([^\n`]*)", text)
    assert runs, "docs/deploy.md does not say how to reproduce the sizing figures"
    for args in runs:
        bench_capacity().parse_args(shlex.split(args.split("#")[0]))


def test_the_changelog_starts_at_the_current_version():
    text = (ROOT / "CHANGELOG.md").read_text()
    versions = re.findall(r"^## \[([0-9][^\]]*)\]", text, re.MULTILINE)
    assert versions and versions[0] == __version__, versions
    assert "0.3.0" in versions
