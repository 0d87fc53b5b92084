"""Router-R1 (arXiv 2506.09033) as a LangGraph graph: a policy LLM that thinks, consults
candidate LLMs turn by turn, and answers.

Each turn the policy writes ``<think>…</think>`` and then either calls a candidate with
``<search> Candidate-Name: sub-question </search>`` or ends with ``<answer>…</answer>``; the
candidate's reply comes back as ``<information>…</information>``. `build_router_r1_graph`
builds the graph; `langchain_llmrouter.graphs.router_r1_router` holds the registry's
``router_r1``. ``docs/routers/router_r1.md`` describes the nodes, the transcript modes and
the bounds.
"""

from __future__ import annotations

import string
from collections.abc import Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any, Literal

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.runnables import RunnableConfig
from langgraph.graph import END, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.managed import RemainingSteps

from langchain_llmrouter.candidates import CandidatePool
from langchain_llmrouter.errors import UnknownCandidateError
from langchain_llmrouter.graphs._common import (
    LLMCall,
    ModelRef,
    RouterGraphInput,
    RouterGraphState,
    acall_llm,
    add_read_input,
    async_twin,
    call_llm,
    candidate_ref,
    model_ref,
    node,
    with_reply,
    worst_case_cost,
    would_exceed,
)
from langchain_llmrouter.graphs._router_r1_text import (
    _PLACEHOLDERS,
    CANDIDATE_PROMPT,
    CORRECTION_INVALID,
    CORRECTION_UNKNOWN,
    DEFAULT_PROMPT,
    FAILED_CALL,
    POLICY_STOP,
    ParsedTurn,
    TranscriptPart,
    _question,
    close_turn,
    describe_candidates,
    parse_turn,
    policy_messages,
    transcript_text,
)

__all__ = [  # the protocol helpers live in _router_r1_text and are public from here
    "CANDIDATE_PROMPT",
    "DEFAULT_PROMPT",
    "RouterR1Settings",
    "RouterR1State",
    "acall_candidate",
    "agenerate",
    "build_router_r1_graph",
    "call_candidate",
    "close_turn",
    "correct",
    "describe_candidates",
    "finish",
    "generate",
    "parse",
    "parse_turn",
    "policy_messages",
    "route_after_generate",
    "route_after_parse",
    "route_next_turn",
    "transcript_text",
]

MIN_STEPS_FOR_TURN = 5
"""Least ``remaining_steps`` (as LangGraph counts them) at which another turn may start and
still reach ``finish`` (generate, parse, then finish)."""


class RouterR1State(RouterGraphState, total=False):
    """State of the Router-R1 graph."""

    prompt: str
    """The policy's rendered prompt for this question."""
    transcript: list[TranscriptPart]
    """The policy's turns and the information blocks returned, in order."""
    turns: int
    """Policy generations so far."""
    pending: ParsedTurn | None
    """The last turn's parse result."""
    remaining_steps: RemainingSteps


@dataclass(frozen=True)
class RouterR1Settings:
    """What the builder binds into the node functions."""

    policy: ModelRef
    pool: CandidatePool
    names: tuple[str, ...]
    lookup: Mapping[str, str]
    prompt_template: str
    candidates_text: str
    max_turns: int
    max_cost: float | None
    continue_final_message: bool
    policy_max_tokens: int | None
    policy_temperature: float | None
    candidate_max_tokens: int | None
    name: str = "router_r1"
    """The graph's name (the router named in the reply's metadata)."""


# --- nodes --------------------------------------------------------------------------------


