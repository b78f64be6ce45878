"""``BotWireStorage``: CrewAI's memory ``StorageBackend`` protocol over botwire.

The protocol is checked method by method on the embedded engine, PostgreSQL and a botwire
server (the ``url`` fixture); then CrewAI's own ``Memory`` and a whole crew run on it, with a
scripted LLM and a bag-of-words embedder, so nothing leaves the machine.
"""

from __future__ import annotations

from frameworks import need

need("crewai", "crewai")

import inspect  # noqa: E402
import math  # noqa: E402
import re  # noqa: E402
import uuid  # noqa: E402
from datetime import datetime, timedelta, timezone  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
from crewai import Agent, Crew, Task  # noqa: E402
from crewai.memory import Memory as CrewMemory  # noqa: E402
from crewai.memory import MemoryRecord  # noqa: E402
from crewai.memory.storage.backend import (  # noqa: E402
    EmbeddingDimensionMismatchError,
    StorageBackend,
)

from botwire import InvalidInput, InvalidKey, Memory, UnsupportedValue  # noqa: E402
from botwire.adapters.crewai import BotWireStorage  # noqa: E402

DOCS = Path(__file__).resolve().parents[3] / "docs" / "crewai.md"
T0 = datetime(2026, 1, 10, 12, 0, 0)


def new_ns() -> str:
    return f"crewai-memory-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def ns() -> str:
    return new_ns()


@pytest.fixture
def storage(ns, url):
    made = BotWireStorage(ns, url=url)
    yield made
    made.close()


def stored(ns: str, url: str) -> dict:
    with Memory(ns, url=url) as memory:
        return dict(memory.items())


def rec(content: str, scope: str = "/", *, embedding=None, **fields) -> MemoryRecord:
    return MemoryRecord(content=content, scope=scope, embedding=embedding, **fields)


def cosine(a: list[float], b: list[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    return dot / (math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b)))


# -- the protocol -----------------------------------------------------------------------------


def test_every_protocol_method_is_there_with_the_protocol_signature(ns, sqlite_url):
    storage = BotWireStorage(ns, url=sqlite_url)
    assert isinstance(storage, StorageBackend)
    names = [
        n for n, v in vars(StorageBackend).items() if callable(v) and not n.startswith("_")
    ]
    assert len(names) >= 14
    for name in names:
        ours = inspect.signature(getattr(BotWireStorage, name))
        theirs = inspect.signature(getattr(StorageBackend, name))
        assert [(p.name, p.default) for p in ours.parameters.values()] == [
            (p.name, p.default) for p in theirs.parameters.values()
        ], name
        protocol_is_async = inspect.iscoroutinefunction(getattr(StorageBackend, name))
        assert inspect.iscoroutinefunction(getattr(BotWireStorage, name)) == protocol_is_async
    storage.close()


def test_a_record_round_trips_with_every_field(storage, ns, url):
    record = rec(
        "Ana prefers Portuguese",
        "/customers/ana",
        categories=["preferences", "language"],
        metadata={"entities": ["Ana"], "nested": {"n": 1, "ok": True, "none": None}},
        importance=0.9,
        created_at=T0,
        last_accessed=T0 + timedelta(hours=1),
        embedding=[0.1, -0.25, 1e-300, 3.0],
        source="call-17",
        private=True,
    )
    storage.save([record])
    got = storage.get_record(record.id)
    assert got == record and got.embedding == record.embedding
    assert storage.get_record("no-such-id") is None
    assert stored(ns, url) == {
        f"record:{record.id}": {
            "content": "Ana prefers Portuguese",
            "scope": "/customers/ana",
            "categories": ["preferences", "language"],
            "metadata": {"entities": ["Ana"], "nested": {"n": 1, "ok": True, "none": None}},
            "importance": 0.9,
            "created_at": "2026-01-10T12:00:00",
            "last_accessed": "2026-01-10T13:00:00",
            "source": "call-17",
            "private": True,
        },
        f"embedding:{record.id}": [0.1, -0.25, 1e-300, 3.0],
        "embedding-dimensions": 4,
    }


