"""`RouterMiddleware`: route the model calls of a LangChain agent with a trained router.

LangChain v1 agents (``langchain.agents.create_agent``) choose their model per call through
middleware. This one asks a local router (no extra LLM call), swaps the request's model for the
chosen candidate's chat model, falls back to the next-best candidate on provider failures with
`RouterChatModel`'s own attempt loop and candidate health, and writes the decision into the
agent state, where checkpointers keep it. Needs the ``agents`` extra (``langchain``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Literal, NotRequired, get_args

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, ToolMessage

from langchain_llmrouter._optional import import_optional

try:
    from langchain.agents.middleware import (
        AgentMiddleware,
        AgentState,
        ExtendedModelResponse,
        ModelRequest,
        ModelResponse,
    )
except ImportError:  # the `agents` extra is not installed: say which one
    import_optional("langchain.agents.middleware", extra="agents", feature="RouterMiddleware")
    raise
from langgraph.errors import GraphBubbleUp
from langgraph.types import Command

from langchain_llmrouter.candidates import CandidatePool
from langchain_llmrouter.chat_model import RouterChatModel, RoutingMode, _AttemptPlan
from langchain_llmrouter.errors import InvalidOptionError
from langchain_llmrouter.fallback import CandidateHealth
from langchain_llmrouter.routers.base import BaseRouter, RoutingDecision

__all__ = ["STATE_KEY", "RouterAgentState", "RouterMiddleware"]

Per = Literal["call", "run"]
RouteOn = Literal["last_human", "conversation"]
_ROUTING_MODES: dict[str, RoutingMode] = {
    "last_human": "current_only",
    "conversation": "full_context",
}
_CONTEXT_OPTIONS = ("cost_weight", "budget", "user_id")

STATE_KEY = "llmrouter"
"""The agent-state key holding the latest routing decision (a plain, JSON-able dict)."""


class RouterAgentState(AgentState[Any]):
    """The agent state with the latest routing decision under `STATE_KEY`."""

    llmrouter: NotRequired[dict[str, Any]]
    """The last model call's routing: `RouterChatModel`'s ``response_metadata["routing"]``
    dict plus ``source``, ``per``, ``route_on``, ``turn`` and ``user_id``."""


def _from_context(context: Any, name: str) -> Any:
    """``name`` from the run's context: a dict's key, or an object's attribute (None if absent)."""
    if context is None:
        return None
    if isinstance(context, Mapping):
        return context.get(name)
    return getattr(context, name, None)


def _turn(messages: Sequence[BaseMessage]) -> str | None:
    """What marks the current agent run: the latest human message's id, or its position."""
    for index in range(len(messages) - 1, -1, -1):
        if messages[index].type == "human":
            return messages[index].id or f"#{index}"
    return None


def _tool_loop_owner(messages: Sequence[BaseMessage]) -> str | None:
    """The candidate whose tool call the last message answers (None: not in a tool loop)."""
    if not messages or not isinstance(messages[-1], ToolMessage):
        return None
    call_id = messages[-1].tool_call_id
    for message in reversed(messages[:-1]):
        if isinstance(message, AIMessage) and any(
            c.get("id") == call_id for c in message.tool_calls
        ):
            routing = message.response_metadata.get("routing")
            model = routing.get("model") if isinstance(routing, dict) else None
            return model if isinstance(model, str) else None
    return None


