"""AutoMix as a LangGraph graph: answer, self-verify, decide, escalate (arXiv 2310.12963).

The cascade's models, cheapest first, take turns::

    read_input ──► answer ──► verify ──► decide ──► answer (next stage) ... ──► finish

``read_input``: the question, from ``{"question": ...}`` or the last human message of
``{"messages": [...]}`` (see `read_input`); ``finish`` appends the accepted answer to
``messages`` as an `AIMessage` when the question came from them.

``answer``: the stage's candidate answers the question concisely (`ANSWER_PROMPT`).
``verify``: the *same* model judges its own answer ``k`` times (`verification_prompt`, a
few-shot prompt in the published format, sampled at ``verify_temperature``; the ``k``
requests run in parallel); the confidence is the share of "Correct" among the decisions
that parse (`parse_verification`), or 0.5 when none does (failed calls count as
unparseable). ``decide``: the stage's policy (`ThresholdPolicy` / `POMDPPolicy` from
`langchain_llmrouter.routers.automix`, the same code the router's fit simulates) says
escalate or accept. The last model's answer is accepted unverified. A failed answer
escalates without verification. Before every paid call the graph checks ``max_cost``:
when the next stage cannot be afforded it accepts the current answer with stop_reason
``"max_cost"``. The loop is bounded by the cascade's length and a `RemainingSteps` guard:
a cascade of n models needs ``recursion_limit >= 3n + 1`` (3n steps, ``read_input``
included), so the default 25 allows 8 models; past the limit the graph accepts the current answer with stop_reason
``"max_turns"`` (raise ``recursion_limit`` in the run's config for longer cascades).

The state keeps one record per stage (model, answer, confidence, escalated), so streaming
with ``stream_mode="updates"`` shows each step. `add_self_verification` runs the verify
step over routing-data rows with a ``response`` to produce the ``verification_score``
field that `AutoMixRouter` is trained on.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Annotated, Any, Literal, TypedDict

from langchain_core.runnables import RunnableConfig
from langchain_core.runnables.config import get_executor_for_config
from langgraph.graph import END, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.managed import RemainingSteps

from langchain_llmrouter.candidates import CandidatePool
from langchain_llmrouter.errors import DataFormatError
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
    UNPARSED_CONFIDENCE,
    AutoMixPolicy,
    AutoMixRouter,
    ThresholdPolicy,
)

ANSWER_MAX_TOKENS = 256
"""Output-token cap of an answer (the published value is 100 tokens on one line)."""
VERIFY_MAX_TOKENS = 256
"""Output-token cap of one verification sample (published: 250)."""

ANSWER_PROMPT = """Answer the question below as concisely as you can: a word, a number or a \
short phrase where that is enough, with no explanation.

Question: {question}

Answer:"""
"""The ``answer`` node's prompt (AutoMix asks for a short single-phrase answer)."""

VERIFY_INSTRUCTION = (
    "Check whether the AI generated answer correctly answers the question. Reason in a "
    "sentence or two, then give your decision, choosing between Correct and Incorrect."
)
"""The judging instruction repeated in every block of the verification prompt."""

VERIFY_EXAMPLES: tuple[tuple[str, str, str, str], ...] = (
    ("Which planet is closest to the Sun?", "Venus", "Mercury is; Venus is second.", "Incorrect"),
    ("How many sides does a hexagon have?", "6", "A hexagon has six sides.", "Correct"),
    ("What is 15% of 80?", "15", "0.15 × 80 = 12, not 15.", "Incorrect"),
    ("Who wrote Romeo and Juliet?", "William Shakespeare", "It is Shakespeare's play.", "Correct"),
)
"""Few-shot examples of the verification prompt: (question, answer, evaluation, decision)."""

VERIFY_SEPARATOR = "\n\n---\n\n"
"""Between the verification prompt's blocks; its ``---`` is also the stop string."""

_BLOCK = (
    "Question: {question}\n\nAI Generated Answer: {answer}\n\nInstruction: {instruction}"
    "\n\nEvaluation:"
)
_DECISION_RE = re.compile(
    r"(verification\s+decision\s*:?\s*)?the\s+ai\s+generated\s+answer\s+is\s*:?\s*[*_\"']*"
    r"\s*(correct|incorrect)\b",
    re.IGNORECASE,
)


def verification_prompt(question: str, answer: str) -> str:
    """The few-shot self-verification prompt for one (question, answer) pair."""
    blocks = [
        _BLOCK.format(question=q, answer=a, instruction=VERIFY_INSTRUCTION)
        + f" {evaluation}\n\nVerification Decision: The AI generated answer is {decision}"
        for q, a, evaluation, decision in VERIFY_EXAMPLES
    ]
    blocks.append(_BLOCK.format(question=question, answer=answer, instruction=VERIFY_INSTRUCTION))
    return VERIFY_SEPARATOR.join(blocks)


def parse_verification(text: str) -> bool | None:
    """Read a verification reply: True for "Correct", False for "Incorrect", None when no
    "The AI generated answer is Correct|Incorrect" statement is found (the one after
    "Verification Decision" wins, else the last)."""
    matches = list(_DECISION_RE.finditer(text or ""))
    if not matches:
        return None
    decided = [m for m in matches if m.group(1)] or matches
    return decided[-1].group(2).lower() == "correct"


