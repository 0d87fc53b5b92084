"""Router-R1's text protocol: the prompts, the transcript layout and the parsing of a policy
turn. Framework-free, so the rules can be read (and tested) apart from the graph."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Literal, TypedDict

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage

from langchain_llmrouter.candidates import CandidatePool

DEFAULT_PROMPT = """\
Answer the question below. You may consult the specialist LLMs listed further down. \
Whenever you receive new information, first reason about it inside <think> and </think>. \
If you find you are missing some knowledge, call one LLM by writing \
<search> LLM-Name: Your-Query </search>, where LLM-Name is exactly one of the names listed \
below and Your-Query is a concrete, self-contained question (never paste a description or \
the words Your-Query). Before each call, reason inside <think> </think> about what you need \
and which LLM is best placed to provide it. The LLM's reply will be returned to you between \
<information> and </information>. You may consult different LLMs, and the same LLM more than \
once, as often as it helps. When you need no further information, give the final answer \
inside <answer> and </answer> with no explanation, for example <answer> Beijing </answer>.

#### The Descriptions of Each LLM
{candidates}

Question: {question}"""
"""The policy's prompt (published protocol and layout, our wording). Placeholders:
``{candidates}`` (from `describe_candidates`) and ``{question}``."""

CANDIDATE_PROMPT = """\
{query}

You are one of several expert models that a coordinating assistant consults. Answer the \
question above directly, with a short justification. If you cannot answer it, give any \
context that would help, or say plainly that you cannot help so that the assistant asks \
another model. Stay on topic and keep your reply under {max_tokens} tokens."""
"""The wrapper around a sub-question sent to a candidate (``{query}``, ``{max_tokens}``)."""

CORRECTION_INVALID = (
    "Your last turn {problem}. Reason in <think> </think>, then either call one LLM with "
    "<search> LLM-Name: Your-Query </search> or give the final answer as "
    "<answer> ... </answer>. Valid LLM names: {names}."
)
"""Corrective information for a turn with no usable tag (``{problem}``, ``{names}``)."""

CORRECTION_UNKNOWN = (
    "There is no LLM called {name!r}. Call one of these exactly as written: {names}."
)
"""Corrective information for a turn naming an unknown candidate."""

FAILED_CALL = "The call to {name} failed ({error}). Ask another LLM, or answer from what you know."
"""Information returned when a candidate call fails."""

POLICY_STOP = ("</search>", "</answer>")
"""Stop strings of a policy turn (the cut tag is appended back)."""

_PLACEHOLDERS = frozenset({"candidates", "question"})
_CLOSE = {"<search>": "</search>", "<answer>": "</answer>"}


class TranscriptPart(TypedDict):
    """One piece of the transcript: a policy turn or an information block's content."""

    kind: Literal["policy", "information"]
    text: str


class ParsedTurn(TypedDict):
    """What a policy turn asked for."""

    kind: Literal["search", "answer", "invalid", "unknown"]
    """``search`` (a valid call), ``answer``, ``invalid`` (no usable tag) or ``unknown``
    (a call naming no candidate)."""
    candidate: str | None
    """The candidate to call (``search``) or the name written (``unknown``)."""
    query: str
    """The sub-question (``search``)."""
    text: str
    """The answer (``answer``) or what was wrong (``invalid``)."""


def describe_candidates(pool: CandidatePool, names: Sequence[str] | None = None) -> str:
    """The prompt's candidate section: one line per candidate with its exact name, the first
    sentence of its description, its size and its prices."""
    lines = []
    for name in names or pool.names:
        c = pool[name]
        summary = re.split(r"(?<=[.!?])\s+", c.description.strip(), maxsplit=1)[0]
        facts = [f"size {c.size}"] if c.size else []
        facts.append(f"${c.input_price:g} / ${c.output_price:g} per million input / output tokens")
        lines.append(f"{name}: {summary + ' ' if summary else ''}({'; '.join(facts)})")
    return "\n".join(lines)


def transcript_text(parts: Sequence[TranscriptPart]) -> str:
    """The transcript in the published layout: ``\\n{turn}\\n<information>{info}</information>\\n``."""
    return "".join(
        f"\n{p['text']}\n" if p["kind"] == "policy" else f"<information>{p['text']}</information>\n"
        for p in parts
    )


def policy_messages(
    prompt: str, parts: Sequence[TranscriptPart], continue_final_message: bool
) -> list[BaseMessage]:
    """The policy's request: alternating turns, or the prompt plus the transcript to continue."""
    messages: list[BaseMessage] = [HumanMessage(prompt)]
    if continue_final_message:
        if parts:
            messages.append(AIMessage(transcript_text(parts)))
        return messages
    for part in parts:
        if part["kind"] == "policy":
            messages.append(AIMessage(part["text"]))
        else:
            messages.append(HumanMessage(f"<information>{part['text']}</information>"))
    return messages


def close_turn(text: str) -> str:
    """End a policy turn at its first closing tag, putting back the one a stop string cut."""
    ends = [(i, tag) for tag in POLICY_STOP if (i := text.find(tag)) >= 0]
    if ends:
        index, tag = min(ends)
        return text[: index + len(tag)]
    opened = max(_CLOSE, key=text.rfind)
    return text + _CLOSE[opened] if text.rfind(opened) >= 0 else text


def parse_turn(text: str, lookup: Mapping[str, str]) -> ParsedTurn:
    """Parse a (closed) policy turn.

    Args:
        text: The turn, as returned by `close_turn`.
        lookup: Lower-cased candidate names and model ids → candidate name.
    """
    end = text.find("</answer>")
    if end >= 0 and (start := text.rfind("<answer>", 0, end)) >= 0:
        answer = text[start + len("<answer>") : end].strip()
        if answer:
            return ParsedTurn(kind="answer", candidate=None, query="", text=answer)
        return _invalid("gave an empty <answer>")
    end = text.rfind("</search>")
    start = text.rfind("<search>", 0, max(end, 0))
    if end < 0 or start < 0:
        return _invalid("had neither a <search> call nor an <answer>")
    body = text[start + len("<search>") : end].strip()
    name, colon, query = body.partition(":")
    name, query = name.strip().strip("[]'\"`*"), query.strip()
    if not colon or not name or not query:
        return _invalid("had a <search> that is not of the form 'LLM-Name: Your-Query'")
    found = lookup.get(name.lower())
    if found is None:
        return ParsedTurn(kind="unknown", candidate=name, query=query, text="")
    return ParsedTurn(kind="search", candidate=found, query=query, text="")


def _invalid(problem: str) -> ParsedTurn:
    return ParsedTurn(kind="invalid", candidate=None, query="", text=problem)


def _question(question: str) -> str:
    question = question.strip()
    if not question:
        raise ValueError("the question is empty")
    return question if question.endswith("?") else question + "?"
