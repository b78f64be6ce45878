"""CrewAI runs offline: a scripted LLM, a deterministic embedder, no telemetry or tracing.

CrewAI writes under ``$HOME`` when imported and asks about tracing after a run, so both are
settled here, before any test module imports it. The LLM is a real ``crewai.llms.base_llm.BaseLLM``
subclass: agents get its scripted replies, CrewAI's memory analysis gets fixed structured answers.
"""

from __future__ import annotations

import atexit
import hashlib
import importlib.util
import os
import re
import shutil
import tempfile
from collections.abc import Callable
from typing import Any

import pytest

if importlib.util.find_spec("crewai") is not None:  # without it, the tests skip: change nothing
    _HOME = tempfile.mkdtemp(prefix="botwire-crewai-home-")
    atexit.register(shutil.rmtree, _HOME, ignore_errors=True)
    os.environ.update(
        {
            "HOME": _HOME,
            "CREWAI_STORAGE_DIR": os.path.join(_HOME, "crewai-storage"),
            "CREWAI_DISABLE_TELEMETRY": "true",
            "CREWAI_DISABLE_TRACKING": "true",
            "OTEL_SDK_DISABLED": "true",
            "CREWAI_TRACING_ENABLED": "false",
            "CREWAI_TESTING": "true",
        }
    )

# Settings that would send a Memory elsewhere than the URL a test asked for.
_ENGINE_ENV = ("BOTWIRE_URL", "BOTWIRE_DATABASE_URL", "BOTWIRE_MAX_VALUE_BYTES", "BOTWIRE_API_KEY")

# The scope and categories the scripted memory analysis assigns to everything it saves.
SAVED_SCOPE = "/customers"
SAVED_CATEGORIES = ["preferences"]

EMBEDDING_DIMENSIONS = 64

Reply = str | Callable[[str], str]


def embed(texts: list[str]) -> list[list[float]]:
    """A bag-of-words embedder: each word adds 1 to a dimension picked by its hash.

    Texts sharing words point in similar directions, so cosine similarity ranks them the way
    a reader would expect; the same text always gets the same vector.
    """
    vectors = []
    for text in texts:
        vector = [0.0] * EMBEDDING_DIMENSIONS
        for word in re.findall(r"[a-z0-9]+", text.lower()):
            digest = hashlib.sha256(word.encode()).digest()
            vector[int.from_bytes(digest[:4], "big") % EMBEDDING_DIMENSIONS] += 1.0
        vectors.append(vector)
    return vectors


def _prompt_text(messages: Any) -> str:
    if isinstance(messages, str):
        return messages
    return "\n\n".join(str(m.get("content", "")) for m in messages)


_LLM_CLASS: type | None = None


def scripted_llm_class() -> type:
    """``ScriptedLLM``, built on first use so that this file imports without CrewAI."""
    global _LLM_CLASS
    if _LLM_CLASS is not None:
        return _LLM_CLASS

    from crewai.llms.base_llm import BaseLLM
    from crewai.memory.analyze import (
        ConsolidationPlan,
        ExtractedMemories,
        MemoryAnalysis,
        QueryAnalysis,
    )
    from pydantic import Field

    class ScriptedLLM(BaseLLM):
        """Replies to agent calls from ``replies``, in order; a reply may be a function of
        the prompt. Memory analysis (calls with a ``response_model``) gets fixed answers.

        ``function_calling`` selects CrewAI's path: False makes agents use the ReAct text
        format (``Action: ...`` / ``Action Input: {...}`` / ``Final Answer: ...``).
        """

        model: str = "scripted"
        replies: list[Any] = Field(default_factory=list)
        prompts: list[str] = Field(default_factory=list)
        function_calling: bool = False

        def call(
            self,
            messages: Any,
            tools: Any = None,
            callbacks: Any = None,
            available_functions: Any = None,
            from_task: Any = None,
            from_agent: Any = None,
            response_model: Any = None,
        ) -> Any:
            text = _prompt_text(messages)
            if response_model is ExtractedMemories:
                result = re.search(r"Result: (.*)", text, flags=re.S)
                return ExtractedMemories(memories=[result.group(1).strip()] if result else [])
            if response_model is MemoryAnalysis:
                return MemoryAnalysis(
                    suggested_scope=SAVED_SCOPE, categories=SAVED_CATEGORIES, importance=0.8
                )
            if response_model is ConsolidationPlan:
                return ConsolidationPlan(actions=[], insert_new=True)
            if response_model is QueryAnalysis:
                return QueryAnalysis(complexity="simple")
            if response_model is not None:
                raise AssertionError(f"unexpected structured call for {response_model}")
            self.prompts.append(text)
            if not self.replies:
                raise AssertionError(f"no scripted reply left for:\n{text[-2000:]}")
            reply = self.replies.pop(0)
            return reply(text) if callable(reply) else reply

        def supports_function_calling(self) -> bool:
            return self.function_calling

        def get_input_tokens_count(self, messages: Any, tools: Any = None,
                                   response_model: Any = None) -> int:
            return len(_prompt_text(messages)) // 4

    _LLM_CLASS = ScriptedLLM
    return ScriptedLLM


@pytest.fixture
def scripted_llm() -> Callable[..., Any]:
    """``scripted_llm(*replies, function_calling=False)`` -> a new ScriptedLLM."""

    def make(*replies: Reply, function_calling: bool = False) -> Any:
        cls = scripted_llm_class()
        return cls(model="scripted", replies=list(replies), function_calling=function_calling)

    return make


@pytest.fixture(params=["sqlite", "postgres", "http-sqlite"])
def url(request, monkeypatch) -> str:
    """The embedded engine, PostgreSQL and a botwire server over HTTP, in turn."""
    for name in _ENGINE_ENV:
        monkeypatch.delenv(name, raising=False)
    return request.getfixturevalue(f"{request.param.replace('-', '_')}_url")


@pytest.fixture
def embedder() -> Callable[[list[str]], list[list[float]]]:
    """The bag-of-words embedder (``EMBEDDING_DIMENSIONS`` floats per text)."""
    return embed
