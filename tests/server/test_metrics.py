"""/metrics of a real ``botwire serve --workers 2`` over a real socket: whichever worker answers
a scrape, the counts are the sum over both workers (multiprocess mode), exactly."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from prometheus_client.mmap_dict import MmapedDict
from prometheus_client.parser import text_string_to_metric_families
from servers import ServerProcess

from botwire.voice.signatures import sign_retell

pytestmark = pytest.mark.processes
VOICE_TESTS = Path(__file__).parent.parent / "voice"
FIXTURES = VOICE_TESTS / "fixtures"
MAX_BODY = 65536
DOC = Path(__file__).parents[2] / "docs" / "metrics.md"
KEY_ROUTE = "/v1/namespaces/{ns}/keys/{key}"
VOICE = {"vapi_secret": "vapi-secret", "vapi_assistant_id": "asst_1", "retell_api_key": "rk"}
CALLER = "phone:+14155550123"  # the caller of the Vapi fixtures
SCRAPES = 8  # enough that both workers answer some of them


class Server(ServerProcess):
    """A ``ServerProcess`` with more environment for the server only (never this process's)."""

    def __init__(self, *args, extra_env: dict[str, str] | None = None, **kw) -> None:
        super().__init__(*args, **kw)
        self.extra_env = extra_env or {}

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in super().env().items() if k != "PROMETHEUS_MULTIPROC_DIR"}
        return {**env, **self.extra_env}


def serve(tmp_path: Path, name: str = "home", workers: int = 2, **settings) -> Server:
    return Server(
        f"sqlite:///{tmp_path}/metrics.db",
        tmp_path / name,
        workers=workers,
        writes_per_day=settings.pop("writes_per_day", 0),
        **settings,
    ).start()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """One server for the tests whose labels no other of them touches; its summariser waits
    for the file ``proc.gate``."""
    home = tmp_path_factory.mktemp("shared")
    gate = home / "gate"
    path = os.pathsep.join(p for p in (str(VOICE_TESTS), os.environ.get("PYTHONPATH")) if p)
    proc = serve(
        home,
        max_body_bytes=MAX_BODY,
        voice_summarizer="gated_summarizer:summarise",
        extra_env={"VOICE_TEST_GATE": str(gate), "PYTHONPATH": path},
        **VOICE,
    )
    proc.gate = gate
    yield proc
    gate.touch()
    proc.stop()


@pytest.fixture
def own_server(tmp_path):
    proc = serve(tmp_path, **VOICE)
    yield proc
    proc.stop()


# -- reading /metrics ---------------------------------------------------------------------


def scrape(proc: ServerProcess, key: str | None = None) -> dict[tuple, float]:
    """Every sample as ``{(name, sorted labels): value}``."""
    r = httpx.get(
        proc.base + "/metrics", headers={"Authorization": f"Bearer {key or proc.admin_key}"}
    )
    assert r.status_code == 200, r.text
    samples = {}
    for family in text_string_to_metric_families(r.text):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples


