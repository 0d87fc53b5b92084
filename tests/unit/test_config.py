"""Unit tests of the YAML configs (`RouterConfig`, `BenchConfig`): the shipped files,
LLMRouter compatibility, unknown keys, malformed files, path resolution and hparam checks."""

from __future__ import annotations

import re
import textwrap
import warnings
from pathlib import Path

import pytest

from langchain_llmrouter.config import (
    BenchConfig,
    RouterConfig,
    load_bench_config,
    load_config,
)
from langchain_llmrouter.errors import ConfigError, DataFormatError, LLMRouterError
from langchain_llmrouter.routers.registry import available_routers, get_router_class

REPO = Path(__file__).resolve().parents[2]
CONFIGS = REPO / "configs"
TRAIN_CONFIGS = sorted((CONFIGS / "train").glob("*.yaml"))
INFER_CONFIGS = sorted((CONFIGS / "infer").glob("*.yaml"))
BENCH_CONFIGS = sorted((CONFIGS / "bench").glob("*.yaml"))
ROUTER_CONFIGS = TRAIN_CONFIGS + INFER_CONFIGS

# An LLMRouter training config as LLMRouter ships it (its key layout, for the kNN router).
LLMROUTER_CONFIG = """\
# Config parameters for knnrouter:

data_path:
  query_data_train: 'data/example_data/query_data/default_query_train.jsonl'
  query_data_test: 'data/example_data/query_data/default_query_test.jsonl'
  query_embedding_data: 'data/example_data/routing_data/query_embeddings_longformer.pt'
  routing_data_train: 'data/example_data/routing_data/default_routing_train_data.jsonl'
  routing_data_test: 'data/example_data/routing_data/default_routing_test_data.jsonl'
  llm_data: 'data/example_data/llm_candidates/default_llm.json'
  llm_embedding_data: 'data/example_data/llm_candidates/default_llm_embeddings.json'

model_path:
  ini_model_path: ''
  save_model_path: 'saved_models/knnrouter'
  load_model_path: 'saved_models/knnrouter'

metric:
  weights:
    performance: 1
    cost: 0
    llm_judge: 0

hparam:
  k: 7
  weights: uniform
  metric: l2

api_endpoint: 'https://integrate.api.nvidia.com/v1'
"""


def write(path: Path, text: str) -> Path:
    """Write dedented ``text`` to ``path`` (creating folders) and return the path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def load_quietly(path: Path) -> RouterConfig:
    """`load_config` with warnings turned into a failure (none are expected)."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return load_config(path)


# --- the shipped configs ---------------------------------------------------------------------


def test_every_shipped_config_is_found() -> None:
    from langchain_llmrouter.routers.registry import builtin_routers

    shipped = (set(builtin_routers()) - {"oracle"}) | {"thresholdrouter"}  # + the plugin example
    # The multi-round routers that learn nothing (their policy LLM is given) have no training.
    untrained_graphs = {"router_r1", "llmmultiroundrouter"}
    assert {p.stem for p in INFER_CONFIGS} == shipped
    assert {p.stem for p in TRAIN_CONFIGS} == shipped - untrained_graphs
    assert [p.name for p in BENCH_CONFIGS] == ["routerdc.yaml"]


