"""The I/O-free pieces of the SQL layer."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from botwire.engines.sql import prefix_upper

text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=8)


def test_prefix_upper_examples():
    assert prefix_upper("") is None
    assert prefix_upper("a") == "b"
    assert prefix_upper("a:") == "a;"
    assert prefix_upper("\U0010ffff") is None
    assert prefix_upper("a\U0010ffff") == "b"
    assert prefix_upper("\ud7ff") == "\ue000"  # skips the surrogate block


@given(prefix=text.filter(bool), rest=text)
def test_every_extension_of_a_prefix_sorts_below_its_upper_bound(prefix, rest):
    upper = prefix_upper(prefix)
    key = prefix + rest
    assert key >= prefix
    assert upper is None or key < upper


@given(prefix=text.filter(bool), other=text)
def test_strings_between_prefix_and_upper_start_with_prefix(prefix, other):
    upper = prefix_upper(prefix)
    if other >= prefix and (upper is None or other < upper):
        assert other.startswith(prefix)


hit_rows = st.lists(
    st.one_of(
        st.tuples(text, st.none(), st.none()),
        st.tuples(st.none(), text, st.integers(1, 5)),
    ).flatmap(
        lambda ident: st.tuples(
            st.just(ident), st.sampled_from([0.0, 1.5, 2.25]), st.sampled_from([0.0, 7.0])
        )
    ),
    max_size=12,
    unique_by=lambda r: r[0],
)


@given(rows=hit_rows)
def test_hits_sort_in_python_as_in_sql(rows):
    """The direct search sorts its hits in Python; the index search sorts them in SQL."""
    import sqlite3

    from botwire.engines.sql import _HIT_ORDER, hit_order

    hits = [(*ident, "v", ts, score) for ident, score, ts in rows]
    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE TABLE h (key, log, seq, value, ts, score)")
    conn.executemany("INSERT INTO h VALUES (?, ?, ?, ?, ?, ?)", hits)
    in_sql = conn.execute(f"SELECT * FROM h ORDER BY {_HIT_ORDER}").fetchall()
    assert sorted(hits, key=hit_order) == in_sql
