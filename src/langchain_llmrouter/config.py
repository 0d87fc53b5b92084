"""YAML configs for training, inference and benchmarks, validated with pydantic.

LLMRouter's config files load unchanged: its keys ``data_path``, ``hparam``,
``model_path`` and ``api_endpoint`` mean the same here; its keys that have no
meaning here are accepted with a warning; any other unknown key is an error that
names the file, the line and the key. A relative path in a router or bench config
resolves against the config file's folder, wherever the command runs (see `FileConfig.resolve`).
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any, ClassVar, Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from langchain_llmrouter.errors import ConfigError
from langchain_llmrouter.jsonl import read_text

# LLMRouter keys that do nothing in this package (warned about, not rejected).
_IGNORED_TOP_LEVEL = {
    "metric": "cost is handled by the shared policy (cost_weight/budget in hparam), not metric weights",
    "device": "this package picks the device itself",
    "api_key": "API keys come from the API_KEYS environment variable",
    "use_local_llm": "not used by single-round routers",
}
_IGNORED_DATA_PATHS = {
    "query_data_train": "query data is only needed by the data pipeline",
    "query_data_test": "query data is only needed by the data pipeline",
    "query_embedding_data": "queries are embedded with the configured embedder; .pt files are never "
    "loaded because loading them can run code",
}
_IGNORED_MODEL_PATHS = {
    "ini_model_path": "warm-starting from a pickle is not supported (no pickle loading)"
}


_SECTIONS = ("data_path", "model_path", "hparam", "embedding", "routers", "queries", "calls")
"""Config keys whose values are mappings."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DataPaths(_Strict):
    """``data_path`` section (LLMRouter's names)."""

    routing_data_train: str | None = None
    """Routing data to train on (.jsonl, .json or .csv)."""
    routing_data_test: str | None = None
    """Routing data to evaluate on."""
    llm_data: str | None = None
    """Candidate JSON (LLMRouter's ``default_llm.json`` format)."""
    llm_embedding_data: str | None = None
    """Candidate JSON with description embeddings (used by graph routers)."""
    interactions_train: str | None = None
    """Users' rated interactions for personalised routers: GMTRouter JSONL (``.jsonl``) or
    PersonalizedRouter CSV (``.csv``); ``llmrouter simulate-users`` writes the former."""
    feedback_store: str | None = None
    """A feedback store (SQLAlchemy URL or SQLite path) whose ratings personalised routers
    also learn from: ``llmrouter train`` folds the stored feedback into the next model."""
    query_data_train: str | None = None
    """Accepted for compatibility; unused here."""
    query_data_test: str | None = None
    """Accepted for compatibility; unused here."""
    query_embedding_data: str | None = None
    """Accepted for compatibility; unused here (never unpickled)."""


class ModelPaths(_Strict):
    """``model_path`` section (LLMRouter's names)."""

    save_model_path: str | None = None
    """Directory `llmrouter train` saves the router to."""
    load_model_path: str | None = None
    """Directory `llmrouter infer`/`eval` load the router from (default: save_model_path)."""
    ini_model_path: str | None = None
    """Accepted for compatibility; unused here."""


class EmbeddingConfig(_Strict):
    """``embedding`` section: which embedder routers use."""

    model: str = "all-MiniLM-L6-v2"
    """``all-MiniLM-L6-v2`` (bundled, offline), ``static-minilm-l6-v2`` (static token vectors
    distilled from it: numpy at routing time), or a local sentence-transformers directory."""
    batch_size: int = Field(default=64, ge=1)
    """Texts per forward pass."""
    num_threads: int | None = Field(default=None, ge=1)
    """Torch's CPU threads for MiniLM (None: one per core); 1 for a serving worker per core."""
    cache_dir: str | None = None
    """On-disk embedding cache (default ``$LLMROUTER_CACHE_DIR`` or ~/.cache/langchain_llmrouter)."""


