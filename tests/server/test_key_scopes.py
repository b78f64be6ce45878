"""Key management is a function of prefixes, rights and quotas: a property test against the real
server (in-process, real SQLite file) and the escalation it once allowed."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from botwire.engines import open_engine
from botwire.engines.base import ListKeys, SaveKey
from botwire.server import Settings, create_app
from botwire.server.auth import RIGHTS, new_key

DEFAULT_WRITES, DEFAULT_BYTES = 1000, 50 * 1024 * 1024
# Prefixes that once matched the placeholder text "(every namespace)", plus ordinary ones.
PREFIXES = st.sampled_from(["", "(", "(e", "(every", "a", "ac", "acme:", "acme:1", "b", "ba"])
QUOTAS = st.sampled_from([None, 0, 10, 1000, 5000])
WANTED_QUOTAS = st.sampled_from([None, 0, 5, 10, 3000, 100_000])
LOOSE = [HealthCheck.function_scoped_fixture]  # one server for all examples, keys accumulate


class Server:
    def __init__(self, tmp_path) -> None:
        url = f"sqlite:///{tmp_path}/keys.db"
        self.engine = open_engine(url)
        settings_ = Settings(database=url, writes_per_day=DEFAULT_WRITES, max_bytes=DEFAULT_BYTES)
        self.client = TestClient(create_app(settings_, engine=self.engine))

    def key(self, prefixes, rights, writes=None, stored=None) -> tuple[str, str]:
        secret, record = new_key(
            "caller", prefixes, rights, writes_per_day=writes, max_bytes=stored
        )
        assert self.engine.execute(SaveKey(record))
        return secret, record.id

    def call(self, method, path, secret, **kw):
        headers = {"Authorization": f"Bearer {secret}"}
        return self.client.request(method, path, headers=headers, **kw)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    s = Server(tmp_path_factory.mktemp("keys"))
    with s.client:
        yield s
    s.engine.close()


def extends(prefix: str, own: list[str]) -> bool:
    return any(prefix.startswith(p) for p in own)


def quota_ok(own_prefixes, own, wanted, default) -> bool:
    """A maker cannot hand out more quota than it has (0 means unlimited), except the
    operator's kind of key: every namespace and no limit of its own."""
    if "" in own_prefixes and own is None:
        return True
    effective = default if own is None else own
    value = own if wanted is None else wanted
    asked = default if value is None else value
    return not effective or (asked != 0 and asked <= effective)


caller_strategy = st.tuples(
    st.lists(PREFIXES, min_size=1, max_size=3), st.sampled_from(RIGHTS), QUOTAS, QUOTAS
)
request_strategy = st.tuples(
    st.lists(PREFIXES, min_size=1, max_size=3),
    st.sampled_from(RIGHTS),
    WANTED_QUOTAS,
    WANTED_QUOTAS,
)


@settings(max_examples=150, deadline=None, suppress_health_check=LOOSE)
@given(caller=caller_strategy, wanted=request_strategy)
def test_a_key_is_created_iff_it_stays_within_its_maker(server, caller, wanted):
    own, rights, own_writes, own_bytes = caller
    prefixes, new_rights, writes, stored = wanted
    secret, _ = server.key(own, rights, own_writes, own_bytes)
    body = {"prefixes": prefixes, "rights": new_rights, "writes_per_day": writes,
            "max_bytes": stored}
    r = server.call("POST", "/v1/keys", secret, json=body)
    allowed = (
        rights == "admin"
        and all(extends(p, own) for p in prefixes)
        and quota_ok(own, own_writes, writes, DEFAULT_WRITES)
        and quota_ok(own, own_bytes, stored, DEFAULT_BYTES)
    )
    assert r.status_code == (201 if allowed else 403), (caller, wanted, r.text)
    if allowed:
        made = r.json()
        assert made["rights"] == new_rights and set(made["prefixes"]) == set(prefixes)
        for p in prefixes:  # the new key reaches its own prefixes, and nothing the maker can't
            ns = p + "x"
            got = server.call("GET", f"/v1/namespaces/{ns}/keys/k", made["key"])
            assert got.status_code == 404, got.text
        assert server.call("GET", "/v1/namespaces/zz/keys/k", made["key"]).status_code == (
            404 if extends("zz", prefixes) else 403
        )


@settings(max_examples=60, deadline=None, suppress_health_check=LOOSE)
@given(caller=caller_strategy, target=st.lists(PREFIXES, min_size=1, max_size=3))
def test_list_and_revoke_see_exactly_the_covered_keys(server, caller, target):
    own, rights, _, _ = caller
    secret, caller_id = server.key(own, rights)
    _, target_id = server.key(target, "read")
    listed = server.call("GET", "/v1/keys", secret)
    if rights != "admin":
        assert listed.status_code == 403
        assert server.call("DELETE", f"/v1/keys/{target_id}", secret).status_code == 403
        return
    every = server.engine.execute(ListKeys())
    expected = {k.id for k in every if all(extends(p, own) for p in k.prefixes)}
    assert {k["id"] for k in listed.json()["keys"]} == expected
    revoked = server.call("DELETE", f"/v1/keys/{target_id}", secret)
    covered = all(extends(p, own) for p in target)
    assert revoked.status_code == (200 if covered else 404), revoked.text


@pytest.mark.parametrize("scope", ["(", "(e", "(every", "(every namespace)"])
def test_an_admin_scoped_to_the_placeholder_text_cannot_mint_a_global_key(server, scope):
    secret, _ = server.key([scope], "admin")
    admin, _ = server.key([""], "admin")
    put = server.call("PUT", "/v1/namespaces/acme:1/keys/k", admin, content=b"1")
    assert put.status_code == 200
    r = server.call("POST", "/v1/keys", secret, json={"prefixes": [""], "rights": "admin"})
    assert r.status_code == 403 and "every namespace" in r.json()["error"]["message"]
    r = server.call("POST", "/v1/keys", secret, json={"prefixes": ["acme:"], "rights": "read"})
    assert r.status_code == 403 and "'acme:'" in r.json()["error"]["message"]


def test_an_admin_of_every_namespace_with_a_quota_cannot_hand_out_more(server):
    secret, _ = server.key([""], "admin", writes=10, stored=1000)
    for body in ({"writes_per_day": 0}, {"max_bytes": 0}, {"writes_per_day": 11}):
        r = server.call("POST", "/v1/keys", secret, json={"prefixes": ["a"], **body})
        assert r.status_code == 403, (body, r.text)
    made = server.call("POST", "/v1/keys", secret, json={"prefixes": ["a"], "writes_per_day": 5})
    assert made.status_code == 201 and made.json()["max_bytes"] == 1000  # inherited