def test_scopes_are_normalized_like_crewai_paths(storage):
    for raw, normal in [("customers//ana/", "/customers/ana"), ("", "/"), ("/", "/")]:
        record = rec("x", raw)
        storage.save([record])
        assert storage.get_record(record.id).scope == normal


def test_times_come_back_as_naive_utc_like_crewai_makes_them(storage):
    aware = datetime(2026, 1, 10, 14, 0, tzinfo=timezone(timedelta(hours=2)))
    record = rec("from another zone", created_at=aware, last_accessed=aware)
    storage.save([record, rec("naive", created_at=T0 + timedelta(minutes=1))])
    got = storage.get_record(record.id)
    assert got.created_at == got.last_accessed == T0 and got.created_at.tzinfo is None
    assert [r.content for r in storage.list_records()] == ["naive", "from another zone"]
    assert storage.delete(older_than=T0 + timedelta(seconds=1)) == 1


def test_saving_an_existing_id_replaces_the_record_and_its_embedding(storage):
    first = rec("old", "/a", embedding=[1.0, 0.0])
    storage.save([first])
    storage.save([rec("new", "/b", id=first.id)])  # no embedding now
    got = storage.get_record(first.id)
    assert (got.content, got.scope, got.embedding) == ("new", "/b", None)
    assert storage.search([1.0, 0.0]) == []
    assert storage.count() == 1


def test_update_replaces_the_record_or_adds_it(storage):
    record = rec("Ana likes tea", "/customers", embedding=[1.0, 0.0], created_at=T0)
    storage.save([record])
    changed = record.model_copy(update={"content": "Ana likes coffee", "scope": "/vip"})
    storage.update(changed)
    assert storage.get_record(record.id) == changed
    assert storage.count("/customers") == 0 and storage.count("/vip") == 1
    fresh = rec("added by update", embedding=[0.0, 1.0])
    storage.update(fresh)
    assert storage.get_record(fresh.id) == fresh


# -- search -----------------------------------------------------------------------------------


def test_search_ranks_by_cosine_similarity(storage):
    query = [1.0, 0.2, 0.0]
    records = [
        rec("same direction", embedding=[2.0, 0.4, 0.0]),
        rec("close", embedding=[1.0, 0.5, 0.1]),
        rec("orthogonal", embedding=[0.0, 0.0, 1.0]),
        rec("opposite", embedding=[-1.0, -0.2, 0.0]),
        rec("no embedding"),
    ]
    storage.save(records)
    hits = storage.search(query)
    assert [r.content for r, _ in hits] == ["same direction", "close", "orthogonal"]
    for record, score in hits:
        assert score == pytest.approx(cosine(query, record.embedding))
        assert record.embedding is not None
    assert hits[0][1] == pytest.approx(1.0)
    assert [r.content for r, _ in storage.search(query, limit=2)] == ["same direction", "close"]
    assert [r.content for r, _ in storage.search(query, min_score=0.9)] == [
        "same direction",
        "close",
    ]
    everything = storage.search(query, min_score=-1.0)
    assert [r.content for r, _ in everything][-1] == "opposite"
    assert storage.search(query, limit=0) == []
    assert storage.search([0.0, 0.0, 0.0]) == []
    assert storage.search([]) == []


def test_search_stays_within_the_scope_and_below(storage):
    v = [1.0, 0.0]
    for scope in ["/", "/a", "/a/b", "/a/b/c", "/ab", "/x"]:
        storage.save([rec(scope, scope, embedding=v)])

    def found(prefix):
        return sorted(r.content for r, _ in storage.search(v, scope_prefix=prefix))

    assert found("/a") == ["/a", "/a/b", "/a/b/c"]
    assert found("a/") == found("/a/") == found("/a")
    assert found("/a/b") == ["/a/b", "/a/b/c"]
    assert found(None) == found("/") == found("") == ["/", "/a", "/a/b", "/a/b/c", "/ab", "/x"]
    assert found("/nope") == []


