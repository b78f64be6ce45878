"""Helpers shared by the conformance tests (not a test module)."""

from __future__ import annotations

import math
from typing import Any

MISSING = object()  # a default no engine can return by accident


def strict_equal(a: Any, b: Any) -> bool:
    """``a == b`` and the same JSON types all the way down, dict key order included.

    ``1 == 1.0 == True`` in Python, and ``{"a": 1, "b": 2} == {"b": 2, "a": 1}``; a round trip must
    keep the distinction. Floats compare bit-for-bit (so ``-0.0`` is not ``0.0``).
    """
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return a == b and math.copysign(1.0, a) == math.copysign(1.0, b)
    if isinstance(a, list):
        return len(a) == len(b) and all(strict_equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return list(a) == list(b) and all(strict_equal(a[k], b[k]) for k in a)
    return a == b


def assert_same(got: Any, expected: Any) -> None:
    assert strict_equal(got, expected), (
        f"round trip changed the value: {expected!r} came back as {got!r}"
    )


def json_strategies():
    """(values, keys) Hypothesis strategies: any JSON value, any valid key."""
    from hypothesis import strategies as st

    text = st.text(alphabet=st.characters(exclude_categories=("Cs",)), max_size=30)
    scalars = (
        st.none()
        | st.booleans()
        | st.integers()
        | st.integers(min_value=-(2**80), max_value=2**80)
        | st.floats(allow_nan=False, allow_infinity=False)
        | text
    )
    values = st.recursive(
        scalars,
        lambda children: (
            st.lists(children, max_size=5) | st.dictionaries(text, children, max_size=5)
        ),
        max_leaves=25,
    )
    keys = st.text(
        alphabet=st.characters(exclude_categories=("Cs",), exclude_characters="\x00"),
        min_size=1,
        max_size=512,
    )
    return values, keys
