"""`botwire backup` / `botwire restore`: real SQLite files, real writer processes, the CLI as a
user runs it (through click's runner and as a process), a real server holding a database open."""

from __future__ import annotations

import shlex
import sqlite3
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import quote

import pytest
from click.testing import CliRunner

import botwire
from botwire.backup import SCHEMA_VERSION, inspect, pg_dump_command
from botwire.cli import main
from botwire.engines import sqlite as sqlite_engine

BIN = Path(sys.executable).with_name("botwire")
WRITERS = 3

# A writer process: set k<n>, append n to the log "calls", then print n (acknowledged).
WRITER = r"""
import os, sys, botwire
url, name, stop = sys.argv[1:4]
with botwire.Memory(name, url=url) as m:
    calls, n = m.log("calls"), 0
    while not os.path.exists(stop) and n < 200_000:
        m.set(f"k{n}", n)
        calls.append(n)
        print(n, flush=True)
        n += 1
"""


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    """BOTWIRE_HOME for this test (the default database is home/botwire.db); no other
    setting can point the commands elsewhere."""
    for name in ("BOTWIRE_URL", "BOTWIRE_DATABASE_URL", "BOTWIRE_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    home = tmp_path / "home"
    monkeypatch.setenv("BOTWIRE_HOME", str(home))
    return home


def cli(*args: str, ok: bool = True) -> str:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    assert (result.exit_code == 0) is ok, result.output
    return result.output


def url_of(path: Path) -> str:
    return f"sqlite:///{path}"


def fill(url: str, ns: str = "cust-1", n: int = 3) -> dict[str, object]:
    values: dict[str, object] = {f"k{i}": {"i": i, "text": f"value {i}"} for i in range(n)}
    with botwire.Memory(ns, url=url) as m:
        m.set_many(values)
        m.log("calls").extend([{"call": 1}, {"call": 2}])
    return values


def contents(url: str) -> dict[str, object]:
    """Everything botwire returns from a database: namespaces, keys, values, log entries."""
    found: dict[str, object] = {}
    for ns in botwire.namespaces(url=url, include_internal=True):
        with botwire.Memory(ns, url=url) as m:
            keys = list(m.keys(include_internal=True))
            found[ns] = (m.get_many(keys), [e.value for e in m.log("calls").read(last=1000)])
    return found


def journal_bytes(path: Path) -> bytes:
    return path.read_bytes()[18:20]  # 1,1: rollback journal; 2,2: WAL


# --- backup while writers run -----------------------------------------------------------------


class Writers:
    """WRITERS processes writing to one file; ``acked[i]`` is writer i's newest acknowledged n."""

    def __init__(self, url: str, tmp_path: Path) -> None:
        self.stop_file = tmp_path / "stop"
        self.acked = [-1] * WRITERS
        self.procs = [
            subprocess.Popen(
                [sys.executable, "-c", WRITER, url, f"writer-{i}", str(self.stop_file)],
                stdout=subprocess.PIPE,
                text=True,
            )
            for i in range(WRITERS)
        ]
        self.readers = [
            threading.Thread(target=self._read, args=(i,), daemon=True) for i in range(WRITERS)
        ]
        for t in self.readers:
            t.start()

    def _read(self, i: int) -> None:
        stdout = self.procs[i].stdout
        assert stdout is not None
        for line in stdout:
            self.acked[i] = int(line)

    def wait_until_each_acked(self, n: int) -> None:
        deadline = time.monotonic() + 60
        while min(self.acked) < n:
            assert time.monotonic() < deadline, f"writers too slow: {self.acked}"
            assert all(p.poll() is None for p in self.procs), "a writer died"
            time.sleep(0.01)

    def running(self) -> bool:
        return all(p.poll() is None for p in self.procs)

    def stop(self) -> None:
        self.stop_file.touch()
        for p in self.procs:
            assert p.wait(60) == 0
        for t in self.readers:
            t.join(10)


@pytest.mark.parametrize("how", ["click-runner", "process"])
def test_backup_while_writers_run_holds_every_acknowledged_write(home, tmp_path, how):
    db = home / "botwire.db"
    home.mkdir()
    with botwire.Memory("bulk", url=url_of(db)) as m:  # some size, so the copy takes a while
        m.set_many({f"bulk-{i:05d}": "x" * 400 for i in range(4000)})
    writers = Writers(url_of(db), tmp_path)
    try:
        writers.wait_until_each_acked(20)
        acked = list(writers.acked)  # acknowledged before the backup began
        copy = tmp_path / "backup.db"
        if how == "process":  # the default database (BOTWIRE_HOME), as cron would run it
            done = subprocess.run(
                [str(BIN), "backup", str(copy)], capture_output=True, text=True, timeout=120
            )
            assert done.returncode == 0, done.stderr
            out = done.stdout
        else:
            out = cli("backup", str(copy), "--url", url_of(db))
        assert writers.running(), "the writers ran all through the backup"
    finally:
        writers.stop()
    assert f"backed up to {copy}:" in out and "integrity ok" in out
    assert f"schema version {SCHEMA_VERSION}" in out

    # A standalone file: nothing beside it, not in WAL mode, owner only, intact.
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("backup")) == [
        "backup.db"
    ]
    assert journal_bytes(copy) == b"\x01\x01"
    assert stat.S_IMODE(copy.stat().st_mode) == 0o600
    with sqlite3.connect(f"file:{copy}?mode=ro", uri=True) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION

    url = url_of(copy)
    for i, newest in enumerate(acked):
        with botwire.Memory(f"writer-{i}", url=url) as m:
            keys = list(m.keys())
            values = m.get_many([f"k{n}" for n in range(newest + 1)])
            entries = [e.value for e in m.log("calls").read(last=200_000)]
        assert values == {f"k{n}": n for n in range(newest + 1)}  # every acknowledged write
        # One instant of the database: a writer's keys are k0..k(K-1), no gap, and its log
        # holds the same numbers (the append after the newest set may not have happened yet).
        assert sorted(keys) == sorted(f"k{n}" for n in range(len(keys)))
        assert entries == list(range(len(entries))) and len(entries) in (len(keys), len(keys) - 1)
    assert len(list(botwire.Memory("bulk", url=url).keys())) == 4000


