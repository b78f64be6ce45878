"""Keyword search: ``Memory.search`` over a namespace's keys, values and log entries."""

from __future__ import annotations

import time
import uuid

import pytest

import botwire
from botwire import InvalidInput, SearchHit, _search

# Forms of one word, each pair searched both ways: query one, store the other.
VARIANTS = [
    ("allergies", "allergic"),
    ("allergy", "allergic"),
    ("allergies", "allergy"),
    ("orders", "ordered"),
    ("shipping", "shipped"),
    ("cancellation", "cancel"),
]
BOTH_WAYS = VARIANTS + [(b, a) for a, b in VARIANTS]


def unique_ns(tag: str) -> str:  # as tests/conftest.py's (a plain import of it is ambiguous)
    return f"{tag}-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def customer(memory):
    memory.set("last_order", "ORDER-789: two pizzas, delivered late")
    memory.set("name", "Ann Smith")
    memory.set("pet", {"kind": "dog", "name": "Rex"})
    memory.set("plan", "premium support contract renewed in March")
    memory.log("calls").extend(
        ["asked when the courier arrives", "complained that the soup was cold"]
    )
    return memory


def keys_of(hits: list[SearchHit]) -> list[str | None]:
    return [h.key for h in hits]


def test_finds_a_value_by_a_word(customer):
    hits = customer.search("courier")
    assert [(h.log, h.seq, h.value) for h in hits] == [
        ("calls", 1, "asked when the courier arrives")
    ]
    assert hits[0].key is None


def test_finds_a_key_by_its_name(customer):
    assert keys_of(customer.search("plan")) == ["plan"]


def test_hit_carries_the_decoded_value_and_time(customer):
    before = time.time()
    customer.set("favourite", {"drink": "espresso", "sizes": [1, 2]})
    (hit,) = customer.search("espresso")
    assert hit == SearchHit("favourite", None, None, {"drink": "espresso", "sizes": [1, 2]},
                            hit.ts, hit.score)
    assert before - 5 <= hit.ts <= time.time() + 5
    assert isinstance(hit.score, float)


def test_words_inside_json_values_match(customer):
    assert keys_of(customer.search("rex")) == ["pet"]


def test_stemming_matches_other_forms(customer):
    assert keys_of(customer.search("pizza")) == ["last_order"]
    assert keys_of(customer.search("renewing contracts")) == ["plan"]


@pytest.mark.parametrize(("query", "stored"), BOTH_WAYS)
def test_a_word_finds_its_other_forms(memory, query, stored):
    memory.set("fact", f"{stored.capitalize()} to peanuts")
    memory.log("notes").append(f"customer said: {stored}")
    memory.set("other", "likes long walks")
    hits = memory.search(query)
    assert sorted((h.key or "", h.log or "") for h in hits) == [("", "notes"), ("fact", "")]


def test_other_forms_through_the_sqlite_index(memory, engine_id):
    if engine_id != "sqlite":
        pytest.skip("the shared FTS5 index is SQLite's path for large namespaces")
    memory.engine.search_direct_max = 0  # every search goes through the index
    for n, (query, stored) in enumerate(BOTH_WAYS):
        memory.set(f"fact{n}", f"{stored} to peanuts {n}")
        memory.log(f"notes{n}").append(f"customer said: {stored} {n}")
        found = {(h.key, h.log) for h in memory.search(f"{query} {n}")}
        assert {(f"fact{n}", None), (None, f"notes{n}")} <= found, (query, stored)
        memory.clear()
        memory.log(f"notes{n}").clear()


@pytest.mark.parametrize("direct", [True, False])
def test_the_word_as_written_ranks_above_its_variants(memory, engine_id, direct):
    if not direct:
        if engine_id != "sqlite":
            pytest.skip("the shared FTS5 index is SQLite's path for large namespaces")
        memory.engine.search_direct_max = 0
    memory.set_many({"a": "allergic to peanuts", "b": "allergy to cats", "c": "allergies noted"})
    hits = keys_of(memory.search("allergic"))
    assert hits[0] == "a" and set(hits) == {"a", "b", "c"}
    hits = keys_of(memory.search("allergy"))
    assert set(hits[:2]) == {"b", "c"} and hits[2] == "a"


def test_roots():
    assert _search.root("allergies") == _search.root("allergy") == "allerg"
    assert _search.root("allergic") == "allergic"  # the database stems it: allerg
    assert _search.root("happiness") is None  # "happ": too short to find only its own forms
    assert _search.root("cats") is None
    assert _search.root("order789") is None


def test_a_short_word_matches_only_its_own_forms(memory):
    memory.set_many({"a": "two cats", "b": "a category of goods"})
    assert keys_of(memory.search("cat")) == ["a"]


def test_case_and_punctuation_do_not_matter(customer):
    assert keys_of(customer.search("SMITH!")) == ["name"]
    assert keys_of(customer.search("order-789")) == ["last_order"]


def test_any_word_may_match_and_more_matching_words_rank_higher(memory):
    memory.set("a", "the customer wants a refund")
    memory.set("b", "refund approved for the damaged blender")
    memory.set("c", "the blender arrived")
    hits = memory.search("refund for damaged blender")
    assert keys_of(hits)[0] == "b"
    assert set(keys_of(hits)) == {"a", "b", "c"}
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)