def away_from_the_repository(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Work in ``tmp_path``: the shipped paths must not depend on the working directory.

    The plugin example is then found through ``$LLMROUTER_PLUGINS``, not ``./custom_routers``.
    """
    from langchain_llmrouter.routers.registry import PLUGIN_ENV, discover_plugins

    monkeypatch.setenv(PLUGIN_ENV, str(REPO / "custom_routers"))
    discover_plugins(force=True)
    monkeypatch.chdir(tmp_path)


@pytest.mark.parametrize("path", ROUTER_CONFIGS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_shipped_router_config_loads_without_warnings(
    path: Path, shared_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    away_from_the_repository(tmp_path, monkeypatch)
    config = load_quietly(path)

    assert config.source == path
    assert config.router == path.stem
    assert config.router in available_routers()
    # Every data path given resolves to the shipped example data.
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # found next to the file, not through the CWD fallback
        llm = config.resolve(config.data_path.llm_data, what="data_path.llm_data")
        assert llm is not None and llm.resolve() == (shared_data / "default_llm.json").resolve()
        for key in ("routing_data_train", "routing_data_test"):
            value = getattr(config.data_path, key)
            if value is not None:
                resolved = config.resolve(value, what=f"data_path.{key}")
                assert resolved is not None and resolved.is_file()
                assert resolved.parent.resolve() == shared_data.resolve()
    # The hyperparameters are valid for the router the file names.
    router = get_router_class(config.router).from_params(config.hparam, source=str(path))
    for key, value in config.hparam.items():
        assert getattr(router, key) == value
    # Train configs say where to save; infer configs where to load from: the same folder,
    # models/<router> at the repository root, whatever the working directory.
    if path.parent.name == "train":
        key = "save_model_path"
    elif path.stem == "router_r1":  # nothing to load: the policy is a served checkpoint
        assert config.model_path.load_model_path is None
        return
    else:
        key = "load_model_path"
        assert config.api_endpoint == "https://integrate.api.nvidia.com/v1"
    value = getattr(config.model_path, key)
    assert value == f"../../models/{path.stem}"
    saved = config.resolve(value, what=f"model_path.{key}", must_exist=False)
    assert saved == REPO.resolve() / "models" / path.stem


def test_shipped_knnrouter_configs_have_the_documented_values() -> None:
    train = load_quietly(CONFIGS / "train" / "knnrouter.yaml")
    assert train.hparam == {
        "k": 50,
        "weights": "distance",
        "metric": "cosine",
        "dims": 64,
        "fill_unknown": "mf",
        "cost_weight": 0.0,
    }
    # kNN ships on the static featuriser, searching 64 principal components (both chosen by
    # cross-validation on the train file: benchmarks/featuriser_selection.py, knn_k_selection.py).
    assert train.embedding.model == "static-minilm-l6-v2"
    assert train.embedding.batch_size == 64
    from langchain_llmrouter.static_embeddings import StaticEmbeddings

    assert isinstance(train.build_embeddings(), StaticEmbeddings)

    infer = load_quietly(CONFIGS / "infer" / "knnrouter.yaml")
    assert infer.routing_mode == "current_only"
    assert infer.max_tokens == 1024
    assert infer.temperature == pytest.approx(0.7)
    assert infer.max_concurrency == 8
    assert infer.embedding.model == "static-minilm-l6-v2"


@pytest.mark.parametrize("path", BENCH_CONFIGS, ids=lambda p: p.name)
def test_shipped_bench_config_loads(
    path: Path, shared_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    away_from_the_repository(tmp_path, monkeypatch)
    config = load_bench_config(path)

    assert isinstance(config, BenchConfig)
    assert config.source == path
    # Every router of the package (and the plugin example) with its defaults, plus one variant row.
    from langchain_llmrouter.routers.registry import builtin_routers

    # Multi-round routers are judged by calling LLMs, not on recorded data: not benchmarked.
    # Personalised routers learn from users' ratings, not routing data: benchmarks/personalised.py.
    single_round = {
        n
        for n in builtin_routers()
        if not get_router_class(n).graph_router
        and not getattr(get_router_class(n), "personal", False)
    }
    trained = single_round - {"oracle", "randomrouter", "smallest_llm", "largest_llm"}
    # The ensemble stacks the other rows' routers: not (yet) a row of the bench config.
    trained -= {"ensemble"}
    static = {f"{n}-static" for n in ("knnrouter", "svmrouter", "mlprouter", "mfrouter")}
    static |= {"elorouter-static", "hybrid_llm-static"}
    assert set(config.routers) == trained | {"thresholdrouter", "elorouter-global"} | static
    assert config.routers["elorouter-global"] == {"router": "elorouter", "variant": "global"}
    for label in static:  # each with its MiniLM twin, on the static featuriser
        # kNN also with the index size its shipped config uses (configs/train/knnrouter.yaml)
        extra = {"dims": 64} if label == "knnrouter-static" else {}
        assert config.routers[label] == {
            "router": label.removesuffix("-static"),
            "embedding": "static-minilm-l6-v2",
            **extra,
        }
    assert config.data_path.llm_embedding_data is not None
    expected = {
        "routing_data_train": "routerdc_train.json",
        "routing_data_test": "routerdc_test.json",
        "llm_data": "default_llm.json",
    }
    for key, name in expected.items():
        resolved = config.resolve(getattr(config.data_path, key), what=f"data_path.{key}")
        assert resolved is not None
        assert resolved.resolve() == (shared_data / name).resolve()
    for label, params in config.routers.items():
        params = dict(params)
        name = params.pop("router", label)
        params.pop("embedding", None)  # the row's featuriser, not a hyperparameter
        get_router_class(name).validate_params(params, source=str(path))


def test_bench_config_is_not_a_router_config() -> None:
    """Loading a benchmark file as a router config names the key that does not belong."""
    path = CONFIGS / "bench" / "routerdc.yaml"
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.field == "routers"
    assert info.value.line == 10
    assert str(path) in str(info.value)


# --- LLMRouter's keys ------------------------------------------------------------------------


def test_llmrouter_config_loads_unchanged(tmp_path: Path) -> None:
    path = write(tmp_path / "knnrouter.yaml", LLMROUTER_CONFIG)
    with pytest.warns(UserWarning):
        config = load_config(path)

    paths = config.data_path
    assert paths.routing_data_train == (
        "data/example_data/routing_data/default_routing_train_data.jsonl"
    )
    assert paths.routing_data_test == (
        "data/example_data/routing_data/default_routing_test_data.jsonl"
    )
    assert paths.llm_data == "data/example_data/llm_candidates/default_llm.json"
    assert paths.llm_embedding_data == (
        "data/example_data/llm_candidates/default_llm_embeddings.json"
    )
    assert config.model_path.save_model_path == "saved_models/knnrouter"
    assert config.model_path.load_model_path == "saved_models/knnrouter"
    assert config.hparam == {"k": 7, "weights": "uniform", "metric": "l2"}
    assert config.api_endpoint == "https://integrate.api.nvidia.com/v1"
    assert config.router is None  # LLMRouter configs do not name the router
    # The hparam section means the same as in LLMRouter: it builds the router.
    router = get_router_class("knnrouter").from_params(config.hparam, source=str(path))
    assert (router.k, router.weights, router.metric) == (7, "uniform", "l2")


def test_llmrouter_keys_without_meaning_warn_naming_the_key(tmp_path: Path) -> None:
    path = write(tmp_path / "knnrouter.yaml", LLMROUTER_CONFIG)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        load_config(path)

    messages = [str(w.message) for w in caught if issubclass(w.category, UserWarning)]
    expected = [
        "metric",
        "data_path.query_data_train",
        "data_path.query_data_test",
        "data_path.query_embedding_data",
        "model_path.ini_model_path",
    ]
    for key in expected:
        matching = [m for m in messages if f"LLMRouter key '{key}' is ignored" in m]
        assert len(matching) == 1, f"no single warning for {key!r} in {messages}"
        assert str(path) in matching[0]
    assert len(messages) == len(expected)
    # Keys that do mean something here are not warned about.
    for key in ("routing_data_train", "llm_data", "llm_embedding_data", "save_model_path"):
        assert not any(f"'{key}'" in m or f".{key}'" in m for m in messages)
    # The .pt warning explains why it is never loaded.
    (pt_warning,) = [m for m in messages if "query_embedding_data" in m]
    assert "can run code" in pt_warning


@pytest.mark.parametrize(
    ("yaml_text", "key"),
    [
        ("device: cuda\n", "device"),
        ("api_key: sk-123\n", "api_key"),
        ("use_local_llm: false\n", "use_local_llm"),
        ("metric: {weights: {performance: 1, cost: 0}}\n", "metric"),
        ("data_path: {query_data_train: q.jsonl}\n", "data_path.query_data_train"),
        ("model_path: {ini_model_path: m.pkl}\n", "model_path.ini_model_path"),
    ],
)
def test_each_ignored_key_warns_once(tmp_path: Path, yaml_text: str, key: str) -> None:
    path = write(tmp_path / "c.yaml", "router: knnrouter\n" + yaml_text)
    with pytest.warns(UserWarning, match=re.escape(f"LLMRouter key '{key}' is ignored")) as rec:
        config = load_config(path)
    assert len(rec) == 1
    assert config.router == "knnrouter"


def test_ignored_key_set_to_null_does_not_warn(tmp_path: Path) -> None:
    path = write(tmp_path / "c.yaml", "device: null\ndata_path:\n  query_data_test: null\n")
    config = load_quietly(path)
    assert config.device is None


def test_a_clean_config_does_not_warn(tmp_path: Path) -> None:
    path = write(
        tmp_path / "c.yaml",
        """\
        router: knnrouter
        data_path:
          routing_data_train: train.json
          llm_data: llm.json
        hparam: {k: 3}
        model_path:
          save_model_path: out
        """,
    )
    config = load_quietly(path)
    assert config.hparam == {"k": 3}
    assert config.model_path.save_model_path == "out"
    assert config.model_path.load_model_path is None


def test_empty_config_file_gives_the_defaults(tmp_path: Path) -> None:
    path = write(tmp_path / "empty.yaml", "# nothing here\n")
    config = load_quietly(path)
    assert config.router is None
    assert config.hparam == {}
    assert config.data_path.llm_data is None
    assert config.routing_mode == "current_only"
    assert config.max_concurrency == 8
    assert config.source == path


# --- unknown keys ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("yaml_text", "field", "line"),
    [
        ("router: knnrouter\nrouterr: knnrouter\n", "routerr", 2),
        (
            "router: knnrouter\ndata_path:\n  llm_data: a.json\n  routing_data_tran: t.jsonl\n",
            "data_path.routing_data_tran",
            4,
        ),
        (
            "model_path:\n  save_model_path: m\n\n  save_path: other\n",
            "model_path.save_path",
            4,
        ),
        ("embedding:\n  modle: all-MiniLM-L6-v2\n", "embedding.modle", 2),
        ("# comment\n\nhparams:\n  k: 5\n", "hparams", 3),
    ],
)
def test_unknown_key_is_an_error_naming_key_file_and_line(
    tmp_path: Path, yaml_text: str, field: str, line: int
) -> None:
    path = write(tmp_path / "bad.yaml", yaml_text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    error = info.value
    assert (error.field, error.line, error.path) == (field, line, str(path))
    message = str(error)
    assert str(path) in message
    assert f"line {line}" in message
    assert f"'{field}'" in message
    assert "unknown key" in message
    # ConfigError is a DataFormatError and an LLMRouterError, so callers can catch either.
    assert isinstance(error, DataFormatError)
    assert isinstance(error, LLMRouterError)


def test_unknown_key_in_bench_config(tmp_path: Path) -> None:
    path = write(
        tmp_path / "bench.yaml",
        """\
        data_path:
          llm_data: llm.json
        routers:
          knnrouter: {k: 5}
        router: knnrouter
        """,
    )
    with pytest.raises(ConfigError, match=r"line 5.*'router'.*unknown key") as info:
        load_bench_config(path)
    assert info.value.path == str(path)


def test_bench_config_needs_data_path(tmp_path: Path) -> None:
    path = write(tmp_path / "bench.yaml", "routers: {knnrouter: {}}\n")
    with pytest.raises(ConfigError) as info:
        load_bench_config(path)
    assert info.value.field == "data_path"
    assert str(path) in str(info.value)


def test_bench_config_default_routers(tmp_path: Path) -> None:
    path = write(tmp_path / "bench.yaml", "data_path: {llm_data: llm.json}\n")
    config = load_bench_config(path)
    assert config.routers == {"knnrouter": {}}
    assert config.data_path.llm_data == "llm.json"


# --- malformed files and wrong types ---------------------------------------------------------


@pytest.mark.parametrize(
    ("yaml_text", "line"),
    [
        ("router: knnrouter\ndata_path:\n  llm_data: [unclosed\nhparam: {k: 1}\n", 4),
        ("router: knnrouter\nhparam:\n  k: 5\n k2: 6\n", 4),
        ("router: knnrouter\n\thparam: {}\n", 2),
        ('router: "knnrouter\n', 2),
    ],
)
def test_malformed_yaml_names_file_and_line(tmp_path: Path, yaml_text: str, line: int) -> None:
    path = write(tmp_path / "broken.yaml", yaml_text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    error = info.value
    assert error.path == str(path)
    assert error.line == line
    message = str(error)
    assert message.startswith(f"{path}, line {line}: invalid YAML")


def test_malformed_bench_yaml_names_file(tmp_path: Path) -> None:
    path = write(tmp_path / "bench.yaml", "data_path: {llm_data: x\n")
    with pytest.raises(ConfigError, match="invalid YAML") as info:
        load_bench_config(path)
    assert info.value.path == str(path)
    assert info.value.line is not None


@pytest.mark.parametrize("yaml_text", ["- router: knnrouter\n", "just a string\n", "42\n"])
def test_config_must_be_a_mapping(tmp_path: Path, yaml_text: str) -> None:
    path = write(tmp_path / "list.yaml", yaml_text)
    with pytest.raises(ConfigError, match="must be a YAML mapping") as info:
        load_config(path)
    assert info.value.path == str(path)
    assert info.value.line == 1


def test_missing_config_file(tmp_path: Path) -> None:
    path = tmp_path / "nope" / "missing.yaml"
    with pytest.raises(ConfigError, match="config file not found") as info:
        load_config(path)
    assert info.value.path == str(path)
    with pytest.raises(ConfigError, match="config file not found"):
        load_bench_config(path)


@pytest.mark.parametrize(
    ("yaml_text", "field", "line", "fragment"),
    [
        ("router: knnrouter\nmax_concurrency: many\n", "max_concurrency", 2, "'many'"),
        ("max_concurrency: 0\n", "max_concurrency", 1, "greater than or equal to 1"),
        ("max_tokens: -5\n", "max_tokens", 1, "-5"),
        ("temperature: hot\n", "temperature", 1, "'hot'"),
        ("routing_mode: everything\n", "routing_mode", 1, "current_only"),
        ("hparam: [1, 2]\n", "hparam", 1, "dictionary"),
        ("data_path: some/file.json\n", "data_path", 1, "'some/file.json'"),
        ("data_path:\n  llm_data: [a, b]\n", "data_path.llm_data", 2, "string"),
        (
            "embedding:\n  model: all-MiniLM-L6-v2\n  batch_size: 0\n",
            "embedding.batch_size",
            3,
            "1",
        ),
        ("model_path:\n  save_model_path: {dir: x}\n", "model_path.save_model_path", 2, "string"),
        ("api_endpoint: 8000\n", "api_endpoint", 1, "string"),
    ],
)
def test_wrong_type_names_file_field_and_line(
    tmp_path: Path, yaml_text: str, field: str, line: int, fragment: str
) -> None:
    path = write(tmp_path / "typed.yaml", yaml_text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    error = info.value
    assert (error.path, error.field, error.line) == (str(path), field, line)
    message = str(error)
    assert message.startswith(f"{path}, line {line}, field '{field}': ")
    assert fragment in message


def test_wrong_type_in_bench_routers(tmp_path: Path) -> None:
    path = write(
        tmp_path / "bench.yaml",
        """\
        data_path:
          llm_data: llm.json
        routers: [knnrouter, smallest_llm]
        """,
    )
    with pytest.raises(ConfigError) as info:
        load_bench_config(path)
    assert (info.value.field, info.value.line) == ("routers", 3)
    assert str(path) in str(info.value)


# --- relative paths --------------------------------------------------------------------------


@pytest.fixture
def layout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    """(config folder, working directory): two unrelated folders; the CWD is the second."""
    config_dir = tmp_path / "project" / "configs"
    work_dir = tmp_path / "elsewhere"
    config_dir.mkdir(parents=True)
    work_dir.mkdir()
    monkeypatch.chdir(work_dir)
    return config_dir, work_dir


def test_relative_path_resolves_against_the_config_folder(layout: tuple[Path, Path]) -> None:
    config_dir, _ = layout
    write(config_dir / "data" / "llm.json", "{}")
    config = load_quietly(write(config_dir / "c.yaml", "data_path: {llm_data: data/llm.json}\n"))
    assert config.resolve(config.data_path.llm_data, what="data_path.llm_data") == (
        config_dir / "data" / "llm.json"
    )


def test_relative_path_prefers_the_config_folder_over_the_working_directory(
    layout: tuple[Path, Path],
) -> None:
    config_dir, work_dir = layout
    write(config_dir / "data" / "llm.json", "{}")
    write(work_dir / "data" / "llm.json", "{}")
    config = load_quietly(write(config_dir / "c.yaml", "data_path: {llm_data: data/llm.json}\n"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        resolved = config.resolve(config.data_path.llm_data, what="data_path.llm_data")
    assert resolved == config_dir / "data" / "llm.json"


def test_a_path_only_the_working_directory_has_is_used_with_a_future_warning(
    layout: tuple[Path, Path],
) -> None:
    """The old rule (and LLMRouter's, whose paths are relative to its repository root)."""
    config_dir, work_dir = layout
    write(work_dir / "data" / "llm.json", "{}")
    path = write(config_dir / "c.yaml", "data_path: {llm_data: data/llm.json}\n")
    config = load_quietly(path)
    with pytest.warns(FutureWarning) as caught:
        resolved = config.resolve(config.data_path.llm_data, what="data_path.llm_data")
    assert resolved is not None and resolved.resolve() == (work_dir / "data" / "llm.json").resolve()
    (message,) = [str(w.message) for w in caught]
    assert message.startswith(f"{path}: data_path.llm_data 'data/llm.json' was found relative ")
    assert "write '../../elsewhere/data/llm.json' instead" in message
    # The suggestion works: written that way, it resolves without a warning.
    fixed = load_quietly(
        write(config_dir / "c.yaml", "data_path: {llm_data: ../../elsewhere/data/llm.json}\n")
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        again = fixed.resolve(fixed.data_path.llm_data, what="data_path.llm_data")
    assert again is not None and again.resolve() == resolved.resolve()


def test_dotdot_paths_come_back_as_one_absolute_path(layout: tuple[Path, Path]) -> None:
    config_dir, _ = layout
    target = write(config_dir.parent / "shared" / "train.json", "[]")
    config = load_quietly(
        write(config_dir / "c.yaml", "data_path: {routing_data_train: ../shared/train.json}\n")
    )
    resolved = config.resolve(
        config.data_path.routing_data_train, what="data_path.routing_data_train"
    )
    assert resolved == target.resolve()  # no "configs/../shared" in messages and summaries


def test_missing_relative_path_names_field_and_the_config_folder(
    layout: tuple[Path, Path],
) -> None:
    config_dir, _ = layout
    path = write(config_dir / "c.yaml", "data_path: {routing_data_test: data/test.jsonl}\n")
    config = load_quietly(path)
    with pytest.raises(ConfigError) as info:
        config.resolve(config.data_path.routing_data_test, what="data_path.routing_data_test")
    error = info.value
    assert error.field == "data_path.routing_data_test"
    assert error.path == str(path)
    message = str(error)
    assert f"file not found: {config_dir / 'data' / 'test.jsonl'}" in message
    assert f"relative to the config's folder, {config_dir}" in message


def test_output_path_is_relative_to_the_config_folder(layout: tuple[Path, Path]) -> None:
    config_dir, work_dir = layout
    config = load_quietly(write(config_dir / "c.yaml", "model_path: {save_model_path: out/knn}\n"))
    resolved = config.resolve(
        config.model_path.save_model_path, what="model_path", must_exist=False
    )
    assert resolved == config_dir / "out" / "knn"
    # A folder an older run left in the working directory is reused (with the warning).
    (work_dir / "out" / "knn").mkdir(parents=True)
    with pytest.warns(FutureWarning, match="model_path 'out/knn' was found relative"):
        legacy = config.resolve(
            config.model_path.save_model_path, what="model_path", must_exist=False
        )
    assert legacy is not None and legacy.resolve() == (work_dir / "out" / "knn").resolve()
    # Once the folder next to the config exists, it wins.
    (config_dir / "out" / "knn").mkdir(parents=True)
    assert config.resolve(
        config.model_path.save_model_path, what="model_path", must_exist=False
    ) == (config_dir / "out" / "knn")


def test_companion_configs_keep_the_working_directory_first(layout: tuple[Path, Path]) -> None:
    """`FileConfig` subclasses (the pipeline's) keep their documented rule: CWD, then the file."""
    from langchain_llmrouter.config import FileConfig, load_yaml_config

    class Companion(FileConfig):
        data: str

    config_dir, work_dir = layout
    write(config_dir / "in.json", "{}")
    write(config_dir / "both.json", "{}")
    write(work_dir / "both.json", "{}")
    config = load_yaml_config(Companion, write(config_dir / "p.yaml", "data: in.json\n"))
    assert config.resolve("in.json", what="data") == config_dir / "in.json"
    resolved = config.resolve("both.json", what="data")
    assert resolved is not None and resolved.resolve() == (work_dir / "both.json").resolve()
    assert config.resolve("new/out", what="data", must_exist=False) == Path.cwd() / "new/out"


def test_absolute_and_home_paths(
    layout: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config_dir, _ = layout
    absolute = write(tmp_path / "abs" / "llm.json", "{}")
    config = load_quietly(write(config_dir / "c.yaml", f"data_path: {{llm_data: '{absolute}'}}\n"))
    assert config.resolve(config.data_path.llm_data, what="data_path.llm_data") == absolute
    with pytest.raises(ConfigError, match=re.escape(str(tmp_path / "abs" / "gone.json"))):
        config.resolve(str(tmp_path / "abs" / "gone.json"), what="data_path.llm_data")

    monkeypatch.setenv("HOME", str(tmp_path / "abs"))
    assert config.resolve("~/llm.json", what="data_path.llm_data") == absolute


def test_resolve_of_none_is_none(tmp_path: Path) -> None:
    config = load_quietly(write(tmp_path / "c.yaml", "router: knnrouter\n"))
    assert config.resolve(None, what="data_path.llm_data") is None


def test_config_built_in_code_resolves_from_the_working_directory(
    layout: tuple[Path, Path],
) -> None:
    _, work_dir = layout
    write(work_dir / "llm.json", "{}")
    config = RouterConfig(data_path={"llm_data": "llm.json"})  # type: ignore[arg-type]
    assert config.source is None
    resolved = config.resolve("llm.json", what="data_path.llm_data")
    assert resolved is not None and resolved.resolve() == (work_dir / "llm.json").resolve()
    with pytest.raises(ConfigError, match="file not found"):
        config.resolve("other.json", what="data_path.llm_data")


def test_embedding_model_directory_is_resolved(layout: tuple[Path, Path]) -> None:
    config_dir, _ = layout
    path = write(config_dir / "c.yaml", "embedding: {model: my-encoder}\n")
    config = load_quietly(path)
    with pytest.raises(ConfigError) as info:
        config.build_embeddings()
    assert info.value.field == "embedding.model"
    assert str(config_dir / "my-encoder") in str(info.value)


def test_embedding_batch_size_builds_a_custom_embedder(tmp_path: Path) -> None:
    from langchain_llmrouter.embeddings import MiniLMEmbeddings

    config = load_quietly(write(tmp_path / "c.yaml", "embedding: {batch_size: 8}\n"))
    embedder = config.build_embeddings()
    assert isinstance(embedder, MiniLMEmbeddings)
    assert embedder.batch_size == 8


# --- hyperparameters -------------------------------------------------------------------------


def _knn_from(path: Path) -> object:
    config = load_quietly(path)
    return get_router_class("knnrouter").from_params(config.hparam, source=str(config.source))


@pytest.mark.parametrize(
    ("hparam", "field", "fragment"),
    [
        ("{k: -1}", "hparam.k", "greater than or equal to 1"),
        ("{k: 0}", "hparam.k", "(got 0)"),
        ("{k: many}", "hparam.k", "(got 'many')"),
        ("{k: 5, weights: closest}", "hparam.weights", "'uniform' or 'distance'"),
        ("{metric: manhattan}", "hparam.metric", "'cosine' or 'l2'"),
        ("{cost_weight: -0.5}", "hparam.cost_weight", "greater than or equal to 0"),
        ("{budget: 0}", "hparam.budget", "greater than 0"),
    ],
)
def test_bad_hparam_value_names_the_field(
    tmp_path: Path, hparam: str, field: str, fragment: str
) -> None:
    path = write(tmp_path / "knn.yaml", f"router: knnrouter\nhparam: {hparam}\n")
    with pytest.raises(ConfigError) as info:
        _knn_from(path)
    error = info.value
    assert error.field == field
    assert error.path == str(path)
    message = str(error)
    assert message.startswith(f"{path}, field '{field}': ")
    assert fragment in message


def test_unknown_hparam_lists_the_valid_ones(tmp_path: Path) -> None:
    path = write(tmp_path / "knn.yaml", "router: knnrouter\nhparam:\n  n_neighbors: 5\n")
    with pytest.raises(ConfigError) as info:
        _knn_from(path)
    assert info.value.field == "hparam.n_neighbors"
    message = str(info.value)
    assert str(path) in message
    assert (
        "valid: budget, cost_weight, dims, fill_unknown, hnsw_ef_construction, hnsw_ef_search, "
        "hnsw_m, index, index_code, ivf_nlist, ivf_nprobe, k, metric, prior_count, weights"
        in message
    )


def test_baseline_hparams_are_checked_too(tmp_path: Path) -> None:
    path = write(tmp_path / "random.yaml", "router: randomrouter\nhparam: {seed: abc}\n")
    config = load_quietly(path)
    with pytest.raises(ConfigError) as info:
        get_router_class("randomrouter").from_params(config.hparam, source=str(path))
    assert info.value.field == "hparam.seed"
    # smallest_llm takes no hyperparameters at all.
    with pytest.raises(ConfigError, match="unknown hyperparameter for smallest_llm") as info2:
        get_router_class("smallest_llm").from_params({"k": 5}, source=str(path))
    assert info2.value.field == "hparam.k"


def test_good_hparams_build_the_router(tmp_path: Path) -> None:
    path = write(
        tmp_path / "knn.yaml",
        "router: knnrouter\nhparam: {k: 3, weights: uniform, cost_weight: 2.5, budget: 0.01}\n",
    )
    router = _knn_from(path)
    assert router.get_params() == {  # type: ignore[attr-defined]
        "k": 3,
        "weights": "uniform",
        "metric": "cosine",
        "dims": None,
        "prior_count": 0.0,
        "fill_unknown": "none",
        "index": "exact",
        "hnsw_m": 32,
        "hnsw_ef_construction": 80,
        "hnsw_ef_search": 128,
        "ivf_nlist": None,
        "ivf_nprobe": 32,
        "index_code": None,
        "cost_weight": 2.5,
        "budget": 0.01,
    }
