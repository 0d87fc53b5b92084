"""Prompts and parsers of the multi-round routers (`knnmultiroundrouter`, `llmmultiroundrouter`).

The wording is ours; it follows the published protocol (PEERS.md §1.13–1.14): decompose a
question into at most N clear, self-contained sub-questions, one per line; for the LLM
router, name a candidate for each (``<sub-question> => <candidate name>``); answer each
sub-question with a short agent instruction; aggregate the sub-answers with a prompt that
asks for step-by-step reasoning and the final answer inside ``<answer></answer>`` (a single
letter for a multiple-choice question).

The parsers never raise: whatever a model writes, they return something usable (possibly
nothing, and the graph then falls back as documented in `multiround`). The prompt-size
estimates at the end feed the graphs' ``max_cost`` reservation.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from langchain_core.messages import BaseMessage, HumanMessage, SystemMessage

from langchain_llmrouter.candidates import CandidatePool, LLMCandidate, estimate_input_tokens

DECOMPOSE_MAX_TOKENS = 256
"""Output-token cap of the decomposition call (the peer's value)."""

ROUTE_MAX_TOKENS = 512
"""Output-token cap of the LLM router's decompose-and-route call (the peer's value)."""

AGGREGATE_MAX_TOKENS = 1024
"""Output-token cap of the aggregation call (the peer's value)."""

DECOMPOSE_PROMPT = """\
Split the question below into at most {max_subquestions} sub-questions whose answers together \
lead to the answer of the whole question.
Each sub-question must be clear and self-contained: understandable without the original \
question and without the other sub-questions. Do not ask the same thing twice. A simple \
question needs only one sub-question: the question itself.
Write one sub-question per line and nothing else (no numbering, no explanations).

Question: {question}"""
"""Decomposition prompt of the kNN multi-round router (``{question}``, ``{max_subquestions}``)."""

DECOMPOSE_ROUTE_PROMPT = """\
Split the question below into at most {max_subquestions} sub-questions whose answers together \
lead to the answer of the whole question, and choose the model that should answer each one.
Each sub-question must be clear and self-contained: understandable without the original \
question and without the other sub-questions. Do not ask the same thing twice. A simple \
question needs only one sub-question: the question itself.

The models (exact name, size, dollars per million input / output tokens, description):
{models}

For each sub-question choose the model likely to give the best-quality answer for what it \
costs: a cheap model for an easy or factual sub-question, a stronger one where the \
sub-question needs it.
Write one line per sub-question, exactly in the form
<sub-question> => <model name>
and nothing else.

Question: {question}"""
"""Decompose-and-route prompt of the LLM multi-round router (``{question}``,
``{max_subquestions}``, ``{models}``: one line per candidate)."""

CANDIDATE_SYSTEM_PROMPT = """\
You are one of several assistants working on a larger question; you are given one part of it. \
Answer that part directly and concisely: give the facts or the result it asks for, with only \
the reasoning needed to support it."""
"""System message of a sub-question call; the user message is the sub-question alone."""

AGGREGATE_PROMPT = """\
Answer the question below. Assistants have answered sub-questions of it; use their answers \
where they help, but check them, since they may be incomplete or wrong.

Question: {question}

Sub-questions and their answers:
{pairs}

{instruction}"""
"""Aggregation prompt (``{question}``, ``{pairs}``: the numbered sub-question/answer pairs,
``{instruction}``: `AGGREGATE_INSTRUCTION` or `AGGREGATE_MC_INSTRUCTION`)."""

AGGREGATE_INSTRUCTION = (
    "Reason step by step, then write the final answer inside <answer></answer>, "
    "for example <answer>42</answer>."
)
"""How the aggregator answers an open question."""

AGGREGATE_MC_INSTRUCTION = (
    "This is a multiple-choice question. Reason step by step, then write only the letter of "
    "the correct option inside <answer></answer>, for example <answer>B</answer>."
)
"""How the aggregator answers a multiple-choice question (see `is_multiple_choice`)."""

NO_ANSWER = "(no answer: the assistant asked this sub-question failed)"
"""What the aggregator is told for a sub-question whose candidate call failed."""

_THINK_RE = re.compile(r"<think>.*?(?:</think>|$)", re.DOTALL | re.IGNORECASE)
_ANSWER_RE = re.compile(r"<answer>(.*?)</answer>", re.DOTALL | re.IGNORECASE)
_OPEN_ANSWER_RE = re.compile(r"<answer>(.*)$", re.DOTALL | re.IGNORECASE)
_OPTION_RE = re.compile(r"^[ \t]*(?:\(([A-J])\)|([A-J])[.)])[ \t]+\S", re.MULTILINE)
_LETTER_RE = re.compile(r"^\(?([A-J])\)?(?:[.):]|\s|$)")
_MARKER_RE = re.compile(
    r"^(?:[-*•·+]+\s+|\(?\d{1,2}[.):]\s+"
    r"|(?:sub-?questions?|sub-?query|question|step|q)\s*\d*\s*[:.)]\s*)",
    re.IGNORECASE,
)
_EDGE_CHARS = "\"'`*_ \t"
_ROUTE_SEPARATOR = "=>"


def _normalise(text: str) -> str:
    """Case- and whitespace-insensitive form of a question, for comparisons."""
    return " ".join(text.split()).casefold()


def same_question(a: str, b: str) -> bool:
    """Whether two questions are the same text up to case and whitespace."""
    return _normalise(a) == _normalise(b)


def _clean_line(line: str) -> str:
    """A line without list markers, markdown emphasis and surrounding quotes."""
    line = line.strip().strip(_EDGE_CHARS)
    for _ in range(3):  # "1. Sub-question 1: ..." carries two markers
        stripped = _MARKER_RE.sub("", line, count=1).strip().strip(_EDGE_CHARS)
        if stripped == line:
            break
        line = stripped
    return line


def _usable(line: str) -> bool:
    """A line long enough to be a question and not a header such as ``Sub-questions:``."""
    return len(line) > 2 and not line.endswith(":")


def parse_subquestions(text: str, max_subquestions: int) -> list[str]:
    """Sub-questions from a decomposition reply, one per line.

    Reasoning in ``<think>`` blocks is dropped; numbering, bullets and prefixes such as
    ``Sub-question 2:`` are stripped; empty, too short (≤ 2 characters), header-like (ending
    with ``:``) and duplicate lines are dropped; at most ``max_subquestions`` are kept.
    """
    seen: set[str] = set()
    result: list[str] = []
    for raw in _THINK_RE.sub("", text).splitlines():
        line = _clean_line(raw)
        key = _normalise(line)
        if not _usable(line) or key in seen:
            continue
        seen.add(key)
        result.append(line)
        if len(result) == max_subquestions:
            break
    return result


def resolve_candidate(pool: CandidatePool, text: str) -> str | None:
    """The candidate a model named: its name or API model id, case-insensitively, else None.

    Quotes, backticks, angle brackets and a trailing full stop around the name are ignored.
    """
    wanted = text.strip().strip(_EDGE_CHARS + "<>[]().").strip().casefold()
    if not wanted:
        return None
    for candidate in pool:
        if wanted in (candidate.name.casefold(), candidate.model.casefold()):
            return candidate.name
    return None


def parse_routes(
    text: str, pool: CandidatePool, max_subquestions: int
) -> list[tuple[str, str | None, str]]:
    """``(sub-question, candidate name or None, name as written)`` per line of a route reply.

    Each line is split on its last ``=>``; the name is resolved with `resolve_candidate`
    (None when unknown). A usable line without ``=>`` is kept as a sub-question with no name
    (written as ``""``). Lines are cleaned, deduplicated and capped as in
    `parse_subquestions`.
    """
    seen: set[str] = set()
    result: list[tuple[str, str | None, str]] = []
    for raw in _THINK_RE.sub("", text).splitlines():
        question, separator, name = raw.rpartition(_ROUTE_SEPARATOR)
        if not separator:
            question, name = raw, ""
        question = _clean_line(question)
        key = _normalise(question)
        if not _usable(question) or key in seen:
            continue
        seen.add(key)
        name = name.strip()
        result.append((question, resolve_candidate(pool, name), name))
        if len(result) == max_subquestions:
            break
    return result


def strongest_candidate(pool: CandidatePool) -> str:
    """The LLM router's fallback choice: the most expensive candidate (input + output price),
    as the best guess at the strongest; ties go to the larger model, then to pool order."""

    def key(c: LLMCandidate) -> tuple[float, float]:
        return (c.input_price + c.output_price, c.size_billions or 0.0)

    best = pool.names[0]
    for candidate in pool:
        if key(candidate) > key(pool[best]):
            best = candidate.name
    return best


def is_multiple_choice(question: str) -> bool:
    """Whether a question offers lettered options.

    The rule: at least two lines start with option labels, in the form ``A.``, ``A)`` or
    ``(A)`` followed by text, and the labels include both ``A`` and ``B``. Options written
    inline on one line are not detected (the question is then aggregated as an open one).
    """
    labels = {a or b for a, b in _OPTION_RE.findall(question)}
    return {"A", "B"} <= labels


def extract_answer(text: str, *, multiple_choice: bool = False) -> str:
    """The final answer of an aggregator reply.

    The content of the last ``<answer>…</answer>`` (or of an unclosed last ``<answer>``);
    without a tag, the whole reply (``<think>`` blocks removed). For a multiple-choice
    question an answer that starts with an option label (``B``, ``(B)``, ``B. Paris``) is
    reduced to the letter.
    """
    visible = _THINK_RE.sub("", text)
    tagged = _ANSWER_RE.findall(visible)
    if tagged:
        answer = tagged[-1]
    else:
        unclosed = _OPEN_ANSWER_RE.search(visible)
        answer = unclosed.group(1) if unclosed else visible
    answer = answer.strip()
    if multiple_choice:
        letter = _LETTER_RE.match(answer)
        if letter:
            return letter.group(1)
    return answer


def decompose_prompt(question: str, max_subquestions: int) -> str:
    """The kNN multi-round router's decomposition request."""
    return DECOMPOSE_PROMPT.format(question=question, max_subquestions=max_subquestions)


def _describe(candidate: LLMCandidate) -> str:
    size = candidate.size or "size unknown"
    prices = f"${candidate.input_price:g} / ${candidate.output_price:g}"
    description = " ".join(candidate.description.split()) or "no description"
    return f"- {candidate.name} ({size}; {prices}): {description}"


def decompose_route_prompt(question: str, max_subquestions: int, pool: CandidatePool) -> str:
    """The LLM multi-round router's decompose-and-route request, listing every candidate."""
    models = "\n".join(_describe(c) for c in pool)
    return DECOMPOSE_ROUTE_PROMPT.format(
        question=question, max_subquestions=max_subquestions, models=models
    )


def candidate_messages(sub_question: str) -> list[BaseMessage]:
    """The messages a candidate gets for one sub-question: the agent instruction as the
    system message, the sub-question alone as the user message."""
    return [SystemMessage(CANDIDATE_SYSTEM_PROMPT), HumanMessage(sub_question)]


def aggregate_prompt(
    question: str, pairs: Sequence[tuple[str, str | None]], *, multiple_choice: bool
) -> str:
    """The aggregation request.

    Args:
        question: The user's question.
        pairs: ``(sub-question, answer)`` in decomposition order; an answer of None means the
            candidate call failed (the aggregator is told so with `NO_ANSWER`).
        multiple_choice: Ask for the option letter (see `is_multiple_choice`).
    """
    blocks = [
        f"Sub-question {i}: {sub}\nAnswer {i}: {NO_ANSWER if answer is None else answer}"
        for i, (sub, answer) in enumerate(pairs, start=1)
    ]
    instruction = AGGREGATE_MC_INSTRUCTION if multiple_choice else AGGREGATE_INSTRUCTION
    return AGGREGATE_PROMPT.format(
        question=question, pairs="\n\n".join(blocks), instruction=instruction
    )


def candidate_prompt_tokens(sub_question: str) -> int:
    """Estimated prompt tokens of one sub-question call (4 characters a token, counted per
    message)."""
    return sum(estimate_input_tokens(m.text) for m in candidate_messages(sub_question))


def aggregate_prompt_tokens(question: str, sub_questions: Sequence[str], answer_tokens: int) -> int:
    """Upper estimate of the aggregation prompt's tokens before the answers are known: the
    prompt with empty answers plus ``answer_tokens`` for each (a candidate's output cap)."""
    empty = [(q, "") for q in sub_questions]
    prompt = aggregate_prompt(question, empty, multiple_choice=is_multiple_choice(question))
    return estimate_input_tokens(prompt) + len(sub_questions) * answer_tokens
