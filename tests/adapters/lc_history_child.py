"""One chat turn in its own process, for test_langchain_history's two-process test.

``python lc_history_child.py URL NAMESPACE SESSION_ID USER_TEXT REPLY [--async]`` runs
``RunnableWithMessageHistory`` over a fake chat model that answers ``REPLY``, with the history
in botwire, and prints as JSON the messages the model was given (``message_to_dict`` form).
"""

from __future__ import annotations

import asyncio
import json
import sys
import warnings
from typing import Any

from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, BaseMessage, message_to_dict
from langchain_core.runnables.history import RunnableWithMessageHistory

from botwire.adapters.langchain import BotWireChatHistory


class Prompts(BaseCallbackHandler):
    """Records the messages each chat model call receives."""

    def __init__(self) -> None:
        self.seen: list[list[BaseMessage]] = []

    def on_chat_model_start(
        self, serialized: dict[str, Any], messages: list[list[BaseMessage]], **kwargs: Any
    ) -> None:
        self.seen.extend(messages)


def main(argv: list[str]) -> None:
    url, namespace, session_id, text, reply, *flags = argv
    model = GenericFakeChatModel(messages=iter([AIMessage(reply)]))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        chain = RunnableWithMessageHistory(
            model,
            lambda sid: BotWireChatHistory(sid, namespace=namespace, url=url),
        )
    prompts = Prompts()
    config: Any = {"configurable": {"session_id": session_id}, "callbacks": [prompts]}
    if "--async" in flags:
        answer = asyncio.run(chain.ainvoke(text, config=config))
    else:
        answer = chain.invoke(text, config=config)
    assert answer.content == reply, answer
    (prompt,) = prompts.seen
    json.dump([message_to_dict(m) for m in prompt], sys.stdout)


if __name__ == "__main__":
    main(sys.argv[1:])
