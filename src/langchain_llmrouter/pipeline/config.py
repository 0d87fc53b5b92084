"""The pipeline's YAML config, validated with pydantic.

One file drives all three stages. Its ``data_path`` section uses LLMRouter's key names,
so an LLMRouter data-generation config needs few changes; LLMRouter's
``data_generation`` section is accepted as another name for ``queries``. Errors name the
file, the line and the key. Relative paths are looked up from the working directory
first, then from the config file's directory; outputs are written under the working
directory.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, cast

from pydantic import Field, field_validator, model_validator

from langchain_llmrouter.config import FileConfig, _Strict, load_yaml_config

BUILTIN_TASKS = (
    "natural_qa",
    "trivia_qa",
    "mmlu",
    "gpqa",
    "mbpp",
    "human_eval",
    "gsm8k",
    "commonsense_qa",
    "math",
    "openbook_qa",
    "arc_challenge",
)
"""The 11 benchmarks stage 1 knows how to load, in LLMRouter's order."""

Split = Literal["train", "test"]


class PipelinePaths(_Strict):
    """``data_path``: inputs and outputs of the three stages (LLMRouter's key names)."""

    query_data_train: str = "data/pipeline/query_data_train.jsonl"
    """Stage 1 output (stage 3 input): training queries."""
    query_data_test: str = "data/pipeline/query_data_test.jsonl"
    """Stage 1 output (stage 3 input): test queries."""
    llm_data: str
    """Candidate JSON (LLMRouter's ``default_llm.json`` format): stage 2 and 3 input."""
    llm_embedding_data: str = "data/pipeline/default_llm_embeddings.json"
    """Stage 2 output: the candidates with an ``embedding`` of their description."""
    routing_data_train: str = "data/pipeline/default_routing_train_data.jsonl"
    """Stage 3 output: one row per (training query, candidate)."""
    routing_data_test: str = "data/pipeline/default_routing_test_data.jsonl"
    """Stage 3 output: one row per (test query, candidate)."""
    query_embedding_data: str = "data/pipeline/query_embeddings.safetensors"
    """Stage 3 output: the query embeddings, row ``embedding_id`` of tensor ``embeddings``."""

    @field_validator("query_embedding_data")
    @classmethod
    def _safetensors_only(cls, value: str) -> str:
        if not value.endswith(".safetensors"):
            raise ValueError(
                "query embeddings are written as .safetensors (LLMRouter's .pt needs pickle to "
                "load, which can run code); give a path ending in .safetensors"
            )
        return value


class QueriesConfig(_Strict):
    """``queries`` (or LLMRouter's ``data_generation``): stage 1, benchmarks to query files."""

    tasks: list[str] = Field(default_factory=lambda: list(BUILTIN_TASKS))
    """Tasks to sample: built-in benchmarks or tasks registered by plugins."""
    sample_size: int = Field(default=500, ge=1)
    """Queries sampled per task (all of them when a task has fewer)."""
    train_ratio: float = Field(default=0.8, gt=0.0, le=1.0)
    """Share of each task's sample that goes to the training file."""
    random_seed: int = 42
    """Seed for sampling, option shuffling and the split."""
    local_dir: str | None = None
    """Folder with benchmark files (``<task>.jsonl``/``.json``/``.parquet``/``.csv``, or a
    ``datasets`` folder saved with ``save_to_disk``), in the benchmark's own schema."""
    query_files: list[str] = Field(default_factory=list)
    """Query JSONL files (``default_query_*.jsonl`` format) to take tasks from instead of
    loading their benchmarks."""
    hub: bool = True
    """Whether to try the Hugging Face hub (and its local cache) for tasks not found locally."""


