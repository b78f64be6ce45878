"""Values: any JSON value round-trips exactly; anything else is refused and stores nothing."""

from __future__ import annotations

import datetime
import decimal
import math

import pytest
from conformance_helpers import MISSING, assert_same, json_strategies, strict_equal
from hypothesis import HealthCheck, given, settings

import botwire
from botwire import InvalidInput, UnsupportedValue, ValueTooLarge

EXACT_VALUES = [
    pytest.param(1, id="int"),
    pytest.param(0, id="zero"),
    pytest.param(-7, id="negative-int"),
    pytest.param("1", id="str-digit"),
    pytest.param(True, id="true"),
    pytest.param(False, id="false"),
    pytest.param(1.5, id="float"),
    pytest.param(1.0, id="float-integral"),
    pytest.param(-0.0, id="negative-zero"),
    pytest.param(0.1 + 0.2, id="float-inexact"),
    pytest.param(1e300, id="float-huge"),
    pytest.param(5e-324, id="float-subnormal"),
    pytest.param(1e16, id="float-exponent"),
    pytest.param(2**64, id="int-2^64"),
    pytest.param(-(2**100), id="int-minus-2^100"),
    pytest.param(10**40 + 1, id="int-10^40+1"),
    pytest.param(2**63 - 1, id="int-max-int64"),
    pytest.param(-(2**63), id="int-min-int64"),
    pytest.param("", id="empty-str"),
    pytest.param([], id="empty-list"),
    pytest.param({}, id="empty-dict"),
    pytest.param('{"x": 1}', id="json-looking-str"),
    pytest.param("null", id="str-null"),
    pytest.param("true", id="str-true"),
    pytest.param("[1, 2]", id="str-list"),
    pytest.param('"quoted"', id="str-quoted"),
    pytest.param("héllo wörld ✓ 日本語 🎉 \U0010ffff", id="unicode"),
    pytest.param("a\x00b", id="str-with-nul"),
    pytest.param("\\u0000 \\n \\\\", id="str-with-backslashes"),
    pytest.param("line1\nline2\r\n\ttab", id="str-control-chars"),
    pytest.param("'; DROP TABLE botwire_kv; --", id="sql-ish"),
    pytest.param([1, "1", True, None, 1.5, [], {}], id="mixed-list"),
    pytest.param({"b": 1, "a": 2, "c": {"z": 1, "y": [1, {"x": None}]}}, id="dict-order"),
    pytest.param({"": "empty key", " ": "space", "\x00": "nul key"}, id="odd-dict-keys"),
    pytest.param({"n": None}, id="dict-with-none"),
    pytest.param([[[[[[[[[[1]]]]]]]]]], id="deep-list"),
    pytest.param("x" * 100_000, id="long-str"),
]


@pytest.mark.parametrize("value", EXACT_VALUES)
def test_value_round_trips_exactly(memory, value):
    memory.set("k", value)
    assert_same(memory.get("k", MISSING), value)
    assert_same(memory["k"], value)
    assert_same(memory.get_many(["k"])["k"], value)
    assert_same(dict(memory.items())["k"], value)


def test_round_trip_survives_a_new_memory(memory, ns, engine_url):
    value = {"b": [1, 1.0, True, "1", None], "a": {"y": -0.0, "x": 2**70}}
    memory.set("k", value)
    with botwire.Memory(ns, url=engine_url) as other:
        assert_same(other.get("k"), value)


def test_none_is_storable_and_distinct_from_missing(memory):
    assert memory.get("absent", MISSING) is MISSING
    assert memory.get("absent") is None
    memory.set("n", None)
    assert memory.get("n", MISSING) is None
    assert memory.exists("n")
    assert "n" in memory
    assert memory["n"] is None
    assert memory.get_many(["n", "absent"]) == {"n": None}
    assert list(memory.keys()) == ["n"]
    assert memory.count() == 1
    assert memory.info("n") is not None


def test_default_is_returned_as_is(memory):
    default = ["shared", "object"]
    assert memory.get("absent", default) is default
    assert memory.get("absent", 0) == 0


def test_returned_values_are_independent_copies(memory):
    memory.set("k", {"a": [1, 2]})
    first = memory.get("k")
    first["a"].append(3)
    first["b"] = 1
    assert memory.get("k") == {"a": [1, 2]}


def test_value_passed_to_set_can_be_mutated_afterwards(memory):
    value = {"a": [1]}
    memory.set("k", value)
    value["a"].append(2)
    assert memory.get("k") == {"a": [1]}


def test_overwrite_changes_type(memory):
    for value in (1, "1", 1.0, True, None, [1], {"1": 1}, "x"):
        memory.set("k", value)
        assert_same(memory.get("k", MISSING), value)


