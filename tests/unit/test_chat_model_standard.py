"""LangChain's standard unit tests for `RouterChatModel` (no network: sockets are disabled)."""

from __future__ import annotations

from typing import Any

import pytest
from langchain_tests.unit_tests import ChatModelUnitTests

from langchain_llmrouter import APIKeys, CandidatePool, LLMCandidate, RouterChatModel, create_router

pytestmark = pytest.mark.usefixtures("socket_disabled")


class TestRouterChatModelUnit(ChatModelUnitTests):
    """An untrained ``smallest_llm`` router over two candidates at an unused local URL."""

    @property
    def chat_model_class(self) -> type[RouterChatModel]:
        return RouterChatModel

    @property
    def chat_model_params(self) -> dict[str, Any]:
        candidates = [
            LLMCandidate(name="small", model="org/small-7b", size="7B", input_price=0.2),
            LLMCandidate(name="large", model="org/large-70b", size="70B", input_price=0.9),
        ]
        pool = CandidatePool(
            candidates, api_endpoint="http://127.0.0.1:9/v1", api_keys=APIKeys.parse("test")
        )
        return {"router": create_router("smallest_llm"), "candidates": pool}

    @property
    def standard_chat_model_params(self) -> dict[str, Any]:
        """The generation parameters; transport ones (timeout, retries, key) are per candidate."""
        return {"temperature": 0, "max_tokens": 100, "stop": []}

    @property
    def supports_model_override(self) -> bool:
        return False
