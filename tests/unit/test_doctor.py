"""``botwire doctor`` over real homes: SQLite files in tmp_path, the real PostgreSQL in a private
schema, real ``botwire serve`` processes and real TLS servers on real sockets."""

from __future__ import annotations

import datetime
import email.utils
import hashlib
import http.server
import json
import os
import shutil
import socket
import sqlite3
import ssl
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from botwire import Memory
from botwire.cli import main
from botwire.doctor import FAIL, Context, Finding, run_checks
from botwire.engines.sqlite import _MIGRATIONS as SQLITE_MIGRATIONS

BIN = Path(sys.executable).with_name("botwire")
API_KEY = "bw_doctorTestApiKeyValue0123456789abcdef"
VAPI_SECRET = "vapi-doctor-secret-4f9a2c"
RETELL_SECRET = "key_retell_doctor_77e1b0"
PG_PASSWORD = "pg-doctor-pass-31c8"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    """An environment with no BOTWIRE_* settings but BOTWIRE_HOME (not created yet)."""
    for name in [n for n in os.environ if n.startswith("BOTWIRE_")]:
        monkeypatch.delenv(name)
    for name in ("SSL_CERT_FILE", "SSL_CERT_DIR"):
        monkeypatch.delenv(name, raising=False)
    path = tmp_path / "home"
    monkeypatch.setenv("BOTWIRE_HOME", str(path))
    return path


def make_healthy(home: Path) -> Path:
    """What a first start leaves: the database (0600 in a 0700 home) and the admin key."""
    from botwire.server.config import Settings
    from botwire.server.run import bootstrap

    with Memory("customer-1") as m:
        m.set("name", "Ana")
    assert bootstrap(Settings.from_env()) is not None
    return home / "botwire.db"


def doctor(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["doctor", *args])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    assert "Traceback" not in result.output
    return result.exit_code, result.stdout


def report(*args: str) -> tuple[int, dict]:
    code, out = doctor("--json", *args)
    doc = json.loads(out)
    assert doc["exit_code"] == code
    return code, doc


def lines(doc: dict, status: str) -> list[str]:
    return [f"{c['what']}  — {c['fix']}" for c in doc["checks"] if c["status"] == status]


def one(doc: dict, status: str, *words: str) -> dict:
    """The one check with this status whose text holds every word."""
    found = [
        c
        for c in doc["checks"]
        if c["status"] == status and all(w in f"{c['what']} {c['fix']}" for w in words)
    ]
    assert len(found) == 1, (status, words, doc["checks"])
    return found[0]


def snapshot(folder: Path) -> dict[str, tuple[int, int, str]]:
    return {
        p.name: (p.stat().st_mode, p.stat().st_mtime_ns, hashlib.sha256(p.read_bytes()).hexdigest())
        for p in sorted(folder.iterdir())
    }


# -- SQLite homes -----------------------------------------------------------------------------


def test_a_healthy_sqlite_home_is_all_ok_and_left_exactly_as_it_was(home):
    db = make_healthy(home)
    before = snapshot(home)
    code, doc = report()
    assert code == 0 and doc["ok"] is True
    assert lines(doc, "warn") == [] and lines(doc, "fail") == []
    assert doc["database"] == f"sqlite:///{db}"
    one(doc, "ok", "schema version", str(len(SQLITE_MIGRATIONS)), "as this botwire expects")
    one(doc, "ok", str(db), "mode 0600")
    one(doc, "ok", "1 API key(s) in use", "1 with the admin right")
    one(doc, "ok", "admin.key", "holds admin key admin")
    code, text = doctor()
    assert code == 0
    rows = text.strip().splitlines()
    assert all(row.startswith("ok    ") for row in rows[:-1])
    assert rows[-1].endswith("0 warning(s), 0 failure(s)")
    assert snapshot(home) == before  # no -wal, no -shm, nothing migrated or touched


def test_a_database_readable_by_others_is_a_warning_saying_chmod_600(home):
    db = make_healthy(home)
    db.chmod(0o644)
    code, doc = report()
    assert code == 0  # warnings alone
    found = one(doc, "warn", str(db), "mode 0644")
    assert "group and others can read it" in found["what"]
    assert "personal data" in found["what"] and found["fix"] == f"chmod 600 {db}"