def test_search_filters_categories_and_metadata(storage):
    v = [1.0, 0.0]
    storage.save(
        [
            rec("tea", categories=["drinks", "prefs"], metadata={"who": "ana", "n": 1},
                embedding=v),
            rec("coffee", categories=["drinks"], metadata={"who": "bo", "n": 1}, embedding=v),
            rec("cats", categories=["pets"], metadata={"who": "ana"}, embedding=v),
        ]
    )

    def found(**filters):
        return sorted(r.content for r, _ in storage.search(v, **filters))

    assert found(categories=["drinks"]) == ["coffee", "tea"]
    assert found(categories=["prefs", "pets"]) == ["cats", "tea"]  # any category
    assert found(metadata_filter={"who": "ana"}) == ["cats", "tea"]
    assert found(metadata_filter={"who": "ana", "n": 1}) == ["tea"]  # every item
    assert found(metadata_filter={"n": None}) == []  # a missing item is not None
    assert found(categories=["drinks"], metadata_filter={"who": "bo"}) == ["coffee"]
    assert found(categories=[]) == found() == ["cats", "coffee", "tea"]


def test_embedding_dimensions_must_agree(storage, ns, url):
    storage.save([rec("three", embedding=[1.0, 0.0, 0.0])])
    before = stored(ns, url)
    with pytest.raises(EmbeddingDimensionMismatchError) as raised:
        storage.save([rec("two", embedding=[1.0, 0.0])])
    assert (raised.value.stored_dim, raised.value.new_dim) == (3, 2)
    with pytest.raises(EmbeddingDimensionMismatchError):
        storage.save([rec("a", embedding=[1.0, 0.0, 0.0]), rec("b", embedding=[1.0])])
    with pytest.raises(EmbeddingDimensionMismatchError):
        storage.search([1.0, 0.0])
    assert stored(ns, url) == before
    storage.reset()
    storage.save([rec("two", embedding=[1.0, 0.0])])  # a reset store takes any size
    assert len(storage.search([1.0, 0.0])) == 1


# -- delete, reset, listings ------------------------------------------------------------------


@pytest.fixture
def filled(storage):
    """Six records over a few scopes, categories and days."""
    day = timedelta(days=1)
    records = {
        "r1": rec("r1", "/crew/a", categories=["x"], created_at=T0, metadata={"k": 1}),
        "r2": rec("r2", "/crew/a/sub", categories=["y"], created_at=T0 + day),
        "r3": rec("r3", "/crew/b", categories=["x", "y"], created_at=T0 + 2 * day),
        "r4": rec("r4", "/crew/ab", categories=["z"], created_at=T0 + 3 * day),
        "r5": rec("r5", "/other", created_at=T0 + 4 * day, metadata={"k": 1}),
        "r6": rec("r6", "/", created_at=T0 + 5 * day),
    }
    storage.save(list(records.values()))
    return records


def contents(records) -> list[str]:
    return sorted(r.content for r in records)


def left(storage) -> list[str]:
    return contents(storage.list_records())


def test_delete_by_ids(storage, filled):
    ids = [filled["r1"].id, filled["r2"].id, "missing", filled["r1"].id]
    assert storage.delete(record_ids=ids) == 2
    assert left(storage) == ["r3", "r4", "r5", "r6"]
    assert storage.delete(record_ids=[]) == 0  # no id selects nothing, not everything
    assert storage.count() == 4


@pytest.mark.parametrize(
    ("criteria", "deleted"),
    [
        ({"scope_prefix": "/crew/a"}, ["r1", "r2"]),
        ({"scope_prefix": "/crew"}, ["r1", "r2", "r3", "r4"]),
        ({"categories": ["y"]}, ["r2", "r3"]),
        ({"older_than": T0 + timedelta(days=2)}, ["r1", "r2"]),
        ({"older_than": (T0 + timedelta(days=2)).replace(tzinfo=timezone.utc)}, ["r1", "r2"]),
        ({"metadata_filter": {"k": 1}}, ["r1", "r5"]),
        ({"scope_prefix": "/crew", "categories": ["x"]}, ["r1", "r3"]),
        ({"categories": ["x", "y"], "older_than": T0 + timedelta(days=2)}, ["r1", "r2"]),
        ({"scope_prefix": "/crew", "record_ids": "r3 r5"}, ["r3"]),
        ({}, ["r1", "r2", "r3", "r4", "r5", "r6"]),
    ],
)
def test_delete_takes_records_matching_every_criterion(storage, filled, criteria, deleted):
    criteria = dict(criteria)
    if "record_ids" in criteria:
        criteria["record_ids"] = [filled[n].id for n in criteria["record_ids"].split()]
    assert storage.delete(**criteria) == len(deleted)
    assert left(storage) == sorted(set(filled) - set(deleted))