def verification_confidence(votes: Sequence[bool | None]) -> float:
    """Share of "Correct" among the parseable decisions; `UNPARSED_CONFIDENCE` if none."""
    parsed = [v for v in votes if v is not None]
    return sum(parsed) / len(parsed) if parsed else UNPARSED_CONFIDENCE


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
class VerifyParams:
    """How an answer is verified: k samples at a temperature, each capped in length."""

    samples: int = 4
    temperature: float = 1.0
    max_tokens: int = VERIFY_MAX_TOKENS

    def kwargs(self) -> dict[str, Any]:
        """The chat-model call's keyword arguments (stop at the examples' separator)."""
        return {"temperature": self.temperature, "max_tokens": self.max_tokens, "stop": ["---"]}


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


Verification = tuple[float, list[bool | None], list[LLMCall]]
"""The confidence, each sample's decision (None: unparseable or failed), and the calls."""


def verify_answer(
    ref: ModelRef,
    question: str,
    answer: str,
    params: VerifyParams,
    config: RunnableConfig | None = None,
) -> Verification:
    """Run ``params.samples`` verifications of ``answer`` by ``ref`` in parallel."""
    prompt, kwargs = verification_prompt(question, answer), params.kwargs()
    with get_executor_for_config(config) as executor:
        results = list(
            executor.map(
                lambda _: call_llm(ref, prompt, role="verify", config=config, **kwargs),
                range(params.samples),
            )
        )
    return _tally([rec for _, rec in results])


async def averify_answer(
    ref: ModelRef,
    question: str,
    answer: str,
    params: VerifyParams,
    config: RunnableConfig | None = None,
) -> Verification:
    """Async twin of `verify_answer`."""
    prompt, kwargs = verification_prompt(question, answer), params.kwargs()
    results = await asyncio.gather(
        *(
            acall_llm(ref, prompt, role="verify", config=config, **kwargs)
            for _ in range(params.samples)
        )
    )
    return _tally([rec for _, rec in results])


def _tally(records: list[LLMCall]) -> Verification:
    votes = [None if r["error"] else parse_verification(r["response"]) for r in records]
    return verification_confidence(votes), votes, records


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
    policy: AutoMixPolicy | AutoMixRouter | None,
    thresholds: Sequence[float] | None,
    n_stages: int,
) -> AutoMixPolicy:
    if policy is not None and thresholds is not None:
        raise ValueError("give either policy or thresholds, not both")
    if isinstance(policy, AutoMixRouter):
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
    policy: AutoMixPolicy | AutoMixRouter | None = None,
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
    if isinstance(policy, AutoMixRouter):
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


# --- training data ---------------------------------------------------------------------


def _read_rows(path: Path) -> list[dict[str, Any]]:
    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataFormatError(f"invalid JSON: {exc.msg}", path=path, line=number) from None
        if not isinstance(row, dict):
            raise DataFormatError("expected a JSON object per line", path=path, line=number)
        rows.append(row)
    return rows


def add_self_verification(
    rows: Iterable[Mapping[str, Any]] | str | Path,
    candidates: CandidatePool,
    *,
    samples: int = 4,
    temperature: float = 1.0,
    max_tokens: int = VERIFY_MAX_TOKENS,
    models: Sequence[str] | None = None,
    output: str | Path | None = None,
    max_concurrency: int = 4,
) -> list[dict[str, Any]]:
    """Add ``verification_score`` to routing-data rows by running AutoMix's verify step.

    Every row (LLMRouter routing JSONL: ``query``, ``model_name``, ``response``, ...) with a
    non-empty ``response`` is verified ``samples`` times by its own model, with the graph's
    prompt and parsing; rows without a response are kept unchanged. Not resumable: an
    interrupted run starts again.

    Args:
        rows: The rows, or a JSONL file of them.
        candidates: The pool that calls the models (``model_name`` must be in it).
        samples: Verifications per row (k; train with the same ``verify_samples``).
        temperature: Sampling temperature of the verifications.
        max_tokens: Output-token cap of one verification.
        models: Verify only rows of these candidates (e.g. all but the cascade's last).
        output: Write the rows here as JSONL.
        max_concurrency: Rows verified at the same time.

    Returns:
        The rows, with ``verification_score`` where verified.

    Raises:
        DataFormatError: a row to verify has no ``query`` or ``model_name`` (names the line).
        UnknownCandidateError: a row's model is not in the pool.
    """
    source = Path(rows) if isinstance(rows, str | Path) else None
    items = _read_rows(Path(rows)) if isinstance(rows, str | Path) else [dict(r) for r in rows]
    todo: list[dict[str, Any]] = []
    for number, row in enumerate(items, start=1):
        if not isinstance(row.get("response"), str) or not row["response"].strip():
            continue
        for key in ("query", "model_name"):
            if not isinstance(row.get(key), str) or not row[key].strip():
                raise DataFormatError(
                    "expected a non-empty string", path=source, line=number, field=key
                )
        if models is None or row["model_name"] in models:
            candidates[row["model_name"]]  # unknown names list the valid ones
            todo.append(row)
    params = VerifyParams(samples, temperature, max_tokens)

    def run(row: dict[str, Any]) -> None:
        ref = candidate_ref(candidates, row["model_name"])
        row["verification_score"] = verify_answer(ref, row["query"], row["response"], params)[0]

    with get_executor_for_config({"max_concurrency": max_concurrency}) as executor:
        list(executor.map(run, todo))
    if output is not None:
        lines = [json.dumps(row, ensure_ascii=False) + "\n" for row in items]
        Path(output).write_text("".join(lines), encoding="utf-8")
    return items
