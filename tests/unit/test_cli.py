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
    assert run("keys", "cust-1").stdout.split() == ["last_order", "note", "prefs"]
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
    assert "Call 1" in out and "Call 2" in out
    assert "Welcome back, Ana! Are you calling about ORDER-789?" in out
    assert "The second call greeted the caller with what the first one stored." in out
    pids = {line.split("]")[0] for line in out.splitlines() if "[pid" in line}
    assert len(pids) == 2  # the two calls ran in two processes
    again = run("demo").stdout  # idempotent: the demo resets its own caller
    assert "found 4 facts, 1 earlier call(s)" in again
