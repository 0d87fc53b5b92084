"""Tests of the task metrics: the registry, `score_response`, and each built-in metric with
known right and wrong answers, on rows of the example query data where the shape matters.

The code metric's end-to-end runs live in ``test_code_sandbox.py``; here only its code
extraction and program assembly are tested, without running anything.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from langchain_llmrouter.errors import DataFormatError, UnknownNameError
from langchain_llmrouter.evaluation import task_metrics
from langchain_llmrouter.evaluation.task_metrics import (
    CodeExecutionMetric,
    extract_code,
    get_metric,
    math_equivalent,
    metric_names,
    normalize_answer,
    register_metric,
    score_response,
)

Row = dict[str, Any]


@pytest.fixture(scope="module")
def rows(shared_data: Path) -> dict[str, list[Row]]:
    """The example test queries, by task name."""
    by_task: dict[str, list[Row]] = {}
    with open(shared_data / "default_query_test.jsonl", encoding="utf-8") as fh:
        for line in fh:
            row = json.loads(line)
            by_task.setdefault(row["task_name"], []).append(row)
    return by_task


@pytest.fixture
def registry() -> Iterator[None]:
    """Undo any registration a test makes."""
    metrics, names = dict(task_metrics._METRICS), dict(task_metrics._NAMES)
    yield
    task_metrics._METRICS.clear()
    task_metrics._METRICS.update(metrics)
    task_metrics._NAMES.clear()
    task_metrics._NAMES.update(names)


def _score(name: str, prediction: str, ground_truth: Any, **row: Any) -> float:
    return get_metric(name)(prediction, ground_truth, {"ground_truth": ground_truth, **row})


# --- registry and score_response ----------------------------------------------------------


def test_builtin_metrics_are_registered_and_names_are_case_insensitive() -> None:
    expected = {"em", "cem", "cemf1", "f1", "f1_score", "em_mc", "gsm8k", "math"}
    assert expected | {"code_eval", "mbpp", "humaneval", "commongen_coverage"} <= set(
        metric_names()
    )
    assert get_metric("GSM8K") is get_metric("gsm8k")
    assert get_metric("MATH") is get_metric("math")
    assert get_metric("f1_score") is get_metric("F1")
    assert isinstance(get_metric("code_eval"), CodeExecutionMetric)
    assert get_metric("mbpp").kind == "mbpp"  # type: ignore[attr-defined]
    assert get_metric("humaneval").kind == "humaneval"  # type: ignore[attr-defined]


def test_the_registry_imports_the_code_metrics_only_on_lookup() -> None:
    # The registry owns the names; modules that define metrics never import it back.
    code = (
        "import sys\n"
        "from langchain_llmrouter.evaluation import task_metrics\n"
        "code = 'langchain_llmrouter.evaluation.code_metric'\n"
        "assert code not in sys.modules, 'imported with the registry'\n"
        "assert {'code_eval', 'mbpp', 'humaneval', 'human_eval'} <= set(task_metrics.metric_names())\n"
        "assert code not in sys.modules, 'imported by metric_names()'\n"
        "metric = task_metrics.get_metric('MBPP')\n"
        "assert code in sys.modules and metric.kind == 'mbpp'\n"
        "from langchain_llmrouter.evaluation.code_metric import CodeExecutionMetric\n"
        "assert task_metrics.CodeExecutionMetric is CodeExecutionMetric\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
    source = Path(task_metrics.__file__).read_text(encoding="utf-8")
    assert "noqa: E402" not in source
    code_metric = Path(task_metrics.__file__).with_name("code_metric.py").read_text("utf-8")
    assert "task_metrics" not in code_metric.split('"""', 2)[2]


def test_a_registered_metric_replaces_a_lazy_builtin(registry: None) -> None:
    def always(prediction: str, ground_truth: Any, row: Any) -> float:
        return 1.0

    register_metric("MBPP")(always)
    assert get_metric("mbpp") is always
    assert "MBPP" in metric_names() and "mbpp" not in metric_names()
    assert isinstance(get_metric("code_eval"), CodeExecutionMetric)


def test_unknown_metric_lists_the_valid_names() -> None:
    with pytest.raises(UnknownNameError, match="unknown metric 'bleu'") as info:
        get_metric("bleu")
    assert "em_mc" in str(info.value)
    assert "gsm8k" in info.value.valid


