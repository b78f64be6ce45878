"""`botwire export | import | migrate` end to end: real SQLite files, the real PostgreSQL (a
private schema per test), a real server process; the CLI as a user runs it."""

from __future__ import annotations

import json
import os
import re
import secrets
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import quote

import pytest
from click.testing import CliRunner
from servers import ServerProcess

from botwire import Memory
from botwire.cli import main
from botwire.engines import open_engine
from botwire.engines import base as ops

TTL = re.compile(r'"ttl": [0-9.]+')


def run(*args: str, ok: bool = True):
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    if ok:
        assert result.exit_code == 0, result.output + result.stderr
    return result


def body(path: Path) -> list[str]:
    """An export's lines without its header (which carries the time) and with ``ttl`` (the
    seconds left, which goes down) masked."""
    return [TTL.sub('"ttl": T', line) for line in path.read_text().splitlines()[1:]]


def fill(url: str, namespaces: int = 3, keys: int = 4, entries: int = 3) -> None:
    for i in range(namespaces):
        with Memory(f"caller-{i:05d}", url=url) as m:
            m.set_many({f"fact-{k:04d}": {"n": k, "text": f"value {k} é"} for k in range(keys)})
            m.set("short", "expires later", ttl=3600)
            m.set("~fact/fact-0000", {"history": []})
            m.log("calls").extend([{"call": e, "summary": f"call {e}"} for e in range(entries)])
            m.log("calls").clear() if i == 1 else None
            m.log("notes").append("a note")
            m.delete("fact-0001")  # raises the namespace's floor


@pytest.fixture
def sqlite_url(tmp_path) -> str:
    return f"sqlite:///{tmp_path}/source.db"


@pytest.fixture
def pg_url(postgres_server_url):
    import psycopg

    schema = f"botwire_test_transfer_{secrets.token_hex(6)}"
    with psycopg.connect(postgres_server_url, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    sep = "&" if "?" in postgres_server_url else "?"
    yield f"{postgres_server_url}{sep}options={quote(f'-csearch_path={schema}', safe='')}"
    with psycopg.connect(postgres_server_url, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def test_export_then_import_is_exact(tmp_path, sqlite_url):
    fill(sqlite_url)
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    result = run("export", "--url", sqlite_url, "--out", str(a), "--all")
    assert "exported 3 namespaces (15 keys, 9 log entries)" in result.stderr
    target = f"sqlite:///{tmp_path}/target.db"
    result = run("import", str(a), "--url", target)
    assert "3 namespaces imported (15 keys, 9 log entries), 0 unchanged, 0 refused" in result.stderr
    run("export", "--url", target, "--out", str(b), "--all")
    assert body(a) == body(b)
    with Memory("caller-00000", url=target) as m:
        assert m.get("fact-0002") == {"n": 2, "text": "value 2 é"}
        assert m.log("calls").append("next") == 4  # numbering goes on
        assert m.info("short").expires_at is not None
        m.set("fact-0001", "again")
        assert m.info("fact-0001").version > 1  # above the exported floor


def test_internal_records_only_with_all(tmp_path, sqlite_url):
    fill(sqlite_url, namespaces=1)
    Memory("~botwire:voice-replay", url=sqlite_url).set("seen", 1)
    plain = run("export", "--url", sqlite_url).stdout
    assert "~fact/" not in plain and "~botwire" not in plain
    everything = run("export", "--url", sqlite_url, "--all").stdout
    assert (
        '"key": "~fact/fact-0000"' in everything and '"ns": "~botwire:voice-replay"' in everything
    )


def test_prefix_and_stdout_hold_only_the_export(sqlite_url):
    fill(sqlite_url)
    result = run("export", "--url", sqlite_url, "--prefix", "caller-00001")
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert lines[0]["botwire_export"] == 1 and lines[0]["prefix"] == "caller-00001"
    assert [x["ns"] for x in lines if "ns" in x] == ["caller-00001"]
    assert lines[-1] == {"end_of_export": True, "namespaces": 1}
    assert "exported 1 namespaces" in result.stderr  # the result goes to stderr, not stdout


def test_re_running_an_import_changes_nothing_and_other_data_is_refused(tmp_path, sqlite_url):
    fill(sqlite_url)
    export = tmp_path / "a.jsonl"
    run("export", "--url", sqlite_url, "--out", str(export))
    target = f"sqlite:///{tmp_path}/target.db"
    run("import", str(export), "--url", target)
    assert (
        "0 namespaces imported (0 keys, 0 log entries), 3 unchanged"
        in run("import", str(export), "--url", target).stderr
    )
    Memory("caller-00002", url=target).set("fact-0000", "edited by hand")
    result = run("import", str(export), "--url", target, ok=False)
    assert result.exit_code == 1
    assert "refused: 'caller-00002' already hold different data; --replace" in result.output
    assert Memory("caller-00002", url=target).get("fact-0000") == "edited by hand"
    run("import", str(export), "--url", target, "--replace")
    assert Memory("caller-00002", url=target).get("fact-0000") == {"n": 0, "text": "value 0 é"}


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda lines: lines[:5] + ['{"key": "cut', *lines[6:]], "line 6: not valid JSON"),
        (lambda lines: lines[:7], "the file ends inside namespace 'caller-00000'"),
        (lambda lines: lines[:-1], "the file ends without its last line"),
        (
            lambda lines: [lines[0], lines[1], lines[2].replace('"n":0', '"n":9'), *lines[3:]],
            "line 9: namespace 'caller-00000': the checksum does not match",
        ),
        (lambda lines: lines[1:], "line 1: not a botwire export"),
        (
            lambda lines: [*lines[:3], lines[2], *lines[3:]],
            "line 4: key 'fact-0000' is out of order",
        ),
    ],
)
def test_a_damaged_export_is_refused_by_line_and_nothing_is_written(
    tmp_path, sqlite_url, damage, message
):
    fill(sqlite_url, namespaces=2, keys=2, entries=1)
    good = tmp_path / "a.jsonl"
    run("export", "--url", sqlite_url, "--out", str(good))
    bad = tmp_path / "bad.jsonl"
    bad.write_text("\n".join(damage(good.read_text().splitlines())) + "\n")
    target = f"sqlite:///{tmp_path}/target.db"
    result = run("import", str(bad), "--url", target, ok=False)
    assert result.exit_code == 1 and message in result.output, result.output
    engine = open_engine(target)
    assert engine.execute(ops.Namespaces("", None, 10, True)) == []
    engine.close()


