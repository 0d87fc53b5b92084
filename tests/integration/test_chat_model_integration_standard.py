"""LangChain's standard integration tests for `RouterChatModel`, over HTTP to the local server.

A kNN router picks among the 14 example candidates, all served by the session's
`FakeOpenAIServer`, through real ``ChatOpenAI`` clients.
"""

from __future__ import annotations

from typing import Any

import pytest
from langchain_tests.integration_tests import ChatModelIntegrationTests

from langchain_llmrouter import BaseRouter, RouterChatModel


class TestRouterChatModelIntegration(ChatModelIntegrationTests):
    """``knnrouter`` over the example pool; every candidate answers on the local server."""

    _params: dict[str, Any]

    @pytest.fixture(autouse=True)
    def _wire(self, candidate_pool: Any, knn_router: BaseRouter) -> None:
        """Build the model's parameters from the session fixtures (a fresh pool per test)."""
        self._params = {"router": knn_router, "candidates": candidate_pool(max_retries=1)}

    @property
    def chat_model_class(self) -> type[RouterChatModel]:
        return RouterChatModel

    @property
    def chat_model_params(self) -> dict[str, Any]:
        return dict(self._params)

    @property
    def has_tool_calling(self) -> bool:
        return True

    @property
    def has_tool_choice(self) -> bool:
        return True

    @property
    def has_structured_output(self) -> bool:
        return True

    @property
    def supports_json_mode(self) -> bool:
        return True

    @property
    def returns_usage_metadata(self) -> bool:
        return True

    @property
    def supports_model_override(self) -> bool:
        """The router chooses the model; a per-call model name is not a supported feature."""
        return False

    @property
    def enable_vcr_tests(self) -> bool:
        return False

    @pytest.mark.xfail(
        reason="scripted server: tool-call arguments are generated from the JSON schema "
        "(strings become 'hello'), so the customer name from the prompt cannot appear",
        strict=True,
    )
    def test_unicode_tool_call_integration(
        self,
        model: RouterChatModel,
        *,
        tool_choice: str | None = None,
        force_tool_call: bool = True,
    ) -> None:
        super().test_unicode_tool_call_integration(
            model, tool_choice=tool_choice, force_tool_call=force_tool_call
        )

    @pytest.mark.xfail(
        reason="scripted server: in JSON mode (response_format json_object) the request carries "
        "no schema, so the server answers {'answer': ...}; tests/unit/test_request_path.py "
        "checks json_mode against a server scripted with the right JSON",
        strict=True,
    )
    def test_json_mode(self, model: RouterChatModel) -> None:
        super().test_json_mode(model)
