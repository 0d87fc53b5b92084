"""The task registry: for each task, where its benchmark lives, how a benchmark record becomes
a query row, its prompt template and its default metric.

The built-in tasks are defined (not registered) in `langchain_llmrouter.pipeline.benchmarks`
and found through `_BUILTIN`, a name -> ``"module:attr"`` map imported on first use, so this
module never imports the modules that add tasks to it. Custom tasks register from a plugin
file named in the config::

    from langchain_llmrouter.pipeline import HubDataset, register_task

    @register_task("my_qa", metric="em", hub=HubDataset("me/my_qa", split="train"),
                   prompt="my_qa.yaml")   # relative to the plugin file
    def my_qa(record, rng):
        return {"query": record["question"], "ground_truth": record["answer"]}

A prompt template is a YAML file with a ``user`` message and an optional ``system`` message,
in LangChain's f-string template format: ``{query}``, ``{choices}`` (the options as
``(A) text`` lines) and ``{tests}`` (MBPP's asserts, one per line) are filled in; literal
braces are doubled (``\\boxed{{}}``).
"""

from __future__ import annotations

import importlib
import importlib.util
import random
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from langchain_core.messages import BaseMessage
from langchain_core.prompts import ChatPromptTemplate

from langchain_llmrouter.errors import ConfigError, UnknownNameError
from langchain_llmrouter.evaluation.code_metric import mbpp_tests
from langchain_llmrouter.evaluation.task_metrics import parse_literal

PROMPTS_DIR = Path(__file__).parent / "prompts"
"""Where the built-in tasks' prompt templates are."""
_LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"

QueryFields = dict[str, Any]
"""What a task's converter returns: ``query`` and ``ground_truth``, optionally ``choices``
(a list of option texts, lettered A, B, ... in order) and ``task_id``."""
ToQuery = Callable[[Mapping[str, Any], random.Random], QueryFields | None]
"""Turns one benchmark record into query fields (None skips the record); the random
generator is seeded per record, for tasks that shuffle options."""


@dataclass(frozen=True)
class HubDataset:
    """Where a benchmark lives on the Hugging Face hub (``datasets.load_dataset`` arguments)."""

    path: str
    """Dataset id, e.g. ``"openai/gsm8k"``."""
    name: str | None = None
    """Configuration name, e.g. ``"main"``."""
    split: str = "train"
    """Split to sample from."""

    def describe(self) -> str:
        """``path[/name]:split``, for messages."""
        return f"{self.path}{'/' + self.name if self.name else ''}:{self.split}"


@dataclass(frozen=True)
class TaskSpec:
    """A registered task."""

    name: str
    """Task name, as written in the ``task_name`` field."""
    metric: str
    """Default metric (written into each query row's ``metric`` field)."""
    to_query: ToQuery | None
    """Benchmark record -> query fields (None: the task only comes from query files)."""
    hub: HubDataset | None
    """The benchmark on the hub, if it has one."""
    prompt_file: Path
    """The YAML prompt template."""

    def prompt(self) -> ChatPromptTemplate:
        """The task's prompt template (loaded once)."""
        return load_prompt_template(self.prompt_file)


_BUILTIN: dict[str, str] = {
    "natural_qa": "langchain_llmrouter.pipeline.benchmarks:natural_qa",
    "trivia_qa": "langchain_llmrouter.pipeline.benchmarks:trivia_qa",
    "mmlu": "langchain_llmrouter.pipeline.benchmarks:mmlu",
    "gpqa": "langchain_llmrouter.pipeline.benchmarks:gpqa",
    "mbpp": "langchain_llmrouter.pipeline.benchmarks:mbpp",
    "human_eval": "langchain_llmrouter.pipeline.benchmarks:human_eval",
    "gsm8k": "langchain_llmrouter.pipeline.benchmarks:gsm8k",
    "commonsense_qa": "langchain_llmrouter.pipeline.benchmarks:commonsense_qa",
    "math": "langchain_llmrouter.pipeline.benchmarks:hendrycks_math",
    "openbook_qa": "langchain_llmrouter.pipeline.benchmarks:openbook_qa",
    "arc_challenge": "langchain_llmrouter.pipeline.benchmarks:arc_challenge",
}
"""Built-in task name -> ``"module:attr"`` of its `TaskSpec` (imported on first lookup)."""
_TASKS: dict[str, TaskSpec] = {}
"""Tasks registered with `register_task` (plugins); they win over a built-in of that name."""


