"""Code metrics: pass@1 of generated code for MBPP and HumanEval, run in the sandbox of
`langchain_llmrouter.evaluation.code_sandbox`.

The metric registry of `langchain_llmrouter.evaluation.task_metrics` names the instances at the
bottom of this module as the built-in ``code_eval``, ``mbpp`` and ``humaneval`` (alias
``human_eval``) and imports this module on first lookup; this module does not import the
registry."""

from __future__ import annotations

import ast
import logging
import re
import secrets
import textwrap
from collections.abc import Mapping
from typing import Any, Literal

from langchain_llmrouter.errors import DataFormatError, UnknownNameError
from langchain_llmrouter.evaluation.code_sandbox import run_python_sandboxed

logger = logging.getLogger(__name__)

_BEGIN_BLOCK = re.compile(r"\[BEGIN\](.*?)(?:\[DONE\]|\Z)", re.IGNORECASE | re.DOTALL)
_FENCE = re.compile(r"```[ \t]*([\w+-]*)[^\n]*\n(.*?)(?:```|\Z)", re.DOTALL)


def _trim(code: str) -> str:
    """Drop blank lines around the code but keep the first line's indentation."""
    return re.sub(r"\A(?:[ \t]*\n)+", "", code).rstrip()


def _from_fences(text: str) -> str | None:
    fences = [(lang.lower(), body) for lang, body in _FENCE.findall(text)]
    python = [body for lang, body in fences if lang in ("python", "python3", "py")]
    bodies = python or [body for lang, body in fences if not lang]
    if not bodies:
        return None
    return _trim(next((body for body in bodies if "def " in body), bodies[0]))


def extract_code(prediction: str) -> str:
    """The code in a response: the last non-empty ``[BEGIN] ... [DONE]`` block (``[Done]``
    and any case; an unclosed block runs to the end), else a ```python fence (the first one
    that defines a function), else the whole text. A fence inside a block is unwrapped."""
    blocks = []
    for block in _BEGIN_BLOCK.findall(prediction):
        if not block.startswith("\n"):
            block = block.lstrip(" \t")  # "[BEGIN] def f" puts a space before the code
        block = _trim(block)
        if block and block != "<code>":  # an echo of the prompt's format line
            blocks.append(block)
    if blocks:
        fenced = _from_fences(blocks[-1])
        return blocks[-1] if fenced is None else fenced
    fenced = _from_fences(prediction)
    return _trim(prediction) if fenced is None else fenced


def _compiles(source: str) -> bool:
    try:
        compile(source, "<candidate>", "exec")  # compiling runs nothing
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return False
    return True


def _parse(source: str) -> ast.Module | None:
    try:
        return ast.parse(source)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None


def _drop_main_blocks(code: str) -> str:
    """Remove top-level ``if __name__ == "__main__":`` blocks (they may read stdin)."""
    tree = _parse(code)
    if tree is None:
        return code
    lines = code.splitlines(keepends=True)
    for node in reversed(tree.body):
        if isinstance(node, ast.If) and any(
            isinstance(n, ast.Name) and n.id == "__name__" for n in ast.walk(node.test)
        ):
            del lines[node.lineno - 1 : node.end_lineno]
    return "".join(lines)


def mbpp_tests(ground_truth: Any) -> str:
    """MBPP's asserts, one per line: the ground truth is a list of them or its string form
    (anything else is taken as test code already)."""
    tests = ground_truth
    if isinstance(tests, str):
        try:
            tests = ast.literal_eval(tests)
        except (ValueError, SyntaxError, TypeError, RecursionError, MemoryError):
            return ground_truth  # already test code, not the string form of a list
    if isinstance(tests, list | tuple):
        return "\n".join(str(test) for test in tests)
    return str(tests)


def _functions(source: str) -> list[str]:
    """Names of the top-level functions of some Python source, in order."""
    tree = _parse(source)
    if tree is None:
        return re.findall(r"^(?:async\s+)?def\s+(\w+)", source, re.MULTILINE)
    return [n.name for n in tree.body if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)]


def _as_body(prompt: str, code: str) -> str:
    """The code indented as the body of the prompt's function (trying the likely layouts)."""
    first = next((line for line in code.splitlines() if line.strip()), "")
    layouts = [code] if first[:1] in (" ", "\t") else []
    layouts += [textwrap.indent(textwrap.dedent(code), "    "), "    " + code]
    return next((body for body in layouts if _compiles(prompt + body)), layouts[0])


