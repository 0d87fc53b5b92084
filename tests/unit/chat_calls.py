"""Calling a chat model the four ways a LangChain user does (shared by the chat-model tests)."""

from __future__ import annotations

import functools
import operator
from typing import Any

from langchain_core.messages import BaseMessage

MODES = ["invoke", "ainvoke", "stream", "astream"]


async def call(runnable: Any, mode: str, text: Any, **kwargs: Any) -> BaseMessage:
    """Run ``runnable`` one of four ways; a stream comes back as its merged chunks."""
    if mode == "invoke":
        return runnable.invoke(text, **kwargs)
    if mode == "ainvoke":
        return await runnable.ainvoke(text, **kwargs)
    if mode == "stream":
        chunks = list(runnable.stream(text, **kwargs))
    else:
        chunks = [chunk async for chunk in runnable.astream(text, **kwargs)]
    assert chunks, "the stream yielded nothing"
    return functools.reduce(operator.add, chunks)


def routing(message: BaseMessage) -> dict[str, Any]:
    """The routing metadata of an answer."""
    return message.response_metadata["routing"]