def _spec(
    name: str, metric: str, hub: HubDataset | None, prompt: str | Path | None, func: ToQuery
) -> TaskSpec:
    """The `TaskSpec` of a converter; a relative ``prompt`` is read beside ``func``'s file."""
    if prompt is None:
        prompt_file = PROMPTS_DIR / f"{name}.yaml"
    else:
        prompt_file = Path(prompt)
        if not prompt_file.is_absolute():
            module = sys.modules.get(func.__module__)
            base = Path(getattr(module, "__file__", None) or Path.cwd()).parent
            prompt_file = base / prompt_file
    return TaskSpec(name, metric, func, hub, prompt_file)


def define_task(
    name: str,
    *,
    metric: str,
    hub: HubDataset | None = None,
    prompt: str | Path | None = None,
) -> Callable[[ToQuery], TaskSpec]:
    """Decorator turning a converter into a `TaskSpec` without registering it (how the
    built-ins in `langchain_llmrouter.pipeline.benchmarks` are written; `_BUILTIN` names
    them). Arguments as for `register_task`."""

    def decorator(func: ToQuery) -> TaskSpec:
        return _spec(name, metric, hub, prompt, func)

    return decorator


def register_task(
    name: str,
    *,
    metric: str,
    hub: HubDataset | None = None,
    prompt: str | Path | None = None,
) -> Callable[[ToQuery], ToQuery]:
    """Register a task; decorates the function that turns a benchmark record into a query.

    Args:
        name: The task name.
        metric: Its default metric (a name known to `langchain_llmrouter.evaluation`).
        hub: Where its benchmark is on the hub (local files are looked up by task name).
        prompt: Its prompt template YAML: a path relative to the decorated function's file,
            or absolute. Default: ``prompts/<name>.yaml`` beside the data pipeline.

    Registering a name again replaces the earlier task (so a plugin can override a built-in).
    """

    def decorator(func: ToQuery) -> ToQuery:
        _TASKS[name] = _spec(name, metric, hub, prompt, func)
        return func

    return decorator


def _lookup(name: str) -> TaskSpec | None:
    """The registered task ``name``, else the built-in one (imported now), else None."""
    if name in _TASKS:
        return _TASKS[name]
    target = _BUILTIN.get(name)
    if target is None:
        return None
    module, attr = target.split(":")
    spec: TaskSpec = getattr(importlib.import_module(module), attr)
    return spec


def get_task(name: str) -> TaskSpec:
    """The registered task ``name``.

    Raises:
        UnknownNameError: listing the registered tasks.
    """
    task = _lookup(name)
    if task is None:
        raise UnknownNameError("task", name, task_names())
    return task


def builtin_tasks() -> list[str]:
    """Names of the tasks that ship with the pipeline."""
    return sorted(_BUILTIN)


def task_names() -> list[str]:
    """Names of all tasks: built-in and registered."""
    return sorted(set(_BUILTIN) | set(_TASKS))


@cache
def load_prompt_template(path: Path) -> ChatPromptTemplate:
    """Load a prompt template YAML (``system`` optional, ``user`` required).

    Raises:
        ConfigError: naming the file and the field when it is missing or malformed.
    """
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError("prompt template not found", path=path) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise ConfigError(
            f"invalid YAML: {exc}", path=path, line=mark.line + 1 if mark else None
        ) from None
    if not isinstance(data, dict) or not isinstance(data.get("user"), str):
        raise ConfigError("a prompt template needs a 'user' string", path=path, field="user")
    unknown = set(data) - {"system", "user", "description"}
    if unknown:
        raise ConfigError("unknown key", path=path, field=sorted(unknown)[0])
    messages = []
    if data.get("system"):
        messages.append(("system", str(data["system"])))
    messages.append(("user", data["user"]))
    try:
        template = ChatPromptTemplate.from_messages(messages)
    except (ValueError, KeyError) as exc:
        raise ConfigError(f"bad template: {exc}", path=path, field="user") from None
    unknown_vars = set(template.input_variables) - {"query", "choices", "tests"}
    if unknown_vars:
        raise ConfigError(
            f"unknown template variable {{{sorted(unknown_vars)[0]}}}; use {{query}}, "
            "{choices} or {tests}, and double literal braces",
            path=path,
        )
    return template


