"""Unit tests of the package surface: the pinned public API and a light import."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import langchain_llmrouter

EXPECTED_ALL = [
    "APIKeys",
    "AllCandidatesFailedError",
    "BaseRouter",
    "CachedEmbeddings",
    "CandidateHealth",
    "CandidateMismatchError",
    "CandidatePool",
    "ConfigError",
    "DataFormatError",
    "FeedbackStore",
    "GraphInputError",
    "GraphRouterError",
    "GraphToolCallingError",
    "Interaction",
    "InvalidOptionError",
    "LLMCandidate",
    "LLMRouterError",
    "MiniLMEmbeddings",
    "MissingAPIKeyError",
    "MissingEndpointError",
    "NotFittedError",
    "PartialStreamError",
    "PersonalRouter",
    "RouterChatModel",
    "RouterGraphChatModel",
    "RouterLoadError",
    "RouterMiddleware",
    "RoutingDataset",
    "RoutingDecision",
    "StaticEmbeddings",
    "UnknownCandidateError",
    "UnknownRouterError",
    "__version__",
    "available_routers",
    "build_automix_graph",
    "build_knn_multiround_graph",
    "build_llm_multiround_graph",
    "build_router_r1_graph",
    "create_router",
    "get_router_class",
    "load_router",
    "register_router",
]

HEAVY_MODULES = ["torch", "sklearn", "sentence_transformers", "langchain_openai"]


def test_all_is_pinned() -> None:
    assert langchain_llmrouter.__all__ == EXPECTED_ALL
    assert sorted(dir(langchain_llmrouter)) == EXPECTED_ALL


@pytest.mark.parametrize("name", EXPECTED_ALL)
def test_every_public_name_resolves(name: str) -> None:
    value = getattr(langchain_llmrouter, name)
    assert value is not None
    if name != "__version__":
        assert getattr(value, "__name__", name) == name


def test_version() -> None:
    major, minor, patch = langchain_llmrouter.__version__.split(".")
    assert all(part.isdigit() for part in (major, minor, patch))


def test_unknown_attribute() -> None:
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        _ = langchain_llmrouter.Nope  # type: ignore[attr-defined]


def _modules_after(code: str) -> list[str]:
    """The heavy modules present in ``sys.modules`` after running ``code`` in a fresh process."""
    script = (
        f"import json, sys\n{code}\n"
        f"print(json.dumps([m for m in {HEAVY_MODULES!r} if m in sys.modules]))"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_import_is_light() -> None:
    assert _modules_after("import langchain_llmrouter") == []


def test_light_names_stay_light() -> None:
    code = (
        "from langchain_llmrouter import APIKeys, CandidatePool, RoutingDataset, "
        "DataFormatError, available_routers\n"
        "assert 'knnrouter' in available_routers()"
    )
    assert _modules_after(code) == []


def test_chat_models_import_langchain_openai_on_first_use() -> None:
    # Also proves the probe sees heavy imports when they happen.
    code = (
        "from langchain_llmrouter import APIKeys, CandidatePool, LLMCandidate\n"
        "pool = CandidatePool([LLMCandidate(name='a', model='a')],\n"
        "    api_endpoint='http://localhost:1/v1', api_keys=APIKeys())\n"
        "assert 'langchain_openai' not in sys.modules\n"
        "pool.chat_model('a')"
    )
    assert _modules_after(code) == ["langchain_openai"]


def test_graph_builders_stay_light() -> None:
    code = (
        "from langchain_llmrouter import RouterGraphChatModel, build_automix_graph, "
        "build_knn_multiround_graph, build_llm_multiround_graph, build_router_r1_graph\n"
        "from langchain_llmrouter.graphs import VLLMChatModel\n"
        "assert 'vllm' not in sys.modules"
    )
    assert _modules_after(code) == []


def test_router_middleware_imports_langchain_on_first_use() -> None:
    code = (
        "import langchain_llmrouter\n"
        "assert 'langchain' not in sys.modules\n"
        "langchain_llmrouter.RouterMiddleware\n"
        "assert 'langchain.agents' in sys.modules"
    )
    _modules_after(code)  # check=True: a failed assertion fails the test
