"""Query words for keyword search, the same for every engine.

A query is split into words of letters and digits, lower-cased; common English words are
dropped (PostgreSQL's ``english`` configuration drops them too, SQLite's FTS5 would not), so
both databases see the same terms and rank the same documents.
"""

from __future__ import annotations

import re

from .errors import InvalidInput

MAX_TERMS = 32
MAX_LIMIT = 1000
MAX_QUERY_CHARS = 4096

_WORD = re.compile(r"[^\W_]+")

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