def test_strict_equal_helper_distinguishes_what_it_must():
    # the helper below is what makes the round-trip tests meaningful
    assert not strict_equal(1, 1.0)
    assert not strict_equal(1, True)
    assert not strict_equal(0.0, -0.0)
    assert not strict_equal({"a": 1, "b": 2}, {"b": 2, "a": 1})
    assert not strict_equal([1], (1,))
    assert strict_equal({"a": [1, 2.5, None]}, {"a": [1, 2.5, None]})


JSON_VALUES, _ = json_strategies()


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(value=JSON_VALUES)
def test_any_json_value_round_trips(memory, value):
    memory.set("prop", value)
    assert_same(memory.get("prop", MISSING), value)


# --- values that are not JSON -----------------------------------------------------------------


class _Obj:
    pass


UNSUPPORTED = [
    pytest.param(datetime.datetime(2024, 1, 1), id="datetime"),
    pytest.param(datetime.date(2024, 1, 1), id="date"),
    pytest.param({1, 2}, id="set"),
    pytest.param(frozenset(), id="frozenset"),
    pytest.param(b"bytes", id="bytes"),
    pytest.param(bytearray(b"x"), id="bytearray"),
    pytest.param((1, 2), id="tuple"),
    pytest.param((), id="empty-tuple"),
    pytest.param(object(), id="object"),
    pytest.param(_Obj(), id="instance"),
    pytest.param({1: "a"}, id="int-dict-key"),
    pytest.param({None: "a"}, id="none-dict-key"),
    pytest.param({(1, 2): "a"}, id="tuple-dict-key"),
    pytest.param({"ok": {2.5: "a"}}, id="nested-float-dict-key"),
    pytest.param({True: "a"}, id="bool-dict-key"),
    pytest.param(decimal.Decimal("1.5"), id="decimal"),
    pytest.param(1 + 2j, id="complex"),
    pytest.param([1, (2, 3)], id="tuple-in-list"),
    pytest.param({"a": {"b": [set()]}}, id="deep-set"),
    pytest.param({"a": b"x"}, id="bytes-in-dict"),
    pytest.param(len, id="function"),
    pytest.param(range(3), id="range"),
]

INVALID_CONTENT = [
    pytest.param(math.nan, id="nan"),
    pytest.param(math.inf, id="inf"),
    pytest.param(-math.inf, id="minus-inf"),
    pytest.param([1.0, math.nan], id="nan-in-list"),
    pytest.param({"a": {"b": math.inf}}, id="inf-in-dict"),
    pytest.param("\ud800", id="lone-surrogate"),
    pytest.param("ok \udfff ok", id="lone-low-surrogate"),
    pytest.param({"k": ["x\ud83d"]}, id="nested-surrogate"),
    pytest.param({"\ud800": 1}, id="surrogate-dict-key"),
]


def _assert_nothing_written(memory, before_count):
    assert memory.get("fresh", MISSING) is MISSING
    assert not memory.exists("fresh")
    assert memory.get("existing") == {"keep": [1, 2]}
    assert memory.count() == before_count
    assert "fresh" not in set(memory.keys())


@pytest.mark.parametrize("bad", UNSUPPORTED)
def test_unsupported_values_raise_type_error_and_store_nothing(memory, bad):
    v = memory.set("existing", {"keep": [1, 2]})
    with pytest.raises(UnsupportedValue) as err:
        memory.set("fresh", bad)
    assert isinstance(err.value, TypeError)
    with pytest.raises(UnsupportedValue):
        memory.set("existing", bad)
    with pytest.raises(UnsupportedValue):
        memory["existing"] = bad
    with pytest.raises(UnsupportedValue):
        memory.set_many({"fresh": 1, "existing": bad})
    _assert_nothing_written(memory, 1)
    assert memory.info("existing").version == v


@pytest.mark.parametrize("bad", INVALID_CONTENT)
def test_non_finite_floats_and_surrogates_raise_value_error_and_store_nothing(memory, bad):
    v = memory.set("existing", {"keep": [1, 2]})
    with pytest.raises(InvalidInput) as err:
        memory.set("fresh", bad)
    assert isinstance(err.value, ValueError)
    assert not isinstance(err.value, UnsupportedValue)
    with pytest.raises(InvalidInput):
        memory.set("existing", bad)
    with pytest.raises(InvalidInput):
        memory.set_many({"fresh": 1, "existing": bad})
    _assert_nothing_written(memory, 1)
    assert memory.info("existing").version == v


