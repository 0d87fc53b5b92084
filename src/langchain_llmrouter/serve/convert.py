"""OpenAI's chat-completions format to LangChain messages and back (no FastAPI)."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, convert_to_messages

from langchain_llmrouter.serve.schemas import ChatMessage

ROUTING_FIELD = "llmrouter"
"""The extra top-level response field with the routing decision (OpenAI clients ignore it)."""


def to_langchain(messages: list[ChatMessage]) -> list[BaseMessage]:
    """The request's messages as LangChain messages (``developer`` is a system message)."""
    dicts = []
    for message in messages:
        item = message.model_dump(exclude_none=True, exclude={"refusal"})
        if item["role"] == "developer":
            item["role"] = "system"
        item.setdefault("content", "")
        dicts.append(item)
    return convert_to_messages(dicts)


def completion_id(routing: dict[str, Any] | None = None) -> str:
    """The ``chatcmpl-...`` id of an answer: its decision id (what ``POST /v1/feedback``
    rates), or a fresh one."""
    decision_id = (routing or {}).get("decision_id")
    if isinstance(decision_id, str):
        return f"chatcmpl-{uuid.UUID(decision_id).hex}"
    return f"chatcmpl-{uuid.uuid4().hex}"


def usage_dict(usage: Any) -> dict[str, int] | None:
    """LangChain ``usage_metadata`` as OpenAI's ``usage``."""
    if not usage:
        return None
    prompt = int(usage.get("input_tokens", 0))
    completion = int(usage.get("output_tokens", 0))
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": int(usage.get("total_tokens", prompt + completion)),
    }


def _tool_calls(message: AIMessage) -> list[dict[str, Any]]:
    return [
        {
            "id": call.get("id") or f"call_{uuid.uuid4().hex[:24]}",
            "type": "function",
            "function": {"name": call["name"], "arguments": json.dumps(call["args"])},
        }
        for call in message.tool_calls
    ]


def completion(message: AIMessage, *, model: str, routing: dict[str, Any]) -> dict[str, Any]:
    """The ``chat.completion`` object of an answer."""
    tool_calls = _tool_calls(message)
    body: dict[str, Any] = {"role": "assistant", "content": message.text or None}
    if tool_calls:
        body["tool_calls"] = tool_calls
    elif body["content"] is None:
        body["content"] = ""
    finish = message.response_metadata.get("finish_reason") or (
        "tool_calls" if tool_calls else "stop"
    )
    return {
        "id": completion_id(routing),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": body, "logprobs": None, "finish_reason": finish}],
        "usage": usage_dict(message.usage_metadata)
        or {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
        ROUTING_FIELD: routing,
    }


class ChunkWriter:
    """Turns a `RouterChatModel` stream into ``chat.completion.chunk`` objects."""

    def __init__(
        self, *, model: str, include_usage: bool, routing: dict[str, Any] | None = None
    ) -> None:
        """Start a stream answered by ``model`` (its id from the decision in ``routing``)."""
        self.id = completion_id(routing)
        self.created = int(time.time())
        self.model = model
        self.include_usage = include_usage
        self.finish_reason: str | None = None
        self.saw_tool_calls = False
        self.usage: dict[str, int] = {}

    def _chunk(self, delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        chunk: dict[str, Any] = {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        }
        if self.include_usage:
            chunk["usage"] = None
        return chunk

    def first(self) -> dict[str, Any]:
        """The role chunk."""
        return self._chunk({"role": "assistant", "content": ""})

    def feed(self, chunk: AIMessageChunk) -> dict[str, Any] | None:
        """One LangChain chunk as an OpenAI chunk (None when it carries nothing to send)."""
        if chunk.usage_metadata:
            for key, value in (usage_dict(chunk.usage_metadata) or {}).items():
                self.usage[key] = self.usage.get(key, 0) + value
        reason = chunk.response_metadata.get("finish_reason")
        if reason:
            self.finish_reason = reason
        delta: dict[str, Any] = {}
        text = chunk.content if isinstance(chunk.content, str) else chunk.text
        if text:
            delta["content"] = text
        if chunk.tool_call_chunks:
            self.saw_tool_calls = True
            delta["tool_calls"] = [
                {
                    "index": call.get("index") if call.get("index") is not None else i,
                    **({"id": call["id"], "type": "function"} if call.get("id") else {}),
                    "function": {
                        **({"name": call["name"]} if call.get("name") else {}),
                        "arguments": call.get("args") or "",
                    },
                }
                for i, call in enumerate(chunk.tool_call_chunks)
            ]
        return self._chunk(delta) if delta else None

    def last(self, routing: dict[str, Any]) -> list[dict[str, Any]]:
        """The finish chunk and, when asked for, the usage chunk; the last carries ``routing``."""
        finish = self.finish_reason or ("tool_calls" if self.saw_tool_calls else "stop")
        chunks = [self._chunk({}, finish)]
        if self.include_usage:
            usage = self.usage or {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
            chunks.append({**self._chunk({}), "choices": [], "usage": usage})
        chunks[-1][ROUTING_FIELD] = routing
        return chunks


def error_body(message: str, kind: str, code: str | None, param: str | None = None) -> dict:
    """OpenAI's error object."""
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}
