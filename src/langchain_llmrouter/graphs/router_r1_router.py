"""The registry's ``router_r1``: Router-R1's policy endpoint and graph settings as
hyperparameters; `RouterR1Router.as_graph` builds `langchain_llmrouter.graphs.router_r1`'s
graph.
"""

from __future__ import annotations

import os
from typing import Any

from langchain_core.language_models import BaseChatModel
from langgraph.graph.state import CompiledStateGraph
from pydantic import Field

from langchain_llmrouter.candidates import CandidatePool
from langchain_llmrouter.graphs.base import BaseGraphRouter
from langchain_llmrouter.graphs.router_r1 import build_router_r1_graph
from langchain_llmrouter.routers.estimator import RouterParams


def policy_client(model: str, endpoint: str) -> BaseChatModel:
    """A ``ChatOpenAI`` client for a policy served at ``endpoint`` (e.g. by ``vllm serve``);
    its API key is ``VLLM_API_KEY`` from the environment, else ``EMPTY``."""
    from langchain_openai import ChatOpenAI

    return ChatOpenAI(
        model=model,
        base_url=endpoint,
        api_key=lambda: os.environ.get("VLLM_API_KEY") or "EMPTY",
        stream_usage=True,
    )


class RouterR1Params(RouterParams):
    """Hyperparameters of `RouterR1Router`."""

    policy_model: str = "ulab-ai/Router-R1-Qwen2.5-3B-Instruct"
    """The policy's model id at ``policy_endpoint`` (a published checkpoint by default)."""
    policy_endpoint: str = "http://localhost:8000/v1"
    """OpenAI-compatible base URL serving the policy (``vllm serve``'s default)."""
    max_turns: int = Field(default=5, ge=1)
    """Most policy generations per question."""
    max_cost: float | None = Field(default=None, gt=0)
    """Dollars a run may spend on candidate calls (None: no bound)."""
    continue_final_message: bool = True
    """Feed the transcript back as one assistant message to continue (published loop)."""
    policy_temperature: float | None = Field(default=None, ge=0)
    """Policy sampling temperature (None: the server's default)."""
    policy_max_tokens: int = Field(default=1024, ge=1)
    """Output cap of one policy turn."""
    candidate_max_tokens: int = Field(default=512, ge=1)
    """Output cap of a candidate's reply."""


class RouterR1Router(BaseGraphRouter):
    """``router_r1``: a policy LLM that consults candidates over several turns (a graph router).

    It gives no single routing decision; run it with `as_graph` (or wrap the graph in
    `RouterGraphChatModel`). By default the policy is a published checkpoint served by vLLM
    (``vllm serve ulab-ai/Router-R1-Qwen2.5-3B-Instruct``); the API key is ``VLLM_API_KEY``
    from the environment, else ``EMPTY``.
    """

    name = "router_r1"
    Params = RouterR1Params
    trainable = False

    def __init__(
        self,
        *,
        policy_model: str = "ulab-ai/Router-R1-Qwen2.5-3B-Instruct",
        policy_endpoint: str = "http://localhost:8000/v1",
        max_turns: int = 5,
        max_cost: float | None = None,
        continue_final_message: bool = True,
        policy_temperature: float | None = None,
        policy_max_tokens: int = 1024,
        candidate_max_tokens: int = 512,
    ) -> None:
        super().__init__()
        self.policy_model = policy_model
        self.policy_endpoint = policy_endpoint
        self.max_turns = max_turns
        self.max_cost = max_cost
        self.continue_final_message = continue_final_message
        self.policy_temperature = policy_temperature
        self.policy_max_tokens = policy_max_tokens
        self.candidate_max_tokens = candidate_max_tokens

    def as_graph(
        self,
        candidates: CandidatePool,
        *,
        policy: BaseChatModel | None = None,
        checkpointer: Any = None,
        store: Any = None,
        name: str | None = None,
        **overrides: Any,
    ) -> CompiledStateGraph:
        """The compiled Router-R1 graph for ``candidates``.

        Args:
            candidates: The pool the policy may call.
            policy: A policy chat model to use instead of the ``policy_endpoint`` client.
            checkpointer: LangGraph checkpointer.
            store: LangGraph store.
            name: Graph name (default ``router_r1``).
            **overrides: Hyperparameters or other `build_router_r1_graph` arguments.
        """
        params = self.get_params() | overrides
        self.validate_params({k: v for k, v in params.items() if k in self._param_names()})
        model_args = {k: params.pop(k) for k in ("policy_model", "policy_endpoint")}
        if policy is None:
            policy = policy_client(model_args["policy_model"], model_args["policy_endpoint"])
        return build_router_r1_graph(
            policy=policy,
            candidates=candidates,
            checkpointer=checkpointer,
            store=store,
            name=name or self.name,
            **params,
        )

    def _fit(self, dataset: Any, query_embeddings: Any) -> None:
        """Nothing to learn: the policy is a pretrained checkpoint."""
