"""Engine selection: read when a Memory is created (never at import), first match wins."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import textwrap

import pytest

import botwire
from botwire import ConfigurationError, ValueTooLarge


@pytest.fixture
def clean_env(monkeypatch):
    for name in ("BOTWIRE_URL", "BOTWIRE_DATABASE_URL", "BOTWIRE_HOME", "BOTWIRE_MAX_VALUE_BYTES"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_default_is_botwire_db_in_botwire_home(clean_env, tmp_path, ns):
    # botwire is already imported: the setting below must still be honoured
    home = tmp_path / "home"
    clean_env.setenv("BOTWIRE_HOME", str(home))
    with botwire.Memory(ns) as m:
        m.set("k", "in home")
    assert (home / "botwire.db").is_file()
    with botwire.Memory(ns, url=f"sqlite:///{home}/botwire.db") as m:
        assert m.get("k") == "in home"


def test_botwire_home_is_read_per_memory(clean_env, tmp_path, ns):
    clean_env.setenv("BOTWIRE_HOME", str(tmp_path / "one"))
    with botwire.Memory(ns) as m:
        m.set("k", "one")
    clean_env.setenv("BOTWIRE_HOME", str(tmp_path / "two"))
    with botwire.Memory(ns) as m:
        assert m.get("k") is None
        m.set("k", "two")
    assert (tmp_path / "one" / "botwire.db").is_file()
    assert (tmp_path / "two" / "botwire.db").is_file()
    clean_env.setenv("BOTWIRE_HOME", str(tmp_path / "one"))
    with botwire.Memory(ns) as m:
        assert m.get("k") == "one"


def test_botwire_database_url_is_honoured(clean_env, tmp_path, ns):
    db = tmp_path / "elsewhere" / "custom.db"
    db.parent.mkdir()
    clean_env.setenv("BOTWIRE_HOME", str(tmp_path / "home"))
    clean_env.setenv("BOTWIRE_DATABASE_URL", f"sqlite:///{db}")
    with botwire.Memory(ns) as m:
        m.set("k", "via env url")
    assert db.is_file()
    assert not (tmp_path / "home" / "botwire.db").exists()
    with botwire.Memory(ns, url=f"sqlite:///{db}") as m:
        assert m.get("k") == "via env url"


def test_url_argument_beats_the_environment(clean_env, tmp_path, ns):
    clean_env.setenv("BOTWIRE_HOME", str(tmp_path / "home"))
    clean_env.setenv("BOTWIRE_DATABASE_URL", f"sqlite:///{tmp_path}/env.db")
    with botwire.Memory(ns, url=f"sqlite:///{tmp_path}/arg.db") as m:
        m.set("k", 1)
    assert (tmp_path / "arg.db").is_file()
    assert not (tmp_path / "env.db").exists()
    assert not (tmp_path / "home" / "botwire.db").exists()


def test_postgres_database_url_from_the_environment(clean_env, postgres_url, ns):
    clean_env.setenv("BOTWIRE_DATABASE_URL", postgres_url)
    with botwire.Memory(ns) as m:
        m.set("k", "in postgres")
    with botwire.Memory(ns, url=postgres_url) as m:
        assert m.get("k") == "in postgres"


def test_postgres_scheme_alias(clean_env, postgres_url, ns):
    assert postgres_url.startswith("postgresql://")
    alias = "postgres://" + postgres_url[len("postgresql://") :]
    with botwire.Memory(ns, url=alias) as m:
        m.set("k", "via alias")
    with botwire.Memory(ns, url=postgres_url) as m:
        assert m.get("k") == "via alias"


def test_relative_sqlite_path(clean_env, tmp_path, ns):
    clean_env.chdir(tmp_path)
    (tmp_path / "relative").mkdir()
    with botwire.Memory(ns, url="sqlite:///relative/path.db") as m:
        m.set("k", 1)
    assert (tmp_path / "relative" / "path.db").is_file()


@pytest.mark.parametrize("url", ["sqlite:///{tmp}/typo-dir/x.db", "sqlite:///typo-dir/x.db"])
def test_sqlite_folder_that_does_not_exist_is_named_not_made(clean_env, tmp_path, ns, url):
    clean_env.chdir(tmp_path)
    with pytest.raises(ConfigurationError, match=r"the folder '[^']*typo-dir' does not exist"):
        botwire.Memory(ns, url=url.format(tmp=tmp_path))
    assert not (tmp_path / "typo-dir").exists()


def test_sqlite_absolute_path_typo(clean_env, ns):
    with pytest.raises(ConfigurationError, match="'/nonexistent-dir' does not exist"):
        botwire.Memory(ns, url="sqlite:////nonexistent-dir/x.db")
    assert not os.path.exists("/nonexistent-dir")


@pytest.mark.parametrize("path", ["/tmp/x.db", "x.db", "data/x.db"])
def test_bare_path_suggests_the_sqlite_url(clean_env, tmp_path, ns, path):
    clean_env.chdir(tmp_path)
    with pytest.raises(ConfigurationError, match=f"is not a URL: .*write sqlite:///{path} "):
        botwire.Memory(ns, url=path)
    assert list(tmp_path.iterdir()) == []


def test_the_default_home_is_made_owner_only_with_its_files(clean_env, tmp_path, ns):
    home = tmp_path / "home" / "botwire"
    clean_env.setenv("BOTWIRE_HOME", str(home))
    with botwire.Memory(ns) as m:
        m.set("k", "v")  # a write: the WAL, its index and the write gate's lock file exist
        made = sorted(p.name for p in home.iterdir())
        modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in home.iterdir()}
    assert {"botwire.db", "botwire.db-wal", "botwire.db-shm", "botwire.db-botwire.lock"} <= set(
        made
    )
    assert modes == {name: 0o600 for name in made}
    assert stat.S_IMODE(home.stat().st_mode) == 0o700


def test_an_existing_database_file_keeps_its_mode(clean_env, tmp_path, ns):
    home = tmp_path / "home"
    home.mkdir(mode=0o755)
    path = home / "botwire.db"
    path.touch()
    path.chmod(0o644)
    clean_env.setenv("BOTWIRE_HOME", str(home))
    with botwire.Memory(ns) as m:
        m.set("k", "v")
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert stat.S_IMODE(home.stat().st_mode) == 0o755


@pytest.mark.parametrize(
    "url",
    [
        "mysql://user@host/db",
        "redis://localhost:6379",
        "ftp://example.com/x",
        "nonsense",
        "sqlite3:///x.db",
    ],
)
def test_unknown_scheme_raises_configuration_error(clean_env, tmp_path, ns, url):
    clean_env.chdir(tmp_path)
    with pytest.raises(ConfigurationError):
        m = botwire.Memory(ns, url=url)
        try:
            m.set("k", 1)
        finally:
            m.close()


def test_unknown_scheme_in_environment_raises_configuration_error(clean_env, ns):
    clean_env.setenv("BOTWIRE_DATABASE_URL", "mysql://user@host/db")
    with pytest.raises(ConfigurationError):
        m = botwire.Memory(ns)
        try:
            m.set("k", 1)
        finally:
            m.close()


def test_configuration_error_is_a_botwire_error():
    assert issubclass(ConfigurationError, botwire.BotWireError)


def test_max_value_bytes_from_the_environment(clean_env, engine_url, ns):
    clean_env.setenv("BOTWIRE_MAX_VALUE_BYTES", "100")
    with botwire.Memory(ns, url=engine_url) as m:
        m.set("ok", "x" * 50)
        with pytest.raises(ValueTooLarge):
            m.set("big", "x" * 200)
        assert not m.exists("big")
    with botwire.Memory(ns, url=engine_url, max_value_bytes=1000) as m:
        m.set("big", "x" * 200)  # the argument beats the environment


def test_importing_botwire_reads_no_configuration(tmp_path):
    # a bad setting must not break the import, only the creation of a Memory
    code = textwrap.dedent(
        """
        import botwire
        try:
            botwire.Memory("ns").set("k", 1)
        except botwire.ConfigurationError:
            print("configuration error at use")
        """
    )
    env = {"BOTWIRE_DATABASE_URL": "mysql://nope/x", "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    proc = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "configuration error at use"


def test_import_creates_no_files(tmp_path):
    home = tmp_path / "home"
    env = {"BOTWIRE_HOME": str(home), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    proc = subprocess.run(
        [sys.executable, "-c", "import botwire"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    assert not home.exists()


@pytest.mark.parametrize(
    "url",
    [
        "sqlite:///x.db?password=hunter2",
        "mysql://app:hunter2@db/x",
        "http://bw_hunter2@[::1",
        "http://bw_hunter2@host:8421?retries=many",
        "http://bw_hunter2@host:port",
        "host=db.internal user=app password=hunter2 dbname=app",
        "host=db password='hunter2 x' port=5432",
        "sqlite:///x.db?password=hunter2#x",
    ],
)
def test_configuration_errors_never_show_a_secret(clean_env, tmp_path, ns, url):
    clean_env.chdir(tmp_path)
    with pytest.raises(ConfigurationError) as err:
        botwire.Memory(ns, url=url)
    assert "hunter2" not in str(err.value)


def test_the_home_is_made_owner_only_by_whoever_makes_it_first(clean_env, tmp_path):
    from botwire.server.run import save_admin_key
    from botwire.voice.settings import write_file

    clean_env.setenv("BOTWIRE_HOME", str(tmp_path / "a" / "home"))
    save_admin_key("bw_test")
    assert stat.S_IMODE((tmp_path / "a" / "home").stat().st_mode) == 0o700
    write_file(str(tmp_path / "b" / "home" / "voice.json"), {})
    assert stat.S_IMODE((tmp_path / "b" / "home").stat().st_mode) == 0o700


@pytest.mark.parametrize(
    "conninfo",
    ["host=db.internal user=app password=hunter2 dbname=app", " dbname = app password=hunter2"],
)
def test_a_libpq_conninfo_is_told_to_be_written_as_a_url(clean_env, ns, conninfo):
    with pytest.raises(ConfigurationError, match="libpq connection string") as err:
        botwire.Memory(ns, url=conninfo)
    assert "postgresql://user:password@host:5432/db" in str(err.value)
    assert "hunter2" not in str(err.value) and "sqlite:///" not in str(err.value)


def test_a_conninfo_in_the_environment_is_never_shown(clean_env, ns):
    clean_env.setenv("BOTWIRE_DATABASE_URL", "host=db user=app password=hunter2")
    with pytest.raises(ConfigurationError, match="postgresql://user:password@") as err:
        botwire.Memory(ns)
    assert "hunter2" not in str(err.value)


@pytest.mark.parametrize(
    "url, named, what",
    [
        ("sqlite:///{tmp}/", "", "is a folder"),
        ("sqlite:///{tmp}/sub", "sub", "is a folder"),
        ("sqlite:///{tmp}/new/", "new", "names (it ends with /) a folder"),
    ],
)
def test_a_sqlite_path_that_is_a_folder_is_named(clean_env, tmp_path, ns, url, named, what):
    (tmp_path / "sub").mkdir()
    with pytest.raises(ConfigurationError, match="a folder, not a file") as err:
        botwire.Memory(ns, url=url.format(tmp=tmp_path))
    path = str(tmp_path / named) if named else str(tmp_path)
    assert f"{path!r} {what}, not a file" in str(err.value)
    assert not (tmp_path / "new").exists()


def test_a_sqlite_file_that_became_a_folder_is_named(clean_env, tmp_path, ns):
    from botwire.engines.sqlite import SQLiteEngine

    path = tmp_path / "x.db"
    engine = SQLiteEngine(str(path))
    path.mkdir()  # after the URL was checked: the engine says so on first use
    with pytest.raises(ConfigurationError, match="is a folder, not a file") as err:
        botwire.Memory(ns, engine=engine).set("k", 1)
    assert repr(str(path)) in str(err.value)
    engine.close()