def test_custom_metric_registers_with_aliases_and_replaces(registry: None) -> None:
    @register_metric("Length_Match", "samelen")
    def length_match(prediction: str, ground_truth: Any, row: Any) -> float:
        return float(len(prediction) == len(str(ground_truth)))

    assert get_metric("length_match") is length_match
    assert get_metric("SAMELEN") is length_match
    assert "Length_Match" in metric_names()
    assert score_response("abc", {"ground_truth": "xyz", "metric": "samelen"}) == 1.0

    register_metric("samelen")(lambda prediction, ground_truth, row: 0.0)
    assert get_metric("samelen") is not length_match
    assert get_metric("length_match") is length_match
    with pytest.raises(ValueError, match="non-empty"):
        register_metric("")


def test_score_response_uses_the_row_metric_or_the_given_one(rows: dict[str, list[Row]]) -> None:
    row = rows["gsm8k"][0]  # ground truth ends "#### 360"
    assert score_response("So there are 360 girls.", row) == 1.0
    assert score_response("So there are 36 girls.", row) == 0.0
    assert score_response("360", row, metric="em") == 0.0  # EM against the worked solution
    assert score_response("anything", row, metric=lambda p, g, r: 0.25) == 0.25


@pytest.mark.parametrize("value", [1.5, -0.1, math.nan])
def test_score_response_rejects_scores_outside_the_unit_interval(value: float) -> None:
    with pytest.raises(ValueError, match="outside"):
        score_response("x", {"ground_truth": "x"}, metric=lambda p, g, r: value)


def test_score_response_errors_name_the_problem() -> None:
    with pytest.raises(UnknownNameError, match="unknown metric 'nope'"):
        score_response("x", {"ground_truth": "x", "metric": "nope"})
    with pytest.raises(DataFormatError, match="field 'metric'"):
        score_response("x", {"ground_truth": "x"})


# --- EM, containment, F1 ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("The  Eiffel Tower!", "eiffel tower"),
        ("An apple, a pear & the plum.", "apple pear plum"),
        ("“Quoted” — dash", "quoted dash"),
        ("Theatre", "theatre"),  # "the" only as a whole word
    ],
)
def test_normalize_answer(text: str, expected: str) -> None:
    assert normalize_answer(text) == expected


@pytest.mark.parametrize(
    ("metric", "prediction", "ground_truth", "expected"),
    [
        ("em", "The Seats.", "seats", 1.0),
        ("em", "car seats", "seats", 0.0),
        ("em", "paris", ["London", "Paris"], 1.0),
        ("cem", "It came out on March 9, 2018 in Canada", "March 9, 2018", 1.0),
        ("cem", "It happened in 1945", "4", 0.0),  # whole tokens, not substrings
        ("cem", "the answer is 4.", "4", 1.0),
        ("cem", "seat", "seats", 0.0),
        ("cemf1", "Recaro makes seats", "seats", 1.0),
        ("cemf1", "racing car seats", "car seat covers", pytest.approx(1 / 3)),
        ("f1", "Recaro makes seats", "seats", pytest.approx(0.5)),
        ("f1", "the eiffel tower", ["paris", "Eiffel Tower"], 1.0),
        ("f1", "london", "paris", 0.0),
        ("f1_score", "", "paris", 0.0),
    ],
)
def test_em_cem_f1(metric: str, prediction: str, ground_truth: Any, expected: float) -> None:
    assert _score(metric, prediction, ground_truth) == expected


def test_f1_on_example_rows(rows: dict[str, list[Row]]) -> None:
    row = rows["natural_qa"][0]  # "March 9, 2018"
    assert score_response("March 9, 2018", row) == 1.0
    assert score_response("It was released on March 9, 2018.", row) == pytest.approx(0.6)
    assert score_response("in 2017", row) == 0.0


# --- multiple choice ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("task", "right", "wrong"),
    [
        ("mmlu", "Angkor Wat is in Cambodia, so (C).", "It is in (B) Bombay."),  # list string
        ("gpqa", "Computing both, the difference is (C)", "(c) is tempting, but (A)"),
        ("commonsense_qa", "He went to the (B) hardware store.", "(A) garden shed"),  # 'label'
        ("openbook_qa", "Answer: A", "Answer: B"),
        ("arc_challenge", "the answer is C", "the answer is D"),
        ("agentverse-logicgrid", "(D)", "The violinist lives in house 4, so (C)."),  # 'labels'
    ],
)
def test_em_mc_on_example_rows(
    rows: dict[str, list[Row]], task: str, right: str, wrong: str
) -> None:
    row = rows[task][0]
    assert score_response(right, row) == 1.0
    assert score_response(wrong, row) == 0.0


