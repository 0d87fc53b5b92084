"""Helpers for the stage-1 tests: tiny hand-made benchmark records in each benchmark's hub
schema, and small config and JSONL helpers.

The records are written for these tests (not taken from the benchmarks); each covers the
schema's quirks: ARC's numeric labels, CommonsenseQA's unlabelled records, TriviaQA's empty
``value``, MBPP's setup code.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

SHARED_LLM_DATA = "/work/shared/data/llmrouter_example/default_llm.json"
"""Stage 1 does not read it, but the config requires ``data_path.llm_data``."""

GPQA_RECORDS = [
    {
        "Question": f"Which value is the right one in case {i}?",
        "Correct Answer": f"right {i}",
        "Incorrect Answer 1": f"wrong {i}a",
        "Incorrect Answer 2": f"wrong {i}b",
        "Incorrect Answer 3": f"wrong {i}c",
        "Record ID": f"rec{i}",
    }
    for i in range(1, 6)
]

HUB_RECORDS: dict[str, list[dict[str, Any]]] = {
    "natural_qa": [
        {
            "id": "n1",
            "question": "who wrote the novel dracula",
            "golden_answers": ["Bram Stoker", "Abraham Stoker"],
        },
        {
            "id": "n2",
            "question": "what is the capital city of australia",
            "golden_answers": ["Canberra"],
        },
    ],
    "trivia_qa": [
        {
            "question": "Which planet is called the Red Planet?",
            "question_id": "t1",
            "answer": {
                "value": "Mars",
                "normalized_value": "mars",
                "aliases": ["Mars"],
                "normalized_aliases": ["planet mars", "mars"],
            },
        },
        {
            "question": "Which metal has the symbol Fe?",
            "question_id": "t2",
            "answer": {
                "value": "",
                "normalized_value": "",
                "aliases": ["Iron"],
                "normalized_aliases": ["iron", "fe"],
            },
        },
    ],
    "mmlu": [
        {
            "question": "What is 2 + 2?",
            "subject": "arithmetic",
            "choices": ["3", "4", "5", "22"],
            "answer": 1,
        },
        {
            "question": "Which gas do plants take in?",
            "subject": "biology",
            "choices": ["Oxygen", "Helium", "Carbon dioxide", "Neon"],
            "answer": 2,
        },
        {
            "question": "Which is a prime number?",
            "subject": "arithmetic",
            "choices": ["4", "6", "8", "7"],
            "answer": 3,
        },
    ],
    "gpqa": GPQA_RECORDS,
    "mbpp": [
        {
            "task_id": 901,
            "text": "Write a function to add two numbers.",
            "code": "def add(a, b):\n    return a + b",
            "test_list": ["assert add(1, 2) == 3", "assert add(-1, 1) == 0"],
            "test_setup_code": "",
            "challenge_test_list": [],
        },
        {
            "task_id": 902,
            "text": "Write a function to return the square root of a number.",
            "code": "def root(x):\n    return math.sqrt(x)",
            "test_list": ["assert root(9) == 3.0"],
            "test_setup_code": "import math",
            "challenge_test_list": [],
        },
    ],
    "human_eval": [
        {
            "task_id": "HumanEval/7",
            "prompt": 'def double(x: int) -> int:\n    """Return twice x.\n    >>> double(2)\n    4\n    """\n',
            "canonical_solution": "    return 2 * x\n",
            "test": "def check(candidate):\n    assert candidate(3) == 6\n",
            "entry_point": "double",
        },
        {
            "task_id": "HumanEval/8",
            "prompt": 'def negate(x: int) -> int:\n    """Return -x."""\n',
            "canonical_solution": "    return -x\n",
            "test": "def check(candidate):\n    assert candidate(3) == -3\n",
            "entry_point": "negate",
        },
    ],
    "gsm8k": [
        {
            "question": "Tom has 3 apples and buys 4 more. How many apples does he have?",
            "answer": "3 + 4 = <<3+4=7>>7 apples.\n#### 7",
        },
        {
            "question": "A box holds 6 eggs. How many eggs are in 5 boxes?",
            "answer": "6 * 5 = <<6*5=30>>30\n#### 30",
        },
    ],
    "commonsense_qa": [
        {
            "id": "c1",
            "question": "Where would you keep milk cold?",
            "question_concept": "milk",
            "choices": {
                "label": ["A", "B", "C", "D", "E"],
                "text": ["oven", "fridge", "attic", "car", "desk"],
            },
            "answerKey": "B",
        },
        {
            "id": "c2",
            "question": "An unlabelled question (as in the test split)?",
            "question_concept": "none",
            "choices": {"label": ["A", "B", "C", "D", "E"], "text": ["a", "b", "c", "d", "e"]},
            "answerKey": "",
        },
    ],
    "math": [
        {
            "problem": "Solve $x + 2 = 7$.",
            "level": "Level 1",
            "type": "Algebra",
            "solution": "Subtract 2: $x = \\boxed{5}$.",
        },
        {
            "problem": "What is the area of a $2 \\times 3$ rectangle?",
            "level": "Level 1",
            "type": "Geometry",
            "solution": "$2 \\cdot 3 = \\boxed{6}$.",
        },
    ],
    "openbook_qa": [
        {
            "id": "o1",
            "question_stem": "The sun is a",
            "choices": {"text": ["planet", "star", "moon", "comet"], "label": ["A", "B", "C", "D"]},
            "answerKey": "B",
        },
        {
            "id": "o2",
            "question_stem": "Ice is water that is",
            "choices": {
                "text": ["boiling", "frozen", "warm", "a gas"],
                "label": ["A", "B", "C", "D"],
            },
            "answerKey": "B",
        },
    ],
    "arc_challenge": [
        {
            "id": "a1",
            "question": "Which tool measures temperature?",
            "choices": {
                "text": ["ruler", "scale", "thermometer", "clock"],
                "label": ["1", "2", "3", "4"],
            },
            "answerKey": "3",
        },
        {
            "id": "a2",
            "question": "Which of these is a mammal?",
            "choices": {"text": ["shark", "whale", "trout"], "label": ["A", "B", "C"]},
            "answerKey": "B",
        },
    ],
}
"""Per built-in task: a few records in its hub dataset's schema."""