class _FileConfig(_Strict):
    """What every config file has: an embedder, and paths resolved against its location."""

    paths_relative_to_config: ClassVar[bool] = False
    """True: relative paths resolve against the config file's folder (router and bench
    configs). False: the working directory first, then the config's folder (the rule that
    companion configs such as the data pipeline's keep)."""

    embedding: EmbeddingConfig = Field(default_factory=EmbeddingConfig)
    """Query embedder."""
    source: Path | None = Field(default=None, exclude=True)
    """The file this config came from (set by `load_config`)."""

    def resolve(self, value: str | None, *, what: str, must_exist: bool = True) -> Path | None:
        """Resolve a path written in this config.

        Absolute and ``~`` paths are taken as they are. With `paths_relative_to_config`, a
        relative path resolves against the config file's folder, for inputs and outputs
        alike, so a config means the same from any working directory. A path that exists
        only relative to the working directory (the old rule) is still used, with a
        `FutureWarning` that says how to rewrite it. A config built in code (no file)
        resolves against the working directory.

        Args:
            value: The path as written in the config (None passes through).
            what: The config key, for messages (``data_path.llm_data``).
            must_exist: False for outputs and directories that may not exist yet.

        Raises:
            ConfigError: ``must_exist`` and the file is not there.
        """
        if value is None:
            return None
        path = Path(value).expanduser()
        if path.is_absolute():
            return self._checked([path], what=what, must_exist=must_exist)
        if self.source is None:
            return self._checked([Path.cwd() / path], what=what, must_exist=must_exist)
        if not self.paths_relative_to_config:
            candidates = [Path.cwd() / path, self.source.parent / path]
            return self._checked(candidates, what=what, must_exist=must_exist)
        # resolve(): "configs/train/../../models/x" becomes one readable absolute path, with
        # ".." taken after symlinks as the operating system would.
        here = (self.source.parent / path).resolve()
        if here.exists():
            return here
        legacy = Path.cwd() / path
        if legacy.exists():
            # Configs written for the old rule (working directory first), and LLMRouter's,
            # whose paths are relative to its repository root, keep working for now.
            suggestion = os.path.relpath(legacy.resolve(), self.source.parent.resolve())
            warnings.warn(
                f"{self.source}: {what} {value!r} was found relative to the working directory "
                f"({legacy}), not to the config's folder ({here} does not exist). Paths in a "
                f"config resolve against its folder; write {suggestion!r} instead (the "
                "working-directory fallback, for older and LLMRouter configs, is deprecated).",
                FutureWarning,
                stacklevel=2,
            )
            return legacy
        if not must_exist:
            return here
        raise ConfigError(
            f"file not found: {here} (a relative path in a config is relative to the "
            f"config's folder, {self.source.parent.resolve()})",
            path=self.source,
            field=what,
        )

    def _checked(self, candidates: list[Path], *, what: str, must_exist: bool) -> Path:
        """The first candidate that exists; else the first one, or an error naming them all."""
        for candidate in candidates:
            if candidate.exists():
                return candidate
        if not must_exist:
            return candidates[0]
        looked = " and ".join(str(c) for c in candidates)
        raise ConfigError(f"file not found (looked in {looked})", path=self.source, field=what)

    def build_embeddings(self) -> Any:
        """The configured `Embeddings` (None means the shared default MiniLM)."""
        from langchain_llmrouter.embeddings import (
            DEFAULT_EMBEDDING_MODEL,
            STATIC_EMBEDDING_MODEL,
            MiniLMEmbeddings,
            builtin_embeddings,
        )

        if self.embedding.model == STATIC_EMBEDDING_MODEL:
            return builtin_embeddings(STATIC_EMBEDDING_MODEL)
        if self.embedding.model == DEFAULT_EMBEDDING_MODEL:
            if self.embedding.batch_size == 64 and self.embedding.num_threads is None:
                return None
            return MiniLMEmbeddings(
                batch_size=self.embedding.batch_size, num_threads=self.embedding.num_threads
            )
        path = self.resolve(self.embedding.model, what="embedding.model")
        return MiniLMEmbeddings(
            model_path=str(path),
            batch_size=self.embedding.batch_size,
            num_threads=self.embedding.num_threads,
        )


FileConfig = _FileConfig
"""Public name of the base class, for companion configs (`langchain_llmrouter.pipeline`)."""
FileConfigT = TypeVar("FileConfigT", bound=_FileConfig)


class RouterConfig(_FileConfig):
    """A router's training/inference config."""

    paths_relative_to_config: ClassVar[bool] = True

    router: str | None = None
    """Router name; the CLI's ``--router`` must agree when both are given."""
    data_path: DataPaths = Field(default_factory=DataPaths)
    """Where the data is."""
    hparam: dict[str, Any] = Field(default_factory=dict)
    """The router's hyperparameters (validated by the router)."""
    model_path: ModelPaths = Field(default_factory=ModelPaths)
    """Where the trained router goes."""
    api_endpoint: str | None = None
    """Default OpenAI-compatible endpoint for candidates without their own."""
    routing_mode: Literal["current_only", "full_context", "retrieval"] = "current_only"
    """What text chat requests are routed on (see `routing_text`)."""
    retrieval_top_k: int = Field(default=3, ge=1)
    """Earlier user messages added to the routing text in ``retrieval`` mode."""
    max_tokens: int | None = Field(default=None, ge=1)
    """Max tokens for candidate answers (inference)."""
    temperature: float | None = Field(default=None, ge=0)
    """Sampling temperature for candidate answers (inference)."""
    max_concurrency: int = Field(default=8, ge=1)
    """Parallel candidate calls for batch inference."""
    base_model: str | None = None
    """Multi-round routers' decomposer/aggregator: a candidate name (LLMRouter's key)."""
    tune: bool = True
    """``llmrouter train``: first choose the hyperparameters by grouped CV on the training
    data, starting from ``hparam`` (`langchain_llmrouter.routers.tuning`; single-round
    routers with a search space, and at least 200 distinct training queries)."""
    tune_budget_s: float = Field(default=300.0, gt=0, allow_inf_nan=False)
    """Seconds of that search (no trial starts after them)."""
    tune_folds: int = Field(default=5, ge=2, le=20)
    """Folds of that cross-validation."""
    metric: Any = None
    device: Any = None
    api_key: Any = None
    use_local_llm: Any = None