def parse_choices(value: Any) -> list[tuple[str, str]]:
    """A query row's ``choices`` as ``[(letter, text), ...]`` ([] when there are none).

    Accepts what query files hold: a JSON string or a Python-literal string (parsed with
    `ast.literal_eval`, which runs no code), a list of option texts, or a mapping with
    ``label``/``labels`` and ``text`` lists.
    """
    if value is None or value == "":
        return []
    if isinstance(value, str):
        try:
            value = parse_literal(value)
        except ValueError:
            return []
    if isinstance(value, Mapping):
        texts = value.get("text")
        labels = value.get("label", value.get("labels"))
        if isinstance(texts, list) and isinstance(labels, list) and len(texts) == len(labels):
            return [(str(label), str(text)) for label, text in zip(labels, texts, strict=True)]
        return []
    if isinstance(value, list | tuple) and all(isinstance(v, str | int | float) for v in value):
        if len(value) > len(_LETTERS):
            return []
        return [(_LETTERS[i], str(text)) for i, text in enumerate(value)]
    return []


def prompt_variables(row: Mapping[str, Any]) -> dict[str, str]:
    """The template variables of a query row."""
    choices = parse_choices(row.get("choices"))
    return {
        "query": str(row.get("query", "")),
        "choices": "\n".join(f"({label}) {text}" for label, text in choices),
        "tests": mbpp_tests(row.get("ground_truth")) if row.get("ground_truth") is not None else "",
    }


def prompt_file_for(row: Mapping[str, Any]) -> Path:
    """The template for a row: its task's, else a generic multiple-choice or open one."""
    task = _lookup(str(row.get("task_name")))
    if task is not None:
        return task.prompt_file
    # An unregistered task (e.g. from LLMRouter's query files) gets the prompt that asks for
    # the answer in the form its metric reads.
    metric = str(row.get("metric", "")).lower()
    if metric == "em_mc" and parse_choices(row.get("choices")):
        return PROMPTS_DIR / "generic_multiple_choice.yaml"
    by_metric = {"math": "math.yaml", "gsm8k": "gsm8k.yaml", "commongen_coverage": "concepts.yaml"}
    return PROMPTS_DIR / by_metric.get(metric, "generic.yaml")


def render_messages(row: Mapping[str, Any]) -> list[BaseMessage]:
    """The chat messages that ask a candidate the row's question.

    Rows from stage 1 carry ``formatted_query`` (``{"system": ..., "user": ...}``), which is
    used as written; rows from other query files get their task's template.
    """
    formatted = row.get("formatted_query")
    if isinstance(formatted, Mapping) and isinstance(formatted.get("user"), str):
        from langchain_core.messages import HumanMessage, SystemMessage

        messages: list[BaseMessage] = []
        if formatted.get("system"):
            messages.append(SystemMessage(str(formatted["system"])))
        messages.append(HumanMessage(formatted["user"]))
        return messages
    return _template_messages(row)


def _template_messages(row: Mapping[str, Any]) -> list[BaseMessage]:
    """The row's template (`prompt_file_for`) filled with its variables."""
    return load_prompt_template(prompt_file_for(row)).format_messages(**prompt_variables(row))


def formatted_query(row: Mapping[str, Any]) -> dict[str, str | None]:
    """The rendered prompt of a row as ``{"system": ..., "user": ...}`` (stage 1 stores it)."""
    messages = _template_messages(row)
    system = next((str(m.content) for m in messages if m.type == "system"), None)
    user = next(str(m.content) for m in messages if m.type == "human")
    return {"system": system, "user": user}


def load_plugins(plugins: list[str], *, base: Path | None = None) -> None:
    """Import plugin files (``*.py``, relative to ``base`` then the working directory) or
    modules, so their `register_task` / `register_metric` decorators run.

    Raises:
        ConfigError: when a plugin cannot be found or fails to import.
    """
    for plugin in plugins:
        if plugin.endswith(".py"):
            candidates = [Path(plugin).expanduser()]
            if base is not None and not candidates[0].is_absolute():
                candidates.insert(0, base / plugin)
            path = next((p for p in candidates if p.exists()), None)
            if path is None:
                looked = " and ".join(str(p) for p in candidates)
                raise ConfigError(f"plugin file not found (looked in {looked})", field="plugins")
            name = f"llmrouter_pipeline_plugin_{path.stem}"
            spec = importlib.util.spec_from_file_location(name, path)
            if spec is None or spec.loader is None:
                raise ConfigError("cannot import plugin", path=path, field="plugins")
            module = importlib.util.module_from_spec(spec)
            sys.modules[name] = module
            try:
                spec.loader.exec_module(module)
            except Exception as exc:
                raise ConfigError(
                    f"plugin failed to import: {type(exc).__name__}: {exc}",
                    path=path,
                    field="plugins",
                ) from exc
        else:
            try:
                importlib.import_module(plugin)
            except ImportError as exc:
                raise ConfigError(
                    f"plugin module {plugin!r} cannot be imported: {exc}", field="plugins"
                ) from exc