def _start_turn(
    state: RouterR1State, config: RunnableConfig, s: RouterR1Settings
) -> tuple[dict[str, Any], list[BaseMessage] | None, dict[str, Any]]:
    """(base update, policy messages or None when max_cost stops the run, call kwargs)."""
    prompt = s.prompt_template.format(
        candidates=s.candidates_text, question=_question(state["question"])
    )
    update: dict[str, Any] = {}
    parts = list(state.get("transcript") or [])
    if state.get("stop_reason") is not None or state.get("prompt") != prompt:
        # A new run (a new question, or the same thread asked again after finishing).
        parts = []
        update = {"prompt": prompt, "transcript": [], "turns": 0, "pending": None}
        update |= {"answer": "", "stop_reason": None}
    messages = policy_messages(prompt, parts, s.continue_final_message)
    sent = "\n".join(m.text for m in messages)
    if would_exceed(
        state.get("cost", 0.0),
        worst_case_cost(s.policy, sent, s.policy_max_tokens),
        config,
        s.max_cost,
    ):
        return {**update, "stop_reason": "max_cost"}, None, {}
    kwargs: dict[str, Any] = {"stop": list(POLICY_STOP)}
    if s.policy_max_tokens is not None:
        kwargs["max_tokens"] = s.policy_max_tokens
    if s.policy_temperature is not None:
        kwargs["temperature"] = s.policy_temperature
    if s.continue_final_message and parts and _is_chat_openai(s.policy.model):
        extra = dict(getattr(s.policy.model, "extra_body", None) or {})
        kwargs["extra_body"] = extra | {
            "continue_final_message": True,
            "add_generation_prompt": False,
        }
    return update, messages, kwargs


def _end_turn(
    state: RouterR1State, update: dict[str, Any], reply: AIMessage | None, rec: LLMCall
) -> dict[str, Any]:
    parts = [] if "transcript" in update else list(state.get("transcript") or [])
    turn = TranscriptPart(kind="policy", text=close_turn(reply.text if reply is not None else ""))
    turns = update.get("turns", state.get("turns", 0)) + 1
    return {
        **update,
        "transcript": [*parts, turn],
        "turns": turns,
        "calls": [rec],
        "cost": rec["cost"],
    }


def generate(
    state: RouterR1State, config: RunnableConfig, *, settings: RouterR1Settings
) -> dict[str, Any]:
    """One policy turn (or a ``max_cost`` stop before it)."""
    update, messages, kwargs = _start_turn(state, config, settings)
    if messages is None:
        return update
    reply, rec = call_llm(
        settings.policy, messages, role="policy", config=config, raise_errors=True, **kwargs
    )
    return _end_turn(state, update, reply, rec)


async def agenerate(
    state: RouterR1State, config: RunnableConfig, *, settings: RouterR1Settings
) -> dict[str, Any]:
    """Async twin of `generate`."""
    update, messages, kwargs = _start_turn(state, config, settings)
    if messages is None:
        return update
    reply, rec = await acall_llm(
        settings.policy, messages, role="policy", config=config, raise_errors=True, **kwargs
    )
    return _end_turn(state, update, reply, rec)


def parse(
    state: RouterR1State, config: RunnableConfig, *, settings: RouterR1Settings
) -> dict[str, Any]:
    """Parse the last turn; mark ``max_turns`` when it was the last generation allowed."""
    turn = parse_turn(state["transcript"][-1]["text"], settings.lookup)
    update: dict[str, Any] = {"pending": turn}
    if turn["kind"] != "answer" and state.get("turns", 0) >= settings.max_turns:
        update["stop_reason"] = "max_turns"
    return update


def _candidate_request(
    state: RouterR1State, config: RunnableConfig, s: RouterR1Settings
) -> tuple[ModelRef, str, dict[str, Any]] | None:
    """(candidate, prompt, kwargs), or None when the call could pass ``max_cost``."""
    turn = state["pending"]
    assert turn is not None and turn["candidate"] is not None
    ref = candidate_ref(s.pool, turn["candidate"])
    limit = s.candidate_max_tokens
    prompt = CANDIDATE_PROMPT.format(query=turn["query"], max_tokens=limit or 512)
    if would_exceed(
        state.get("cost", 0.0), worst_case_cost(ref, prompt, limit), config, s.max_cost
    ):
        return None
    return ref, prompt, {} if limit is None else {"max_tokens": limit}


def _information(state: RouterR1State, text: str) -> list[TranscriptPart]:
    return [*state["transcript"], TranscriptPart(kind="information", text=text)]


def _answered(state: RouterR1State, reply: AIMessage | None, rec: LLMCall) -> dict[str, Any]:
    if reply is not None:
        text = reply.text.strip()
    else:
        text = FAILED_CALL.format(name=rec["model"], error=rec["error"])
    return {"transcript": _information(state, text), "calls": [rec], "cost": rec["cost"]}


