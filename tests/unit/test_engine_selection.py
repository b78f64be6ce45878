"""Engine selection details beyond the conformance suite: URL parsing, sharing, limits."""

from __future__ import annotations


import pytest

import botwire
from botwire import ConfigurationError, Memory
from botwire.engines import default_path, open_engine


@pytest.fixture(autouse=True)
def clean_env(monkeypatch, tmp_path):
    for name in ("BOTWIRE_URL", "BOTWIRE_DATABASE_URL", "BOTWIRE_MAX_VALUE_BYTES"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("BOTWIRE_HOME", str(tmp_path / "home"))


def test_without_home_uses_the_user_data_dir(monkeypatch, tmp_path):
    monkeypatch.delenv("BOTWIRE_HOME")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert default_path() == str(tmp_path / "xdg" / "botwire" / "botwire.db")


@pytest.mark.parametrize(
    "url",
    [
        "redis://localhost",
        "nonsense",
        "sqlite://host/x.db",
        "sqlite:///",
        "sqlite:///x.db?bogus=1",
        "sqlite:///x.db?synchronous=sometimes",
        "sqlite:///x.db?timeout=soon",
    ],
)
def test_bad_urls_raise_configuration_error(url):
    with pytest.raises(ConfigurationError):
        open_engine(url)


def test_botwire_url_picks_the_http_engine_and_never_shows_the_key(monkeypatch):
    from botwire.engines.http import HttpEngine

    monkeypatch.setenv("BOTWIRE_URL", "http://secret-key@localhost:8421")
    with Memory("ns") as m:
        assert isinstance(m.engine, HttpEngine)
        assert "secret-key" not in repr(m) and "secret-key" not in m.engine.url
        assert m.engine._key == "secret-key"


def test_api_key_sources_in_order(monkeypatch):
    from botwire.engines.http import split_url

    monkeypatch.setenv("BOTWIRE_API_KEY", "from-env")
    assert split_url("http://h:1", None)[1] == "from-env"
    assert split_url("http://from-url@h:1", None)[1] == "from-url"
    assert split_url("http://:from-password@h:1", None)[1] == "from-password"
    assert split_url("http://from-url@h:1", "given")[1] == "given"
    base, _, options = split_url("https://k@h:1/prefix/?timeout=2&retries=0", None)
    assert base == "https://h:1/prefix" and options["timeout"] == 2 and options["retries"] == 0


@pytest.mark.parametrize("url", ["http://k@h:1?bogus=1", "http://k@h:1?timeout=soon", "http:///x"])
def test_bad_http_urls_are_configuration_errors_without_the_key(url):
    with pytest.raises(ConfigurationError) as exc:
        Memory("ns", url=url)
    assert "k@" not in str(exc.value)


def test_api_key_with_a_database_url_is_an_error(tmp_path):
    with pytest.raises(ConfigurationError, match="api_key"):
        Memory("ns", url=f"sqlite:///{tmp_path}/x.db", api_key="k")


def test_memories_on_one_url_share_one_engine_until_the_last_closes(tmp_path):
    url = f"sqlite:///{tmp_path}/shared.db"
    a, b = Memory("a", url=url), Memory("b", url=url)
    assert a.engine is b.engine
    a.close()
    b.set("still", "open")
    b.close()
    c = Memory("c", url=url)
    assert c.engine is not a.engine
    assert Memory("b", url=url).get("still") == "open"
    c.close()


@pytest.mark.parametrize("bad", [0, -1, 1.5, "10", True])
def test_max_value_bytes_must_be_a_positive_int(bad):
    with pytest.raises(botwire.InvalidInput):
        Memory("ns", max_value_bytes=bad)