def value(samples: dict[tuple, float], name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def scrapes(proc: ServerProcess, name: str, **labels: str) -> list[float]:
    """The sample from several scrapes, each on a new connection (any worker answers)."""
    return [value(scrape(proc), name, **labels) for _ in range(SCRAPES)]


def metrics_dir(proc: ServerProcess) -> Path:
    found = re.findall(r"metrics: kept in (\S+) \(multiprocess mode", proc.log())
    assert found, proc.log()
    return Path(found[-1])


def per_worker(path: Path, name: str, **labels: str) -> dict[int, float]:
    """One counter's value in each worker's own file: {pid: value}."""
    out = {}
    for f in path.glob("counter_*.db"):
        pid = int(f.stem.split("_")[1])
        for key, v, _, _ in MmapedDict.read_all_values_from_file(str(f)):
            _, sample, found, _ = json.loads(key)
            if sample == name and found == labels:
                out[pid] = out.get(pid, 0.0) + v
    return out


def spread(requests: list, threads: int = 16) -> list[httpx.Response]:
    """Each request ``(method, url, kwargs)`` on a new connection, many at once."""

    def one(req) -> httpx.Response:
        method, url, kw = req
        headers = {"Connection": "close", **kw.pop("headers", {})}
        return httpx.request(method, url, headers=headers, timeout=30, **kw)

    with ThreadPoolExecutor(threads) as pool:
        return list(pool.map(one, [(m, u, dict(kw)) for m, u, kw in requests]))


def put_keys(proc: ServerProcess, ns: str, n: int, start: int = 0) -> list[httpx.Response]:
    auth = {"Authorization": f"Bearer {proc.admin_key}"}
    return spread(
        [
            ("PUT", f"{proc.base}/v1/namespaces/{ns}/keys/k{i}", {"content": b"1", "headers": auth})
            for i in range(start, start + n)
        ]
    )


# -- requests and latency by route template -------------------------------------------------


def test_requests_and_latency_add_up_over_both_workers(server):
    k = 240
    assert [r.status_code for r in put_keys(server, "m", k)] == [200] * k
    labels = {"method": "PUT", "route": KEY_ROUTE, "status": "200"}
    assert scrapes(server, "botwire_requests_total", **labels) == [k] * SCRAPES
    counts = scrapes(
        server, "botwire_request_duration_seconds_count", method="PUT", route=KEY_ROUTE
    )
    assert counts == [k] * SCRAPES
    samples = scrape(server)
    inf = value(
        samples, "botwire_request_duration_seconds_bucket", method="PUT", route=KEY_ROUTE, le="+Inf"
    )
    assert inf == k
    assert value(samples, "botwire_workers") == 2
    # both workers answered some of them: each one's own file holds its share
    shares = per_worker(metrics_dir(server), "botwire_requests_total", **labels)
    assert len(shares) == 2 and all(v > 0 for v in shares.values()), shares
    assert sum(shares.values()) == k


def test_labels_are_templates_never_paths(server):
    base = server.base
    spread([("GET", f"{base}/no/such/path-{i}", {}) for i in range(30)])
    spread([("PROPFIND", f"{base}/healthz", {}) for _ in range(4)])  # WebDAV
    r = httpx.get(base + "/v1/namespaces/secret-tenant/keys/x")  # no key: 401
    assert r.status_code == 401
    auth = {"Authorization": f"Bearer {server.admin_key}"}
    r = httpx.put(base + "/v1/namespaces/big/keys/x", content=b"x" * (MAX_BODY + 1), headers=auth)
    assert r.status_code == 413  # refused by its Content-Length, before any route
    samples = scrape(server)
    assert (
        value(samples, "botwire_requests_total", method="GET", route="unmatched", status="404")
        == 30
    )
    other = sum(
        v
        for (name, labels), v in samples.items()
        if name == "botwire_requests_total" and ("method", "OTHER") in labels
    )
    assert other == 4
    text = httpx.get(
        base + "/metrics", headers={"Authorization": f"Bearer {server.admin_key}"}
    ).text
    assert "path-" not in text and "secret-tenant" not in text and "PROPFIND" not in text
    assert (
        value(samples, "botwire_requests_total", method="GET", route=KEY_ROUTE, status="401") == 1
    )
    assert (
        value(samples, "botwire_requests_total", method="PUT", route=KEY_ROUTE, status="413") == 1
    )
    assert value(samples, "botwire_errors_total", code="body_too_large") == 1


def test_metrics_need_a_key(server):
    r = httpx.get(server.base + "/metrics")
    assert r.status_code == 401 and r.json()["error"]["code"] == "unauthorized"
    r = httpx.get(server.base + "/metrics", headers={"Authorization": "Bearer bw_wrong"})
    assert r.status_code == 401


# -- webhook outcomes per platform ------------------------------------------------------------


def vapi(proc: ServerProcess, body: bytes, secret: str = "vapi-secret") -> tuple:
    return (
        "POST",
        proc.base + "/voice/vapi",
        {"content": body, "headers": {"x-vapi-secret": secret}},
    )


def retell(proc: ServerProcess, body: bytes, ts_ms: int) -> tuple:
    header = sign_retell(body, "rk", ts_ms)
    return (
        "POST",
        proc.base + "/voice/retell",
        {"content": body, "headers": {"x-retell-signature": header}},
    )


def test_webhook_outcomes_by_platform_and_event(server):
    start = (FIXTURES / "vapi/assistant-request.json").read_bytes()
    status = (FIXTURES / "vapi/status-update.json").read_bytes()
    answers = spread(
        [vapi(server, start)] * 20
        + [vapi(server, start, secret="forged")] * 12
        + [vapi(server, status)] * 6
        + [vapi(server, b"not json")] * 3
    )
    assert Counter(r.status_code for r in answers) == {200: 26, 401: 12, 400: 3}
    inbound = (FIXTURES / "retell/call_inbound.json").read_bytes()
    signed = retell(server, inbound, int(time.time() * 1000))
    assert [r.status_code for r in spread([signed] * 5, threads=1)] == [200, 401, 401, 401, 401]
    r = httpx.post(server.base + "/voice/elevenlabs/post-call", content=b"{}")
    assert r.status_code == 404  # not configured on this server
    # a finished call: answered, counted and timed while its summariser still waits
    end = (FIXTURES / "vapi/end-of-call-report.json").read_bytes()
    assert [r.status_code for r in spread([vapi(server, end)])] == [200]

    expected = {
        ("vapi", "call-start", "ok"): 20,
        ("vapi", "unknown", "bad_signature"): 12,
        ("vapi", "other", "ignored"): 6,
        ("vapi", "unknown", "malformed"): 3,
        ("retell", "call-start", "ok"): 1,
        ("retell", "unknown", "replay"): 4,
        ("elevenlabs", "call-end", "not_configured"): 1,
        ("vapi", "call-end", "ok"): 1,
    }
    for _ in range(SCRAPES):
        samples = scrape(server)
        seen = {
            tuple(dict(labels)[k] for k in ("platform", "event", "outcome")): v
            for (name, labels), v in samples.items()
            if name == "botwire_webhooks_total"
        }
        assert seen == expected
        route = {"method": "POST", "route": "/voice/vapi"}
        assert value(samples, "botwire_requests_total", status="200", **route) == 27
        assert value(samples, "botwire_request_duration_seconds_count", **route) == 27 + 12 + 3
    assert not server.gate.exists()  # the summariser of the finished call is still waiting
    server.gate.touch()


# -- quota refusals -----------------------------------------------------------------------------


def test_quota_refusals_add_up_over_both_workers(tmp_path):
    proc = serve(tmp_path, writes_per_day=10, **VOICE)
    try:
        answers = put_keys(proc, "q", 40)
        assert Counter(r.status_code for r in answers) == {200: 10, 429: 30}
        # the caller's namespace full for today: each finished call is acknowledged and dropped
        assert {r.status_code for r in put_keys(proc, CALLER, 10)} == {200}
        end = (FIXTURES / "vapi/end-of-call-report.json").read_bytes()
        assert {r.status_code for r in spread([vapi(proc, end)] * 8)} == {200}
        for _ in range(SCRAPES):
            samples = scrape(proc)
            assert value(samples, "botwire_quota_rejections_total", kind="write") == 38
            assert value(samples, "botwire_errors_total", code="write_quota_exceeded") == 30
            labels = {"platform": "vapi", "event": "call-end", "outcome": "dropped"}
            assert value(samples, "botwire_webhooks_total", **labels) == 8
            statuses = {"method": "PUT", "route": KEY_ROUTE}
            assert value(samples, "botwire_requests_total", status="429", **statuses) == 30
        assert shown(proc) == documented()  # every metric is here by now: each one in the doc
    finally:
        proc.stop()


# -- worker restarts and the directory's life ----------------------------------------------------


def worker_pids(path: Path) -> set[int]:
    return {int(f.stem.rsplit("_", 1)[1]) for f in path.glob("gauge_livesum_*.db")}


def test_a_worker_that_dies_is_replaced_and_its_counts_stay(own_server):
    server = own_server
    k = 120
    assert {r.status_code for r in put_keys(server, "r", k)} == {200}
    path = metrics_dir(server)
    before = worker_pids(path)
    assert len(before) == 2
    victim = min(before)
    os.kill(victim, signal.SIGKILL)
    deadline = time.monotonic() + 60
    while (
        not (worker_pids(path) - before) or httpx.get(server.base + "/healthz").status_code != 200
    ):
        assert time.monotonic() < deadline, server.log()
        time.sleep(0.1)
    time.sleep(1)  # the replacement ready to accept
    labels = {"method": "PUT", "route": KEY_ROUTE, "status": "200"}
    assert scrapes(server, "botwire_requests_total", **labels) == [k] * SCRAPES
    assert scrapes(server, "botwire_workers") == [2] * SCRAPES  # not 3: the dead one is dropped
    assert victim not in worker_pids(path)
    assert {r.status_code for r in put_keys(server, "r", k, start=k)} == {200}
    assert scrapes(server, "botwire_requests_total", **labels) == [2 * k] * SCRAPES


def test_the_private_directory_is_made_at_start_and_removed_at_exit(tmp_path):
    proc = serve(tmp_path)
    path = metrics_dir(proc)
    try:
        assert stat.S_IMODE(path.stat().st_mode) == 0o700
        assert {r.status_code for r in put_keys(proc, "d", 30)} == {200}
        labels = {"method": "PUT", "route": KEY_ROUTE, "status": "200"}
        assert value(scrape(proc), "botwire_requests_total", **labels) == 30
        port = proc.port
    finally:
        proc.stop()
    assert not path.exists()
    proc.start(port=port)  # a new run counts from zero, in a new directory
    try:
        assert metrics_dir(proc) != path
        assert value(scrape(proc), "botwire_requests_total", **labels) == 0
        assert value(scrape(proc), "botwire_workers") == 2
    finally:
        proc.stop()


def test_a_given_directory_is_emptied_at_start(tmp_path):
    given = tmp_path / "prom"
    env = {"PROMETHEUS_MULTIPROC_DIR": str(given)}
    proc = serve(tmp_path, extra_env=env)
    labels = {"method": "PUT", "route": KEY_ROUTE, "status": "200"}
    try:
        assert metrics_dir(proc) == given
        assert {r.status_code for r in put_keys(proc, "g", 25)} == {200}
        assert value(scrape(proc), "botwire_requests_total", **labels) == 25
        stale = tmp_path / "stale"
        shutil.copytree(given, stale)  # what a run killed with SIGKILL leaves behind
    finally:
        proc.stop()
    assert given.is_dir() and not list(given.glob("*.db"))  # emptied at exit, kept
    for f in stale.glob("*.db"):
        shutil.copy(f, given / f.name)
    assert list(given.glob("counter_*.db"))
    proc = serve(tmp_path, extra_env=env)
    try:
        samples = scrape(proc)
        assert value(samples, "botwire_requests_total", **labels) == 0
        assert value(samples, "botwire_workers") == 2
    finally:
        proc.stop()


def test_one_worker_keeps_its_metrics_in_memory(tmp_path):
    proc = serve(tmp_path, workers=1)
    try:
        assert "multiprocess mode" not in proc.log()
        assert {r.status_code for r in put_keys(proc, "one", 12)} == {200}
        samples = scrape(proc)
        labels = {"method": "PUT", "route": KEY_ROUTE, "status": "200"}
        assert value(samples, "botwire_requests_total", **labels) == 12
        assert value(samples, "botwire_workers") == 1
    finally:
        proc.stop()


# -- docs/metrics.md ------------------------------------------------------------------------------


def blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", DOC.read_text(), re.S)


def documented() -> dict[str, tuple[str, set[str]]]:
    """The doc's table of metrics: {name: (type, label names)}."""
    rows = re.findall(r"^\| `(botwire_\w+)` \| (\w+) \|([^|]*)\|", DOC.read_text(), re.M)
    return {name: (kind, set(re.findall(r"`(\w+)`", labels))) for name, kind, labels in rows}


def shown(proc: ServerProcess) -> dict[str, tuple[str, set[str]]]:
    """The same, from what the server shows."""
    r = httpx.get(proc.base + "/metrics", headers={"Authorization": f"Bearer {proc.admin_key}"})
    out = {}
    for family in text_string_to_metric_families(r.text):
        name = family.name + ("_total" if family.type == "counter" else "")
        labels = {k for sample in family.samples for k in sample.labels if k != "le"}
        out[name] = (family.type, labels)
    return out


def test_the_documented_key_and_curl_scrape(server, tmp_path):
    (script,) = [b for b in blocks("bash") if "botwire keys create" in b]
    key_file = tmp_path / "botwire.key"
    script = script.replace("http://127.0.0.1:8421", server.base)
    script = script.replace("/etc/prometheus/botwire.key", str(key_file))
    env = {k: v for k, v in os.environ.items() if not k.startswith("BOTWIRE_")}
    env["BOTWIRE_HOME"] = str(server.home)  # the saved admin key, as on the server's host
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    run = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout == "botwire_workers 2.0\n"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    key = key_file.read_text().strip()
    assert value(scrape(server, key), "botwire_workers") == 2
    r = httpx.get(server.base + "/v1/namespaces/m/keys/k0", headers={"X-API-Key": key})
    assert r.status_code == 403  # it reads nothing stored


def test_the_documented_scrape_config_sends_the_key_file():
    yaml = pytest.importorskip("yaml")
    (config,) = blocks("yaml")
    (job,) = yaml.safe_load(config)["scrape_configs"]
    assert job["metrics_path"] == "/metrics"
    key_file = "/etc/prometheus/botwire.key"  # the file the bash block writes
    assert job["authorization"] == {"type": "Bearer", "credentials_file": key_file}
    assert job["static_configs"] == [{"targets": ["127.0.0.1:8421"]}]
