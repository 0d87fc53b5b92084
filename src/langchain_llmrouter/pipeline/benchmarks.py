"""The 11 built-in benchmarks: where each lives on the hub and how one of its records (in the
hub dataset's own schema) becomes a query row.

Each task is a `TaskSpec` made with `langchain_llmrouter.pipeline.tasks.define_task`; this
module registers nothing: the registry's name -> ``"module:attr"`` map points here and
imports it on the first lookup of a built-in task. Each converter returns ``query``,
``ground_truth`` and, where the task has them, ``choices`` (option texts, lettered A, B, ...
in order) and ``task_id``; it returns None for a record that cannot be asked (no question or
no answer).

Records may come from CSV files, where nested fields (``choices``, ``golden_answers``,
``test_list``, ``answer``) arrive as strings: such a string is read as JSON, then as a
Python literal.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from typing import Any

from langchain_llmrouter.evaluation.task_metrics import parse_literal
from langchain_llmrouter.pipeline.tasks import HubDataset, QueryFields, define_task

LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
"""Option letters, in order."""


def _nested(value: Any) -> Any:
    """A nested field as a Python object, also when a CSV file stored it as text."""
    if not isinstance(value, str):
        return value
    text = value.strip()
    if not text or text[0] not in "[{":
        return value
    try:
        return parse_literal(text)
    except ValueError:
        return value


def _text(value: Any) -> str:
    """A field as stripped text ("" for None)."""
    return "" if value is None else str(value).strip()


def _labelled_options(choices: Any, answer_key: Any) -> tuple[list[str], str] | None:
    """Options given as ``{"label": [...], "text": [...]}`` and the answer's label, as option
    texts in label order and the answer's letter.

    Labels are re-lettered A, B, ... by position: a few ARC questions are labelled 1-4.
    None when the record has no answer key (the unlabelled test splits).
    """
    choices = _nested(choices)
    if not isinstance(choices, Mapping):
        raise ValueError(
            f"'choices' should be a mapping with 'label' and 'text' lists: {choices!r}"
        )
    labels = [_text(label) for label in choices.get("label", choices.get("labels", []))]
    texts = [_text(text) for text in choices.get("text", [])]
    if len(labels) != len(texts) or not texts:
        raise ValueError(f"'choices' needs 'label' and 'text' lists of one length: {choices!r}")
    key = _text(answer_key)
    if not key:
        return None
    if key not in labels:
        raise ValueError(f"answerKey {key!r} is not one of the labels {labels}")
    return texts, LETTERS[labels.index(key)]


def _answer_letter(answer: Any, n_options: int) -> str:
    """MMLU's answer (an index, or already a letter) as a letter."""
    if isinstance(answer, str) and not answer.strip().isdigit():
        letter = answer.strip().upper()
        if len(letter) != 1 or letter not in LETTERS[:n_options]:
            raise ValueError(f"answer {answer!r} is neither an index nor an option letter")
        return letter
    index = int(answer)
    if not 0 <= index < n_options:
        raise ValueError(f"answer index {index} is out of range for {n_options} options")
    return LETTERS[index]


@define_task(
    "natural_qa", metric="f1_score", hub=HubDataset("RUC-NLPIR/FlashRAG_datasets", "nq", "train")
)
def natural_qa(record: Mapping[str, Any], rng: random.Random) -> QueryFields | None:
    """FlashRAG's Natural Questions: ``question``, ``golden_answers`` (the first is the truth)."""
    answers = _nested(record["golden_answers"])
    if isinstance(answers, str):
        answers = [answers]
    answer = _text(answers[0]) if answers else ""
    if not answer:
        return None
    return {"query": _text(record["question"]), "ground_truth": answer}


@define_task(
    "trivia_qa", metric="f1_score", hub=HubDataset("mandarjoshi/trivia_qa", "rc.nocontext", "train")
)
def trivia_qa(record: Mapping[str, Any], rng: random.Random) -> QueryFields | None:
    """TriviaQA: ``question`` and ``answer.value``.

    The canonical ``value`` rather than ``normalized_aliases[0]``: the aliases are lower-cased
    and stripped of punctuation and their order puts no canonical form first, while the
    scoring normalises both sides anyway, so ``value`` loses nothing and reads correctly.
    ``normalized_aliases[0]`` is the fallback when ``value`` is empty.
    """
    answer = _nested(record["answer"])
    if not isinstance(answer, Mapping):
        raise ValueError(f"'answer' should be a mapping with 'value': {answer!r}")
    truth = _text(answer.get("value"))
    if not truth:
        aliases = answer.get("normalized_aliases") or []
        truth = _text(aliases[0]) if aliases else ""
    if not truth:
        return None
    return {"query": _text(record["question"]), "ground_truth": truth}


@define_task("mmlu", metric="em_mc", hub=HubDataset("cais/mmlu", "all", "auxiliary_train"))
def mmlu(record: Mapping[str, Any], rng: random.Random) -> QueryFields | None:
    """MMLU: ``question``, ``choices`` (a list) and ``answer`` (the index of the right one).

    Some copies of the auxiliary training split nest each record under a ``train`` key.
    """
    if "question" not in record and isinstance(record.get("train"), Mapping):
        record = record["train"]
    options = [_text(option) for option in _nested(record["choices"])]
    return {
        "query": _text(record["question"]),
        "ground_truth": _answer_letter(record["answer"], len(options)),
        "choices": options,
    }