def test_a_missing_folder_fails_with_the_command_that_makes_it(home, tmp_path):
    folder = tmp_path / "not" / "there"
    code, out = doctor("--url", f"sqlite:///{folder}/botwire.db")
    assert code == 1
    row = next(r for r in out.splitlines() if r.startswith("FAIL"))
    assert f"folder {folder} of the SQLite database does not exist" in row
    assert f"mkdir -p -m 700 {folder}, or fix the path in --url" in row
    assert not (tmp_path / "not").exists()  # the doctor made nothing


def test_a_database_not_made_yet_is_a_warning_not_a_failure(home, tmp_path):
    code, doc = report("--url", f"sqlite:///{tmp_path}/later.db")
    assert code == 0
    one(doc, "warn", f"no database file yet at {tmp_path}/later.db", "created (0600) on first use")
    assert not (tmp_path / "later.db").exists()


def test_a_home_not_made_yet_is_a_warning_not_a_failure(home):
    code, doc = report()
    assert code == 0
    one(doc, "warn", f"the botwire home {home} does not exist yet", "created (0700) on first use")
    assert not home.exists()


def test_a_database_from_a_newer_schema_fails_and_an_older_one_will_be_migrated(home, tmp_path):
    db = make_healthy(home)
    copy = tmp_path / "copy"
    copy.mkdir()
    shutil.copy(db, copy / "botwire.db")
    url = f"sqlite:///{copy}/botwire.db"
    expected = len(SQLITE_MIGRATIONS)

    set_user_version(copy / "botwire.db", expected + 1)
    code, doc = report("--url", url)
    assert code == 1
    found = one(doc, "fail", f"schema version {expected + 1} is newer", f"knows ({expected})")
    assert "upgrade botwire" in found["fix"]

    set_user_version(copy / "botwire.db", 2)
    code, doc = report("--url", url)
    assert code == 0
    one(doc, "warn", "schema version 2", f"expects {expected}", "migrated on next start")
    assert user_version(copy / "botwire.db") == 2  # the doctor did not migrate it


def set_user_version(path: Path, version: int) -> None:
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version={version}")
    conn.close()


def user_version(path: Path) -> int:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return conn.execute("PRAGMA user_version").fetchone()[0]
    finally:
        conn.close()


def test_a_file_that_is_not_a_database_fails(home, tmp_path):
    bogus = tmp_path / "notes.db"
    bogus.write_text("these are my notes, not a database at all")
    bogus.chmod(0o600)
    code, doc = report("--url", f"sqlite:///{bogus}")
    assert code == 1
    one(doc, "fail", f"{bogus} is not a SQLite database")


def test_admin_key_readable_by_others_fails_and_a_revoked_one_is_a_warning(home):
    make_healthy(home)
    key_file = home / "admin.key"
    key_file.chmod(0o640)
    code, doc = report()
    assert code == 1
    found = one(doc, "fail", str(key_file), "mode 0640", "admin API key")
    assert found["fix"] == f"chmod 600 {key_file}"

    key_file.chmod(0o600)
    with sqlite3.connect(home / "botwire.db") as conn:
        conn.execute("UPDATE botwire_api_keys SET revoked_at = 1")
    conn.close()
    code, doc = report()
    assert code == 1
    one(doc, "fail", "all 1 API keys are revoked", "botwire keys recover")
    one(doc, "warn", "the key in", "was revoked")


def test_bad_settings_are_named_by_their_variable(home, monkeypatch):
    make_healthy(home)
    monkeypatch.setenv("BOTWIRE_PORT", "eighty")
    monkeypatch.setenv("BOTWIRE_VOICE_BUDGET", "lots")
    monkeypatch.setenv("BOTWIRE_MAX_VALUE_BYTES", "big")
    monkeypatch.setenv("BOTWIRE_WRITES_PER_DAYS", "10")  # a typo
    code, doc = report()
    assert code == 1
    one(doc, "fail", "BOTWIRE_PORT='eighty' is not a valid port")
    one(doc, "fail", "BOTWIRE_VOICE_BUDGET='lots' is not a whole number")
    one(doc, "fail", "the library's BOTWIRE_MAX_VALUE_BYTES='big'")
    one(doc, "warn", "BOTWIRE_WRITES_PER_DAYS is not a botwire setting", "BOTWIRE_WRITES_PER_DAY?")

    monkeypatch.delenv("BOTWIRE_PORT")
    monkeypatch.delenv("BOTWIRE_MAX_VALUE_BYTES")
    monkeypatch.setenv("BOTWIRE_WORKERS", "0")  # parses, then fails the range check
    code, doc = report()
    one(doc, "fail", "workers must be at least 1", "BOTWIRE_WORKERS='0'")