@pytest.mark.parametrize(
    ("prediction", "expected"),
    [
        ("(A) is wrong and (B) is wrong, so the answer is (C).", 1.0),  # the last one counts
        ("I pick (C), not (Z).", 1.0),  # (Z) is no option of four
        ("(c)", 1.0),
        ("**C**", 1.0),
        ("C.", 1.0),
        ("The answer is: **C**", 1.0),
        ("The answer is a bit unclear.", 0.0),  # the article is not option A
        ("I don't know.", 0.0),
        ("(B)", 0.0),
        ("Cambodia", 0.0),
    ],
)
def test_em_mc_letter_extraction(prediction: str, expected: float) -> None:
    choices = json.dumps(["Calcutta", "Bombay", "Cambodia", "Bali"])
    assert _score("em_mc", prediction, "C", choices=choices) == expected


@pytest.mark.parametrize(
    "choices",
    [
        ["w", "x", "y", "z"],
        {"label": ["A", "B", "C", "D"], "text": ["w", "x", "y", "z"]},
        {"labels": ["A", "B", "C", "D"], "text": ["w", "x", "y", "z"]},
        "{'text': ['w', 'x', 'y', 'z'], 'label': ['A', 'B', 'C', 'D']}",
        None,
    ],
)
def test_em_mc_choice_shapes(choices: Any) -> None:
    assert _score("em_mc", "so (D)", "D", choices=choices) == 1.0
    assert _score("em_mc", "so (B)", "D", choices=choices) == 0.0


def test_em_mc_numeric_labels_accept_the_number_or_the_position() -> None:
    choices = "{'text': ['competition', 'conservation', 'decomposition'], 'label': ['1', '2', '3']}"
    assert _score("em_mc", "So (2).", "2", choices=choices) == 1.0
    assert _score("em_mc", "So (B).", "2", choices=choices) == 1.0
    assert _score("em_mc", "So (3).", "2", choices=choices) == 0.0
    assert _score("em_mc", "So (D).", "2", choices=choices) == 0.0  # no fourth option


def test_em_mc_rejects_unparseable_choices() -> None:
    with pytest.raises(DataFormatError, match="field 'choices'"):
        _score("em_mc", "(A)", "A", choices="A) one B) two")


# --- GSM8K --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("prediction", "expected"),
    [
        ("60% are girls, 60 x 6 = 360.\n#### 360", 1.0),
        ("There are 360.00 girls.", 1.0),
        ("The answer is $\\boxed{360}$ and we used 6 per percent.", 1.0),
        ("#### 360\nThat uses 6 students per 1%.", 1.0),  # the marker beats the last number
        ("There are 3.60 girls.", 0.0),  # no deleting "."
        ("There are 36 girls.", 0.0),
        ("There are three hundred and sixty girls.", 0.0),
    ],
)
def test_gsm8k_on_an_example_row(
    rows: dict[str, list[Row]], prediction: str, expected: float
) -> None:
    assert score_response(prediction, rows["gsm8k"][0]) == expected


@pytest.mark.parametrize(
    ("prediction", "ground_truth", "expected"),
    [
        ("It costs $1,000.", "#### 1000", 1.0),
        ("It costs 1000 dollars.", "so #### $1,000", 1.0),
        ("x = 2.5", "2.5", 1.0),  # a bare-number ground truth
        ("x = 25", "2.5", 0.0),
        ("x = 2.5", "#### 25", 0.0),
        ("The change is -3.", "#### -3", 1.0),
        ("The change is 3.", "#### -3", 0.0),
    ],
)
def test_gsm8k_numbers(prediction: str, ground_truth: str, expected: float) -> None:
    assert _score("gsm8k", prediction, ground_truth) == expected


def test_gsm8k_ground_truth_without_a_number_is_a_data_error() -> None:
    with pytest.raises(DataFormatError, match="field 'ground_truth'"):
        _score("gsm8k", "42", "#### unknown")