@define_task("gpqa", metric="em_mc", hub=HubDataset("Idavidrein/gpqa", "gpqa_main", "train"))
def gpqa(record: Mapping[str, Any], rng: random.Random) -> QueryFields | None:
    """GPQA: ``Question``, ``Correct Answer`` and ``Incorrect Answer 1``-``3``.

    The four options are shuffled with the record's own generator (seeded from the run's
    seed and the record's position), so the right answer is not always (A) and a rerun
    gives the same order.
    """
    correct = _text(record["Correct Answer"])
    options = [correct] + [_text(record[f"Incorrect Answer {i}"]) for i in (1, 2, 3)]
    order = list(range(len(options)))
    rng.shuffle(order)
    shuffled = [options[i] for i in order]
    return {
        "query": _text(record["Question"]),
        "ground_truth": LETTERS[order.index(0)],
        "choices": shuffled,
    }


@define_task(
    "mbpp", metric="code_eval", hub=HubDataset("google-research-datasets/mbpp", "full", "train")
)
def mbpp(record: Mapping[str, Any], rng: random.Random) -> QueryFields | None:
    """MBPP: ``text``, ``test_list`` (the asserts: the ground truth) and ``task_id``.

    A record's ``test_setup_code`` (imports a few tests need) goes before the asserts, so the
    tests can run.
    """
    tests = _nested(record["test_list"])
    if isinstance(tests, str) or not isinstance(tests, Sequence):
        raise ValueError(f"'test_list' should be a list of assert statements: {tests!r}")
    setup = _text(record.get("test_setup_code"))
    asserts = ([setup] if setup else []) + [_text(test) for test in tests]
    return {"query": _text(record["text"]), "ground_truth": asserts, "task_id": record["task_id"]}


@define_task(
    "human_eval", metric="code_eval", hub=HubDataset("openai/openai_humaneval", None, "test")
)
def human_eval(record: Mapping[str, Any], rng: random.Random) -> QueryFields | None:
    """HumanEval: ``prompt`` (kept as written: its indentation matters), ``test`` (defines
    ``check(candidate)``) and ``task_id`` (``HumanEval/N``)."""
    prompt = str(record["prompt"])
    if not prompt.strip():
        return None
    return {"query": prompt, "ground_truth": str(record["test"]), "task_id": record["task_id"]}


@define_task("gsm8k", metric="GSM8K", hub=HubDataset("openai/gsm8k", "main", "train"))
def gsm8k(record: Mapping[str, Any], rng: random.Random) -> QueryFields | None:
    """GSM8K: ``question`` and ``answer`` (the worked solution ending ``#### N``, kept whole)."""
    return {"query": _text(record["question"]), "ground_truth": _text(record["answer"])}


@define_task("commonsense_qa", metric="em_mc", hub=HubDataset("tau/commonsense_qa", None, "train"))
def commonsense_qa(record: Mapping[str, Any], rng: random.Random) -> QueryFields | None:
    """CommonsenseQA: ``question``, ``choices`` (``label``/``text``) and ``answerKey``."""
    options = _labelled_options(record["choices"], record["answerKey"])
    if options is None:
        return None
    texts, letter = options
    return {"query": _text(record["question"]), "ground_truth": letter, "choices": texts}


@define_task("math", metric="MATH", hub=HubDataset("EleutherAI/hendrycks_math", None, "train"))
def hendrycks_math(record: Mapping[str, Any], rng: random.Random) -> QueryFields | None:
    """MATH: ``problem`` and ``solution`` (whose last ``\\boxed{}`` holds the answer).

    The hub dataset has one configuration per subject and names none here: the sources
    module loads all seven and joins them (see `langchain_llmrouter.pipeline.sources.HUB_CONFIGS`).
    """
    return {"query": _text(record["problem"]), "ground_truth": _text(record["solution"])}


@define_task("openbook_qa", metric="em_mc", hub=HubDataset("allenai/openbookqa", "main", "train"))
def openbook_qa(record: Mapping[str, Any], rng: random.Random) -> QueryFields | None:
    """OpenBookQA: ``question_stem``, ``choices`` (``text``/``label``) and ``answerKey``."""
    options = _labelled_options(record["choices"], record["answerKey"])
    if options is None:
        return None
    texts, letter = options
    return {"query": _text(record["question_stem"]), "ground_truth": letter, "choices": texts}


@define_task(
    "arc_challenge", metric="em_mc", hub=HubDataset("allenai/ai2_arc", "ARC-Challenge", "train")
)
def arc_challenge(record: Mapping[str, Any], rng: random.Random) -> QueryFields | None:
    """ARC-Challenge: ``question``, ``choices`` (``text``/``label``) and ``answerKey``."""
    options = _labelled_options(record["choices"], record["answerKey"])
    if options is None:
        return None
    texts, letter = options
    return {"query": _text(record["question"]), "ground_truth": letter, "choices": texts}