def test_a_database_url_that_cannot_work_is_named_with_where_it_came_from(home, monkeypatch):
    monkeypatch.setenv("BOTWIRE_DATABASE_URL", "mysql://db.internal/app")
    code, doc = report()
    assert code == 1
    one(doc, "fail", "database URL from BOTWIRE_DATABASE_URL", "unsupported URL scheme 'mysql'")


def test_the_library_and_the_server_on_different_databases_is_a_warning(
    home, tmp_path, monkeypatch
):
    make_healthy(home)
    other = tmp_path / "other.db"
    monkeypatch.setenv("BOTWIRE_URL", f"sqlite:///{other}")
    code, doc = report()
    one(doc, "warn", f"the library stores in sqlite:///{other} (BOTWIRE_URL)", "botwire serve")
    assert not other.exists()


def test_a_check_that_raises_is_a_failure_naming_the_error_never_its_secrets(home):
    def check_exploding(ctx: Context):
        yield Finding("ok", "first part")
        raise RuntimeError(f"boom near {API_KEY}")

    ctx = Context.build(None, None)
    ctx.secrets.add(API_KEY)
    findings = run_checks(ctx, (check_exploding,))
    assert [f.status for f in findings] == ["ok", FAIL]
    assert findings[1].check == "exploding"
    assert "the check failed: RuntimeError: boom near ***" in findings[1].what
    assert API_KEY not in findings[1].what


# -- PostgreSQL -------------------------------------------------------------------------------


def test_postgres_in_a_private_schema_is_read_without_writing(home, fresh_postgres_url):
    import psycopg

    code, doc = report("--url", fresh_postgres_url)
    assert code == 0
    one(doc, "warn", "PostgreSQL", "holds no botwire tables yet")
    one(doc, "ok", "of PostgreSQL's clock")
    one(doc, "ok", "postgres extra installed")
    with psycopg.connect(fresh_postgres_url) as conn:  # nothing was created
        assert conn.execute("SELECT to_regclass('botwire_schema')").fetchone()[0] is None

    with Memory("customer-1", url=fresh_postgres_url) as m:
        m.set("name", "Ana")
    code, doc = report("--url", fresh_postgres_url)
    assert code == 0
    from botwire.engines.postgres import _MIGRATIONS

    one(doc, "ok", "PostgreSQL", f"schema version {len(_MIGRATIONS)}", "as this botwire expects")
    one(doc, "ok", "no API keys yet")

    with psycopg.connect(fresh_postgres_url, autocommit=True) as conn:
        conn.execute("INSERT INTO botwire_schema (version) VALUES (%s)", (len(_MIGRATIONS) + 5,))
    code, doc = report("--url", fresh_postgres_url)
    assert code == 1
    assert "upgrade botwire" in one(doc, "fail", "is newer than this botwire knows")["fix"]


def test_an_unreachable_postgres_fails_naming_the_url_without_its_password(home):
    url = f"postgresql://doctor:{PG_PASSWORD}@127.0.0.1:{free_port()}/app"
    code, out = doctor("--url", url)
    assert code == 1
    row = next(r for r in out.splitlines() if "does not answer" in r)
    assert row.startswith("FAIL")
    assert f"database postgresql://doctor@127.0.0.1:{url.rsplit(':', 1)[1]}" in row
    assert "Connection refused" in row and "fix the host, port, user or password" in row
    assert PG_PASSWORD not in out


# -- voice ------------------------------------------------------------------------------------


def write_voice(home: Path, **values: str) -> Path:
    from botwire.voice.settings import config_path, write_file

    write_file(config_path(), values)
    return Path(config_path())


def test_a_voice_platform_set_up_without_its_secret_fails_naming_how_to_set_it(home):
    make_healthy(home)
    write_voice(home, vapi_assistant_id="asst_123")
    code, doc = report()
    assert code == 1
    found = one(doc, "fail", "voice vapi", "vapi_secret is not set", "/voice/vapi answers 404")
    assert "vapi_assistant_id is set" in found["what"]
    assert found["fix"] == (
        "botwire voice configure vapi --secret (asks for it), or set BOTWIRE_VAPI_SECRET"
    )