def test_reset_a_scope_or_everything(storage, filled, ns, url):
    storage.reset("/crew/a")
    assert left(storage) == ["r3", "r4", "r5", "r6"]
    storage.reset()
    assert storage.count() == 0 and stored(ns, url) == {}


def test_list_records_newest_first_with_paging(storage, filled):
    assert [r.content for r in storage.list_records()] == ["r6", "r5", "r4", "r3", "r2", "r1"]
    assert [r.content for r in storage.list_records("/crew", limit=2, offset=1)] == ["r3", "r2"]
    assert storage.list_records(limit=0) == [] and storage.list_records(offset=-1) == []
    assert all(r.embedding is None for r in storage.list_records())


def test_scope_info_scopes_categories_and_counts(storage, filled):
    info = storage.get_scope_info("/crew")
    assert info.path == "/crew" and info.record_count == 4
    assert info.categories == ["x", "y", "z"]
    assert (info.oldest_record, info.newest_record) == (T0, T0 + timedelta(days=3))
    assert info.child_scopes == ["/crew/a", "/crew/ab", "/crew/b"]
    assert storage.get_scope_info("crew/a/").child_scopes == ["/crew/a/sub"]
    root = storage.get_scope_info("/")
    assert (root.path, root.record_count, root.child_scopes) == ("/", 6, ["/crew", "/other"])
    empty = storage.get_scope_info("/nothing")
    assert (empty.record_count, empty.categories, empty.oldest_record) == (0, [], None)

    assert storage.list_scopes() == ["/crew", "/other"]
    assert storage.list_scopes("/crew") == ["/crew/a", "/crew/ab", "/crew/b"]
    assert storage.list_scopes("/crew/a") == ["/crew/a/sub"]
    assert storage.list_scopes("/crew/b") == []

    assert storage.list_categories() == {"x": 2, "y": 2, "z": 1}
    assert storage.list_categories("/crew/a") == {"x": 1, "y": 1}
    assert storage.count() == 6 and storage.count("/crew/a") == 2 and storage.count("/x") == 0


def test_touch_records_refreshes_last_accessed_only(storage, filled):
    before = datetime.now(timezone.utc).replace(tzinfo=None)
    storage.touch_records([filled["r1"].id, "missing"])
    touched = storage.get_record(filled["r1"].id)
    assert touched.last_accessed >= before
    assert touched.model_copy(update={"last_accessed": T0}) == filled["r1"].model_copy(
        update={"last_accessed": T0}
    )
    assert storage.get_record(filled["r2"].id).last_accessed == filled["r2"].last_accessed


# -- async twins ------------------------------------------------------------------------------


async def test_async_save_search_and_delete(storage, ns, url):
    near, far = rec("near", "/a", embedding=[1.0, 0.1]), rec("far", "/b", embedding=[0.1, 1.0])
    await storage.asave([near, far])
    assert storage.get_record(near.id) == near
    hits = await storage.asearch([1.0, 0.0], limit=5)
    assert [(r.content, round(s, 6)) for r, s in hits] == [
        (r.content, round(s, 6)) for r, s in storage.search([1.0, 0.0], limit=5)
    ]
    assert [r.content for r, _ in await storage.asearch([1.0, 0.0], scope_prefix="/b")] == [
        "far"
    ]
    with pytest.raises(EmbeddingDimensionMismatchError):
        await storage.asave([rec("bad", embedding=[1.0])])
    assert await storage.adelete(scope_prefix="/a") == 1
    assert await storage.adelete(record_ids=[far.id, "missing"]) == 1
    await storage.asave([near])
    assert await storage.adelete() == 1
    assert stored(ns, url) == {}


