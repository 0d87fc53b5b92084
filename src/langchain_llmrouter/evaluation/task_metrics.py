"""Task metrics: score a candidate LLM's response to a benchmark query (pipeline stage 3).

A metric is a plain callable ``(prediction, ground_truth, row) -> float`` returning a score
in [0, 1]; ``row`` is the whole query row (``task_name, query, ground_truth, metric, choices,
task_id``), for metrics that need more than the ground truth. Metrics are registered by name
with `register_metric` (names match case-insensitively, so the stored names ``GSM8K``,
``MATH`` and ``f1_score`` work as they are) and looked up with `get_metric`; `score_response`
scores one response with the row's own metric.

This module owns the registry and never imports a module that registers into it: metrics
defined elsewhere in the package (the code metrics) are named in `_BUILTIN` as
``"module:attribute"`` and imported on first lookup, as `routers.registry` does for routers.

Built-in metrics:

- ``em``, ``cem`` (containment), ``cemf1``, ``f1`` / ``f1_score``: SQuAD-style normalised
  answers; the ground truth may be a list of acceptable answers (the best one counts).
- ``em_mc``: the option label the response chose, compared with the ground truth's.
- ``gsm8k``: the final number, compared numerically.
- ``math``: the last ``\\boxed{}`` answer, with equivalence of simple forms (no sympy).
- ``code_eval`` / ``mbpp`` / ``humaneval``: pass@1 from running the code against the tests in
  the sandbox of `~langchain_llmrouter.evaluation.code_sandbox`.
- ``commongen_coverage``: the share of the required concepts the sentence uses.
"""

from __future__ import annotations

import ast
import json
import logging
import math
import re
import string
import unicodedata
from collections import Counter
from collections.abc import Callable, Mapping
from fractions import Fraction
from importlib import import_module
from typing import TYPE_CHECKING, Any

from langchain_llmrouter.errors import DataFormatError, UnknownNameError

if TYPE_CHECKING:
    from langchain_llmrouter.evaluation.code_metric import CodeExecutionMetric, extract_code

__all__ = [
    "CodeExecutionMetric",
    "Metric",
    "extract_code",
    "get_metric",
    "metric_names",
    "normalize_answer",
    "parse_literal",
    "register_metric",
    "score_response",
]

logger = logging.getLogger(__name__)

Metric = Callable[[str, Any, Mapping[str, Any]], float]
"""(prediction, ground_truth, row) -> score in [0, 1]; row is the whole query row."""

_METRICS: dict[str, Metric] = {}
_NAMES: dict[str, str] = {}  # lower-cased key -> the name as registered

_BUILTIN: dict[str, str] = {
    "code_eval": "langchain_llmrouter.evaluation.code_metric:code_eval",
    "mbpp": "langchain_llmrouter.evaluation.code_metric:mbpp",
    "humaneval": "langchain_llmrouter.evaluation.code_metric:humaneval",
    "human_eval": "langchain_llmrouter.evaluation.code_metric:humaneval",
}
"""Built-in metrics defined in other modules: name -> ``"module:attribute"``, imported on
first lookup (so importing this module does not import the code sandbox). A metric
registered under the same name replaces the built-in one."""

_REEXPORTS: dict[str, str] = {
    "CodeExecutionMetric": "langchain_llmrouter.evaluation.code_metric",
    "extract_code": "langchain_llmrouter.evaluation.code_metric",
}
"""Names kept importable from here (their old home), loaded on first use."""