def test_enabled_platforms_say_where_their_secret_comes_from_and_never_show_it(home, monkeypatch):
    make_healthy(home)
    voice_file = write_voice(
        home, retell_api_key=RETELL_SECRET, elevenlabs_tool_secret="tool-s3cr3t"
    )
    monkeypatch.setenv("BOTWIRE_VAPI_SECRET", VAPI_SECRET)
    code, out = doctor()
    assert code == 0, out
    assert "ok    voice vapi: enabled (vapi_secret from BOTWIRE_VAPI_SECRET)" in out
    assert f"ok    voice retell: enabled (retell_api_key from {voice_file})" in out
    assert (
        "warn  voice elevenlabs: elevenlabs_webhook_secret is not set, so "
        "/voice/elevenlabs/post-call answers 404"
    ) in out
    assert "twilio, telnyx not configured" in out
    for secret in (VAPI_SECRET, RETELL_SECRET, "tool-s3cr3t"):
        assert secret not in out


def test_a_voice_file_readable_by_others_fails(home):
    path = write_voice(home, retell_api_key=RETELL_SECRET)
    path.chmod(0o644)
    code, doc = report()
    assert code == 1
    assert one(doc, "fail", str(path), "voice secrets")["fix"] == f"chmod 600 {path}"


def test_twilio_without_a_public_url_fails(home):
    write_voice(home, twilio_auth_token="twilio-token-xyz")
    code, doc = report()
    assert code == 1
    found = one(doc, "fail", "no public URL set", "Twilio signs the URL")
    assert "--public-url" in found["fix"] and "BOTWIRE_PUBLIC_URL" in found["fix"]


# -- a real server: the public URL, the clock, an http(s) URL ---------------------------------


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """A real ``botwire serve`` over the SQLite file of its home (its first start made the
    admin key there)."""
    from servers import ServerProcess

    home = tmp_path_factory.mktemp("served") / "home"
    server = ServerProcess(f"sqlite:///{home}/botwire.db", home).start()
    yield server
    server.stop()


@pytest.fixture
def served_home(served, home, monkeypatch) -> Path:
    monkeypatch.setenv("BOTWIRE_HOME", str(served.home))
    return served.home


def test_a_running_server_as_the_public_url_is_all_ok(served, served_home):
    code, doc = report("--public-url", served.base)
    assert code == 0, lines(doc, "warn") + lines(doc, "fail")
    assert lines(doc, "warn") == []
    one(doc, "ok", f"public URL {served.base}/healthz answers from this machine")
    one(doc, "ok", "clock within", f"the Date header of {served.base}")
    one(doc, "ok", "holds admin key admin")
    assert doc["public_url"] == served.base


def test_a_closed_port_as_the_public_url_fails(served_home):
    base = f"http://127.0.0.1:{free_port()}"
    code, doc = report("--public-url", base)
    assert code == 1
    found = one(doc, "fail", f"public URL {base}/healthz does not answer from this machine")
    assert "Connection refused" in found["what"] and "start botwire serve" in found["fix"]


def test_the_configured_public_url_is_used_when_none_is_given(served, served_home, monkeypatch):
    monkeypatch.setenv("BOTWIRE_PUBLIC_URL", served.base + "/")
    code, doc = report()
    assert code == 0
    one(doc, "ok", f"public URL {served.base}/healthz answers")


def test_a_server_url_checks_the_server_and_its_key(served, home):
    code, doc = report("--url", served.url())
    assert code == 0
    one(doc, "ok", f"server {served.base} answers and its database is ready")
    one(doc, "ok", f"server {served.base} accepts the API key")
    one(doc, "ok", f"the Date header of {served.base}")

    code, doc = report("--url", f"http://{API_KEY}@127.0.0.1:{served.port}")
    assert code == 1
    one(doc, "fail", "refuses the API key (401")
    assert API_KEY not in json.dumps(doc)

    code, doc = report("--url", f"http://127.0.0.1:{served.port}")
    assert code == 1
    one(doc, "fail", "no API key for", "BOTWIRE_API_KEY")

    closed = f"http://{API_KEY}@127.0.0.1:{free_port()}"
    code, doc = report("--url", closed)
    assert code == 1
    found = one(doc, "fail", "does not answer from here", "Connection refused")
    assert "start botwire serve there" in found["fix"] and API_KEY not in json.dumps(doc)


