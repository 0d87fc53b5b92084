"""AutoMix as a LangGraph graph: answer, self-verify, decide, escalate (arXiv 2310.12963).

The cascade's models, cheapest first, take turns::

    read_input ──► answer ──► verify ──► decide ──► answer (next stage) ... ──► finish

The stage's model answers, checks its own answer ``k`` times (`verify_answer`), and the
policy of `langchain_llmrouter.routers.automix` accepts or escalates; the last model's
answer is accepted unverified. `build_automix_graph` builds the graph;
`langchain_llmrouter.graphs.automix_router.AutoMixRouter` (the registry's ``automix``) fits
its policy from routing data. ``docs/routers/automix.md`` describes the nodes, the bounds
and the stop reasons.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Annotated, Any, Literal, TypedDict

from langchain_core.runnables import RunnableConfig
from langgraph.graph import END, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.managed import RemainingSteps

from langchain_llmrouter.candidates import CandidatePool
from langchain_llmrouter.graphs._automix_verify import (
    VERIFY_EXAMPLES,
    VERIFY_INSTRUCTION,
    VERIFY_MAX_TOKENS,
    VERIFY_SEPARATOR,
    Verification,
    VerifyParams,
    averify_answer,
    parse_verification,
    verification_confidence,
    verification_prompt,
    verify_answer,
)
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
    node,
    with_reply,
    worst_case_cost,
    would_exceed,
)
from langchain_llmrouter.routers.automix import (
    DEFAULT_THRESHOLD,
    AutoMixFitter,
    AutoMixPolicy,
    ThresholdPolicy,
)

if TYPE_CHECKING:
    from langchain_llmrouter.pipeline.self_verification import add_self_verification

__all__ = [
    "ANSWER_MAX_TOKENS",
    "ANSWER_PROMPT",
    "VERIFY_EXAMPLES",
    "VERIFY_INSTRUCTION",
    "VERIFY_MAX_TOKENS",
    "VERIFY_SEPARATOR",
    "AutoMixSettings",
    "AutoMixState",
    "StageRecord",
    "Verification",
    "VerifyParams",
    "aanswer",
    "add_self_verification",
    "adecide",
    "afinish",
    "answer",
    "averify",
    "averify_answer",
    "build_automix_graph",
    "decide",
    "default_cascade",
    "finish",
    "merge_stages",
    "parse_verification",
    "route_after_answer",
    "route_after_decide",
    "verification_confidence",
    "verification_prompt",
    "verify",
    "verify_answer",
]

ANSWER_MAX_TOKENS = 256
"""Output-token cap of an answer (the published value is 100 tokens on one line)."""

ANSWER_PROMPT = """Answer the question below as concisely as you can: a word, a number or a \
short phrase where that is enough, with no explanation.

Question: {question}

Answer:"""
"""The ``answer`` node's prompt (AutoMix asks for a short single-phrase answer)."""

# --- state -----------------------------------------------------------------------------


class StageRecord(TypedDict, total=False):
    """What happened at one stage of the cascade."""

    stage: int
    """0-based position in the cascade."""
    model: str
    """The stage's candidate."""
    last: bool
    """Whether this is the last stage (accepted unverified)."""
    answer: str
    """Its answer ("" when the call failed)."""
    error: str | None
    """The failed answer call's error."""
    votes: list[bool | None]
    """Each verification's decision (None: unparseable or failed)."""
    confidence: float
    """Share of "Correct" decisions (absent: not verified)."""
    escalated: bool
    """Whether the cascade went on to the next stage."""


def merge_stages(
    left: list[StageRecord] | None, right: list[StageRecord] | None
) -> list[StageRecord]:
    """Reducer of ``stages``: a record updates the one of the same stage, or is added.

    An empty list clears the records (``read_input`` writes one, so a second question on
    the same thread starts at the first stage).
    """
    if right is not None and not right:
        return []
    merged: dict[int, StageRecord] = {r["stage"]: r for r in left or []}
    for record in right or []:
        merged[record["stage"]] = StageRecord(**{**merged.get(record["stage"], {}), **record})
    return [merged[s] for s in sorted(merged)]