class BenchConfig(_FileConfig):
    """A benchmark: routers to train and compare on one train/test pair."""

    paths_relative_to_config: ClassVar[bool] = True

    data_path: DataPaths
    """Train, test and candidate files."""
    routers: dict[str, dict[str, Any]] = Field(
        default_factory=lambda: {"knnrouter": dict[str, Any]()}
    )
    """Router name -> hyperparameters."""
    api_endpoint: str | None = None
    """Unused by the benchmark; accepted so router configs can be shared."""


def _line_of(node: yaml.Node | None, loc: tuple[Any, ...]) -> int | None:
    """1-based line of the YAML node at ``loc`` (or of its deepest existing parent)."""
    line = None
    for key in loc:
        if not isinstance(node, yaml.MappingNode):
            break
        for k, v in node.value:
            if getattr(k, "value", None) == str(key):
                line = k.start_mark.line + 1
                node = v
                break
        else:
            break
    return line


def _load_yaml(path: Path) -> tuple[dict[str, Any], yaml.Node | None]:
    text = read_text(path, what="YAML config file", error=ConfigError)
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise ConfigError(
            f"invalid YAML: {getattr(exc, 'problem', exc)}",
            path=path,
            line=mark.line + 1 if mark else None,
        ) from None
    except RecursionError:
        # PyYAML composes recursively: thousands of nested brackets exhaust the stack.
        raise ConfigError(
            "invalid YAML: nested too deeply (a config is a few levels deep)", path=path
        ) from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError("a config must be a YAML mapping", path=path, line=1)
    # A section with only comments under it (`hparam:`) reads as null: treat it as empty.
    data = {k: ({} if v is None and k in _SECTIONS else v) for k, v in data.items()}
    return data, node


def _validate(
    model: type[_Strict], data: dict[str, Any], path: Path, node: yaml.Node | None
) -> Any:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = tuple(err["loc"])
        field = ".".join(str(p) for p in loc)
        if err["type"] == "extra_forbidden":
            message = "unknown key"
        else:
            message = f"{err['msg']} (got {err.get('input')!r})"
        raise ConfigError(message, path=path, line=_line_of(node, loc), field=field) from None


def _warn_ignored(data: dict[str, Any], path: Path) -> None:
    for section, table in (
        (None, _IGNORED_TOP_LEVEL),
        ("data_path", _IGNORED_DATA_PATHS),
        ("model_path", _IGNORED_MODEL_PATHS),
    ):
        mapping = data if section is None else data.get(section) or {}
        for key, why in table.items():
            if isinstance(mapping, dict) and mapping.get(key) is not None:
                name = key if section is None else f"{section}.{key}"
                warnings.warn(
                    f"{path}: LLMRouter key '{name}' is ignored: {why}", UserWarning, stacklevel=3
                )


def load_config(path: str | Path) -> RouterConfig:
    """Load and validate a router config (LLMRouter's files load unchanged).

    Raises:
        ConfigError: naming the file, line and key of the problem.
    """
    path = Path(path)
    data, node = _load_yaml(path)
    _warn_ignored(data, path)
    config: RouterConfig = _validate(RouterConfig, data, path, node)
    config.source = path
    return config


def load_bench_config(path: str | Path) -> BenchConfig:
    """Load and validate a benchmark config."""
    return load_yaml_config(BenchConfig, path)


def load_yaml_config(model: type[FileConfigT], path: str | Path) -> FileConfigT:
    """Load a YAML file into any config model built on this module's base class.

    Used by companions such as `langchain_llmrouter.pipeline` so their configs report errors
    the same way (file, line, key).

    Raises:
        ConfigError: naming the file, line and key of the problem.
    """
    path = Path(path)
    data, node = _load_yaml(path)
    config: FileConfigT = _validate(model, data, path, node)
    config.source = path
    return config