def test_backup_of_a_live_wal_needs_no_wal_file(home, tmp_path):
    db = tmp_path / "live.db"
    with botwire.Memory("cust-1", url=url_of(db)) as m:  # held open: the writes are in the WAL
        m.set_many({f"k{i}": i for i in range(50)})
        assert (tmp_path / "live.db-wal").stat().st_size > 0
        out = cli("backup", str(tmp_path / "b.db"), "--url", url_of(db))
    assert "1 namespace, 50 keys, 0 log entries" in out
    alone = tmp_path / "alone"
    alone.mkdir()
    (alone / "b.db").write_bytes((tmp_path / "b.db").read_bytes())  # the file, nothing else
    with botwire.Memory("cust-1", url=url_of(alone / "b.db")) as m:
        assert m.get_many([f"k{i}" for i in range(50)]) == {f"k{i}": i for i in range(50)}
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_backup_refuses_an_existing_path_unless_force(home, tmp_path):
    url = url_of(tmp_path / "db.db")
    fill(url)
    target = tmp_path / "b.db"
    target.write_text("precious")
    out = cli("backup", str(target), "--url", url, ok=False)
    assert f"{target} exists: pass --force to replace it" in out
    assert target.read_text() == "precious"
    cli("backup", str(target), "--url", url, "--force")
    assert inspect(str(target)).keys == 3
    assert stat.S_IMODE(target.stat().st_mode) == 0o600


def test_backup_names_each_mistake(home, tmp_path):
    url = url_of(tmp_path / "db.db")
    missing = cli("backup", str(tmp_path / "b.db"), "--url", url, ok=False)
    assert f"no botwire database at {tmp_path / 'db.db'}" in missing
    assert not (tmp_path / "db.db").exists()  # a backup never creates the database

    with sqlite3.connect(tmp_path / "other.db") as conn:
        conn.execute("CREATE TABLE t (x)")
    other = cli("backup", str(tmp_path / "b.db"), "--url", url_of(tmp_path / "other.db"), ok=False)
    assert "is a SQLite database but not a botwire database" in other

    (tmp_path / "text.db").write_text("not a database at all")
    text = cli("backup", str(tmp_path / "b.db"), "--url", url_of(tmp_path / "text.db"), ok=False)
    assert "text.db is not a SQLite database" in text

    fill(url)
    folder = cli("backup", str(tmp_path), "--url", url, ok=False)
    assert "is a folder: name the backup file" in folder
    nowhere = cli("backup", str(tmp_path / "no" / "b.db"), "--url", url, ok=False)
    assert f"the folder {tmp_path / 'no'} does not exist" in nowhere
    itself = cli("backup", str(tmp_path / "db.db"), "--url", url, "--force", ok=False)
    assert "is the database itself" in itself
    bad_url = cli("backup", "b.db", "--url", f"sqlite:///{tmp_path}/none/db.db", ok=False)
    assert f"the folder {str(tmp_path / 'none')!r} does not exist" in bad_url  # as every command
    assert "Traceback" not in missing + other + text + folder + nowhere + itself + bad_url