def __getattr__(name: str) -> Any:
    """Import the re-exported code-metric names on first use."""
    if name in _REEXPORTS:
        return getattr(import_module(_REEXPORTS[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def register_metric(name: str, *aliases: str) -> Callable[[Metric], Metric]:
    """Register a metric under a name and aliases (a decorator; re-registering replaces).

    Example:
        >>> @register_metric("exact_length")
        ... def exact_length(prediction, ground_truth, row):
        ...     return float(len(prediction) == len(str(ground_truth)))
    """
    keys = (name, *aliases)
    if not all(isinstance(key, str) and key.strip() for key in keys):
        raise ValueError(f"metric names must be non-empty strings, got {keys!r}")

    def decorator(metric: Metric) -> Metric:
        if not callable(metric):
            raise TypeError(f"metric {name!r} must be callable, got {type(metric).__name__}")
        for key in keys:
            _METRICS[key.strip().lower()] = metric
            _NAMES[key.strip().lower()] = key.strip()
        return metric

    return decorator


def get_metric(name: str) -> Metric:
    """The metric registered under ``name`` (case-insensitive).

    Raises:
        UnknownNameError: If no metric has that name; the message lists the valid ones.
    """
    key = str(name).strip().lower()
    metric = _METRICS.get(key)
    if metric is None and key in _BUILTIN:
        module_name, attribute = _BUILTIN[key].split(":")
        metric = getattr(import_module(module_name), attribute)
        _METRICS[key] = metric
        _NAMES.setdefault(key, key)
    if metric is None:
        raise UnknownNameError("metric", str(name), metric_names())
    return metric


def metric_names() -> list[str]:
    """Every registered metric name and alias (built-ins not yet imported included), sorted."""
    return sorted({**{key: key for key in _BUILTIN}, **_NAMES}.values())


def score_response(
    prediction: str, row: Mapping[str, Any], *, metric: str | Metric | None = None
) -> float:
    """Score one response to a query row.

    Args:
        prediction: The candidate LLM's response text.
        row: The query row; its ``ground_truth`` is scored against.
        metric: A metric name or callable; None uses the row's ``metric``.

    Raises:
        UnknownNameError: If the metric name is not registered.
        DataFormatError: If the row names no metric and none is given, or its fields are
            malformed for the metric.
        ValueError: If the metric returns something outside [0, 1] or NaN.
    """
    spec = row.get("metric") if metric is None else metric
    if spec is None or spec == "":
        raise DataFormatError("the row has no metric; pass metric=...", field="metric")
    fn = spec if callable(spec) else get_metric(str(spec))
    value = fn(prediction, row.get("ground_truth"), row)
    label = spec if isinstance(spec, str) else getattr(spec, "__name__", repr(spec))
    try:
        score = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"metric {label!r} returned {value!r}, not a number") from None
    if math.isnan(score) or not 0.0 <= score <= 1.0:
        raise ValueError(f"metric {label!r} returned {value!r}, outside [0, 1]")
    return score


# --- exact match and F1 -------------------------------------------------------------------

_ARTICLES = re.compile(r"\b(?:a|an|the)\b")


def normalize_answer(text: str) -> str:
    """SQuAD normalisation: lower-case, drop punctuation and the articles a/an/the, and
    collapse whitespace (Unicode punctuation such as curly quotes counts as punctuation)."""
    text = str(text).lower()
    text = "".join(
        ch for ch in text if ch not in string.punctuation and unicodedata.category(ch)[0] != "P"
    )
    return " ".join(_ARTICLES.sub(" ", text).split())


def _answers(ground_truth: Any) -> list[str]:
    if isinstance(ground_truth, list | tuple):
        return [str(answer) for answer in ground_truth]
    return [] if ground_truth is None else [str(ground_truth)]


def _token_f1(prediction: str, gold: str) -> float:
    pred, ref = normalize_answer(prediction).split(), normalize_answer(gold).split()
    if not pred or not ref:
        return float(pred == ref)
    same = sum((Counter(pred) & Counter(ref)).values())
    if same == 0:
        return 0.0
    precision, recall = same / len(pred), same / len(ref)
    return 2 * precision * recall / (precision + recall)


def _contains(prediction: str, gold: str) -> bool:
    """Whether the normalised gold answer occurs in the prediction as whole tokens."""
    pred, ref = normalize_answer(prediction).split(), normalize_answer(gold).split()
    if not ref:
        return not pred
    n = len(ref)
    return any(pred[i : i + n] == ref for i in range(len(pred) - n + 1))


@register_metric("em")
def exact_match(prediction: str, ground_truth: Any, row: Mapping[str, Any]) -> float:
    """1 if the normalised prediction equals a normalised gold answer."""
    norm = normalize_answer(prediction)
    return float(any(norm == normalize_answer(gold) for gold in _answers(ground_truth)))


@register_metric("cem")
def containment_exact_match(prediction: str, ground_truth: Any, row: Mapping[str, Any]) -> float:
    """1 if a normalised gold answer occurs in the normalised prediction as whole tokens."""
    return float(any(_contains(prediction, gold) for gold in _answers(ground_truth)))


@register_metric("cemf1")
def containment_or_f1(prediction: str, ground_truth: Any, row: Mapping[str, Any]) -> float:
    """1 on containment, else the best token F1."""
    golds = _answers(ground_truth)
    if any(_contains(prediction, gold) for gold in golds):
        return 1.0
    return max((_token_f1(prediction, gold) for gold in golds), default=0.0)


@register_metric("f1", "f1_score")
def f1_score(prediction: str, ground_truth: Any, row: Mapping[str, Any]) -> float:
    """SQuAD token-overlap F1 against the best gold answer."""
    return max((_token_f1(prediction, gold) for gold in _answers(ground_truth)), default=0.0)


# --- multiple choice ----------------------------------------------------------------------

_PAREN_LABEL = re.compile(r"\(\s*([A-Za-z0-9])\s*\)")
_ANSWER_IS = re.compile(r"(?i:answer)(?:\s+is)?\s*[:=]?[\s*_]*\(?([A-Z0-9])\b")
_BARE_LABEL = re.compile(r"[\s*_(\[]*([A-Za-z0-9])[\s*_)\].:]*")


def parse_literal(text: str) -> Any:
    """A field stored as text: JSON, else a Python literal (`ast.literal_eval`, which runs no
    code). Query files hold ``choices`` and MBPP's tests either way.

    Raises:
        ValueError: when the text is neither.
    """
    for loader in (json.loads, ast.literal_eval):
        try:
            return loader(text)
        except (ValueError, SyntaxError, TypeError, RecursionError, MemoryError):
            continue
    raise ValueError(f"neither JSON nor a Python literal: {text[:80]!r}")


def _choice_labels(choices: Any) -> list[str]:
    """The option labels of a row's ``choices`` (A..Z when there are none)."""
    parsed = choices
    if isinstance(choices, str) and choices.strip():
        try:
            parsed = parse_literal(choices)
        except ValueError:
            raise DataFormatError(
                f"cannot parse choices {choices[:80]!r}: expected JSON, a Python literal, a list"
                " or a mapping of 'label(s)' and 'text'",
                field="choices",
            ) from None
    if parsed is None or parsed == "":
        return list(string.ascii_uppercase)
    if isinstance(parsed, Mapping):
        labels = parsed.get("labels", parsed.get("label"))
        if labels is None:
            texts = parsed.get("text", parsed.get("texts"))
            labels = list(string.ascii_uppercase[: len(texts)]) if texts else list(parsed)
        return [str(label).strip() for label in labels]
    if isinstance(parsed, list | tuple):
        return list(string.ascii_uppercase[: len(parsed)])
    raise DataFormatError(f"choices must be a list or mapping, got {choices!r}", field="choices")


def _label_index(token: str, labels: list[str]) -> int | None:
    """Position of an option label; with non-letter labels (ARC's 1-4) A, B, ... count too."""
    upper = [label.upper() for label in labels]
    token = token.strip().upper()
    if token in upper:
        return upper.index(token)
    if len(token) == 1 and token.isalpha() and not any(label.isalpha() for label in upper):
        index = ord(token) - ord("A")
        return index if index < len(labels) else None
    return None


def _chosen_index(prediction: str, labels: list[str]) -> int | None:
    for pattern in (_PAREN_LABEL, _ANSWER_IS):  # the prompts ask for "(B)"; last one wins
        for match in reversed(list(pattern.finditer(prediction))):
            index = _label_index(match.group(1), labels)
            if index is not None:
                return index
    bare = _BARE_LABEL.fullmatch(prediction)
    return _label_index(bare.group(1), labels) if bare else None


@register_metric("em_mc")
def multiple_choice(prediction: str, ground_truth: Any, row: Mapping[str, Any]) -> float:
    """1 if the option the response chose is the gold option (0 when it chose none)."""
    labels = _choice_labels(row.get("choices"))
    gold = ground_truth[0] if isinstance(ground_truth, list | tuple) else ground_truth
    gold = str(gold).strip().strip("().").strip()
    chosen = _chosen_index(prediction, labels)
    if chosen is None:
        return 0.0
    gold_index = _label_index(gold, labels)
    if gold_index is None:
        return float(labels[chosen].upper() == gold.upper())
    return float(chosen == gold_index)


# --- GSM8K and MATH -----------------------------------------------------------------------

_NUMBER = re.compile(r"-?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?|-?\.\d+")


def _number(text: str) -> Fraction:
    return Fraction(text.replace(",", ""))


def _gsm8k_gold(ground_truth: Any) -> Fraction:
    text = str(ground_truth).replace("$", "")
    if "####" in text:
        found = _NUMBER.findall(text.rsplit("####", 1)[1])[:1]
    else:
        found = _NUMBER.findall(text)[-1:]
    if not found:
        raise DataFormatError(
            f"no number in the GSM8K ground truth {str(ground_truth)[-80:]!r}", field="ground_truth"
        )
    return _number(found[0])


def _gsm8k_prediction(prediction: str) -> Fraction | None:
    text = prediction.replace("$", "")
    if "####" in text:
        found = _NUMBER.findall(text.rsplit("####", 1)[1])[:1]
        if found:
            return _number(found[0])
    boxed = _last_boxed(text)
    found = _NUMBER.findall(boxed if boxed is not None else "") or _NUMBER.findall(text)
    return _number(found[-1]) if found else None


@register_metric("gsm8k")
def gsm8k(prediction: str, ground_truth: Any, row: Mapping[str, Any]) -> float:
    """1 if the final number of the response equals the gold number (compared as numbers)."""
    predicted = _gsm8k_prediction(prediction)
    return float(predicted is not None and predicted == _gsm8k_gold(ground_truth))


def _closing_brace(text: str, start: int) -> int | None:
    """Index of the ``}`` matching the ``{`` at ``start``, or None if unbalanced."""
    depth = 0
    for i in range(start, len(text)):
        depth += {"{": 1, "}": -1}.get(text[i], 0)
        if depth == 0:
            return i
    return None


def _last_boxed(text: str) -> str | None:
    """The content of the last complete ``\\boxed{...}`` / ``\\fbox{...}`` (or ``\\boxed 5``)."""
    for match in reversed(list(re.finditer(r"\\(?:boxed|fbox)\b\s*", text))):
        start = match.end()
        if text.startswith("{", start):
            end = _closing_brace(text, start)
            if end is not None:
                return text[start + 1 : end]
        elif match.group().endswith(" "):
            bare = re.match(r"[^\s$]+", text[start:])
            if bare:
                return bare.group()
    return None


_TEXT_COMMAND = re.compile(r"\\(?:text|textbf|textrm|mbox|mathrm)\{([^{}]*)\}")
_UNIT_TEXT = re.compile(r"\\(?:text|textrm|mbox|mathrm)\{\s*[A-Za-z][A-Za-z\s.]*\}(?:\^\{?\d\}?)?")


def _fix_fracs(text: str) -> str:
    r"""Brace the arguments of ``\frac``: ``\frac12`` -> ``\frac{1}{2}``."""
    out, i = [], 0
    while (j := text.find("\\frac", i)) >= 0:
        out.append(text[i : j + 5])
        k = j + 5
        for _ in range(2):
            if text.startswith("{", k):
                end = _closing_brace(text, k)
                if end is None:
                    break
                out.append(text[k : end + 1])
                k = end + 1
            elif k < len(text) and text[k] not in "\\}":
                out.append("{" + text[k] + "}")
                k += 1
            else:
                break
        i = k
    out.append(text[i:])
    return "".join(out)


def _normalize_math(answer: str) -> str:
    """A canonical form of a simple LaTeX answer, for string comparison."""
    s = answer.strip().replace("\n", "").replace("\\!", "").replace("{,}", "")
    s = re.sub(r"\\(?:left|right)\b", "", s).replace("\\displaystyle", "")
    s = s.replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac")
    s = re.sub(r"\^\s*\{\s*\\circ\s*\}|\^\s*\\circ", "", s)
    s = s.replace("\\$", "").replace("$", "").replace("\\%", "").replace("%", "")
    s = re.sub(r"\\[,;: ]", "", s)
    if _UNIT_TEXT.sub("", s).strip():  # a unit after a value ("10\text{ cm}") is dropped
        s = _UNIT_TEXT.sub("", s)
    s = _TEXT_COMMAND.sub(r"\1", s).replace(" ", "").rstrip(".")
    s = re.sub(r"\\sqrt(\w)", r"\\sqrt{\1}", s)
    s = _fix_fracs(s)
    s = re.sub(r"^(?:[A-Za-z]|\\[A-Za-z]+)=(?=.)", "", s)  # "x=5" -> "5"
    if re.fullmatch(r"-?\d+/\d+", s):
        numerator, denominator = s.split("/")
        s = f"\\frac{{{numerator}}}{{{denominator}}}"
    return s


def _math_value(s: str) -> Fraction | None:
    """The exact value of a normalised integer, decimal or simple fraction, else None."""
    sign, body = (-1, s[1:]) if s.startswith("-") else (1, s)
    try:
        if match := re.fullmatch(r"\\frac\{(-?\d+)\}\{(-?\d+)\}", body):
            return sign * Fraction(int(match.group(1)), int(match.group(2)))
        if re.fullmatch(r"(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?|\.\d+", body):
            return sign * _number(body)
    except ZeroDivisionError:
        pass
    return None


def math_equivalent(prediction: str, gold: str) -> bool:
    """Whether two final answers are the same up to simple forms (``0.5`` == ``\\frac12``)."""
    a, b = _normalize_math(prediction), _normalize_math(gold)
    if a == b:
        return True
    value_a, value_b = _math_value(a), _math_value(b)
    return value_a is not None and value_a == value_b


@register_metric("math")
def math_boxed(prediction: str, ground_truth: Any, row: Mapping[str, Any]) -> float:
    """1 if the last boxed answer of the response equals the gold one (its last boxed answer,
    or the whole ground truth when it has none); 0 when the response boxes nothing."""
    predicted = _last_boxed(prediction)
    if predicted is None:
        return 0.0
    gold = _last_boxed(str(ground_truth))
    return float(math_equivalent(predicted, str(ground_truth) if gold is None else gold))


# --- CommonGen ----------------------------------------------------------------------------

_IRREGULAR_TEXT = (
    "throw:threw,thrown hold:held run:ran eat:ate,eaten sit:sat stand:stood "
    "ride:rode,ridden give:gave,given drink:drank,drunk swim:swam,swum catch:caught "
    "fly:flew,flown,flies drive:drove,driven take:took,taken fall:fell,fallen "
    "sing:sang,sung wear:wore,worn hang:hung sleep:slept lie:lay,lain,lying "
    "buy:bought bring:brought teach:taught fight:fought think:thought sell:sold "
    "tell:told make:made leave:left feel:felt meet:met keep:kept build:built "
    "send:sent spend:spent sweep:swept dig:dug win:won shoot:shot break:broke,broken "
    "speak:spoke,spoken write:wrote,written draw:drew,drawn grow:grew,grown "
    "blow:blew,blown begin:began,begun bite:bit,bitten hide:hid,hidden "
    "shake:shook,shaken choose:chose,chosen freeze:froze,frozen steal:stole,stolen "
    "wake:woke,woken lead:led feed:fed go:went,gone see:saw,seen do:did,done "
    "come:came become:became get:got,gotten find:found lose:lost pay:paid lay:laid "
    "say:said stick:stuck swing:swung spin:spun sink:sank,sunk ring:rang,rung "
    "kneel:knelt light:lit slide:slid bend:bent man:men woman:women child:children "
    "foot:feet tooth:teeth mouse:mice person:people goose:geese"
)
_IRREGULAR = {
    base: forms.split(",")
    for base, _, forms in (item.partition(":") for item in _IRREGULAR_TEXT.split())
}


def _word_forms(word: str) -> set[str]:
    """A word with its regular plural, -ed and -ing forms (and listed irregular ones)."""
    forms = {word, word + "s", word + "es", word + "ed", word + "d", word + "ing"}
    if word.endswith("e"):
        forms.add(word[:-1] + "ing")  # create -> creating
    if len(word) > 2 and word.endswith("y") and word[-2] not in "aeiou":
        forms |= {word[:-1] + "ies", word[:-1] + "ied"}  # carry -> carries, carried
    if word[-1] not in "aeiouwxy":
        forms |= {word + word[-1] + "ing", word + word[-1] + "ed"}  # jog -> jogging
    if word.endswith("fe"):
        forms.add(word[:-2] + "ves")  # knife -> knives
    elif word.endswith("f"):
        forms.add(word[:-1] + "ves")  # leaf -> leaves
    return forms | set(_IRREGULAR.get(word, ()))


@register_metric("commongen_coverage")
def commongen_coverage(prediction: str, ground_truth: Any, row: Mapping[str, Any]) -> float:
    """Share of the ground truth's comma-separated concepts that the prediction uses, in any
    simple inflection (``jog`` matches "jogging", ``carry`` "carried")."""
    items = ground_truth if isinstance(ground_truth, list | tuple) else str(ground_truth).split(",")
    concepts = [str(item).strip().lower() for item in items if str(item).strip()]
    if not concepts:
        raise DataFormatError("the CommonGen ground truth lists no concepts", field="ground_truth")
    words = set(re.findall(r"[a-z]+", prediction.lower()))
    covered = sum(
        all(_word_forms(part) & words for part in re.findall(r"[a-z]+", concept))
        for concept in concepts
    )
    return covered / len(concepts)
