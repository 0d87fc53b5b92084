"""AutoMix's self-verification: the few-shot prompt, its parsing, and ``k`` sampled checks.

The *same* model that answered judges its own answer ``k`` times (in parallel, sampled at a
temperature); the confidence is the share of "Correct" among the decisions that parse, or
0.5 when none does. The AutoMix graph's ``verify`` node and
`langchain_llmrouter.pipeline.self_verification` (which adds the training data's
``verification_score``) both use it; the names are public from
`langchain_llmrouter.graphs.automix`.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from langchain_core.runnables import RunnableConfig
from langchain_core.runnables.config import get_executor_for_config

from langchain_llmrouter.graphs._common import LLMCall, ModelRef, acall_llm, call_llm
from langchain_llmrouter.routers.automix import UNPARSED_CONFIDENCE

VERIFY_MAX_TOKENS = 256
"""Output-token cap of one verification sample (published: 250)."""

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


@dataclass(frozen=True)
class VerifyParams:
    """How an answer is verified: k samples at a temperature, each capped in length."""

    samples: int = 4
    temperature: float = 1.0
    max_tokens: int = VERIFY_MAX_TOKENS

    def kwargs(self) -> dict[str, Any]:
        """The chat-model call's keyword arguments (stop at the examples' separator)."""
        return {"temperature": self.temperature, "max_tokens": self.max_tokens, "stop": ["---"]}


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