# --- MATH ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("\\dfrac{1}{2}", "\\frac{1}{2}"),
        ("\\tfrac12", "0.5"),
        ("\\frac12", "\\frac{1}{2}"),
        ("3/4", "\\frac{3}{4}"),
        ("1.5", "\\frac32"),
        ("-\\frac{1}{2}", "-0.5"),
        ("x = 5", "5"),
        ("\\left( 1, 2 \\right)", "(1,2)"),
        ("90^\\circ", "90"),
        ("90^{\\circ}", "90"),
        ("\\$18.90", "18.90"),
        ("50\\%", "50"),
        ("10\\text{ cm}", "10"),
        ("5\\text{ cm}^2", "5"),
        ("\\text{Monday}", "Monday"),
        ("\\sqrt2", "\\sqrt{2}"),
        ("\\frac{\\sqrt3}{2}", "\\dfrac{\\sqrt{3}}{2}"),
        ("2\\!\\sqrt{5}", "2 \\sqrt{5}"),
        ("18.00", "18"),
    ],
)
def test_math_equivalent_simple_forms(a: str, b: str) -> None:
    assert math_equivalent(a, b)
    assert math_equivalent(b, a)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("2.5", "25"),
        ("\\frac{1}{3}", "0.33"),
        ("\\sqrt{3}", "\\sqrt{2}"),
        ("(1,2)", "(2,1)"),
        ("x^2", "x^3"),
        ("-5", "5"),
    ],
)
def test_math_not_equivalent(a: str, b: str) -> None:
    assert not math_equivalent(a, b)


def test_math_on_example_rows(rows: dict[str, list[Row]]) -> None:
    row = rows["math"][0]  # the solution ends with \boxed{56}
    assert score_response("So $a = 56$, i.e. \\boxed{56}.", row) == 1.0
    assert score_response("First \\boxed{56}? No: \\boxed{24}.", row) == 0.0  # the last box
    assert score_response("He answered 56 correctly.", row) == 0.0  # nothing boxed
    mgsm = rows["agentverse-mgsm"][0]  # a bare "1596"
    assert score_response("The total is \\boxed{\\$1,596}.", mgsm) == 1.0
    assert score_response("The total is \\boxed{1680}.", mgsm) == 0.0


def test_math_boxed_extraction() -> None:
    gold = "Hence $\\boxed{\\frac{1}{\\sqrt{2}}}$."
    assert _score("math", "\\boxed{\\dfrac{1}{\\sqrt2}}", gold) == 1.0
    assert _score("math", "\\fbox{\\frac{1}{\\sqrt{2}}}", gold) == 1.0
    assert _score("math", "\\boxed 7", "\\boxed{7}") == 1.0
    assert _score("math", "\\boxed{\\frac{1}{2}", "\\boxed{\\frac{1}{2}}") == 0.0  # unbalanced


# --- CommonGen ----------------------------------------------------------------------------


def test_commongen_coverage_on_an_example_row(rows: dict[str, list[Row]]) -> None:
    row = rows["commongen"][0]  # 27 concepts: coin, trick, direct, ... jog, chase
    concepts = [c.strip() for c in row["ground_truth"].split(",")]
    assert score_response(" ".join(concepts), row) == 1.0
    sentence = "A cowboy jogging past the station chased a duck and threw a coin."
    assert score_response(sentence, row) == pytest.approx(7 / len(concepts))
    assert score_response("Nothing relevant here.", row) == 0.0


@pytest.mark.parametrize(
    ("concept", "sentence", "expected"),
    [
        ("dog", "Two dogs ran.", 1.0),
        ("box", "Boxes were stacked.", 1.0),
        ("carry", "She carried it and he carries it.", 1.0),
        ("create", "They are creating art.", 1.0),
        ("jog", "We went jogging.", 1.0),
        ("throw", "He threw the ball.", 1.0),
        ("knife", "Sharp knives.", 1.0),
        ("ski lift", "We rode the lift and went skiing.", 1.0),
        ("dog", "A hotdog stand.", 0.0),  # whole words only
        ("throw", "He caught the ball.", 0.0),
        ("ski lift", "The lift went up.", 0.0),  # every word of the concept
    ],
)
def test_commongen_inflections(concept: str, sentence: str, expected: float) -> None:
    assert _score("commongen_coverage", sentence, concept) == expected


def test_commongen_accepts_a_list_and_rejects_an_empty_one() -> None:
    assert _score("commongen_coverage", "a dog and a cat", ["dog", "cat", "bird"]) == 2 / 3
    with pytest.raises(DataFormatError, match="no concepts"):
        _score("commongen_coverage", "a dog", " , ")