@pytest.mark.parametrize(
    "value, where",
    [
        pytest.param(
            {"orders": [{"at": datetime.date(2024, 5, 1)}]},
            "ctx.orders[0].at: date",
            id="date-in-list-in-dict",
        ),
        pytest.param(datetime.date(2024, 5, 1), "ctx: date", id="top-level"),
        pytest.param([1, (2, 3)], "ctx[1]: tuple", id="tuple-in-list"),
        pytest.param({"a b": {"c": [{1, 2}]}}, "ctx['a b'].c[0]: set", id="quoted-key"),
        pytest.param({"a": "ok", "b": b"x"}, "ctx.b: bytes", id="bytes-after-a-good-value"),
    ],
)
def test_unsupported_value_message_names_its_path_and_type(memory, value, where):
    with pytest.raises(UnsupportedValue) as err:
        memory.set("ctx", value)
    assert str(err.value).startswith(f"{where} is not a JSON value")
    with pytest.raises(UnsupportedValue) as err:
        memory.set_many({"fine": 1, "ctx": value})
    assert str(err.value).startswith(f"{where} is not a JSON value")
    assert not memory.exists("ctx") and not memory.exists("fine")


def test_non_str_dict_key_message_names_its_path(memory):
    with pytest.raises(
        UnsupportedValue, match=r"^ctx\.orders\[0\]: dict keys must be str, not int"
    ):
        memory.set("ctx", {"orders": [{1: "one"}]})
    assert not memory.exists("ctx")


def test_self_referencing_value_is_refused(memory):
    loop: list = [1]
    loop.append(loop)
    with pytest.raises((InvalidInput, UnsupportedValue)):
        memory.set("fresh", loop)
    assert memory.get("fresh", MISSING) is MISSING


# --- size limit ---------------------------------------------------------------------------------


@pytest.fixture
def small_memory(ns, engine_url):
    m = botwire.Memory(ns, url=engine_url, max_value_bytes=100)
    yield m
    m.close()


def test_value_above_max_value_bytes_raises_and_stores_nothing(small_memory):
    m = small_memory
    v = m.set("existing", "small")
    big = "x" * 200
    with pytest.raises(ValueTooLarge) as err:
        m.set("fresh", big)
    assert isinstance(err.value, InvalidInput) and isinstance(err.value, ValueError)
    with pytest.raises(ValueTooLarge):
        m.set("existing", big)
    with pytest.raises(ValueTooLarge):
        m.set("existing", {"a": ["y" * 150]})
    with pytest.raises(ValueTooLarge):
        m.set_many({"fresh": 1, "other": big})
    assert m.get("fresh", MISSING) is MISSING
    assert m.get("other", MISSING) is MISSING
    assert m.get("existing") == "small"
    assert m.info("existing").version == v
    assert m.count() == 1


def test_value_too_large_names_the_key_and_the_settings_that_raise_the_limit(small_memory):
    with pytest.raises(ValueTooLarge) as err:
        small_memory.set("notes", "x" * 200)
    message = str(err.value)
    assert message.startswith("notes is 202 bytes encoded; the limit is 100 bytes")
    assert "max_value_bytes=" in message and "BOTWIRE_MAX_VALUE_BYTES" in message
    assert not small_memory.exists("notes")


def test_value_exactly_at_max_value_bytes_is_accepted(small_memory):
    m = small_memory
    at_limit = "x" * 98  # '"' + 98 + '"' = 100 bytes of JSON
    m.set("k", at_limit)
    assert m.get("k") == at_limit
    assert m.info("k").size == 100
    with pytest.raises(ValueTooLarge):
        m.set("k2", "x" * 99)
    assert not m.exists("k2")


def test_size_limit_counts_utf8_bytes_not_characters(small_memory):
    # 60 characters, but 180 bytes of UTF-8: above the limit however the JSON is written
    with pytest.raises(ValueTooLarge):
        small_memory.set("k", "€" * 60)
    assert not small_memory.exists("k")


def test_size_limit_applies_to_log_entries(small_memory):
    log = small_memory.log("calls")
    assert log.append("ok") == 1
    with pytest.raises(ValueTooLarge):
        log.append("x" * 200)
    with pytest.raises(ValueTooLarge):
        log.extend(["fine", "x" * 200])
    assert [e.value for e in log.read()] == ["ok"]
    assert log.append("next") == 2


def test_default_limit_accepts_large_values(memory):
    value = {"blob": "y" * 500_000, "list": list(range(20_000))}
    memory.set("k", value)
    assert memory.get("k") == value


def test_default_limit_is_one_mebibyte(memory):
    with pytest.raises(ValueTooLarge):
        memory.set("k", "z" * (1024 * 1024))  # 1048578 bytes of JSON
    assert not memory.exists("k")
    memory.set("k", "z" * (1024 * 1024 - 2))  # exactly 1048576 bytes
    assert len(memory.get("k")) == 1024 * 1024 - 2