# -- bad input --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("bad", "error"),
    [
        (rec("when", metadata={"at": datetime(2026, 1, 1)}), UnsupportedValue),
        (rec("nan", embedding=[1.0, float("nan")]), InvalidInput),
        (rec("long id", id="x" * 600), InvalidKey),
        ("not a record", InvalidInput),
    ],
)
def test_a_bad_record_stores_nothing_of_its_batch(storage, ns, url, bad, error):
    good = rec("good", embedding=[1.0, 0.0])
    with pytest.raises(error):
        storage.save([good, bad])
    assert stored(ns, url) == {}


def test_bad_arguments_are_refused(storage):
    with pytest.raises(InvalidInput, match="finite"):
        storage.search([1.0, float("inf")])
    with pytest.raises(InvalidInput, match="limit"):
        storage.search([1.0], limit=-1)
    with pytest.raises(InvalidInput, match="metadata_filter"):
        storage.search([1.0], metadata_filter=[("k", 1)])
    with pytest.raises(InvalidInput, match="record_ids"):
        storage.delete(record_ids="abc")
    with pytest.raises(InvalidKey):
        BotWireStorage("")
    with pytest.raises(TypeError, match="namespace"):
        BotWireStorage()
    with pytest.raises(ValueError, match="differs"):
        BotWireStorage("other", memory=storage.memory)
    assert BotWireStorage(memory=storage.memory).namespace == storage.namespace


def test_copies_share_the_storage(storage):
    import copy

    assert copy.deepcopy(storage) is storage  # a database handle: copies share it


# -- CrewAI's Memory and a crew on this storage -----------------------------------------------


def test_crewai_memory_api_runs_on_botwire(ns, url, embedder, scripted_llm):
    memory = CrewMemory(storage=BotWireStorage(ns, url=url), llm=scripted_llm(), embedder=embedder)
    saved = memory.remember(
        "Ana prefers to be called in the morning",
        scope="/customers/ana",
        categories=["preferences"],
        importance=0.9,
    )
    memory.remember(
        "Bo paid invoice 42", scope="/customers/bo", categories=["billing"], importance=0.5
    )
    shallow = memory.recall("when should we call Ana", depth="shallow")
    assert shallow[0].record.id == saved.id
    deep = memory.recall("when should we call Ana", scope="/customers/ana")
    assert [m.record.id for m in deep] == [saved.id]
    assert memory.list_scopes("/customers") == ["/customers/ana", "/customers/bo"]
    assert memory.info("/customers").record_count == 2
    assert memory.list_categories() == {"preferences": 1, "billing": 1}
    assert "/customers/ana" in memory.tree()
    memory.update(saved.id, content="Ana prefers evening calls")
    assert memory.recall("evening calls", depth="shallow")[0].record.content == (
        "Ana prefers evening calls"
    )
    assert memory.forget(scope="/customers/bo") == 1
    assert [r.content for r in memory.list_records()] == ["Ana prefers evening calls"]
    memory.close()

    with Memory(ns, url=url) as raw:  # what is in botwire, read without CrewAI
        records = {k: v for k, v in raw.items("record:")}
        (value,) = records.values()
        assert value["content"] == "Ana prefers evening calls"
        assert raw.get("embedding:" + saved.id) == embedder(["Ana prefers evening calls"])[0]


REMEMBERED = re.compile(r"Relevant memories:\n- \(score=[\d.]+\) .*favorite color is (\w+)")
NOTED = "Noted: the caller's favorite color is blue."


def answer_from_memory(prompt: str) -> str:
    """The agent's reply when the recalled memories in its prompt hold the color."""
    found = REMEMBERED.search(prompt)
    return f"Your favorite color is {found.group(1)}." if found else "I don't know."