EXPECTED: dict[str, list[dict[str, Any]]] = {
    "natural_qa": [
        {
            "query": "who wrote the novel dracula",
            "ground_truth": "Bram Stoker",
            "choices": None,
            "task_id": None,
        },
        {
            "query": "what is the capital city of australia",
            "ground_truth": "Canberra",
            "choices": None,
            "task_id": None,
        },
    ],
    "trivia_qa": [
        {
            "query": "Which planet is called the Red Planet?",
            "ground_truth": "Mars",
            "choices": None,
            "task_id": None,
        },
        {
            "query": "Which metal has the symbol Fe?",
            "ground_truth": "iron",
            "choices": None,
            "task_id": None,
        },
    ],
    "mmlu": [
        {
            "query": "What is 2 + 2?",
            "ground_truth": "B",
            "choices": ["3", "4", "5", "22"],
            "task_id": None,
        },
        {
            "query": "Which gas do plants take in?",
            "ground_truth": "C",
            "choices": ["Oxygen", "Helium", "Carbon dioxide", "Neon"],
            "task_id": None,
        },
        {
            "query": "Which is a prime number?",
            "ground_truth": "D",
            "choices": ["4", "6", "8", "7"],
            "task_id": None,
        },
    ],
    "mbpp": [
        {
            "query": "Write a function to add two numbers.",
            "ground_truth": "['assert add(1, 2) == 3', 'assert add(-1, 1) == 0']",
            "choices": None,
            "task_id": "901",
        },
        {
            "query": "Write a function to return the square root of a number.",
            "ground_truth": "['import math', 'assert root(9) == 3.0']",
            "choices": None,
            "task_id": "902",
        },
    ],
    "human_eval": [
        {
            "query": HUB_RECORDS["human_eval"][0]["prompt"],
            "ground_truth": HUB_RECORDS["human_eval"][0]["test"],
            "choices": None,
            "task_id": "HumanEval/7",
        },
        {
            "query": HUB_RECORDS["human_eval"][1]["prompt"],
            "ground_truth": HUB_RECORDS["human_eval"][1]["test"],
            "choices": None,
            "task_id": "HumanEval/8",
        },
    ],
    "gsm8k": [
        {
            "query": "Tom has 3 apples and buys 4 more. How many apples does he have?",
            "ground_truth": "3 + 4 = <<3+4=7>>7 apples.\n#### 7",
            "choices": None,
            "task_id": None,
        },
        {
            "query": "A box holds 6 eggs. How many eggs are in 5 boxes?",
            "ground_truth": "6 * 5 = <<6*5=30>>30\n#### 30",
            "choices": None,
            "task_id": None,
        },
    ],
    "commonsense_qa": [
        {
            "query": "Where would you keep milk cold?",
            "ground_truth": "B",
            "choices": ["oven", "fridge", "attic", "car", "desk"],
            "task_id": None,
        },
    ],
    "math": [
        {
            "query": "Solve $x + 2 = 7$.",
            "ground_truth": "Subtract 2: $x = \\boxed{5}$.",
            "choices": None,
            "task_id": None,
        },
        {
            "query": "What is the area of a $2 \\times 3$ rectangle?",
            "ground_truth": "$2 \\cdot 3 = \\boxed{6}$.",
            "choices": None,
            "task_id": None,
        },
    ],
    "openbook_qa": [
        {
            "query": "The sun is a",
            "ground_truth": "B",
            "choices": ["planet", "star", "moon", "comet"],
            "task_id": None,
        },
        {
            "query": "Ice is water that is",
            "ground_truth": "B",
            "choices": ["boiling", "frozen", "warm", "a gas"],
            "task_id": None,
        },
    ],
    "arc_challenge": [
        {
            "query": "Which tool measures temperature?",
            "ground_truth": "C",
            "choices": ["ruler", "scale", "thermometer", "clock"],
            "task_id": None,
        },
        {
            "query": "Which of these is a mammal?",
            "ground_truth": "B",
            "choices": ["shark", "whale", "trout"],
            "task_id": None,
        },
    ],
}
"""What stage 1 must make of `HUB_RECORDS` (gpqa, whose options are shuffled, is checked
separately). ``choices`` here are the option texts in letter order."""


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    """Write rows as JSONL (parent folders created)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """The rows of a JSONL file."""
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def write_config(folder: Path, name: str = "pipeline.yaml", **queries: Any) -> Path:
    """A pipeline config in ``folder`` writing ``out/query_data_{train,test}.jsonl`` there;
    ``queries`` is its ``queries`` section, except ``plugins``, a top-level key."""
    folder.mkdir(parents=True, exist_ok=True)
    plugins = queries.pop("plugins", None)
    data: dict[str, Any] = {
        "data_path": {
            "llm_data": SHARED_LLM_DATA,
            "query_data_train": str(folder / "out" / "query_data_train.jsonl"),
            "query_data_test": str(folder / "out" / "query_data_test.jsonl"),
        },
        "queries": queries,
    }
    if plugins is not None:
        data["plugins"] = plugins
    path = folder / name
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def option_texts(choices: str | None) -> list[str] | None:
    """The option texts of an output row's ``choices`` JSON (checking its letters)."""
    if choices is None:
        return None
    data = json.loads(choices)
    assert data["labels"] == [chr(ord("A") + i) for i in range(len(data["text"]))]
    return data["text"]