class AutoMixState(RouterGraphState, total=False):
    """The AutoMix graph's state (input: ``{"question": ...}`` or ``{"messages": [...]}``)."""

    stage: int
    """The current stage."""
    stages: Annotated[list[StageRecord], merge_stages]
    """One record per stage reached."""
    model: str
    """The candidate whose answer was accepted."""
    remaining_steps: RemainingSteps


@dataclass(frozen=True)
class AutoMixSettings:
    """What the builder binds to the nodes."""

    refs: tuple[ModelRef, ...]
    policy: AutoMixPolicy
    verify: VerifyParams
    answer_max_tokens: int
    max_cost: float | None
    name: str = "automix"
    """The graph's name (the router named in the reply's metadata)."""


def _record(state: AutoMixState) -> StageRecord:
    """The current stage's record (just its number before it has answered)."""
    stage = state.get("stage", 0)
    found = [r for r in state.get("stages") or [] if r["stage"] == stage]
    return found[0] if found else StageRecord(stage=stage)


# --- nodes -----------------------------------------------------------------------------


def _answer_call(
    state: AutoMixState, config: RunnableConfig, settings: AutoMixSettings
) -> dict[str, Any] | None:
    """The stage's `call_llm` arguments, or None when the call cannot be afforded."""
    ref = settings.refs[state.get("stage", 0)]
    prompt = ANSWER_PROMPT.format(question=state["question"])
    estimate = worst_case_cost(ref, prompt, settings.answer_max_tokens)
    if would_exceed(state.get("cost", 0.0), estimate, config, settings.max_cost):
        return None
    return {
        "ref": ref,
        "prompt": prompt,
        "config": config,
        "max_tokens": settings.answer_max_tokens,
    }


def _answer_update(state: AutoMixState, settings: AutoMixSettings, rec: LLMCall) -> dict[str, Any]:
    stage = state.get("stage", 0)
    record = StageRecord(
        stage=stage,
        model=rec["model"],
        last=stage == len(settings.refs) - 1,
        answer=rec["response"].strip(),
        error=rec["error"],
    )
    return {"calls": [rec], "cost": rec["cost"], "stages": [record]}


def answer(
    state: AutoMixState, config: RunnableConfig, *, settings: AutoMixSettings
) -> dict[str, Any]:
    """The current stage's candidate answers the question."""
    call = _answer_call(state, config, settings)
    if call is None:
        return {"stop_reason": "max_cost"}
    return _answer_update(state, settings, call_llm(role="candidate", **call)[1])


async def aanswer(
    state: AutoMixState, config: RunnableConfig, *, settings: AutoMixSettings
) -> dict[str, Any]:
    """Async twin of `answer`."""
    call = _answer_call(state, config, settings)
    if call is None:
        return {"stop_reason": "max_cost"}
    return _answer_update(state, settings, (await acall_llm(role="candidate", **call))[1])


def _verify_args(
    state: AutoMixState, config: RunnableConfig, settings: AutoMixSettings
) -> tuple[ModelRef, str, str] | None:
    """The stage's model, question and answer; None when k verifications are unaffordable."""
    ref, text = settings.refs[state.get("stage", 0)], _record(state).get("answer", "")
    one = worst_case_cost(
        ref, verification_prompt(state["question"], text), settings.verify.max_tokens
    )
    if would_exceed(
        state.get("cost", 0.0), settings.verify.samples * one, config, settings.max_cost
    ):
        return None
    return ref, state["question"], text


def _verify_update(state: AutoMixState, result: Verification) -> dict[str, Any]:
    confidence, votes, records = result
    record = StageRecord(stage=state.get("stage", 0), votes=votes, confidence=confidence)
    return {"calls": records, "cost": sum(r["cost"] for r in records), "stages": [record]}


def verify(
    state: AutoMixState, config: RunnableConfig, *, settings: AutoMixSettings
) -> dict[str, Any]:
    """The stage's model checks its own answer ``k`` times (in parallel)."""
    args = _verify_args(state, config, settings)
    if args is None:
        return {"stop_reason": "max_cost"}
    return _verify_update(state, verify_answer(*args, settings.verify, config))


async def averify(
    state: AutoMixState, config: RunnableConfig, *, settings: AutoMixSettings
) -> dict[str, Any]:
    """Async twin of `verify`."""
    args = _verify_args(state, config, settings)
    if args is None:
        return {"stop_reason": "max_cost"}
    return _verify_update(state, await averify_answer(*args, settings.verify, config))


