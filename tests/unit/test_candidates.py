"""Unit tests of candidate pools: the candidate JSON, sizes, API keys, endpoints and chat models."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from langchain_core.language_models.fake_chat_models import FakeListChatModel
from langchain_openai import ChatOpenAI

from langchain_llmrouter import (
    APIKeys,
    CandidatePool,
    DataFormatError,
    LLMCandidate,
    MissingAPIKeyError,
    MissingEndpointError,
    UnknownCandidateError,
)
from langchain_llmrouter.candidates import parse_size_billions
from langchain_llmrouter.testing import FakeOpenAIServer

DATA_DIR = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "llmrouter_example"
DEFAULT_LLM = DATA_DIR / "default_llm.json"

SHARED_NAMES = [
    "qwen2.5-7b-instruct",
    "codegemma-7b",
    "gemma-2-9b-it",
    "llama-3.1-8b-instruct",
    "llama3-chatqa-1.5-8b",
    "mistral-7b-instruct-v0.3",
    "llama-3.3-nemotron-super-49b-v1",
    "llama-3.1-nemotron-51b-instruct",
    "llama3-chatqa-1.5-70b",
    "llama3-70b-instruct",
    "mixtral-8x7b-instruct-v0.1",
    "mixtral-8x22b-instruct-v0.1",
    "palmyra-creative-122b",
    "mistral-nemo-12b-instruct",
]
REMOTE = "https://api.example.com/v1"


@pytest.fixture(scope="module")
def _shared_pool() -> CandidatePool:
    """The shared 14-candidate pool, with no API keys."""
    return CandidatePool.from_json(DEFAULT_LLM, api_keys=APIKeys())


def _pool(*candidates: LLMCandidate, **kwargs: Any) -> CandidatePool:
    kwargs.setdefault("api_keys", APIKeys())
    return CandidatePool(list(candidates), **kwargs)


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


# --- the shared candidate JSON -------------------------------------------------------------


def test_from_json_reads_the_shared_pool(_shared_pool: CandidatePool) -> None:
    assert len(_shared_pool) == 14
    assert _shared_pool.names == SHARED_NAMES
    assert [c.name for c in _shared_pool] == SHARED_NAMES
    assert _shared_pool.source == str(DEFAULT_LLM)
    assert "gemma-2-9b-it" in _shared_pool
    assert "gpt-4" not in _shared_pool


@pytest.mark.parametrize(
    ("name", "model", "price", "size", "billions"),
    [
        ("qwen2.5-7b-instruct", "qwen/qwen2.5-7b-instruct", 0.20, "7B", 7.0),
        ("gemma-2-9b-it", "google/gemma-2-9b-it", 0.10, "9B", 9.0),
        ("mixtral-8x7b-instruct-v0.1", "mistralai/mixtral-8x7b-instruct-v0.1", 0.6, "45B", 45),
        ("mixtral-8x22b-instruct-v0.1", "mistralai/mixtral-8x22b-instruct-v0.1", 1.2, "141B", 141),
        ("palmyra-creative-122b", "writer/palmyra-creative-122b", 1.80, "122B", 122.0),
    ],
)
def test_from_json_fields(
    _shared_pool: CandidatePool, name: str, model: str, price: float, size: str, billions: float
) -> None:
    candidate = _shared_pool[name]
    assert candidate.model == model
    # Every candidate in the shared file has equal input and output prices.
    assert candidate.input_price == pytest.approx(price)
    assert candidate.output_price == pytest.approx(price)
    assert candidate.size == size
    assert candidate.size_billions == pytest.approx(billions)
    assert candidate.service == "NVIDIA"
    assert candidate.api_endpoint is None


def test_feature_becomes_description(_shared_pool: CandidatePool) -> None:
    raw = json.loads(DEFAULT_LLM.read_text(encoding="utf-8"))
    for candidate in _shared_pool:
        assert candidate.description == raw[candidate.name]["feature"]
        assert candidate.model == raw[candidate.name]["model"]
    assert _shared_pool["qwen2.5-7b-instruct"].description.startswith("Qwen2.5-7B-Instruct")


def test_cheapest_and_costs(_shared_pool: CandidatePool) -> None:
    assert _shared_pool.cheapest() == "gemma-2-9b-it"
    palmyra = _shared_pool["palmyra-creative-122b"]
    assert palmyra.estimate_cost(1000, 200) == pytest.approx((1000 * 1.8 + 200 * 1.8) / 1e6)


def test_to_json_dict_round_trips(_shared_pool: CandidatePool, tmp_path: Path) -> None:
    dumped = _shared_pool.to_json_dict()
    assert "feature" in dumped["codegemma-7b"] and "description" not in dumped["codegemma-7b"]
    path = _write(tmp_path / "llms.json", json.dumps(dumped, indent=2))
    again = CandidatePool.from_json(path, api_keys=APIKeys())
    assert again.names == _shared_pool.names
    assert list(again) == list(_shared_pool)


@pytest.mark.parametrize(
    ("size", "expected"),
    [
        ("141B", 141.0),
        ("7B", 7.0),
        ("7b", 7.0),
        (" 12 B ", 12.0),
        ("300M", 0.3),
        ("1.5B", 1.5),
        ("8x7B", 56.0),
        ("8x22B", 176.0),
        ("2T", 2000.0),
        (7, 7.0),
        (0.5, 0.5),
        (None, None),
        ("big", None),
        ("7", 7.0),
        ("B", None),
        ("", None),
    ],
)
def test_parse_size_billions(size: Any, expected: float | None) -> None:
    result = parse_size_billions(size)
    if expected is None:
        assert result is None
    else:
        assert result == pytest.approx(expected)


def test_numeric_size_in_json_is_kept(tmp_path: Path) -> None:
    path = _write(tmp_path / "llms.json", json.dumps({"m": {"size": 7, "model": "org/m"}}))
    assert CandidatePool.from_json(path)["m"].size_billions == 7.0


def test_model_defaults_to_name_in_json(tmp_path: Path) -> None:
    path = _write(tmp_path / "llms.json", json.dumps({"local-7b": {"size": "7B"}}))
    assert CandidatePool.from_json(path)["local-7b"].model == "local-7b"


def test_model_defaults_to_name_when_built_directly() -> None:
    assert LLMCandidate(name="local-7b").model == "local-7b"


# --- malformed candidate files -------------------------------------------------------------


def test_malformed_json_names_file_and_line(tmp_path: Path) -> None:
    path = _write(tmp_path / "llms.json", '{\n  "a": {"model": "x"},\n  "b": {"model": }\n}\n')
    with pytest.raises(DataFormatError) as info:
        CandidatePool.from_json(path)
    assert info.value.line == 3
    assert info.value.path == str(path)
    assert str(path) in str(info.value)
    assert "line 3" in str(info.value)


@pytest.mark.parametrize(
    ("entry", "field"),
    [
        ({"input_price": "cheap"}, "bad.input_price"),
        ({"input_price": -1}, "bad.input_price"),
        ({"output_price": -0.5}, "bad.output_price"),
        ({"output_price": [1]}, "bad.output_price"),
        ({"prize": 1.0}, "bad.prize"),
        ({"model": 7}, "bad.model"),
    ],
)
def test_bad_field_names_file_line_and_field(
    tmp_path: Path, entry: dict[str, Any], field: str
) -> None:
    document = {"good": {"model": "org/good", "input_price": 0.1}, "bad": entry}
    path = _write(tmp_path / "llms.json", json.dumps(document, indent=2))
    bad_line = next(
        n
        for n, line in enumerate(path.read_text().splitlines(), start=1)
        if line.strip().startswith('"bad"')
    )
    assert bad_line > 1
    with pytest.raises(DataFormatError) as info:
        CandidatePool.from_json(path)
    err = info.value
    assert (err.path, err.line, err.field) == (str(path), bad_line, field)
    assert str(path) in str(err)
    assert f"line {bad_line}" in str(err)
    assert field in str(err)


@pytest.mark.parametrize(
    ("text", "line", "field"),
    [
        ('[{"model": "x"}]', 1, None),
        ('{\n  "a": "not an object"\n}', 2, "a"),
    ],
)
def test_wrong_shapes(tmp_path: Path, text: str, line: int, field: str | None) -> None:
    path = _write(tmp_path / "llms.json", text)
    with pytest.raises(DataFormatError) as info:
        CandidatePool.from_json(path)
    assert (info.value.line, info.value.field) == (line, field)


def test_missing_candidates_file(tmp_path: Path) -> None:
    with pytest.raises(DataFormatError, match="not found") as info:
        CandidatePool.from_json(tmp_path / "nope.json")
    assert info.value.path == str(tmp_path / "nope.json")


def test_duplicate_names_rejected() -> None:
    with pytest.raises(ValueError, match="duplicate candidate names: a"):
        _pool(LLMCandidate(name="a", model="a"), LLMCandidate(name="a", model="b"))


def test_unknown_name_lists_valid_names(_shared_pool: CandidatePool) -> None:
    with pytest.raises(UnknownCandidateError) as info:
        _shared_pool["gpt-5"]
    message = str(info.value)
    assert "gpt-5" in message
    assert all(name in message for name in SHARED_NAMES)
    assert info.value.valid == sorted(SHARED_NAMES)
    assert isinstance(info.value, KeyError)


def test_subset_keeps_order_and_settings(_shared_pool: CandidatePool) -> None:
    sub = _shared_pool.subset(["palmyra-creative-122b", "gemma-2-9b-it"])
    assert sub.names == ["palmyra-creative-122b", "gemma-2-9b-it"]
    assert sub["gemma-2-9b-it"] == _shared_pool["gemma-2-9b-it"]
    assert sub.api_keys is _shared_pool.api_keys
    with pytest.raises(UnknownCandidateError):
        _shared_pool.subset(["gemma-2-9b-it", "nope"])


# --- API keys ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "shared"),
    [
        ('["k1", "k2"]', ["k1", "k2"]),
        ("k1,k2", ["k1", "k2"]),
        (" k1 , k2 ,", ["k1", "k2"]),
        ("k1", ["k1"]),
        ('"k1"', ["k1"]),
        ('"k1,k2"', ["k1", "k2"]),
    ],
)
def test_api_keys_shared_formats(raw: str, shared: list[str]) -> None:
    keys = APIKeys.parse(raw)
    assert keys.shared == shared
    assert keys.by_service == {}
    assert keys
    # Shared keys serve every service, keyed or not.
    assert keys.keys_for("NVIDIA") == shared
    assert keys.keys_for(None) == shared


@pytest.mark.parametrize("raw", [None, "", "   "])
def test_api_keys_empty(raw: str | None) -> None:
    keys = APIKeys.parse(raw)
    assert not keys
    assert keys.keys_for("NVIDIA") == []
    with pytest.raises(MissingAPIKeyError, match="API_KEYS"):
        keys.next_key("NVIDIA")


def test_api_keys_by_service() -> None:
    raw = json.dumps({"NVIDIA": "n1, n2", "OpenAI": ["o1"], "Other": '["x1", "x2"]'})
    keys = APIKeys.parse(raw)
    assert keys.shared == []
    assert keys.keys_for("NVIDIA") == ["n1", "n2"]
    assert keys.keys_for("nvidia") == ["n1", "n2"]
    assert keys.keys_for("OPENAI") == ["o1"]
    assert keys.keys_for("other") == ["x1", "x2"]
    assert keys.keys_for(None) == []


def test_api_keys_round_robin_per_group() -> None:
    keys = APIKeys.parse("k1,k2,k3")
    assert [keys.next_key(None, rotation="a") for _ in range(4)] == ["k1", "k2", "k3", "k1"]
    # Another rotation group starts at the first key and does not move group "a".
    assert keys.next_key(None, rotation="b") == "k1"
    assert keys.next_key(None, rotation="a") == "k2"


def test_api_keys_rotation_service_is_case_insensitive() -> None:
    keys = APIKeys.parse('{"NVIDIA": ["n1", "n2"], "openai": "o1"}')
    assert keys.next_key("NVIDIA", rotation="e") == "n1"
    assert keys.next_key("nvidia", rotation="e") == "n2"
    assert keys.next_key("Nvidia", rotation="e") == "n1"
    assert keys.next_key("OpenAI", rotation="e") == "o1"


def test_api_keys_missing_service_lists_services() -> None:
    keys = APIKeys.parse('{"NVIDIA": "n1", "OpenAI": "o1"}')
    with pytest.raises(MissingAPIKeyError) as info:
        keys.next_key("Anthropic")
    message = str(info.value)
    assert "Anthropic" in message
    assert "nvidia" in message.lower() and "openai" in message.lower()


@pytest.mark.parametrize("raw", ["[k1, k2", '{"NVIDIA": 5}', '{"NVIDIA": {"a": "b"}}', '"k1'])
def test_api_keys_malformed(raw: str) -> None:
    with pytest.raises(DataFormatError) as info:
        APIKeys.parse(raw)
    assert info.value.field == "API_KEYS"


def test_api_keys_malformed_nested_list() -> None:
    with pytest.raises(DataFormatError) as info:
        APIKeys.parse('{"NVIDIA": "[oops"}')
    assert info.value.field == "API_KEYS"


def test_api_keys_from_env() -> None:
    assert APIKeys.from_env({"API_KEYS": "a,b"}).shared == ["a", "b"]
    assert not APIKeys.from_env({})


def test_pool_reads_api_keys_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("API_KEYS", '{"nvidia": "env-key"}')
    pool = CandidatePool([LLMCandidate(name="a", model="a", service="NVIDIA")])
    assert pool.api_keys.keys_for("NVIDIA") == ["env-key"]


# --- endpoints and key providers ----------------------------------------------------------


def test_endpoint_resolution_order() -> None:
    own = LLMCandidate(name="own", model="own", api_endpoint="https://own.example/v1")
    bare = LLMCandidate(name="bare", model="bare")
    pool = _pool(own, bare, api_endpoint="https://pool.example/v1")
    assert pool.endpoint_for("own") == "https://own.example/v1"
    assert pool.endpoint_for("bare") == "https://pool.example/v1"

    no_default = _pool(own, bare, source="cands.json")
    assert no_default.endpoint_for("own") == "https://own.example/v1"
    with pytest.raises(MissingEndpointError) as info:
        no_default.endpoint_for("bare")
    assert "'bare'" in str(info.value)
    assert "cands.json" in str(info.value)


def test_endpoint_for_unknown_candidate() -> None:
    with pytest.raises(UnknownCandidateError, match="'nope'"):
        _pool(LLMCandidate(name="a", model="a"), api_endpoint=REMOTE).endpoint_for("nope")


@pytest.mark.parametrize(
    "endpoint",
    ["http://localhost:8000/v1", "http://127.0.0.1:9999/v1", "http://[::1]:8000/v1"],
)
def test_local_endpoint_without_keys_uses_local(endpoint: str) -> None:
    pool = _pool(LLMCandidate(name="a", model="a", service="NVIDIA"), api_endpoint=endpoint)
    provider = pool.key_provider("a")
    assert provider() == "local"
    assert pool.has_chat_model("a")


def test_remote_endpoint_without_keys_raises() -> None:
    pool = _pool(LLMCandidate(name="a", model="a"), api_endpoint=REMOTE)
    with pytest.raises(MissingAPIKeyError, match="'a'"):
        pool.key_provider("a")
    assert not pool.has_chat_model("a")


def test_remote_endpoint_missing_service_raises() -> None:
    keys = APIKeys.parse('{"OpenAI": "o1"}')
    pool = _pool(LLMCandidate(name="a", model="a", service="NVIDIA"), api_endpoint=REMOTE)
    pool = CandidatePool(list(pool), api_endpoint=REMOTE, api_keys=keys)
    with pytest.raises(MissingAPIKeyError) as info:
        pool.key_provider("a")
    assert "'a'" in str(info.value) and "openai" in str(info.value).lower()


def test_key_provider_rotates_and_local_prefers_real_keys() -> None:
    pool = CandidatePool(
        [LLMCandidate(name="a", model="org/a"), LLMCandidate(name="b", model="org/b")],
        api_endpoint="http://localhost:1/v1",
        api_keys=APIKeys.parse("k1,k2"),
    )
    provider_a, provider_b = pool.key_provider("a"), pool.key_provider("b")
    assert [provider_a() for _ in range(3)] == ["k1", "k2", "k1"]
    # Each (endpoint, model) rotates on its own.
    assert provider_b() == "k1"


def test_no_endpoint_means_no_chat_model() -> None:
    pool = _pool(LLMCandidate(name="a", model="a"))
    assert not pool.has_chat_model("a")
    with pytest.raises(MissingEndpointError):
        pool.chat_model("a")


# --- chat models ---------------------------------------------------------------------------


def test_chat_model_builds_chat_openai() -> None:
    pool = CandidatePool(
        [
            LLMCandidate(name="a", model="org/model-a"),
            LLMCandidate(name="b", model="org/model-b", api_endpoint="https://b.example/v1"),
        ],
        api_endpoint=REMOTE,
        api_keys=APIKeys.parse("k1"),
        chat_model_kwargs={"temperature": 0.25},
    )
    model = pool.chat_model("a")
    assert isinstance(model, ChatOpenAI)
    assert model.model_name == "org/model-a"
    assert model.openai_api_base == REMOTE
    assert model.temperature == 0.25
    assert pool.chat_model("a") is model
    other = pool.chat_model("b")
    assert other.model_name == "org/model-b"
    assert other.openai_api_base == "https://b.example/v1"


def test_chat_model_unknown_name_lists_valid() -> None:
    pool = _pool(
        LLMCandidate(name="alpha", model="alpha"),
        LLMCandidate(name="beta", model="beta"),
        api_endpoint=REMOTE,
    )
    with pytest.raises(UnknownCandidateError) as info:
        pool.chat_model("gamma")
    assert "'gamma'" in str(info.value)
    assert "alpha, beta" in str(info.value)


def test_chat_model_rotates_keys_per_request() -> None:
    with FakeOpenAIServer() as server:
        pool = CandidatePool(
            [LLMCandidate(name="a", model="served-a")],
            api_endpoint=server.base_url,
            api_keys=APIKeys.parse('["key-1", "key-2"]'),
            chat_model_kwargs={"max_retries": 0},
        )
        model = pool.chat_model("a")
        replies = [model.invoke(f"hello {i}").text for i in range(3)]
        calls = server.calls_for("served-a")
    assert replies[0] == "[served-a] You said: hello 0"
    assert [c.api_key for c in calls] == ["key-1", "key-2", "key-1"]


def test_from_models_wraps_given_models() -> None:
    cheap = FakeListChatModel(responses=["cheap"])
    smart = FakeListChatModel(responses=["smart"])
    pool = CandidatePool.from_models(
        {"cheap": cheap, "smart": smart}, prices={"smart": (3.0, 15.0)}
    )
    assert pool.names == ["cheap", "smart"]
    assert pool.chat_model("cheap") is cheap
    assert pool.chat_model("smart").invoke("x").text == "smart"
    assert (pool["smart"].input_price, pool["smart"].output_price) == (3.0, 15.0)
    assert (pool["cheap"].input_price, pool["cheap"].output_price) == (0.0, 0.0)
    assert pool.has_chat_model("cheap")
    assert pool.cheapest() == "cheap"


def test_from_models_reads_model_ids_and_full_candidates() -> None:
    chat = ChatOpenAI(model="org/real-id", base_url=REMOTE, api_key="k")
    assert CandidatePool.from_models({"x": chat})["x"].model == "org/real-id"
    spec = LLMCandidate(name="x", model="org/real-id", input_price=1.0, size="7B")
    pool = CandidatePool.from_models({"x": chat}, candidates=[spec])
    assert pool["x"] == spec
    assert pool.chat_model("x") is chat


def test_models_for_unknown_candidates_rejected() -> None:
    with pytest.raises(UnknownCandidateError, match="'ghost'"):
        CandidatePool(
            [LLMCandidate(name="a", model="a")],
            models={"ghost": FakeListChatModel(responses=["x"])},
        )


@pytest.mark.parametrize(
    ("url", "local"),
    [
        ("http://localhost:8000/v1", True),
        ("http://127.0.0.1:5/v1", True),
        ("http://[::1]:8000/v1", True),
        ("https://localhost.evil.com/v1", False),
        ("https://api.example.com/v1?next=localhost", False),
        ("https://integrate.api.nvidia.com/v1", False),
    ],
)
def test_is_local_endpoint_looks_at_the_host_only(url: str, local: bool) -> None:
    from langchain_llmrouter.candidates import is_local_endpoint

    assert is_local_endpoint(url) is local


# --- description embeddings from a second file ---------------------------------------------


def test_add_embeddings_matches_by_name(tmp_path: Path) -> None:
    pool = CandidatePool.from_json(DEFAULT_LLM, api_keys=APIKeys())
    assert all(c.embedding is None for c in pool)
    source = DEFAULT_LLM.with_name("default_llm_embeddings.json")
    assert pool.add_embeddings(source) is pool
    raw = json.loads(source.read_text(encoding="utf-8"))
    for candidate in pool:
        if candidate.name in raw:
            assert candidate.embedding == raw[candidate.name]["embedding"]
            assert candidate.size is not None  # the rest comes from the pool's own file
        else:
            assert candidate.embedding is None


def test_add_embeddings_names_a_bad_entry(tmp_path: Path) -> None:
    pool = CandidatePool.from_json(DEFAULT_LLM, api_keys=APIKeys())
    bad = _write(tmp_path / "emb.json", '{\n  "gemma-2-9b-it": {"embedding": "not a list"}\n}\n')
    with pytest.raises(DataFormatError) as info:
        pool.add_embeddings(bad)
    message = str(info.value)
    assert "emb.json" in message and "line 2" in message and "gemma-2-9b-it.embedding" in message
