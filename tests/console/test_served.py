"""/console over real sockets without a browser: a session opened on one ``botwire serve`` is
honoured by another on the same database and after a restart (SQLite and PostgreSQL)."""

from __future__ import annotations

import httpx
import pytest
from consolekit import Served, field

pytestmark = pytest.mark.processes


@pytest.fixture(params=["sqlite", "postgres"])
def database(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/botwire.db"
    return request.getfixturevalue("fresh_postgres_url")


def sign_in(client: httpx.Client, key: str) -> str:
    token = field(client.get("/console/sign-in").text, "sign_in_token")
    answer = client.post("/console/sign-in", data={"sign_in_token": token, "api_key": key})
    assert answer.status_code == 303
    return client.cookies["botwire_console"]


def test_a_session_is_good_on_every_replica_and_after_a_restart(database, tmp_path):
    first = Served(database, tmp_path / "a").start()
    second = Served(database, tmp_path / "b").start()
    try:
        key = first.admin or second.admin
        with httpx.Client(base_url=first.base) as one:
            session_id = sign_in(one, key)
            assert one.get("/console/callers").status_code == 200
        cookies = {"botwire_console": session_id}
        with httpx.Client(base_url=second.base, cookies=cookies) as other:
            page = other.get("/console/callers")
            assert page.status_code == 200 and "Sign out" in page.text
            first.restart()
            with httpx.Client(base_url=first.base, cookies=cookies) as again:
                assert again.get("/console/callers").status_code == 200
                csrf = field(page.text, "csrf")
                assert again.post("/console/sign-out", data={"csrf": csrf}).status_code == 303
            assert other.get("/console/callers").status_code == 303  # ended everywhere
    finally:
        first.close()
        second.close()