class RouterMiddleware(AgentMiddleware[RouterAgentState, Any, Any]):
    """Route each model call of a ``create_agent`` agent to the candidate a router picks.

    Example:
        .. code-block:: python

            from langchain.agents import create_agent
            from langgraph.checkpoint.memory import InMemorySaver

            routing = RouterMiddleware(router=load_router("models/knnrouter"), candidates=pool)
            agent = create_agent(model=pool.chat_model(pool.cheapest()), tools=[search],
                                 middleware=[routing], checkpointer=InMemorySaver())
            state = agent.invoke({"messages": [("user", "Prove that sqrt(2) is irrational.")]},
                                 {"configurable": {"thread_id": "1"}}, context={"cost_weight": 0.5})
            state["llmrouter"]["model"]   # the candidate that answered the last call

    The agent's own ``model`` is replaced on every call; the tools, system prompt and response
    format stay the agent's. The run's context (``context=`` of ``invoke``, a dict or an object
    with attributes) may carry ``cost_weight`` and ``budget`` (they win over the middleware's)
    and ``user_id`` (kept in the decision, for personalised routers).

    Attributes:
        engine: The `RouterChatModel` whose decisions, attempt loop (fallback) and candidate
            health this middleware uses.
    """

    state_schema = RouterAgentState

    def __init__(
        self,
        *,
        router: BaseRouter,
        models: Mapping[str, BaseChatModel | str] | None = None,
        candidates: CandidatePool | None = None,
        per: Per = "call",
        route_on: RouteOn = "last_human",
        sticky_tools: bool = True,
        cost_weight: float | None = None,
        budget: float | None = None,
        max_fallbacks: int = 2,
        health: CandidateHealth | None = None,
    ) -> None:
        """Set up the routing.

        Args:
            router: A fitted router (baselines that need no training are set up from the
                candidates).
            models: Chat models by candidate name, or ``"provider:model"`` strings for
                ``init_chat_model``; give this or ``candidates``.
            candidates: A `CandidatePool` (its chat models are built on first use).
            per: ``"call"``: route every model call; ``"run"``: route the first call after the
                latest human message and reuse that decision for the rest of the run.
            route_on: Route on the ``"last_human"`` message or the whole ``"conversation"``
                (tool results included).
            sticky_tools: When the last message answers a tool call, call the candidate that
                made it again instead of routing (a tool loop stays on one model).
            cost_weight: Overrides the router's cost weight (quality per dollar per 1,000
                queries); the run's context may override it in turn.
            budget: Overrides the router's per-call budget in dollars; so may the context.
            max_fallbacks: Next-best candidates to try when the chosen one fails.
            health: Failure counts and cooldowns (default: the pool's ``health``, shared with
                every `RouterChatModel` on the same pool).

        Raises:
            InvalidOptionError: ``per`` or ``route_on`` is not one of its values.
            ValueError: Neither or both of ``models`` and ``candidates``, or a bad number.
        """
        super().__init__()
        if per not in get_args(Per):
            raise InvalidOptionError(f"per must be 'call' or 'run', got {per!r}")
        if route_on not in _ROUTING_MODES:
            raise InvalidOptionError(
                f"route_on must be 'last_human' or 'conversation', got {route_on!r}"
            )
        if (models is None) == (candidates is None):
            raise ValueError("give models= (chat models by name) or candidates=, not both")
        self.router = router
        self.per: Per = per
        self.route_on: RouteOn = route_on
        self.sticky_tools = sticky_tools
        self.cost_weight = cost_weight
        self.budget = budget
        self.engine = RouterChatModel(
            router=router,
            candidates=candidates,
            models=_chat_models(models) if models is not None else None,
            routing_mode=_ROUTING_MODES[route_on],
            cost_weight=cost_weight,
            budget=budget,
            max_fallbacks=max_fallbacks,
            health=health,
        )

    @property
    def pool(self) -> CandidatePool:
        """The candidates."""
        return self.engine.pool

    @property
    def health(self) -> CandidateHealth:
        """Failure counts and cooldowns in use."""
        return self.engine._health

    # --- the decision ---------------------------------------------------------------------

    def _reused(self, request: ModelRequest[Any]) -> tuple[RoutingDecision, str] | None:
        """The saved decision this call keeps (a tool loop's, or the run's), if any."""
        messages = request.messages
        saved = request.state.get(STATE_KEY)
        if not isinstance(saved, dict):
            return None
        owner = _tool_loop_owner(messages) if self.sticky_tools else None
        if owner is not None and owner in self.pool:
            decision = _saved_decision(saved)
            ranking = [owner, *(n for n in decision.ranking if n != owner)]
            update = {
                "model": owner,
                "est_cost": decision.costs.get(owner, 0.0),
                "ranking": ranking,
                "reason": f"tool loop started by {owner}",
            }
            return decision.model_copy(update=update), "sticky"
        if self.per == "run" and saved.get("turn") == _turn(messages):
            return _saved_decision(saved), "run"
        return None

    def _plan(self, request: ModelRequest[Any]) -> tuple[_AttemptPlan, str]:
        """The attempts of this call: a kept decision's (a tool loop's, the run's), or a new
        one's, with where it came from."""
        reused = self._reused(request)
        if reused is not None:
            return _AttemptPlan(self.engine, reused[0], list(request.messages)), reused[1]
        text, decision = self._route(request)
        plan = _AttemptPlan(self.engine, decision, list(request.messages), query=text)
        return plan, "router"

    def _route(self, request: ModelRequest[Any]) -> tuple[str, RoutingDecision]:
        """Ask the router, with ``cost_weight``, ``budget`` and ``user_id`` from the run's
        context (``user_id`` also from ``configurable``); the text routed on, and the
        decision."""
        context = getattr(request.runtime, "context", None)
        options = {k: v for k in _CONTEXT_OPTIONS if (v := _from_context(context, k)) is not None}
        if "user_id" not in options and (user := _configured_user()) is not None:
            options["user_id"] = user
        if "user_id" in options:
            options["user_id"] = str(options["user_id"])
        return self.engine._decide(request.messages, options)

    def _state(
        self, request: ModelRequest[Any], plan: _AttemptPlan, name: str, source: str
    ) -> dict[str, Any]:
        """The decision and its attempts as stored in the agent state."""
        user_id = plan.decision.user_id
        return {
            **plan.routing(name),
            **plan.final(),
            "source": source,
            "per": self.per,
            "route_on": self.route_on,
            "turn": _turn(request.messages),
            "user_id": None if user_id is None else str(user_id),
        }

    def _answered(
        self,
        request: ModelRequest[Any],
        plan: _AttemptPlan,
        name: str,
        response: ModelResponse[Any] | AIMessage,
        source: str,
    ) -> ExtendedModelResponse[Any]:
        """Record the answer; return it, marked with the decision, and the state update."""
        if isinstance(response, AIMessage):
            response = ModelResponse(result=[response])
        answer = next((m for m in response.result if isinstance(m, AIMessage)), None)
        plan.succeeded(name, answer)
        routing = self._state(request, plan, name, source)
        result = [
            m.model_copy(update={"response_metadata": {**m.response_metadata, "routing": routing}})
            if m is answer
            else m
            for m in response.result
        ]
        return ExtendedModelResponse(
            model_response=ModelResponse(
                result=result, structured_response=response.structured_response
            ),
            command=Command(update={STATE_KEY: routing}),
        )

    # --- the hooks ------------------------------------------------------------------------

    def wrap_model_call(
        self,
        request: ModelRequest[Any],
        handler: Callable[[ModelRequest[Any]], ModelResponse[Any]],
    ) -> ExtendedModelResponse[Any]:
        """Call the chosen candidate, falling back down the decision's ranking."""
        plan, source = self._plan(request)
        for name in plan:
            try:
                response = handler(request.override(model=self.pool.chat_model(name)))
            except GraphBubbleUp:  # an interrupt or a jump, not a failure
                raise
            except Exception as exc:
                if not plan.failed(name, exc):
                    raise
                continue
            return self._answered(request, plan, name, response, source)
        raise plan.exhausted()

    async def awrap_model_call(
        self,
        request: ModelRequest[Any],
        handler: Callable[[ModelRequest[Any]], Awaitable[ModelResponse[Any]]],
    ) -> ExtendedModelResponse[Any]:
        """Async `wrap_model_call` (the router runs in a worker thread)."""
        plan, source = await asyncio.to_thread(self._plan, request)
        for name in plan:
            try:
                response = await handler(request.override(model=self.pool.chat_model(name)))
            except GraphBubbleUp:
                raise
            except Exception as exc:
                if not plan.failed(name, exc):
                    raise
                continue
            return self._answered(request, plan, name, response, source)
        raise plan.exhausted()


def _configured_user() -> str | None:
    """``user_id`` from the run's ``configurable``, where the call is inside a run."""
    from langchain_core.runnables.config import var_child_runnable_config

    config = var_child_runnable_config.get() or {}
    user = config.get("configurable", {}).get("user_id")
    return None if user is None else str(user)


def _saved_decision(saved: Mapping[str, Any]) -> RoutingDecision:
    """The `RoutingDecision` stored in the agent state (its ``chosen`` is the decision's model)."""
    fields = {k: saved[k] for k in RoutingDecision.model_fields if k in saved}
    return RoutingDecision.model_validate({**fields, "model": saved["chosen"]})


def _chat_models(models: Mapping[str, BaseChatModel | str]) -> dict[str, BaseChatModel]:
    """Chat models by name, ``"provider:model"`` strings built with ``init_chat_model``."""
    from langchain.chat_models import init_chat_model

    return {
        name: init_chat_model(model) if isinstance(model, str) else model
        for name, model in models.items()
    }
