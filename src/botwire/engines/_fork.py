"""A counter that goes up in a child process after ``fork``: cheaper to check than ``getpid``."""

from __future__ import annotations

import os

generation = 0


def _forked() -> None:
    global generation
    generation += 1


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forked)
