"""``/console``: see and correct what botwire remembers, in the browser (docs/console.md).

Server-rendered pages (Jinja2, ``render.py``) over the same functions as the API and the voice
webhooks: callers are namespaces listed by the engine's ``Namespaces`` op, facts are read and
written by ``voice.facts`` (provenance ``console``), the ``{{memory}}`` text is ``core.briefing``,
search is ``core.recall``; keys are checked and managed as ``/v1`` does (``Principal``).
Sessions live in the database (``sessions.py``). No script is needed; the one small script
(``static/console.js``) only adds conveniences, and every page works offline.
"""

from __future__ import annotations

from .routes import router

__all__ = ["router"]
