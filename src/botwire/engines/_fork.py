"""A counter that goes up in a child process after ``fork``: cheaper to check than ``getpid``.

Objects that hold locks register with ``renew_after_fork``: in the child (one thread, right
after the fork) their ``_after_fork()`` replaces those locks, which a thread of the parent may
have held at the moment of the fork and which nobody in the child would ever release.
"""

from __future__ import annotations

import os
import weakref
from typing import Any

generation = 0
_renew: weakref.WeakSet[Any] = weakref.WeakSet()


def renew_after_fork(obj: Any) -> None:
    _renew.add(obj)


def _forked() -> None:
    global generation
    generation += 1
    for obj in list(_renew):
        obj._after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forked)