def test_an_interrupted_import_resumes(tmp_path, sqlite_url):
    fill(sqlite_url, namespaces=300, keys=20, entries=5)
    export = tmp_path / "a.jsonl"
    run("export", "--url", sqlite_url, "--out", str(export))
    target = f"sqlite:///{tmp_path}/target.db"
    cmd = [sys.executable, "-m", "botwire", "import", str(export), "--url", target]
    env = {**os.environ, "BOTWIRE_HOME": str(tmp_path / "home")}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    engine = open_engine(target)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        if os.path.exists(target[10:]) and engine.execute(ops.Namespaces("", None, 5, True)):
            break
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = len(list(_all(engine)))
    assert 0 < done < 300, "the import should have been stopped part way"
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    imported = int(re.search(r"(\d+) namespaces imported", result.stderr).group(1))
    unchanged = int(re.search(r"(\d+) unchanged", result.stderr).group(1))
    assert imported + unchanged == 300 and unchanged >= done - 1
    again = tmp_path / "b.jsonl"
    run("export", "--url", target, "--out", str(again))
    assert body(export) == body(again)
    engine.close()


def _all(engine):
    after = None
    while page := engine.execute(ops.Namespaces("", after, 1000, True)):
        yield from page
        after = page[-1]


def test_export_from_a_server_and_import_into_one(tmp_path, sqlite_url):
    fill(sqlite_url)
    server = ServerProcess(sqlite_url, tmp_path / "home").start()
    try:
        direct, over_http = tmp_path / "direct.jsonl", tmp_path / "http.jsonl"
        run("export", "--url", sqlite_url, "--out", str(direct), "--all")
        run("export", "--url", server.url(), "--out", str(over_http), "--all")
        assert body(direct) == body(over_http)
        other = ServerProcess(f"sqlite:///{tmp_path}/other.db", tmp_path / "home2").start()
        try:
            run("import", str(direct), "--url", other.url())
            back = tmp_path / "back.jsonl"
            run("export", "--url", other.url(), "--out", str(back), "--all")
            assert body(direct) == body(back)
        finally:
            other.stop()
    finally:
        server.stop()


