"""`RouterGraphChatModel`: any router graph as a drop-in LangChain chat model.

The sibling of `RouterChatModel` for routers that make several calls per question: it
sends the conversation's routing text to the graph as its ``question``, and returns the
graph's extracted answer as an `AIMessage` whose ``response_metadata["routing"]`` holds the
call trace (every `LLMCall`), the total cost and why the run stopped, and whose
``usage_metadata`` sums the tokens of all calls.

It cannot call tools or return structured output (`GraphToolCallingError` says why and what
to use instead): the graphs answer with text they extract, aggregate or verify after several
calls, so there is no single final call to hand tools or a schema to.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from typing import Any, Literal

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel, LanguageModelInput
from langchain_core.language_models.chat_models import LangSmithParams
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.runnables import Runnable, RunnableConfig
from langchain_core.runnables.config import ensure_config
from langchain_core.tools import BaseTool
from pydantic import BaseModel, ConfigDict, Field

from langchain_llmrouter.chat_model import RoutingMode, routing_text
from langchain_llmrouter.errors import GraphToolCallingError
from langchain_llmrouter.graphs._common import answer_message

_PER_CALL_KEYS = ("thread_id", "max_cost")

_WHY = (
    "a multi-round router graph decides while it calls LLMs and answers with text it "
    "extracts, aggregates or verifies, so there is no single final call to hand {what} to"
)


def _tools_error(graph: str) -> GraphToolCallingError:
    return GraphToolCallingError(
        f"RouterGraphChatModel({graph}) cannot call tools: {_WHY.format(what='tools')}, and "
        "an agent loop would re-run the whole graph (and pay for it) at every tool step. For "
        "tool calling, use RouterChatModel with a single-round router (each call goes to one "
        "candidate, which calls the tools); to use the graph in an agent, give the agent a "
        "tool that returns graph.invoke({'question': ...})['answer'], or make the graph a "
        "node of your own graph (it takes {'messages': [...]})."
    )


def _structured_output_error(graph: str) -> GraphToolCallingError:
    return GraphToolCallingError(
        f"RouterGraphChatModel({graph}) cannot return structured output: "
        f"{_WHY.format(what='a schema')}. Use RouterChatModel(...).with_structured_output("
        "schema) with a single-round router, or parse the graph's answer afterwards, e.g. "
        "pipe it into another chat model's with_structured_output(schema)."
    )


class RouterGraphChatModel(BaseChatModel):
    """A chat model whose every answer comes from running a router graph.

    Example:
        .. code-block:: python

            graph = build_router_r1_graph(policy=policy, candidates=pool)
            llm = RouterGraphChatModel(graph=graph)
            msg = llm.invoke("Who wrote the novel that Blade Runner is based on?")
            msg.content                                  # the extracted answer
            msg.response_metadata["routing"]["calls"]     # every LLM call made
            msg.response_metadata["routing"]["cost"]      # dollars spent

    A graph compiled with a checkpointer needs a ``thread_id``: pass it in the call's
    ``config={"configurable": {"thread_id": ...}}``; without one, each call gets a fresh id.
    ``max_cost`` may be given per call the same way. A thread is one question's run: a
    reused ``thread_id`` keeps the earlier runs' calls in the graph state (and ``max_cost``
    counts them), while the metadata here reports only this call's.

    Callbacks see one chat-model run per question, whose ``usage_metadata`` sums every call
    the graph made; the graph itself runs without callbacks so no token is counted twice
    (stream the graph directly, with ``stream_mode="updates"``, to watch its steps).
    """

    model_config = ConfigDict(arbitrary_types_allowed=True, extra="forbid")

    graph: Any
    """A compiled router graph (from one of the ``build_*_graph`` functions)."""
    routing_mode: RoutingMode = "current_only"
    """Ask the graph the last user message (``current_only``) or the whole conversation."""
    max_cost: float | None = Field(default=None, gt=0)
    """Per-call spending bound in dollars (overrides the graph's own when set)."""
    durability: Literal["sync", "async", "exit"] = "sync"
    """When a checkpointing graph saves each step. ``sync`` (the default here) writes a step
    before the next one starts, so a process killed mid-run resumes without repeating a paid
    call; LangGraph's own default, ``async``, can lose the last steps."""

    @property
    def _llm_type(self) -> str:
        return "llmrouter-graph"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"graph": self._graph_name, "routing_mode": self.routing_mode}

    @property
    def _graph_name(self) -> str:
        return str(getattr(self.graph, "name", None) or "router_graph")

    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> LangSmithParams:
        params = super()._get_ls_params(stop=stop, **kwargs)
        params["ls_provider"] = "llmrouter"
        params["ls_model_name"] = str(kwargs.get("model") or self._graph_name)
        return params

    @staticmethod
    def _with_configurable(config: RunnableConfig | None, kwargs: dict[str, Any]) -> dict[str, Any]:
        """Carry the call's ``thread_id`` / ``max_cost`` from its config to the graph run."""
        configurable = ensure_config(config).get("configurable") or {}
        passed = {k: configurable[k] for k in _PER_CALL_KEYS if configurable.get(k) is not None}
        if passed:
            kwargs = {**kwargs, "configurable": {**passed, **(kwargs.get("configurable") or {})}}
        return kwargs

    def invoke(
        self,
        input: LanguageModelInput,
        config: RunnableConfig | None = None,
        *,
        stop: list[str] | None = None,
        **kwargs: Any,
    ) -> AIMessage:
        """Run the graph on ``input``; the answer's metadata holds the call trace and cost."""
        kwargs = self._with_configurable(config, kwargs)
        return super().invoke(input, config, stop=stop, **kwargs)

    async def ainvoke(
        self,
        input: LanguageModelInput,
        config: RunnableConfig | None = None,
        *,
        stop: list[str] | None = None,
        **kwargs: Any,
    ) -> AIMessage:
        """Async :meth:`invoke`."""
        kwargs = self._with_configurable(config, kwargs)
        return await super().ainvoke(input, config, stop=stop, **kwargs)

    def _graph_input(self, messages: list[BaseMessage]) -> dict[str, Any]:
        question = routing_text(messages, self.routing_mode)
        if not question.strip():
            raise ValueError("the messages contain no text to answer")
        return {"question": question}

    def _graph_config(self, kwargs: dict[str, Any]) -> RunnableConfig:
        configurable: dict[str, Any] = dict(kwargs.pop("configurable", None) or {})
        configurable.setdefault("thread_id", str(uuid.uuid4()))
        if self.max_cost is not None:
            configurable.setdefault("max_cost", self.max_cost)
        if "max_cost" in kwargs:
            configurable["max_cost"] = kwargs.pop("max_cost")
        # The chat model's own run reports the summed usage of every call; letting the inner
        # calls report too would make usage callbacks count each token twice.
        return {"configurable": configurable, "callbacks": []}

    @property
    def _run_kwargs(self) -> dict[str, Any]:
        # Durability only means something with a checkpointer (LangGraph fails on "sync"
        # without one).
        if getattr(self.graph, "checkpointer", None) is None:
            return {}
        return {"durability": self.durability}

    def _calls_before(self, config: RunnableConfig) -> int:
        """How many calls the thread already holds (a reused thread keeps earlier runs')."""
        if getattr(self.graph, "checkpointer", None) is None:
            return 0
        return len(self.graph.get_state(config).values.get("calls") or [])

    async def _acalls_before(self, config: RunnableConfig) -> int:
        if getattr(self.graph, "checkpointer", None) is None:
            return 0
        return len((await self.graph.aget_state(config)).values.get("calls") or [])

    def _result(self, state: dict[str, Any], calls_before: int) -> ChatResult:
        message = answer_message(state, calls_before, self._graph_name)
        return ChatResult(generations=[ChatGeneration(message=message)])

    def bind_tools(
        self,
        tools: Sequence[dict[str, Any] | type | Callable[..., Any] | BaseTool],
        *,
        tool_choice: str | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, AIMessage]:
        """Not supported: raises `GraphToolCallingError`, which says why and what to use.

        Raises:
            GraphToolCallingError: always (``create_agent`` with this model raises it too).
        """
        raise _tools_error(self._graph_name)

    def with_structured_output(
        self,
        schema: dict[str, Any] | type[BaseModel] | type,
        *,
        include_raw: bool = False,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, dict[str, Any] | BaseModel]:
        """Not supported: raises `GraphToolCallingError`, which says why and what to use.

        Raises:
            GraphToolCallingError: always.
        """
        raise _structured_output_error(self._graph_name)

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        config = self._graph_config(kwargs)
        before = self._calls_before(config)
        state = self.graph.invoke(self._graph_input(messages), config=config, **self._run_kwargs)
        return self._result(state, before)

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        config = self._graph_config(kwargs)
        before = await self._acalls_before(config)
        state = await self.graph.ainvoke(
            self._graph_input(messages), config=config, **self._run_kwargs
        )
        return self._result(state, before)