def decide(
    state: AutoMixState, config: RunnableConfig, *, settings: AutoMixSettings
) -> dict[str, Any]:
    """Apply the stage's policy: escalate to the next stage, or accept the answer.

    A failed answer escalates; an escalation that cannot be afforded (or that the step
    budget no longer allows) accepts the current answer instead.
    """
    stage, record = state.get("stage", 0), _record(state)
    accept: dict[str, Any] = {"stages": [StageRecord(stage=stage, escalated=False)]}
    if state.get("stop_reason"):
        return accept
    if not record.get("error") and not settings.policy.escalate(stage, record.get("confidence")):
        return accept
    # Steps still needed: answer and finish, plus verify and decide unless the next is last.
    needed = 2 if stage + 2 == len(settings.refs) else 4
    if state.get("remaining_steps", needed + 1) <= needed:
        return {**accept, "stop_reason": "max_turns"}
    if _answer_call(AutoMixState(**{**state, "stage": stage + 1}), config, settings) is None:
        return {**accept, "stop_reason": "max_cost"}
    return {"stages": [StageRecord(stage=stage, escalated=True)], "stage": stage + 1}


def finish(
    state: AutoMixState, config: RunnableConfig, *, settings: AutoMixSettings | None = None
) -> dict[str, Any]:
    """Accept the latest successful answer (the current stage's, unless it failed), and
    reply to ``messages`` when the question came from them."""
    answered = [r for r in state.get("stages") or [] if "answer" in r and not r.get("error")]
    if not answered:
        update = {"answer": "", "stop_reason": state.get("stop_reason") or "error"}
    else:
        final = answered[-1]
        reason = state.get("stop_reason") or "answer"
        update = {"answer": final["answer"], "model": final["model"], "stop_reason": reason}
    return with_reply(state, update, router=settings.name if settings else "automix")


adecide, afinish = async_twin(decide), async_twin(finish)


def route_after_answer(state: AutoMixState) -> Literal["verify", "decide", "finish"]:
    """Verify a non-final answer; a failed one goes straight to ``decide`` (escalate)."""
    record = _record(state)
    if state.get("stop_reason") or record.get("last", True):
        return "finish"
    return "decide" if record.get("error") else "verify"


def route_after_decide(state: AutoMixState) -> Literal["answer", "finish"]:
    """The next stage's answer after an escalation (which moved ``stage`` on to a stage with
    no record yet), else finish."""
    if state.get("stop_reason") or "escalated" in _record(state):
        return "finish"
    return "answer"


# --- the builder -----------------------------------------------------------------------


def _resolve_policy(
    policy: AutoMixPolicy | AutoMixFitter | None,
    thresholds: Sequence[float] | None,
    n_stages: int,
) -> AutoMixPolicy:
    if policy is not None and thresholds is not None:
        raise ValueError("give either policy or thresholds, not both")
    if isinstance(policy, AutoMixFitter):
        policy = policy.policy_
    if policy is None:
        values = [DEFAULT_THRESHOLD] * (n_stages - 1) if thresholds is None else list(thresholds)
        if not all(isinstance(t, int | float) and 0.0 <= t <= 1.0 for t in values):
            raise ValueError(f"thresholds must be numbers in [0, 1], got {values}")
        policy = ThresholdPolicy(tuple(float(t) for t in values))
    if policy.n_decisions != n_stages - 1:
        raise ValueError(
            f"the policy decides for {policy.n_decisions} stage(s), but a cascade of "
            f"{n_stages} candidate(s) needs {n_stages - 1} (one per stage but the last)"
        )
    return policy


def default_cascade(candidates: CandidatePool) -> list[str]:
    """The published two-model cascade: the pool's cheapest candidate, then its dearest
    (input + output price; pool order on ties). The paper pairs the smallest and the largest
    model; price is used here because cost is what the cascade trades against quality.
    Pass ``cascade=`` for a longer one."""
    names = candidates.names
    by_price = sorted(
        names,
        key=lambda n: (candidates[n].input_price + candidates[n].output_price, names.index(n)),
    )
    return [by_price[0], by_price[-1]] if len(by_price) > 1 else by_price