def test_no_secret_appears_in_any_output(served, served_home, monkeypatch):
    admin_key = (served_home / "admin.key").read_text().strip()
    monkeypatch.setenv("BOTWIRE_API_KEY", API_KEY)
    monkeypatch.setenv("BOTWIRE_VAPI_SECRET", VAPI_SECRET)
    monkeypatch.setenv("BOTWIRE_RETELL_API_KEY", RETELL_SECRET)
    monkeypatch.setenv("BOTWIRE_DATABASE_URL", f"postgresql://u:{PG_PASSWORD}@127.0.0.1:1/x")
    outputs = []
    for url in (
        None,
        f"postgresql://u:{PG_PASSWORD}@127.0.0.1:{free_port()}/x?sslpassword={PG_PASSWORD}",
        served.url(),
        f"http://{API_KEY}@127.0.0.1:{served.port}",
    ):
        args = ("--url", url) if url else ()
        for fmt in ((), ("--json",)):
            outputs.append(doctor(*args, *fmt, "--public-url", served.base)[1])
    together = "\n".join(outputs)
    assert "FAIL" in together and "voice vapi: enabled" in together  # the checks did run
    for secret in (API_KEY, VAPI_SECRET, RETELL_SECRET, PG_PASSWORD, admin_key):
        assert secret not in together


def test_json_output_has_one_entry_per_line_of_the_text(served, served_home):
    code, doc = report("--public-url", served.base)
    assert set(doc) == {"ok", "exit_code", "version", "database", "public_url", "counts", "checks"}
    assert doc["counts"] == {
        s: sum(c["status"] == s for c in doc["checks"]) for s in ("ok", "warn", "fail")
    }
    for check in doc["checks"]:
        assert set(check) == {"check", "status", "what", "fix"}
        assert check["status"] in ("ok", "warn", "fail")
        assert (check["fix"] is None) == (check["status"] == "ok")
    names = [c["check"] for c in doc["checks"]]
    for name in (
        "server_settings",
        "database",
        "sqlite_files",
        "disk",
        "api_keys",
        "admin_key",
        "voice_platforms",
        "public_url",
        "clock",
        "extras",
    ):
        assert name in names
    _, text = doctor("--public-url", served.base)
    assert len(text.strip().splitlines()) == len(doc["checks"]) + 1  # + the counts


def test_the_real_command_in_a_process(served, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("BOTWIRE_")}
    env["BOTWIRE_HOME"] = str(served.home)
    done = subprocess.run(
        [str(BIN), "doctor", "--json", "--public-url", served.base],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert json.loads(done.stdout)["ok"] is True
    env["BOTWIRE_DATABASE_URL"] = f"sqlite:///{tmp_path}/missing/botwire.db"
    done = subprocess.run([str(BIN), "doctor"], capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 1
    assert f"mkdir -p -m 700 {tmp_path}/missing" in done.stdout
    assert "Traceback" not in done.stdout + done.stderr


# -- TLS and clocks, from real HTTPS/HTTP servers ---------------------------------------------


class Health(http.server.BaseHTTPRequestHandler):
    skew = 0.0  # seconds the Date header is off by

    def do_GET(self) -> None:  # noqa: N802
        body = b'{"status":"ok"}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def date_time_string(self, timestamp=None) -> str:
        return email.utils.formatdate(time.time() + self.skew, usegmt=True)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def health_server():
    """Start ``/healthz`` servers: ``start(skew=..., tls=...)`` -> base URL."""
    started = []

    def start(skew: float = 0.0, tls: ssl.SSLContext | None = None) -> str:
        handler = type("Skewed", (Health,), {"skew": skew})
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        if tls is not None:
            server.socket = tls.wrap_socket(server.socket, server_side=True)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        started.append(server)
        scheme = "https" if tls else "http"
        return f"{scheme}://127.0.0.1:{server.server_address[1]}"

    yield start
    for server in started:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize(
    ("skew", "status", "words"),
    [(2, "ok", "clock within"), (90, "warn", "behind"), (-900, "fail", "ahead of")],
)
def test_the_clock_is_compared_with_the_public_urls_date_header(
    home, health_server, skew, status, words
):
    base = health_server(skew=skew)
    code, doc = report("--public-url", base)
    found = one(doc, status, words, f"the Date header of {base}")
    if status != "ok":
        assert "signatures" in found["fix"] and "300 s" in found["fix"]
    assert code == (1 if status == "fail" else 0)


def tls_context(tmp_path: Path, days: float) -> tuple[ssl.SSLContext, Path]:
    """A server context with a certificate for 127.0.0.1 valid ``days`` more, and its CA."""
    x509 = pytest.importorskip("cryptography.x509")
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.timezone.utc)

    def name(common: str):
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])

    def cert(subject, issuer, public, signer, until, ca: bool):
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(issuer)
            .public_key(public)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(until)
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if not ca:
            import ipaddress

            san = x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))])
            builder = builder.add_extension(san, critical=False)
        return builder.sign(signer, hashes.SHA256())

    ca_key, leaf_key = (
        ec.generate_private_key(ec.SECP256R1()),
        ec.generate_private_key(ec.SECP256R1()),
    )
    ca = cert(
        name("doctor test CA"),
        name("doctor test CA"),
        ca_key.public_key(),
        ca_key,
        now + datetime.timedelta(days=3650),
        True,
    )
    leaf = cert(
        name("127.0.0.1"),
        ca.subject,
        leaf_key.public_key(),
        ca_key,
        now + datetime.timedelta(days=days),
        False,
    )
    pem = serialization.Encoding.PEM
    (tmp_path / "ca.pem").write_bytes(ca.public_bytes(pem))
    (tmp_path / "leaf.pem").write_bytes(leaf.public_bytes(pem))
    (tmp_path / "leaf.key").write_bytes(
        leaf_key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tmp_path / "leaf.pem", tmp_path / "leaf.key")
    return context, tmp_path / "ca.pem"