def call_candidate(
    state: RouterR1State, config: RunnableConfig, *, settings: RouterR1Settings
) -> dict[str, Any]:
    """Ask the named candidate the sub-question; its reply becomes an information block."""
    request = _candidate_request(state, config, settings)
    if request is None:
        return {"stop_reason": "max_cost"}
    ref, prompt, kwargs = request
    reply, rec = call_llm(ref, prompt, role="candidate", config=config, **kwargs)
    return _answered(state, reply, rec)


async def acall_candidate(
    state: RouterR1State, config: RunnableConfig, *, settings: RouterR1Settings
) -> dict[str, Any]:
    """Async twin of `call_candidate`."""
    request = _candidate_request(state, config, settings)
    if request is None:
        return {"stop_reason": "max_cost"}
    ref, prompt, kwargs = request
    reply, rec = await acall_llm(ref, prompt, role="candidate", config=config, **kwargs)
    return _answered(state, reply, rec)


def correct(
    state: RouterR1State, config: RunnableConfig, *, settings: RouterR1Settings
) -> dict[str, Any]:
    """Answer an unusable turn with a corrective information block listing the valid names."""
    turn = state["pending"]
    assert turn is not None
    names = ", ".join(settings.names)
    if turn["kind"] == "unknown":
        text = CORRECTION_UNKNOWN.format(name=turn["candidate"], names=names)
    else:
        text = CORRECTION_INVALID.format(problem=turn["text"], names=names)
    return {"transcript": _information(state, text)}


def finish(
    state: RouterR1State, config: RunnableConfig, *, settings: RouterR1Settings
) -> dict[str, Any]:
    """Set the extracted answer and why the run stopped (and reply to ``messages``)."""
    turn = state.get("pending")
    answered = turn is not None and turn["kind"] == "answer" and not state.get("stop_reason")
    reason = state.get("stop_reason") or ("answer" if answered else "max_turns")
    update = {"answer": turn["text"] if answered and turn else "", "stop_reason": reason}
    return with_reply(state, update, router=settings.name)


aparse, acorrect, afinish = async_twin(parse), async_twin(correct), async_twin(finish)


# --- conditions ---------------------------------------------------------------------------


def route_after_generate(state: RouterR1State) -> Literal["parse", "finish"]:
    """Parse the turn, unless ``max_cost`` stopped the run before it."""
    return "finish" if state.get("stop_reason") else "parse"


def route_after_parse(state: RouterR1State) -> Literal["call_candidate", "correct", "finish"]:
    """Finish on an answer or the last turn; call a valid candidate; correct anything else."""
    turn = state.get("pending")
    if state.get("stop_reason") or turn is None or turn["kind"] == "answer":
        return "finish"
    return "call_candidate" if turn["kind"] == "search" else "correct"


def route_next_turn(state: RouterR1State) -> Literal["generate", "finish"]:
    """Another turn, unless ``max_cost`` stopped the run or the step budget is nearly spent."""
    if state.get("stop_reason"):
        return "finish"
    if state.get("remaining_steps", MIN_STEPS_FOR_TURN) < MIN_STEPS_FOR_TURN:
        return "finish"
    return "generate"


# --- builder ------------------------------------------------------------------------------


def _is_chat_openai(model: BaseChatModel) -> bool:
    from langchain_openai import ChatOpenAI

    return isinstance(model, ChatOpenAI)


def _check_template(template: str) -> None:
    try:
        fields = {f for _, f, _, _ in string.Formatter().parse(template) if f is not None}
    except ValueError as exc:
        raise ValueError(f"prompt_template is not a valid format string: {exc}") from None
    missing, unknown = sorted(_PLACEHOLDERS - fields), sorted(fields - _PLACEHOLDERS)
    if missing:
        raise ValueError(f"prompt_template has no {{{missing[0]}}} placeholder")
    if unknown:
        raise ValueError(
            f"prompt_template has an unknown placeholder {{{unknown[0]}}} "
            "(only {candidates} and {question}; write literal braces as {{ }})"
        )


def _positive(name: str, value: float | None, *, allow_zero: bool = False) -> None:
    if value is not None and (value < 0 or (value == 0 and not allow_zero)):
        raise ValueError(f"{name} must be {'>= 0' if allow_zero else '> 0'}, got {value}")