def crew_run(llm, description: str, **crew_options) -> str:
    agent = Agent(
        role="Phone support agent",
        goal="Help callers, remembering what they told you",
        backstory="You answer the phone for a small shop.",
        llm=llm,
    )
    task = Task(description=description, expected_output="A short reply", agent=agent)
    return Crew(agents=[agent], tasks=[task], **crew_options).kickoff().raw


def saved_record(ns: str, url: str) -> tuple[dict, list]:
    """The one record in the namespace and its embedding, read without CrewAI."""
    with Memory(ns, url=url) as raw:
        ((key, fields),) = raw.items("record:")
        return fields, raw.get("embedding:" + key.removeprefix("record:"))


def test_a_crew_with_memory_saves_to_botwire_and_recalls_in_the_next_run(
    url, embedder, scripted_llm
):
    ns = new_ns()

    def run(description: str, reply) -> str:
        llm = scripted_llm(reply, function_calling=True)
        memory = CrewMemory(storage=BotWireStorage(ns, url=url), llm=llm, embedder=embedder)
        try:
            return crew_run(llm, description, memory=memory)
        finally:
            memory.close()

    assert run("The caller says: my favorite color is blue.", NOTED) == NOTED
    fields, embedding = saved_record(ns, url)  # CrewAI saved what it learned, through us
    assert NOTED in fields["content"]
    assert fields["scope"] == "/customers" and fields["categories"] == ["preferences"]
    assert embedding == embedder([fields["content"]])[0]

    # a new run with new objects: the memory comes back from botwire into the agent's prompt
    assert run("The caller asks: what is my color?", answer_from_memory) == (
        "Your favorite color is blue."
    )


def test_crews_with_memory_true_use_botwire_through_the_storage_factory(
    sqlite_url, embedder, scripted_llm
):
    from crewai.memory.storage.factory import set_memory_storage_factory
    from crewai.rag.embeddings.providers.custom.custom_provider import CustomProvider
    from crewai.rag.embeddings.providers.custom.embedding_callable import (
        CustomEmbeddingFunction,
    )

    class BagOfWords(CustomEmbeddingFunction):
        def __call__(self, input):  # noqa: A002 - CrewAI's parameter name
            return embedder(list(input))

    ns = new_ns()
    options = {
        "name": "Support",
        "memory": True,
        "embedder": CustomProvider(embedding_callable=BagOfWords),
    }
    set_memory_storage_factory(
        lambda spec: BotWireStorage(ns, url=sqlite_url) if spec == "lancedb" else None
    )
    try:
        llm = scripted_llm(NOTED, function_calling=True)
        assert crew_run(llm, "The caller says: my favorite color is blue.", **options) == NOTED
        fields, _ = saved_record(ns, sqlite_url)
        assert fields["scope"] == "/crew/support/agent/phone-support-agent/customers"
        llm = scripted_llm(answer_from_memory, function_calling=True)
        assert crew_run(llm, "The caller asks: what is my color?", **options) == (
            "Your favorite color is blue."
        )
    finally:
        set_memory_storage_factory(None)


# -- the docs ---------------------------------------------------------------------------------


def doc_blocks() -> list[str]:
    """The ```python blocks of docs/crewai.md, except those marked as needing an API key."""
    text = DOCS.read_text(encoding="utf-8")
    blocks = re.findall(r"(<!-- needs an LLM API key -->\n)?```python\n(.*?)```", text, flags=re.S)
    return [code for marker, code in blocks if not marker]


def test_the_docs_example_runs_offline(tmp_path, monkeypatch, capsys):
    for name in ("BOTWIRE_URL", "BOTWIRE_DATABASE_URL", "BOTWIRE_MAX_VALUE_BYTES"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.setenv("BOTWIRE_HOME", str(tmp_path))
    blocks = doc_blocks()
    assert blocks
    scope: dict = {}
    for block in blocks:
        exec(compile(block, str(DOCS), "exec"), scope)
    out = capsys.readouterr().out
    assert "Remembered favorite_color: blue" in out
    assert "Ana prefers morning calls" in out
    assert (tmp_path / "botwire.db").exists()
