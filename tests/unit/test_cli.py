"""The `botwire` command, run as a user runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

BIN = Path(sys.executable).with_name("botwire")


@pytest.fixture
def run(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("BOTWIRE_")}
    env["BOTWIRE_HOME"] = str(tmp_path)

    def run(*args: str, ok: bool = True) -> subprocess.CompletedProcess:
        done = subprocess.run(
            [str(BIN), *args],
            capture_output=True,
            text=True,
            env=env,
            stdin=subprocess.DEVNULL,
            timeout=60,
        )
        assert (done.returncode == 0) is ok, done.stderr
        return done

    return run


def test_set_get_keys_log_forget(run, tmp_path):
    assert run("where").stdout.strip() == f"sqlite:///{tmp_path}/botwire.db"
    assert run("set", "cust-1", "last_order", '"ORDER-789"').stdout.strip() == "1"
    assert run("set", "cust-1", "prefs", '{"lang": "en"}').stdout.strip() == "1"
    assert run("set", "cust-1", "note", "plain words", "--string").stdout.strip() == "1"
    assert json.loads(run("get", "cust-1", "prefs").stdout) == {"lang": "en"}
    assert json.loads(run("get", "cust-1", "note").stdout) == "plain words"
    assert run("ls", "cust-1").stdout.split() == ["last_order", "note", "prefs"]
    assert run("namespaces").stdout.split() == ["cust-1"]
    assert run("log", "cust-1", "calls").stdout == ""
    assert "forgotten" in run("forget", "cust-1", "--yes").stdout
    missing = run("get", "cust-1", "last_order", ok=False)
    assert "not set" in missing.stderr


def test_bad_input_is_an_error_message_not_a_traceback(run):
    bad_json = run("set", "ns", "k", "{not json", ok=False)
    assert "not JSON" in bad_json.stderr and "Traceback" not in bad_json.stderr
    bad_key = run("set", "ns", "x" * 600, "1", ok=False)
    assert "InvalidKey" in bad_key.stderr and "Traceback" not in bad_key.stderr
    assert run("get", "ns", "x" * 600, ok=False).stderr.count("InvalidKey") == 1


def test_forget_asks_first_without_yes(run):
    run("set", "ns", "k", "1")
    run("forget", "ns", ok=False)  # no stdin: the confirmation aborts
    assert run("get", "ns", "k").stdout.strip() == "1"


def test_demo_second_call_remembers_the_first(run):
    out = run("demo").stdout
    call_1, call_2 = out.split("Call 2", 1)
    assert "This is the first call from this caller" in call_1
    remembered = "tool-calls remember(key='customer_name', value='Ana'): Remembered customer_name."
    assert remembered in call_1
    assert "end-of-call-report: transcript (4 turns) and summary stored" in call_1
    assert "{{customer_name}} = 'Ana'" in call_2
    assert "- last_order: ORDER-789" in call_2
    assert "Ana asked why ORDER-789 (blue kettle) has not shipped" in call_2
    assert "Call 2's answer carries call 1's summary and facts" in out
    again = run("demo").stdout  # repeatable: the demo forgets its caller first
    assert "This is the first call from this caller" in again.split("Call 2", 1)[0]
    assert again.count("Recent calls, newest first:") == 1
    assert again.count("- 20") == 1  # one call record, not two


def test_serve_makes_one_admin_key_on_first_start_only(tmp_path):
    from servers import ServerProcess

    home = tmp_path / "home"
    server = ServerProcess(f"sqlite:///{tmp_path}/s.db", home).start()
    key_file = home / "admin.key"
    assert oct(key_file.stat().st_mode & 0o777) == "0o600"
    secret = key_file.read_text().strip()
    assert secret.startswith("bw_") and server.log().count(secret) == 1
    server.stop()
    key_file.unlink()
    server.start()  # the database already has a key: none is made or shown again
    assert not key_file.exists()
    assert server.log().count("bw_") == 1
    server.stop()


def test_keys_create_list_revoke_against_a_server(tmp_path):
    from servers import ServerProcess

    home = tmp_path / "home"
    server = ServerProcess(f"sqlite:///{tmp_path}/s.db", home).start()
    env = {k: v for k, v in os.environ.items() if not k.startswith("BOTWIRE_")}
    env["BOTWIRE_HOME"] = str(home)  # where the admin key was saved
    env["BOTWIRE_PORT"] = str(server.port)

    def cli(*args: str) -> subprocess.CompletedProcess:
        done = subprocess.run([str(BIN), *args], capture_output=True, text=True, env=env,
                              stdin=subprocess.DEVNULL, timeout=60)
        assert done.returncode == 0, done.stderr
        return done

    try:
        made = cli("keys", "create", "--prefix", "acme:", "--write", "--name", "agents")
        secret = made.stdout.strip()
        assert secret.startswith("bw_") and "not shown again" in made.stderr
        listed = [json.loads(line) for line in cli("keys", "list", "--json").stdout.splitlines()]
        mine = next(k for k in listed if k["name"] == "agents")
        assert mine["prefixes"] == ["acme:"] and mine["rights"] == "write"
        assert secret not in cli("keys", "list").stdout
        # the new key works for its prefix through the ordinary commands
        url = f"http://{secret}@127.0.0.1:{server.port}"
        cli("set", "acme:1", "k", '{"v": 1}', "--url", url)
        assert json.loads(cli("get", "acme:1", "k", "--url", url).stdout) == {"v": 1}
        denied = subprocess.run([str(BIN), "set", "other", "k", "1", "--url", url],
                                capture_output=True, text=True, env=env, timeout=60)
        assert denied.returncode != 0 and "PermissionDenied" in denied.stderr
        cli("keys", "revoke", mine["id"])
        listed = [json.loads(line) for line in cli("keys", "list", "--json").stdout.splitlines()]
        assert next(k for k in listed if k["id"] == mine["id"])["revoked_at"] is not None
    finally:
        server.stop()


def test_a_conninfo_given_as_url_is_explained_without_its_password(run):
    conninfo = "host=db.internal user=app password=hunter2 dbname=app"
    done = run("ls", "x", "--url", conninfo, ok=False)
    assert "hunter2" not in done.stderr + done.stdout
    assert "postgresql://user:password@host:5432/db" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("password", ["hun?ter2", "hun#ter2", "hun@ter2", "hun/ter2"])
def test_where_never_prints_a_password_holding_url_delimiters(run, password):
    # where prints the URL of the engine it opened, without connecting (port 1 would refuse)
    pytest.importorskip("psycopg")
    url = f"postgresql://app:{password}@127.0.0.1:1/db?connect_timeout=1"
    usable = "/" not in password  # libpq reads a raw / as the end of host:port
    done = run("where", "--url", url, ok=usable)
    if usable:
        assert done.stdout.strip() == "postgresql://app@127.0.0.1:1/db?connect_timeout=1"
    else:
        assert "ConfigurationError" in done.stderr and "port" in done.stderr
    assert "hun" not in done.stdout + done.stderr and "ter2" not in done.stdout + done.stderr