def build_router_r1_graph(
    *,
    policy: BaseChatModel | str,
    candidates: CandidatePool,
    max_turns: int = 5,
    max_cost: float | None = None,
    prompt_template: str = DEFAULT_PROMPT,
    continue_final_message: bool = False,
    policy_max_tokens: int | None = 1024,
    policy_temperature: float | None = None,
    candidate_max_tokens: int | None = 512,
    candidate_names: list[str] | None = None,
    checkpointer: Any = None,
    store: Any = None,
    name: str = "router_r1",
) -> CompiledStateGraph:
    """Build the Router-R1 graph.

    Args:
        policy: The policy chat model (a vLLM server through ``ChatOpenAI``, `VLLMChatModel`,
            or any chat model; recorded at no cost), or a candidate name in ``candidates``
            (charged at its prices).
        candidates: The candidates the policy may call.
        max_turns: Most policy generations per question (published: 5).
        max_cost: Dollars the run may spend (also per run: ``configurable.max_cost``).
        prompt_template: The policy prompt, with ``{candidates}`` and ``{question}``.
        continue_final_message: Send the transcript as one assistant message to continue (for a
            published checkpoint on a vLLM server; see ``docs/routers/router_r1.md``) instead of
            alternating assistant turns and ``<information>`` user messages.
        policy_max_tokens: Output cap of a policy turn (None: the model's default).
        policy_temperature: Policy sampling temperature (None: the model's; published 1.0).
        candidate_max_tokens: Output cap of a candidate's reply (published: 512).
        candidate_names: The candidates to offer (default: the whole pool, in pool order).
        checkpointer: LangGraph checkpointer (e.g. ``SqliteSaver``) to make runs resumable.
        store: LangGraph store.
        name: The compiled graph's name.

    Raises:
        ValueError: A bad bound, or a template with a missing or unknown placeholder.
        UnknownCandidateError: ``candidate_names`` or ``policy`` names no candidate (lists them).
    """
    if max_turns < 1:
        raise ValueError(f"max_turns must be >= 1, got {max_turns}")
    _positive("max_cost", max_cost)
    _positive("policy_max_tokens", policy_max_tokens)
    _positive("candidate_max_tokens", candidate_max_tokens)
    _positive("policy_temperature", policy_temperature, allow_zero=True)
    _check_template(prompt_template)
    names = list(candidate_names) if candidate_names is not None else candidates.names
    if not names:
        raise ValueError("Router-R1 needs at least one candidate")
    for candidate in names:
        if candidate not in candidates:
            raise UnknownCandidateError(candidate, candidates.names, context="candidate_names")
    lookup = {candidates[n].model.lower(): n for n in names} | {n.lower(): n for n in names}
    settings = RouterR1Settings(
        policy=model_ref(policy, candidates, role="policy"),
        pool=candidates,
        names=tuple(names),
        lookup=lookup,
        prompt_template=prompt_template,
        candidates_text=describe_candidates(candidates, names),
        max_turns=max_turns,
        max_cost=max_cost,
        continue_final_message=continue_final_message,
        policy_max_tokens=policy_max_tokens,
        policy_temperature=policy_temperature,
        candidate_max_tokens=candidate_max_tokens,
        name=name,
    )
    graph = StateGraph(RouterR1State, input_schema=RouterGraphInput)
    add_read_input(graph, "generate")
    for key, func, afunc in (
        ("generate", generate, agenerate),
        ("parse", parse, aparse),
        ("call_candidate", call_candidate, acall_candidate),
        ("correct", correct, acorrect),
        ("finish", finish, afinish),
    ):
        graph.add_node(
            key, node(key, partial(func, settings=settings), partial(afunc, settings=settings))
        )
    graph.add_conditional_edges("generate", route_after_generate, ["parse", "finish"])
    graph.add_conditional_edges("parse", route_after_parse, ["call_candidate", "correct", "finish"])
    for source in ("call_candidate", "correct"):
        graph.add_conditional_edges(source, route_next_turn, ["generate", "finish"])
    graph.add_edge("finish", END)
    return graph.compile(checkpointer=checkpointer, store=store, name=name)