def build_automix_graph(
    *,
    candidates: CandidatePool,
    cascade: Sequence[str] | None = None,
    policy: AutoMixPolicy | AutoMixFitter | None = None,
    thresholds: Sequence[float] | None = None,
    verify_samples: int | None = None,
    verify_temperature: float = 1.0,
    answer_max_tokens: int = ANSWER_MAX_TOKENS,
    verify_max_tokens: int = VERIFY_MAX_TOKENS,
    max_cost: float | None = None,
    checkpointer: Any = None,
    store: Any = None,
    name: str = "automix",
) -> CompiledStateGraph:
    """Build the AutoMix answer–verify–escalate graph.

    Args:
        candidates: The pool the cascade's models come from.
        cascade: Candidate names, cheapest first. Default: a fitted router's cascade, else
            the pool's cheapest then dearest candidate (`default_cascade`).
        policy: A fitted `AutoMixRouter` (its policy, and its cascade, ``verify_samples``
            and ``max_cost`` as defaults) or a policy object.
        thresholds: Instead of ``policy``: escalate after stage ``s`` iff its confidence
            is at most ``thresholds[s]`` (one per stage but the last; default 0.5 each,
            the untrained default).
        verify_samples: Verification samples k per answer (default: the router's, else 4).
        verify_temperature: Sampling temperature of the verifications.
        answer_max_tokens: Output-token cap of an answer.
        verify_max_tokens: Output-token cap of one verification.
        max_cost: Dollars one question may cost (also per run: ``configurable.max_cost``).
        checkpointer: A LangGraph checkpointer (e.g. ``SqliteSaver``), or None.
        store: A LangGraph store, or None.
        name: The compiled graph's name.

    Raises:
        UnknownCandidateError: a cascade name is not in the pool (lists the valid ones).
        ValueError: an empty or repeating cascade, a policy of the wrong length, bad values.
    """
    if isinstance(policy, AutoMixFitter):
        policy._check_fitted()
        cascade = policy.cascade_ if cascade is None else cascade
        verify_samples = policy.verify_samples if verify_samples is None else verify_samples
        max_cost = policy.max_cost if max_cost is None else max_cost
    names = default_cascade(candidates) if cascade is None else list(cascade)
    if not names or len(set(names)) != len(names):
        raise ValueError(f"the cascade needs one or more distinct candidates, got {names}")
    refs = tuple(candidate_ref(candidates, n) for n in names)  # unknown names list the valid
    verify_params = VerifyParams(
        4 if verify_samples is None else verify_samples, verify_temperature, verify_max_tokens
    )
    if min(verify_params.samples, answer_max_tokens, verify_max_tokens) < 1:
        raise ValueError("verify_samples, answer_max_tokens and verify_max_tokens must be >= 1")
    if verify_temperature < 0:
        raise ValueError(f"verify_temperature must be >= 0, got {verify_temperature}")
    if max_cost is not None and max_cost <= 0:
        raise ValueError(f"max_cost must be > 0, got {max_cost}")
    settings = AutoMixSettings(
        refs=refs,
        policy=_resolve_policy(policy, thresholds, len(names)),
        verify=verify_params,
        answer_max_tokens=answer_max_tokens,
        max_cost=max_cost,
        name=name,
    )
    graph = StateGraph(AutoMixState, input_schema=RouterGraphInput)
    fresh = {"stage": 0, "stages": [], "model": "", "answer": "", "stop_reason": None}
    add_read_input(graph, "answer", fresh=fresh)
    nodes = {
        "answer": (answer, aanswer),
        "verify": (verify, averify),
        "decide": (decide, adecide),
        "finish": (finish, afinish),
    }
    for key, (func, afunc) in nodes.items():
        graph.add_node(
            key, node(key, partial(func, settings=settings), partial(afunc, settings=settings))
        )
    graph.add_conditional_edges("answer", route_after_answer, ["verify", "decide", "finish"])
    graph.add_edge("verify", "decide")
    graph.add_conditional_edges("decide", route_after_decide, ["answer", "finish"])
    graph.add_edge("finish", END)
    return graph.compile(checkpointer=checkpointer, store=store, name=name)


def __getattr__(name: str) -> Any:
    # `add_self_verification` moved to the pipeline (it makes training data); imported on
    # first use, since the pipeline module builds on this package's verification step.
    if name == "add_self_verification":
        module = importlib.import_module("langchain_llmrouter.pipeline.self_verification")
        return module.add_self_verification
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