def test_an_https_public_url_reports_its_certificate(home, tmp_path, health_server, monkeypatch):
    context, ca = tls_context(tmp_path, days=90)
    base = health_server(tls=context)
    code, doc = report("--public-url", base)  # our CA is not trusted yet
    assert code == 1
    found = one(doc, "fail", f"public URL {base}/healthz: its TLS certificate is not valid")
    assert "CERTIFICATE_VERIFY_FAILED" in found["what"] and "trusted CA" in found["fix"]

    monkeypatch.setenv("SSL_CERT_FILE", str(ca))  # as httpx (and so the doctor) trusts CAs
    code, doc = report("--public-url", base)
    assert code == 0
    until = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=90)
    one(doc, "ok", f"public URL {base}/healthz answers", f"TLS valid until {until:%Y-%m-%d}")


def test_a_certificate_about_to_expire_is_a_warning(home, tmp_path, health_server, monkeypatch):
    context, ca = tls_context(tmp_path, days=5)
    base = health_server(tls=context)
    monkeypatch.setenv("SSL_CERT_FILE", str(ca))
    code, doc = report("--public-url", base)
    assert code == 0
    assert one(doc, "warn", "TLS certificate expires in")["fix"] == "renew the certificate"


WITHOUT_EXTRAS = """
import sys
for name in ('fastapi', 'uvicorn', 'psycopg', 'psycopg_pool', 'mcp', 'mcp_types'):
    sys.modules[name] = None
from botwire.cli import main
main(['doctor', '--json', *sys.argv[1:]])
"""


def test_without_the_extras_the_doctor_runs_and_names_what_to_install(tmp_path):
    env = {"PATH": os.environ.get("PATH", ""), "BOTWIRE_HOME": str(tmp_path / "home")}

    def run(*args: str) -> tuple[int, dict]:
        done = subprocess.run(
            [sys.executable, "-c", WITHOUT_EXTRAS, *args],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
        )
        assert "Traceback" not in done.stderr, done.stderr
        return done.returncode, json.loads(done.stdout)

    code, doc = run()
    assert code == 0
    one(doc, "ok", "server settings not read: the server extra is not installed")
    one(doc, "ok", "server extra not installed (only botwire serve needs it)")
    one(doc, "ok", "mcp extra not installed")

    code, doc = run("--url", f"postgresql://u:{PG_PASSWORD}@127.0.0.1:{free_port()}/x")
    assert code == 1
    found = one(doc, "fail", "database postgresql://u@127.0.0.1", "needs the postgres extra")
    assert 'pip install "./botwire[postgres]"' in found["fix"]
    assert PG_PASSWORD not in json.dumps(doc)
