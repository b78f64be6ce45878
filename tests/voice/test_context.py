"""The memory text: deterministic, budgeted, in order of importance; variables are strings."""

from __future__ import annotations

from hypothesis import given, strategies as st

from botwire.voice.context import FIRST_CALL, Snapshot, build, variables

CALLS = [
    {
        "call_id": "c2",
        "platform": "vapi",
        "ended_at": 1755511500.0,
        "duration_s": 300.0,
        "summary": "Asked to reschedule.",
        "outcome": "customer-ended-call",
        "successful": False,
    },
    {
        "call_id": "c1",
        "platform": "vapi",
        "ended_at": 1755000000.0,
        "duration_s": 45.0,
        "summary": "Booked a table.",
        "outcome": None,
    },
]
SNAP = Snapshot(
    facts={
        "customer_name": "Ana",
        "allergies": ["peanuts"],
        "open:refund": "ORDER-789",
        "last_call": CALLS[0],
        "~call/vapi/c2/end": {"state": "done"},
        "zip code": "94110",
    },
    calls=CALLS,
    notes=["Prefers mornings", "Has a dog"],
)


def test_sections_in_order_newest_call_first():
    text = build(SNAP)
    assert text == (
        "Known facts:\n"
        '- allergies: ["peanuts"]\n'
        "- customer_name: Ana\n"
        "- zip code: 94110\n"
        "Still open:\n"
        "- refund: ORDER-789\n"
        "- the last call did not succeed: 2025-08-18 10:05 UTC, 5 min: Asked to reschedule. "
        "(outcome: customer-ended-call)\n"
        "Recent calls, newest first:\n"
        "- 2025-08-18 10:05 UTC, 5 min: Asked to reschedule. (outcome: customer-ended-call)\n"
        "- 2025-08-12 12:00 UTC, 45 s: Booked a table.\n"
        "Notes, newest first:\n"
        "- Prefers mornings\n"
        "- Has a dog"
    )


def test_first_caller():
    empty = Snapshot({}, [], [])
    assert build(empty) == FIRST_CALL
    assert variables(empty, FIRST_CALL, ("customer_name", "plan")) == {
        "customer_name": "",
        "plan": "",
        "memory": FIRST_CALL,
    }
    internal_only = Snapshot({"~call/x": {"state": "done"}}, [], [])
    assert build(internal_only) == FIRST_CALL


def test_budget_drops_the_least_important_first():
    full = build(SNAP)
    small = build(SNAP, budget=90)
    assert len(small) <= 90
    assert small.startswith("Known facts:\n- allergies")
    assert "Notes" not in small and "Recent calls" not in small
    assert full.startswith(small.rstrip("…").rsplit("\n", 1)[0])


@given(st.integers(min_value=0, max_value=800))
def test_never_over_budget(budget):
    assert len(build(SNAP, budget=budget)) <= budget


@given(
    st.dictionaries(st.text(min_size=1, max_size=20), st.text(max_size=400), max_size=30),
    st.lists(st.text(max_size=500), max_size=10),
    st.integers(0, 3000),
)
def test_any_snapshot_fits_and_is_deterministic(facts, notes, budget):
    snap = Snapshot(facts, [], notes)
    text = build(snap, budget)
    assert len(text) <= budget
    assert build(Snapshot(dict(reversed(list(facts.items()))), [], list(notes)), budget) == text


def test_variables_are_strings_for_valid_names_only():
    out = variables(SNAP, "M", ("customer_name", "tier"))
    assert out == {
        "allergies": '["peanuts"]',
        "customer_name": "Ana",
        "tier": "",
        "last_call_summary": "Asked to reschedule.",
        "last_call_date": "2025-08-18 10:05 UTC",
        "memory": "M",
    }
    assert all(isinstance(v, str) for v in out.values())


def test_long_values_are_cut_per_line():
    snap = Snapshot({"essay": "word " * 500}, [], [])
    (header, line) = build(snap).split("\n")
    assert len(line) == 300 and line.endswith("…")
