"""Request models of the server's OpenAI-compatible endpoints (pydantic only, no FastAPI).

Fields the server does not know are refused (a 400 naming them) rather than ignored, so a
client never believes a parameter took effect when it did not.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator


class ChatMessage(BaseModel):
    """One message of a chat-completions request, in OpenAI's format."""

    model_config = ConfigDict(extra="forbid")

    role: Literal["system", "developer", "user", "assistant", "tool"]
    """Who wrote it."""
    content: str | list[dict[str, Any]] | None = None
    """Text, or a list of content parts (``{"type": "text", "text": ...}``, images, ...)."""
    name: str | None = None
    """The author's name, if any."""
    tool_calls: list[dict[str, Any]] | None = None
    """An assistant's tool calls (``{"id", "type": "function", "function": {...}}``)."""
    tool_call_id: str | None = None
    """The tool call a ``tool`` message answers."""
    refusal: str | None = None
    """An assistant's refusal (accepted, not forwarded)."""


class StreamOptions(BaseModel):
    """``stream_options`` of a streamed request."""

    model_config = ConfigDict(extra="forbid")

    include_usage: bool = False
    """Send the usage in a last chunk (with empty ``choices``) before ``[DONE]``."""


class ChatCompletionRequest(BaseModel):
    """The body of ``POST /v1/chat/completions``."""

    model_config = ConfigDict(extra="forbid")

    model: str
    """``auto``, ``router-<name>``, ``router-<name>-<cost_weight>`` or a candidate's name."""
    messages: list[ChatMessage] = Field(min_length=1)
    """The conversation."""
    stream: bool = False
    """Answer as server-sent events."""
    stream_options: StreamOptions | None = None
    """Streaming options."""
    tools: list[dict[str, Any]] | None = None
    """Tools in OpenAI's format (``{"type": "function", "function": {...}}``)."""
    tool_choice: str | dict[str, Any] | None = None
    """``auto``, ``none``, ``required`` or a named function."""
    parallel_tool_calls: bool | None = None
    """Whether the model may call several tools at once."""
    response_format: dict[str, Any] | None = None
    """``{"type": "json_object"}`` or ``{"type": "json_schema", "json_schema": {...}}``."""
    temperature: float | None = Field(default=None, ge=0, le=2)
    """Sampling temperature."""
    top_p: float | None = Field(default=None, gt=0, le=1)
    """Nucleus sampling."""
    max_tokens: int | None = Field(default=None, gt=0)
    """Most tokens to generate."""
    max_completion_tokens: int | None = Field(default=None, gt=0)
    """OpenAI's newer name for ``max_tokens``."""
    stop: str | list[str] | None = None
    """Stop sequences."""
    seed: int | None = None
    """Sampling seed."""
    presence_penalty: float | None = Field(default=None, ge=-2, le=2)
    """Presence penalty."""
    frequency_penalty: float | None = Field(default=None, ge=-2, le=2)
    """Frequency penalty."""
    n: int = Field(default=1, ge=1, le=1)
    """Number of answers: only 1 (one routed call per request)."""
    user: str | None = Field(default=None, min_length=1, max_length=256)
    """The end user: a personalised router routes for them; also passed on to the candidate."""

    @field_validator("stop")
    @classmethod
    def _stop_list(cls, value: str | list[str] | None) -> list[str] | None:
        return [value] if isinstance(value, str) else value

    def call_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for the candidate (through `RouterChatModel`)."""
        kwargs: dict[str, Any] = {}
        max_tokens = self.max_tokens or self.max_completion_tokens
        if max_tokens is not None:
            kwargs["max_tokens"] = max_tokens
        for name in ("temperature", "top_p", "seed", "presence_penalty", "frequency_penalty"):
            value = getattr(self, name)
            if value is not None:
                kwargs[name] = value
        if self.user is not None:
            kwargs["user"] = self.user
        if self.response_format is not None:
            kwargs["response_format"] = self.response_format
        if self.stop:
            kwargs["stop"] = self.stop
        return kwargs


class FeedbackRequest(BaseModel):
    """The body of ``POST /v1/feedback``: a user's rating of one answer of this server."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1, max_length=200)
    """The answer's ``id`` (``chatcmpl-...``), as the completion returned it."""
    score: float = Field(ge=0.0, le=1.0, allow_inf_nan=False)
    """1 for thumbs up, 0 for down; anything between (a 0..5 rating is 5 × score)."""
    user: str | None = Field(default=None, min_length=1, max_length=256)
    """Who rates (default: the request's ``user``)."""
