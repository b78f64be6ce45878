"""`botwire demo` and `botwire where`, run as a user runs them: the demo never touches memory
it did not make, and no URL they print shows a password or an API key."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import botwire
from botwire import Memory

BIN = Path(sys.executable).with_name("botwire")
PHONE_NS = "phone:+15555550123"
SECRET = "hunter2"


@pytest.fixture
def home(tmp_path) -> Path:
    path = tmp_path / "home"
    path.mkdir()
    return path


@pytest.fixture
def run(home):
    env = {k: v for k, v in os.environ.items() if not k.startswith("BOTWIRE_")}
    env["BOTWIRE_HOME"] = str(home)

    def run(*args: str, **extra_env: str) -> subprocess.CompletedProcess:
        done = subprocess.run(
            [str(BIN), *args],
            capture_output=True,
            text=True,
            env={**env, **extra_env},
            stdin=subprocess.DEVNULL,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        return done

    return run


def _remembered(out: str) -> bool:
    call_1, call_2 = out.split("Call 2", 1)
    return (
        "This is the first call from this caller" in call_1
        and "{{customer_name}} = 'Ana'" in call_2
        and "Ana asked why ORDER-789 (blue kettle) has not shipped" in call_2
        and "Call 2's answer carries call 1's summary and facts" in out
    )


def _seed(url: str) -> None:
    """What a user keeps under the demo's phone number, and elsewhere."""
    with Memory(PHONE_NS, url=url) as m:
        m.set("customer_name", "Bea")
        m.log("calls").append({"summary": "a real call"})
    with Memory("acme:1", url=url) as m:
        m.set("plan", "pro")


def _assert_seed_intact(url: str) -> None:
    with Memory(PHONE_NS, url=url) as m:
        assert dict(m.items()) == {"customer_name": "Bea"}
        assert [e.value for e in m.log("calls").read()] == [{"summary": "a real call"}]
    with Memory("acme:1", url=url) as m:
        assert dict(m.items()) == {"plan": "pro"}


def test_demo_runs_on_a_temporary_home_and_leaves_the_users_alone(run, home):
    user_db = f"sqlite:///{home}/botwire.db"
    _seed(user_db)
    before = sorted(p.name for p in home.iterdir())
    out = run("demo").stdout
    assert _remembered(out)
    assert str(home) not in out
    _assert_seed_intact(user_db)
    assert sorted(p.name for p in home.iterdir()) == before
    temporary = re.search(r"memory lives in sqlite:///(\S+)/botwire\.db", out)
    assert temporary and not Path(temporary[1]).exists()  # deleted afterwards


def test_demo_keep_keeps_its_memory_and_says_where(run, home):
    out = run("demo", "--keep").stdout
    assert _remembered(out)
    kept = re.search(r"Kept: the demo's memory is in (\S+) ", out)
    assert kept, out
    folder = Path(kept[1])
    try:
        assert folder != home and (folder / "botwire.db").is_file()
        with Memory(PHONE_NS, url=f"sqlite:///{folder}/botwire.db") as m:
            assert m.get("customer_name") == "Ana"
    finally:
        import shutil

        shutil.rmtree(folder)
    assert list(home.iterdir()) == []


def test_demo_on_a_given_database_writes_only_its_own_namespace(run, postgres_url):
    secret_url = postgres_url.replace("postgres@", f"postgres:{SECRET}@", 1)
    _seed(postgres_url)
    before = list(botwire.namespaces(url=postgres_url))
    out = run("demo", "--database", secret_url).stdout
    assert _remembered(out) and SECRET not in out
    assert "postgresql://postgres@127.0.0.1:5432/test" in out
    _assert_seed_intact(postgres_url)
    assert list(botwire.namespaces(url=postgres_url)) == before  # its own is forgotten


def test_demo_keep_on_a_given_database_names_the_namespace_it_kept(run, home):
    url = f"sqlite:///{home}/mine.db"
    _seed(url)
    out = run("demo", "--database", url, "--keep").stdout
    assert _remembered(out)
    kept = re.search(r"Kept: the demo's memory is in namespace '([^']+)'", out)
    assert kept and kept[1].startswith("botwire-demo-") and kept[1].endswith(PHONE_NS)
    with Memory(kept[1], url=url) as m:
        assert m.get("customer_name") == "Ana"
    _assert_seed_intact(url)


def test_demo_refuses_a_server_url(home):
    env = {k: v for k, v in os.environ.items() if not k.startswith("BOTWIRE_")}
    done = subprocess.run(
        [str(BIN), "demo", "--database", "http://bw_key@127.0.0.1:9"],
        capture_output=True,
        text=True,
        env={**env, "BOTWIRE_HOME": str(home)},
        timeout=60,
    )
    assert done.returncode == 2 and "runs its own server" in done.stdout
    assert "bw_key" not in done.stdout + done.stderr


@pytest.mark.parametrize(
    "url, shown",
    [
        (
            f"postgresql://postgres:{SECRET}@db.example:5432/app",
            "postgresql://postgres@db.example:5432/app",
        ),
        (
            f"postgresql://app@db/x?password={SECRET}&sslmode=require",
            "postgresql://app@db/x?sslmode=require",
        ),
        (f"https://bw_{SECRET}@memory.example.com", "https://memory.example.com"),
    ],
)
def test_where_never_prints_a_secret(run, url, shown):
    assert run("where", "--url", url).stdout.strip() == shown
    assert run("where", BOTWIRE_URL=url).stdout.strip() == shown