def test_migrate_refuses_its_own_source(sqlite_url):
    result = run("migrate", "--url", sqlite_url, "--to", sqlite_url, ok=False)
    assert result.exit_code == 1 and "--to is the engine being read" in result.output


def _compact(value) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))  # as botwire stores it


def _rows(path: Path) -> tuple[list, list, list]:
    """Every stored row of a SQLite database, as the database holds it."""
    conn = sqlite3.connect(path)
    try:
        kv = conn.execute(
            "SELECT ns, key, value, version, created_at, updated_at, expires_at, size "
            "FROM botwire_kv ORDER BY ns, key"
        ).fetchall()
        entries = conn.execute(
            "SELECT l.ns, l.name, l.last_seq, l.entry_count, e.seq, e.value, e.ts, e.size "
            "FROM botwire_logs l JOIN botwire_entries e ON e.log_id = l.id ORDER BY 1, 2, 5"
        ).fetchall()
        floors = conn.execute("SELECT ns, floor FROM botwire_namespaces ORDER BY ns").fetchall()
    finally:
        conn.close()
    return kv, entries, floors


def test_migrate_sqlite_to_postgres_and_back_is_byte_identical(tmp_path, pg_url):
    """100k keys and 100k log entries: SQLite -> PostgreSQL -> SQLite; the two SQLite files
    then hold the same rows, byte for byte, and export to the same lines."""
    source = f"sqlite:///{tmp_path}/source.db"
    engine = open_engine(source)
    for i in range(1000):  # 1000 callers, 100 keys and 100 entries each
        ns = f"phone:+1415555{i:04d}"
        values = [_compact({"k": k, "note": "é" * (k % 5), "x": k / 7}) for k in range(100)]
        engine.execute(ops.Put(ns, tuple((f"fact-{k:03d}", v) for k, v in enumerate(values))))
        engine.execute(ops.Append(ns, "calls", tuple(_compact({"call": e}) for e in range(100))))
        if i % 100 == 0:
            engine.execute(ops.Delete(ns, "fact-000"))  # a floor to carry over
    engine.close()
    result = run("migrate", "--url", source, "--to", pg_url)
    assert "1000 namespaces imported (99990 keys, 100000 log entries)" in result.stderr
    assert "verified: 1000 namespaces match" in result.stderr
    back = f"sqlite:///{tmp_path}/back.db"
    result = run("migrate", "--url", pg_url, "--to", back)
    assert "verified: 1000 namespaces match" in result.stderr
    original, copied = _rows(tmp_path / "source.db"), _rows(tmp_path / "back.db")
    assert len(original[0]) == 99990 and len(original[1]) == 100000 and len(original[2]) == 10
    assert original == copied
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    run("export", "--url", source, "--out", str(a), "--all")
    run("export", "--url", back, "--out", str(b), "--all")
    assert a.read_text().splitlines()[1:] == b.read_text().splitlines()[1:]  # no TTLs here


def test_export_and_import_on_postgres(tmp_path, sqlite_url, pg_url):
    fill(sqlite_url)
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    run("export", "--url", sqlite_url, "--out", str(a), "--all")
    result = run("import", str(a), "--url", pg_url)
    assert "3 namespaces imported (15 keys, 9 log entries)" in result.stderr
    assert "3 unchanged" in run("import", str(a), "--url", pg_url).stderr
    run("export", "--url", pg_url, "--out", str(b), "--all")
    assert body(a) == body(b)
    Memory("caller-00000", url=pg_url).set("fact-0000", "changed")
    result = run("import", str(a), "--url", pg_url, ok=False)
    assert result.exit_code == 1 and "'caller-00000'" in result.output
    assert Memory("caller-00000", url=pg_url).get("fact-0000") == "changed"