def test_a_corrupt_database_gives_no_backup(home, tmp_path):
    db = tmp_path / "db.db"
    with botwire.Memory("cust-1", url=url_of(db)) as m:
        m.set_many({f"k{i:04d}": "v" * 300 for i in range(2000)})
    size = db.stat().st_size
    with open(db, "r+b") as f:  # scribble over pages in the middle (not page 1: the schema)
        f.seek(size // 2 // 4096 * 4096)
        f.write(b"\xa5" * 4096 * 3)
    out = cli("backup", str(tmp_path / "b.db"), "--url", url_of(db), ok=False)
    assert f"the copy of {db} is corrupt: " in out
    assert "no backup was written" in out
    assert not [p for p in tmp_path.iterdir() if p.name.startswith((".b.db", "b.db"))]


# --- PostgreSQL and servers: refused, with what to run instead --------------------------------


def test_backup_of_postgres_gives_the_pg_dump_recipe(home):
    url = "postgresql://app:s3cret@db.internal:5432/app?options=-csearch_path%3Dbotwire&pool_max=5"
    out = cli("backup", "memory.dump", "--url", url, ok=False)
    recipe = out.splitlines()[1].strip()
    assert recipe == (
        "pg_dump --format=custom --schema=botwire --file=memory.dump "
        "'postgresql://app@db.internal:5432/app?options=-csearch_path%3Dbotwire'"
    )  # no password (PGPASSWORD, ~/.pgpass), no option of botwire's (libpq refuses them)
    assert "botwire export --url" in out and "s3cret" not in out

    public = cli("backup", "m.dump", "--url", "postgresql://app@db/app", ok=False)
    assert "pg_dump --format=custom --table='public.botwire_*' --file=m.dump" in public
    restore = cli("restore", "m.dump", "--url", url, ok=False)
    assert "pg_restore --clean --if-exists --no-owner --dbname=" in restore
    assert "botwire import FILE --url" in restore and "s3cret" not in restore


def test_backup_and_restore_of_a_server_url_say_where_to_run_them(home, monkeypatch):
    out = cli("backup", "b.db", "--url", "https://bw_secretkey@memory.example:8421", ok=False)
    assert "is a botwire server: run 'botwire backup' on the server's machine" in out
    assert "botwire export --out FILE --url https://memory.example:8421" in out
    assert "bw_secretkey" not in out
    monkeypatch.setenv("BOTWIRE_URL", "http://127.0.0.1:8421")  # the configured engine
    restored = cli("restore", "b.db", ok=False)
    assert "run 'botwire restore' on the server's machine, with the server stopped" in restored
    assert "botwire import FILE --url http://127.0.0.1:8421" in restored


@pytest.mark.postgres
@pytest.mark.parametrize("form", ["--schema", "--table"])
def test_the_pg_dump_recipe_backs_up_and_restores(home, tmp_path, fresh_postgres_url, form):
    url = fresh_postgres_url
    before = fill(url)
    dump = tmp_path / "botwire.dump"
    out = cli("backup", str(dump), "--url", url, ok=False)
    command = shlex.split(out.splitlines()[1])
    schema = next(a for a in command if a.startswith("--schema=")).partition("=")[2]
    if form == "--table":  # the public schema's form, on this test's own schema
        table = f"--table={schema}.botwire_*"
        command = [table if a.startswith("--schema=") else a for a in command]
    subprocess.run(command, check=True, timeout=120)
    with botwire.Memory("cust-1", url=url) as m:
        m.set("k0", "changed")
        m.set("new", 1)
        m.log("calls").append({"call": 3})
    out = cli("restore", str(dump), "--url", url, ok=False)
    subprocess.run(shlex.split(out.splitlines()[1]), check=True, timeout=120)
    with botwire.Memory("cust-1", url=url) as m:
        assert m.get_many([*before, "new"]) == before
        calls = m.log("calls")
        assert [e.value for e in calls.read()] == [{"call": 1}, {"call": 2}]
        assert calls.append({"call": 3}) == 3  # the log's sequence came back too


def test_the_pg_dump_schema_is_the_first_of_the_search_path():
    def dump(options: str) -> str:
        return pg_dump_command(f"postgresql://app@db/app?options={quote(options)}", "f.dump")

    assert "--schema=tenant_a " in dump("-c search_path=tenant_a,public")
    assert "--schema=tenant_a " in dump('--search_path="$user",tenant_a')
    assert """--schema='"Tenant"' """ in dump("-csearch_path=Tenant")  # patterns fold case
    assert "--table='public.botwire_*' " in dump("-csearch_path=public -cstatement_timeout=5s")


# --- restore ----------------------------------------------------------------------------------


def test_restore_round_trip_over_a_crashed_writers_wal(home, tmp_path):
    db = home / "botwire.db"  # the default database
    home.mkdir()
    fill(url_of(db))
    fill(url_of(db), ns="cust-2", n=5)
    saved = contents(url_of(db))
    backup = tmp_path / "b.db"
    cli("backup", str(backup))
    # A writer that dies without closing leaves its writes in the WAL, never checkpointed.
    crash = (
        "import os, sys, botwire; m = botwire.Memory('cust-1', url=sys.argv[1]); "
        "m.set('k0', 'after the backup'); m.set('late', 1); botwire.forget('cust-2', "
        "url=sys.argv[1]); os._exit(0)"
    )
    subprocess.run([sys.executable, "-c", crash, url_of(db)], check=True, timeout=60)
    assert (home / "botwire.db-wal").stat().st_size > 0
    out = cli("restore", str(backup), "--force")
    assert f"restored {backup} into {db}:" in out
    assert "2 namespaces, 8 keys, 4 log entries" in out and "migrated" not in out
    assert contents(url_of(db)) == saved  # exactly the backup, nothing of the old WAL
    assert not (home / "botwire.db-journal").exists()
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    assert stat.S_IMODE(db.stat().st_mode) == 0o600


def test_restore_into_a_new_home_creates_it_private(home, tmp_path):
    source = url_of(tmp_path / "db.db")
    fill(source)
    backup = tmp_path / "b.db"
    cli("backup", str(backup), "--url", source)
    assert not home.exists()
    done = subprocess.run(
        [sys.executable, "-m", "botwire", "restore", str(backup)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert stat.S_IMODE(home.stat().st_mode) == 0o700
    assert stat.S_IMODE((home / "botwire.db").stat().st_mode) == 0o600
    assert contents(url_of(home / "botwire.db")) == contents(source)
    assert cli("get", "cust-1", "k2").strip() == '{"i": 2, "text": "value 2"}'


def test_restore_refuses_a_database_that_holds_data_unless_force(home, tmp_path):
    backup = tmp_path / "b.db"
    fill(url_of(tmp_path / "db.db"))
    cli("backup", str(backup), "--url", url_of(tmp_path / "db.db"))
    target = tmp_path / "target.db"
    with botwire.Memory("mine", url=url_of(target)) as m:
        m.set("keep", 1)
    out = cli("restore", str(backup), "--url", url_of(target), ok=False)
    assert "target.db holds data (1 key, 0 logs, 0 API keys): pass --force" in out
    assert botwire.Memory("mine", url=url_of(target)).get("keep") == 1

    with sqlite3.connect(tmp_path / "app.db") as conn:  # somebody else's database
        conn.execute("CREATE TABLE orders (id)")
    foreign = cli("restore", str(backup), "--url", url_of(tmp_path / "app.db"), ok=False)
    assert "is a SQLite database but not botwire's (tables: orders)" in foreign

    (tmp_path / "notes.db").write_text("my notes")
    notes = cli("restore", str(backup), "--url", url_of(tmp_path / "notes.db"), "--force", ok=False)
    assert "notes.db is not a SQLite database" in notes and "it was not replaced" in notes
    assert (tmp_path / "notes.db").read_text() == "my notes"

    cli("restore", str(backup), "--url", url_of(target), "--force")
    assert botwire.Memory("mine", url=url_of(target)).get("keep") is None
    assert contents(url_of(target)) == contents(url_of(tmp_path / "db.db"))


def test_restore_refuses_while_a_server_has_the_database_open(home, tmp_path):
    from servers import ServerProcess

    db = tmp_path / "served.db"
    fill(url_of(db))
    backup = tmp_path / "b.db"
    cli("backup", str(backup), "--url", url_of(db))
    server = ServerProcess(url_of(db), tmp_path / "server-home").start()
    try:
        out = cli("restore", str(backup), "--url", url_of(db), "--force", ok=False)
        assert "is in use by another process (a running 'botwire serve'" in out
        assert "stop everything that uses it, then restore again" in out
    finally:
        server.stop()
    cli("restore", str(backup), "--url", url_of(db), "--force")


def test_restore_refuses_a_process_holding_memory_open(home, tmp_path):
    db = tmp_path / "db.db"
    fill(url_of(db))
    backup = tmp_path / "b.db"
    cli("backup", str(backup), "--url", url_of(db))
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, botwire; m = botwire.Memory('x', url=sys.argv[1]); m.get('k');"
            "print('open', flush=True); sys.stdin.read()",
            url_of(db),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "open\n"
        out = cli("restore", str(backup), "--url", url_of(db), "--force", ok=False)
        assert "is in use by another process" in out
    finally:
        holder.communicate("", timeout=30)
    assert holder.returncode == 0


def test_restore_names_what_is_wrong_with_a_backup(home, tmp_path):
    url = url_of(tmp_path / "db.db")
    fill(url)
    good = tmp_path / "good.db"
    cli("backup", str(good), "--url", url)

    def refused(path: Path) -> str:
        return cli("restore", str(path), "--url", url_of(tmp_path / "t.db"), ok=False)

    assert f"no backup at {tmp_path / 'missing.db'}" in refused(tmp_path / "missing.db")
    assert "is a folder, not a database file" in refused(home.parent)
    (tmp_path / "empty.db").touch()
    assert "empty.db is an empty file" in refused(tmp_path / "empty.db")
    (tmp_path / "text.db").write_text("hello")
    assert "text.db is not a SQLite database" in refused(tmp_path / "text.db")
    with sqlite3.connect(tmp_path / "plain.db") as conn:
        conn.execute("CREATE TABLE t (x)")
    assert "not a botwire database (no table botwire_kv" in refused(tmp_path / "plain.db")

    newer = tmp_path / "newer.db"
    newer.write_bytes(good.read_bytes())
    with sqlite3.connect(newer) as conn:
        conn.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    out = refused(newer)
    assert f"schema version {SCHEMA_VERSION + 1}, newer than this botwire knows" in out

    big = tmp_path / "big.db"
    with botwire.Memory("cust-1", url=url_of(big)) as m:
        m.set_many({f"k{i:04d}": "v" * 300 for i in range(2000)})
    cli("backup", str(tmp_path / "corrupt.db"), "--url", url_of(big))
    corrupt = tmp_path / "corrupt.db"
    with open(corrupt, "r+b") as f:
        f.seek(corrupt.stat().st_size // 2 // 4096 * 4096)
        f.write(b"\xa5" * 4096 * 3)
    assert "corrupt.db is corrupt" in refused(corrupt)
    assert not (tmp_path / "t.db").exists()  # every check comes before the target is touched


def test_restore_migrates_an_older_schema(home, tmp_path):
    old = tmp_path / "old.db"
    with sqlite3.connect(old, isolation_level=None) as conn:  # schema version 2, made by hand
        for statements in sqlite_engine._MIGRATIONS[:2]:
            for statement in statements:
                conn.execute(statement)
        conn.execute(
            "INSERT INTO botwire_kv VALUES ('cust-1', 'order', '\"ORDER-789\"', 1, 0, 0, NULL, 11)"
        )
        conn.execute("PRAGMA user_version=2")
    target = tmp_path / "target.db"
    out = cli("restore", str(old), "--url", url_of(target))
    assert f"schema version {SCHEMA_VERSION} (migrated from 2)" in out and "1 key" in out
    with botwire.Memory("cust-1", url=url_of(target)) as m:
        assert m.get("order") == "ORDER-789"
        assert [h.key for h in m.search("order")] == ["order"]  # search came with migration 3