# --- code: extraction and program assembly (no execution) ---------------------------------


@pytest.mark.parametrize(
    ("prediction", "expected"),
    [
        ("[BEGIN]\ndef f(x):\n    return x\n[DONE]", "def f(x):\n    return x"),
        ("Sure:\n[begin] def f(x):\n    return x [Done] bye", "def f(x):\n    return x"),
        ("[BEGIN]\n<code>\n[DONE]\nok:\n[BEGIN]\nx = 1\n[DONE]", "x = 1"),  # not the echo
        ("[BEGIN]\n```python\ny = 2\n```\n[DONE]", "y = 2"),
        ("[BEGIN]\nz = 3\n", "z = 3"),  # cut off before [DONE]
        (
            "Use:\n```python\nimport math\n```\n```python\ndef g():\n    pass\n```",
            "def g():\n    pass",
        ),
        ("```py\nprint(1)\n```", "print(1)"),
        ("```\nprint(2)\n```", "print(2)"),
        ("```bash\nrm x\n```\n```python\nprint(3)\n```", "print(3)"),
        ("\n    return a + b\n", "    return a + b"),  # the body keeps its indentation
    ],
)
def test_extract_code(prediction: str, expected: str) -> None:
    assert extract_code(prediction) == expected


def test_code_kind_is_chosen_from_the_row(rows: dict[str, list[Row]]) -> None:
    metric = CodeExecutionMetric()
    mbpp, human_eval = rows["mbpp"][0], rows["human_eval"][0]
    assert metric.kind_for(mbpp["ground_truth"], mbpp) == "mbpp"
    assert metric.kind_for(human_eval["ground_truth"], human_eval) == "humaneval"
    assert metric.kind_for("x", {"task_id": "HumanEval/3"}) == "humaneval"
    assert metric.kind_for("def check(candidate):\n    pass", {}) == "humaneval"
    assert metric.kind_for("['assert f(1) == 1']", {"task_name": "my_code"}) == "mbpp"
    assert (
        CodeExecutionMetric(kind="mbpp").kind_for(human_eval["ground_truth"], human_eval) == "mbpp"
    )
    with pytest.raises(UnknownNameError, match="valid code task kinds: auto, humaneval, mbpp"):
        CodeExecutionMetric(kind="java")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="positive"):
        CodeExecutionMetric(timeout_s=0)


def test_mbpp_program_is_code_then_asserts(rows: dict[str, list[Row]]) -> None:
    row = rows["mbpp"][0]
    program = CodeExecutionMetric().build_program(
        '[BEGIN]\ndef unique_sublists(l):\n    return {}\nif __name__ == "__main__":\n    print(input())\n[DONE]',
        row["ground_truth"],
        row,
    )
    assert program.startswith("def unique_sublists(l):\n    return {}\n")
    assert "input()" not in program  # the main block is dropped
    assert program.count("assert unique_sublists(") == 3
    compile(program, "<test>", "exec")


def test_humaneval_program_for_a_body_and_for_a_whole_function(rows: dict[str, list[Row]]) -> None:
    row = rows["human_eval"][0]  # HumanEval/8: sum_product
    metric = CodeExecutionMetric()
    body = metric.build_program("[BEGIN]\nreturn sum(numbers), 1\n[DONE]", row["ground_truth"], row)
    assert row["query"].rstrip() + "\n    return sum(numbers), 1" in body
    assert body.rstrip().endswith("check(sum_product)")
    whole = metric.build_program(
        "```python\ndef sum_product(numbers):\n    return 0, 1\n```", row["ground_truth"], row
    )
    assert "\ndef sum_product(numbers):\n    return 0, 1\n" in whole
    assert whole.index("from typing import") < whole.index("def sum_product(numbers):")
    for program in (body, whole):
        compile(program, "<test>", "exec")


def test_humaneval_body_indentation_is_repaired(rows: dict[str, list[Row]]) -> None:
    row = rows["human_eval"][0]
    metric = CodeExecutionMetric()
    # The first line lost its indentation, the others kept theirs.
    answer = "total = 0\n    for n in numbers:\n        total += n\n    return total, 1"
    program = metric.build_program(answer, row["ground_truth"], row)
    assert "\n    total = 0\n    for n in numbers:\n        total += n\n" in program
    compile(program, "<test>", "exec")