def test_a_rare_word_outranks_a_common_one(memory):
    memory.set_many({f"note{i}": f"call note {i} about billing" for i in range(20)})
    memory.set("urgent", "billing dispute escalated")
    assert keys_of(memory.search("escalated billing"))[0] == "urgent"


def test_equal_scores_come_in_a_fixed_order(memory):
    memory.set_many({f"k{i}": "olive oil" for i in (3, 1, 4, 0, 2)})  # one write: one time
    memory.log("b").extend(["olive oil", "olive oil", "olive oil"])
    hits = memory.search("olive", limit=100)
    assert [h.key for h in hits if h.key] == ["k0", "k1", "k2", "k3", "k4"]
    assert [(h.log, h.seq) for h in hits if h.log] == [("b", 1), ("b", 2), ("b", 3)]
    assert memory.search("olive", limit=100) == hits
    assert memory.search("olive", limit=3) == hits[:3]


def test_limit(memory):
    memory.set_many({f"k{i}": f"apple number {i}" for i in range(30)})
    assert len(memory.search("apple")) == 10
    assert len(memory.search("apple", limit=3)) == 3
    assert len(memory.search("apple", limit=100)) == 30


def test_no_match_and_nothing_searchable(customer):
    assert customer.search("zebra") == []
    assert customer.search("") == []
    assert customer.search("the and of") == []  # only common words
    assert customer.search("?! -- ...") == []


def test_overwritten_value_is_found_by_its_new_words_only(memory):
    memory.set("status", "waiting for the technician")
    memory.set("status", "resolved by phone")
    assert memory.search("technician") == []
    assert keys_of(memory.search("resolved")) == ["status"]
    memory.incr("visits")
    memory.incr("visits")
    assert [h.value for h in memory.search("visits")] == [2]


def test_deleted_and_cleared_keys_are_not_found(memory):
    memory.set("a", "kiwi")
    memory.set("b", "kiwi fruit")
    memory.delete("a")
    assert keys_of(memory.search("kiwi")) == ["b"]
    memory.clear()
    assert memory.search("kiwi") == []


def test_expired_keys_are_not_found(memory):
    memory.set("short", "mango", ttl=0.2)
    memory.set("long", "mango lassi", ttl=3600)
    time.sleep(0.3)
    assert keys_of(memory.search("mango")) == ["long"]


def test_cleared_log_is_not_found(customer):
    customer.log("calls").clear()
    assert customer.search("courier") == []
    assert customer.log("calls").append("courier again") == 3
    assert [(h.log, h.seq) for h in customer.search("courier")] == [("calls", 3)]


def test_namespaces_do_not_see_each_other(memory, engine_url):
    memory.set("secret", "walnut")
    with botwire.Memory(unique_ns("other"), url=engine_url) as other:
        other.set("secret", "walnut cake")
        other.log("notes").append("walnut allergy")
        assert keys_of(memory.search("walnut")) == ["secret"]
        assert [h.value for h in memory.search("walnut")] == ["walnut"]
        assert len(other.search("walnut")) == 2


def test_namespace_without_letters_or_digits(engine_url):
    with botwire.Memory("---" + unique_ns("x").replace("-", "").translate(
            str.maketrans("", "", "0123456789abcdefghijklmnopqrstuvwxyz_")), url=engine_url) as m:
        m.clear()
        m.set("k", "papaya")
        assert keys_of(m.search("papaya")) == ["k"]


def test_forgotten_namespace_is_not_found(engine_url):
    ns = unique_ns("forget")
    with botwire.Memory(ns, url=engine_url) as m:
        m.set("k", "quince")
        m.log("l").append("quince jam")
        botwire.forget(ns, url=engine_url)
        assert m.search("quince") == []
        m.set("k2", "quince tart")
        assert keys_of(m.search("quince")) == ["k2"]


def test_unicode_words(memory):
    memory.set("greeting", "Grüße aus München")
    memory.set("city", "東京")
    assert keys_of(memory.search("münchen")) == ["greeting"]
    assert keys_of(memory.search("東京")) == ["city"]


@pytest.mark.parametrize("limit", [0, -1, 1001, 2.5, "3", True, None])
def test_bad_limit_is_refused(memory, limit):
    with pytest.raises(InvalidInput, match="limit"):
        memory.search("x", limit=limit)


@pytest.mark.parametrize("query", [None, 3, b"bytes", ["list"]])
def test_query_must_be_a_str(memory, query):
    with pytest.raises(InvalidInput, match="query must be a str"):
        memory.search(query)


def test_query_length_is_bounded(memory):
    with pytest.raises(InvalidInput, match="characters"):
        memory.search("word " * 1000)


async def test_async_search(amemory):
    await amemory.set("note", "the printer jammed again")
    await amemory.log("calls").append("printer fixed")
    hits = await amemory.search("printer")
    assert {(h.key, h.log) for h in hits} == {("note", None), (None, "calls")}
    assert await amemory.search("printer", limit=1) == hits[:1]
