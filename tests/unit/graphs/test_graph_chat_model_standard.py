"""LangChain's standard unit tests for `RouterGraphChatModel` (no network: sockets are disabled)."""

from __future__ import annotations

from typing import Any

import pytest
from langchain_tests.unit_tests import ChatModelUnitTests
from langgraph.graph import END, START, StateGraph

from langchain_llmrouter.graphs._common import RouterGraphState
from langchain_llmrouter.graphs.chat_model import RouterGraphChatModel

pytestmark = pytest.mark.usefixtures("socket_disabled")


def _echo(state: RouterGraphState) -> dict[str, Any]:
    return {"answer": state["question"], "calls": [], "cost": 0.0, "stop_reason": "answer"}


def _graph() -> Any:
    graph = StateGraph(RouterGraphState)
    graph.add_node("echo", _echo)
    graph.add_edge(START, "echo")
    graph.add_edge("echo", END)
    return graph.compile(name="echo")


class TestRouterGraphChatModelUnit(ChatModelUnitTests):
    """A one-node graph that answers with the question (the graphs have their own tests)."""

    @property
    def chat_model_class(self) -> type[RouterGraphChatModel]:
        return RouterGraphChatModel

    @property
    def chat_model_params(self) -> dict[str, Any]:
        return {"graph": _graph()}

    @property
    def standard_chat_model_params(self) -> dict[str, Any]:
        """A graph has no single model, temperature or token limit of its own."""
        return {}

    @property
    def has_tool_calling(self) -> bool:
        return False

    @property
    def has_structured_output(self) -> bool:
        return False

    @property
    def supports_model_override(self) -> bool:
        return False

    @pytest.mark.xfail(
        reason="a graph makes several calls with settings of its own: no single max_tokens/stop"
    )
    def test_standard_params(self, model: Any) -> None:
        super().test_standard_params(model)

    @pytest.mark.xfail(reason="the graph's answer is assembled after its last call: no streaming")
    def test_init_streaming(self) -> None:
        super().test_init_streaming()