class CodeExecutionMetric:
    """pass@1 of generated code: 1.0 if it passes the task's tests in the sandbox, else 0.0.

    MBPP: the code, then the asserts of the ground truth (a list or its string form).
    HumanEval: the row's ``query`` is the prompt and the ground truth defines
    ``check(candidate)``; code that defines the entry point follows the prompt (so its
    imports and helper functions are there), otherwise it is the body of the prompt's
    function. A success marker printed after the tests makes a program that exits early
    (``sys.exit(0)``) fail.
    """

    def __init__(
        self,
        *,
        timeout_s: float = 10.0,
        memory_mb: int = 1024,
        kind: Literal["auto", "mbpp", "humaneval"] = "auto",
    ) -> None:
        if kind not in ("auto", "mbpp", "humaneval"):
            raise UnknownNameError("code task kind", str(kind), ["auto", "mbpp", "humaneval"])
        if not timeout_s > 0 or memory_mb <= 0:
            raise ValueError(f"timeout_s and memory_mb must be positive: {timeout_s}, {memory_mb}")
        self.timeout_s = timeout_s
        """Wall-clock limit per program, in seconds."""
        self.memory_mb = memory_mb
        """Address-space limit per program, in MiB."""
        self.kind = kind
        """``mbpp``, ``humaneval``, or ``auto`` (chosen from each row)."""

    def __repr__(self) -> str:
        return (
            f"CodeExecutionMetric(timeout_s={self.timeout_s}, memory_mb={self.memory_mb}, "
            f"kind={self.kind!r})"
        )

    def kind_for(self, ground_truth: Any, row: Mapping[str, Any]) -> Literal["mbpp", "humaneval"]:
        """The task kind of a row: from ``task_name``, a ``HumanEval/..`` task id, or tests
        that define ``check(``."""
        if self.kind != "auto":
            return self.kind
        name = str(row.get("task_name") or "").lower().replace("-", "_")
        if name in ("human_eval", "humaneval", "openai_humaneval"):
            return "humaneval"
        if name == "mbpp":
            return "mbpp"
        if str(row.get("task_id") or "").lower().startswith("humaneval/"):
            return "humaneval"
        return "humaneval" if "def check(" in str(ground_truth) else "mbpp"

    def build_program(self, prediction: str, ground_truth: Any, row: Mapping[str, Any]) -> str:
        """The program that is run: the code extracted from the response with the tests."""
        code = extract_code(prediction)
        if self.kind_for(ground_truth, row) == "mbpp":
            return f"{_drop_main_blocks(code)}\n\n{mbpp_tests(ground_truth)}\n"
        prompt = str(row.get("query") or "").rstrip("\n") + "\n"
        names = _functions(prompt)
        if not names:
            raise DataFormatError("the HumanEval prompt defines no function", field="query")
        entry, whole = names[-1], textwrap.dedent(code)
        if entry in _functions(whole):  # after the prompt, so its imports and helpers are there
            solution = f"{prompt}\n{_drop_main_blocks(whole)}"
        else:
            solution = prompt + _as_body(prompt, code)
        return f"{solution}\n\n{ground_truth}\n\ncheck({entry})\n"

    def __call__(self, prediction: str, ground_truth: Any, row: Mapping[str, Any]) -> float:
        """Score one response (blocks for up to ``timeout_s``: call it in a thread from async
        code).

        Raises:
            RuntimeError: If the sandbox cannot run programs at all (never for bad code).
        """
        if not extract_code(prediction).strip():
            return 0.0
        marker = f"passed-{secrets.token_hex(8)}"
        # Written through sys.__stdout__ so that a program that shadows `print` still reports.
        program = self.build_program(prediction, ground_truth, row) + (
            f"\nimport sys as _sandbox_sys\n_sandbox_sys.__stdout__.write({marker!r} + '\\n')\n"
        )
        result = run_python_sandboxed(program, timeout_s=self.timeout_s, memory_mb=self.memory_mb)
        if result.status == "error":
            raise RuntimeError(f"the code sandbox could not run a program: {result.output}")
        logger.debug("code_eval %s in %.2f s: %s", result.status, result.duration_s, result.output)
        return 1.0 if result.passed and marker in result.output else 0.0


code_eval = CodeExecutionMetric()
"""The built-in ``code_eval`` metric: MBPP or HumanEval, chosen from each row."""
mbpp = CodeExecutionMetric(kind="mbpp")
"""The built-in ``mbpp`` metric."""
humaneval = CodeExecutionMetric(kind="humaneval")
"""The built-in ``humaneval`` (and ``human_eval``) metric."""
