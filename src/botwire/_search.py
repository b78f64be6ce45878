"""Query words for keyword search, the same for every engine.

A query is split into words of letters and digits, lower-cased; common English words are
dropped (PostgreSQL's ``english`` configuration drops them too, SQLite's FTS5 would not), so
both databases see the same terms and rank the same documents.

Each database stems words as it indexes them (FTS5's ``porter``, PostgreSQL's ``english``), so
"orders" finds "ordered". Stems of one word's forms may still differ at the end: "allergy" and
"allergies" become ``allergi`` but "allergic" becomes ``allerg``. So a word also matches, as a
prefix, its ``root``: the word without an ending that turns a final y into i, stemmed by the
database the way its index is ("allergies" -> ``allerg*``, "allergic" -> ``allerg*``). A word
that matches exactly matches both, so it ranks above a variant found only by its root.
"""

from __future__ import annotations

import re

from .errors import InvalidInput

MAX_TERMS = 32
MAX_LIMIT = 1000
MAX_QUERY_CHARS = 4096

_WORD = re.compile(r"[^\W_]+")
ROOT_MIN = 5  # shorter roots ("cat" of "cats") would find too many unrelated words
# Endings where a final y (after a consonant) turns into i, or goes: allergy, allergies, happily.
_Y_ENDING = re.compile(r"(?<=[^aeiou])(?:y|ies|ied|ier|iers|iest|ily|iness)$")

# PostgreSQL's english stop words (snowball), which its full-text search ignores.
STOP_WORDS = frozenset(
    """
    a about above after again against all am an and any are as at be because been before being
    below between both but by can did do does doing don down during each few for from further
    had has have having he her here hers herself him himself his how i if in into is it its
    itself just me more most my myself no nor not now of off on once only or other our ours
    ourselves out over own s same she should so some such t than that the their theirs them
    themselves then there these they this those through to too under until up very was we were
    what when where which while who whom why will with you your yours yourself yourselves
    """.split()
)


def check_limit(limit: object) -> int:
    if type(limit) is not int or not 1 <= limit <= MAX_LIMIT:
        raise InvalidInput(f"limit must be an int between 1 and {MAX_LIMIT}, not {limit!r}")
    return limit


def terms(query: object) -> tuple[str, ...]:
    """The distinct search words of ``query``, in order; empty when nothing is searchable."""
    if type(query) is not str:
        raise InvalidInput(f"query must be a str, not {type(query).__name__}")
    if len(query) > MAX_QUERY_CHARS:
        raise InvalidInput(f"query is {len(query)} characters; the limit is {MAX_QUERY_CHARS}")
    words = (w for w in _WORD.findall(query.lower()) if w not in STOP_WORDS)
    return tuple(dict.fromkeys(words))[:MAX_TERMS]


def root(term: str) -> str | None:
    """The prefix ``term``'s variants share ("allergies" -> "allerg", "allergic" -> itself),
    before the database stems it; ``None`` for a term that is not all letters, or whose root
    would be shorter than ``ROOT_MIN`` letters."""
    if not term.isalpha():
        return None
    base = _Y_ENDING.sub("", term)
    return base if len(base) >= ROOT_MIN else None