class CallsConfig(_Strict):
    """``calls``: stage 3, calling the candidates and scoring their answers."""

    models: list[str] | None = None
    """Candidates to call (default: every candidate in ``llm_data``)."""
    splits: list[Split] = Field(default_factory=lambda: cast(list[Split], ["train", "test"]))
    """Which query files to process."""
    limit: int | None = Field(default=None, ge=1)
    """Only the first N queries of each split (for a trial run)."""
    max_concurrency: int = Field(default=16, ge=1)
    """Calls in flight at once, over all candidates."""
    requests_per_second: dict[str, float] = Field(default_factory=dict)
    """Rate limit per service (the candidates' ``service`` field; ``"*"`` for the rest)."""
    max_retries: int = Field(default=3, ge=0)
    """Retries of a failed call (rate limits, server errors, timeouts) before it is recorded
    as failed."""
    retry_backoff_s: float = Field(default=1.0, ge=0.0)
    """First back-off; it doubles with each retry (with jitter)."""
    timeout_s: float = Field(default=60.0, gt=0.0)
    """Timeout of one call."""
    max_tokens: int = Field(default=512, ge=1)
    """Answer length limit."""
    temperature: float = Field(default=0.0, ge=0.0)
    """Sampling temperature."""
    max_cost: float | None = Field(default=None, gt=0.0)
    """Stop before the dollars recorded in the routing files (all runs) would pass this."""
    metrics: dict[str, str] = Field(default_factory=dict)
    """Metric per task, overriding the query rows' ``metric`` (e.g. ``natural_qa: cem``)."""
    code_timeout_s: float = Field(default=10.0, gt=0.0)
    """Time limit for running one generated program against its tests."""
    code_memory_mb: int = Field(default=1024, ge=64)
    """Memory limit for running one generated program."""
    strategy: Literal["all", "active"] = "all"
    """``all`` calls every pair; ``active`` chooses training pairs within a budget (`active`)."""
    budget_pairs: int | float | None = None
    """Active mode: training pairs to hold at most (a count, or a fraction in (0, 1] of all)."""
    budget_dollars: float | None = Field(default=None, gt=0.0)
    """Active mode: dollars the training split's calls may cost at most (worst case reserved)."""
    active_seed_share: float = Field(default=0.2, gt=0.0, le=1.0)
    """Active mode: share of the pair budget called at random before the chooser starts."""
    active_batch_size: int = Field(default=256, ge=1)
    """Active mode: pairs chosen per round (the chooser is refitted between rounds)."""
    active_model: Literal["design", "ridge", "knn"] = "ridge"
    """Active mode: the chooser. ``ridge`` / ``knn``: value of information under a quick
    Bayesian-ridge or kNN router on the query embeddings; ``design``: a label-free design that
    lowers every candidate's predictive variance (never looks at a score)."""

    @field_validator("budget_pairs")
    @classmethod
    def _budget_pairs(cls, value: int | float | None) -> int | float | None:
        if value is None:
            return None
        if isinstance(value, float) and not 0.0 < value <= 1.0:
            raise ValueError(
                f"a fraction of all pairs must be in (0, 1], got {value}; give a whole number "
                "for a count of pairs"
            )
        if isinstance(value, int) and value < 1:
            raise ValueError(f"a count of pairs must be at least 1, got {value}")
        return value

    @model_validator(mode="after")
    def _active_needs_budget(self) -> CallsConfig:
        if self.strategy == "active":
            if self.budget_pairs is None and self.budget_dollars is None:
                raise ValueError(
                    "strategy 'active' needs a budget: set budget_pairs (a count or a fraction "
                    "of all training pairs) and/or budget_dollars"
                )
            if "train" not in self.splits:
                raise ValueError(
                    "strategy 'active' chooses training pairs: add 'train' to calls.splits"
                )
        else:
            given = [n for n in ("budget_pairs", "budget_dollars") if getattr(self, n) is not None]
            if given:
                raise ValueError(
                    f"{' and '.join(given)} apply to strategy 'active' only; set "
                    "strategy: active (or remove them)"
                )
        return self


class PipelineConfig(FileConfig):
    """The whole pipeline config."""

    data_path: PipelinePaths
    """Inputs and outputs."""
    api_endpoint: str | None = None
    """Default OpenAI-compatible endpoint for candidates without their own."""
    plugins: list[str] = Field(default_factory=list)
    """Python files or modules that register custom tasks and metrics (imported in order)."""
    queries: QueriesConfig = Field(default_factory=QueriesConfig)
    """Stage 1."""
    calls: CallsConfig = Field(default_factory=CallsConfig)
    """Stage 3."""
    engine: Literal["local", "ray"] = "local"
    """Where the stages run: ``local`` (asyncio in this process) or ``ray`` (Ray Data and
    Ray actors: `langchain_llmrouter.pipeline.ray_engine`; needs the ``ray`` extra)."""
    ray_address: str | None = None
    """Ray cluster to join with ``engine: ray`` (e.g. ``ray://head:10001`` or ``auto``); None
    starts a local Ray on this machine."""
    ray_actors: int = Field(default=2, ge=1)
    """With ``engine: ray``: actors in the calling pool and in the query-embedding pool."""

    @model_validator(mode="before")
    @classmethod
    def _data_generation_alias(cls, data: Any) -> Any:
        if isinstance(data, dict) and "data_generation" in data:
            data = dict(data)
            legacy = data.pop("data_generation") or {}
            if "queries" in data:
                raise ValueError("give either 'queries' or LLMRouter's 'data_generation', not both")
            data["queries"] = legacy
        return data

    def output(self, value: str) -> Path:
        """Where an output goes (relative paths under the working directory)."""
        path = Path(value).expanduser()
        return path if path.is_absolute() else Path.cwd() / path

    def input(self, value: str, *, what: str) -> Path:
        """An input file that must exist (working directory first, then the config's folder)."""
        resolved = self.resolve(value, what=what)
        assert resolved is not None
        return resolved

    def query_file(self, split: Split) -> str:
        """The configured query file of a split."""
        return (
            self.data_path.query_data_train if split == "train" else self.data_path.query_data_test
        )

    def routing_file(self, split: Split) -> str:
        """The configured routing-data file of a split."""
        return (
            self.data_path.routing_data_train
            if split == "train"
            else self.data_path.routing_data_test
        )


def load_pipeline_config(path: str | Path) -> PipelineConfig:
    """Load and validate a pipeline config.

    Raises:
        ConfigError: naming the file, line and key of the problem.
    """
    return load_yaml_config(PipelineConfig, path)
