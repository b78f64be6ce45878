"""incr: atomic integer counters."""

from __future__ import annotations

import threading
import time

import pytest
from conformance_helpers import MISSING, assert_same

from botwire import BotWireError, InvalidInput, UnsupportedValue


def test_incr_missing_key_counts_as_zero(memory):
    assert memory.incr("c") == 1
    assert memory.incr("c") == 2
    assert memory.incr("d", 10) == 10
    assert memory.incr("e", by=-3) == -3
    assert_same(memory.get("c"), 2)
    assert_same(memory.get("e"), -3)


def test_incr_returns_an_int(memory):
    result = memory.incr("c", 5)
    assert type(result) is int


def test_incr_by(memory):
    memory.set("c", 100)
    assert memory.incr("c", by=5) == 105
    assert memory.incr("c", -10) == 95
    assert memory.incr("c", by=0) == 95
    assert memory.incr("c", -200) == -105
    assert_same(memory.get("c"), -105)


def test_incr_big_ints(memory):
    memory.set("c", 2**63 - 1)
    assert memory.incr("c") == 2**63
    assert_same(memory.get("c"), 2**63)
    assert memory.incr("c", 2**70) == 2**63 + 2**70
    assert memory.incr("d", -(2**64)) == -(2**64)


@pytest.mark.parametrize(
    "stored",
    [
        pytest.param("5", id="str"),
        pytest.param(1.5, id="float"),
        pytest.param(2.0, id="integral-float"),
        pytest.param(True, id="bool"),
        pytest.param(None, id="none"),
        pytest.param([1], id="list"),
        pytest.param({"n": 1}, id="dict"),
    ],
)
def test_incr_on_a_non_int_raises_and_changes_nothing(memory, stored):
    v = memory.set("c", stored, ttl=60)
    expires = memory.info("c").expires_at
    with pytest.raises(UnsupportedValue) as err:
        memory.incr("c")
    assert isinstance(err.value, TypeError)
    assert_same(memory.get("c", MISSING), stored)
    info = memory.info("c")
    assert info.version == v
    assert info.expires_at == expires


@pytest.mark.parametrize(
    "by",
    [
        pytest.param(True, id="true"),
        pytest.param(False, id="false"),
        pytest.param(1.5, id="float"),
        pytest.param(1.0, id="integral-float"),
        pytest.param("1", id="str"),
        pytest.param(None, id="none"),
    ],
)
def test_incr_by_must_be_an_int(memory, by):
    memory.set("c", 1)
    with pytest.raises(BotWireError) as err:
        memory.incr("c", by)
    assert isinstance(err.value, (InvalidInput, UnsupportedValue))
    with pytest.raises((InvalidInput, UnsupportedValue)):
        memory.incr("fresh", by)
    assert memory.get("c") == 1
    assert not memory.exists("fresh")


def test_incr_keeps_ttl(memory):
    memory.set("c", 1, ttl=0.3)
    expires = memory.info("c").expires_at
    assert memory.incr("c") == 2
    assert memory.info("c").expires_at == pytest.approx(expires, abs=1e-3)
    time.sleep(0.45)
    assert memory.get("c", MISSING) is MISSING


def test_incr_on_missing_key_has_no_ttl(memory):
    memory.incr("c")
    assert memory.info("c").expires_at is None


def test_incr_keeps_created_at(memory):
    memory.set("c", 1)
    created = memory.info("c").created_at
    time.sleep(0.02)
    memory.incr("c")
    info = memory.info("c")
    assert info.created_at == created
    assert info.updated_at > created


def test_incr_from_threads_is_atomic(memory):
    n_threads, per_thread = 8, 50
    errors = []

    def work():
        try:
            for _ in range(per_thread):
                memory.incr("c")
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(n_threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert memory.get("c") == n_threads * per_thread


def test_incr_results_are_distinct_across_threads(memory):
    results: list[int] = []
    lock = threading.Lock()

    def work():
        mine = [memory.incr("ticket") for _ in range(40)]
        with lock:
            results.extend(mine)

    threads = [threading.Thread(target=work) for _ in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == list(range(1, 201))
