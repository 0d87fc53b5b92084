"""Loading a saved router refuses tampered files before it reads or allocates their arrays.

``router.json`` lists every array's dtype and shape and a digest over the candidate names and
that list (`langchain_llmrouter.routers.manifest`); the loader checks the safetensors header
against it before any array data is read, and the causal-LM router checks its saved model
config against the saved weights before building the model.
"""

from __future__ import annotations

import json
import struct
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

from langchain_llmrouter import BaseRouter, ConfigError, RouterLoadError, load_router
from langchain_llmrouter.routers.registry import available_routers, get_router_class, router_kind
from langchain_llmrouter.testing import ContractData, HashingEmbeddings, make_contract_data
from langchain_llmrouter.testing.router_checks import fit_router

FAST: dict[str, dict[str, Any]] = {
    "causallm_router": {
        "hidden_size": 32,
        "n_layers": 1,
        "n_heads": 2,
        "vocab_size": 300,
        "epochs": 1,
        "max_length": 64,
    },
    "elorouter": {"variant": "global"},
    "ensemble": {"members": [{"router": "knnrouter", "k": 5}], "n_folds": 2},
    # Personalised routers fitted on routing data learn one population user: enough to check
    # the files (their own tests cover users' histories).
    "gmtrouter": {"hidden_dim": 8, "heads": 2, "taste_dim": 2, "epochs": 3},
    "personalizedrouter": {"hidden_dim": 8, "taste_dim": 2, "max_epochs": 3, "patience": 2},
    "graphrouter": {"hidden_dim": 8, "max_epochs": 5, "patience": 2, "n_tasks": 5},
    "hybrid_llm": {"epochs": 1, "hidden_sizes": [8]},
    "knnrouter": {"k": 5},
    "mfrouter": {"latent_dim": 4, "max_epochs": 3, "patience": 2},
    "mlprouter": {"hidden_sizes": [8], "max_epochs": 3, "patience": 2},
    "routerdc": {"max_epochs": 2, "patience": 1, "hidden_dim": 16},
    "svmrouter": {"C": 1.0},
    "thresholdrouter": {"epochs": 1, "hidden_dim": 8},
}
"""Small, fast hyperparameters per trainable single-round router."""

TRAINABLE_SINGLE = sorted(
    n
    for n in available_routers()
    if router_kind(n) == "single" and get_router_class(n).trainable and n != "oracle"
)


@pytest.fixture(scope="module")
def data() -> ContractData:
    return make_contract_data(n_fit=120, n_held=30)


@pytest.fixture(scope="module")
def knn(data: ContractData) -> BaseRouter:
    return fit_router("knnrouter", FAST["knnrouter"], data)


@pytest.fixture
def saved(tmp_path: Path, knn: BaseRouter) -> Path:
    return knn.save(tmp_path / "knn")


def _edit_arrays(directory: Path, change: Callable[[dict[str, np.ndarray]], object]) -> None:
    arrays = load_file(directory / "arrays.safetensors")
    change(arrays)
    save_file(arrays, directory / "arrays.safetensors")


def _edit_json(directory: Path, change: Callable[[dict[str, Any]], object]) -> None:
    path = directory / "router.json"
    document = json.loads(path.read_text(encoding="utf-8"))
    change(document)
    path.write_text(json.dumps(document), encoding="utf-8")


def _load(directory: Path) -> BaseRouter:
    return load_router(directory, embeddings=HashingEmbeddings())


def _route(router: BaseRouter, data: ContractData) -> list[dict[str, Any]]:
    emb = data.held_emb if router.uses_embeddings else None
    return [d.model_dump() for d in router.route_batch(data.held.queries, query_embeddings=emb)]


def test_save_writes_a_manifest_and_digest(saved: Path, knn: BaseRouter) -> None:
    document = json.loads((saved / "router.json").read_text(encoding="utf-8"))
    assert document["digest"].startswith("sha256:")
    assert document["arrays"]["train_x"] == {"dtype": "F32", "shape": list(knn.train_x_.shape)}
    assert set(document["arrays"]) == set(load_file(saved / "arrays.safetensors"))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda a: a.update(train_x=a["train_x"][:, :-1]), r"'train_x'.*shape"),
        (lambda a: a.update(train_x=a["train_x"].astype(np.float64)), r"'train_x'.*dtype F64"),
        (lambda a: a.pop("train_x"), r"'train_x' is missing"),
        (lambda a: a.update(sneaky=np.zeros(3)), r"'sneaky' not listed"),
        (lambda a: a.update(_input_price=a["_input_price"][:2]), r"'_input_price'.*shape"),
    ],
    ids=["shape", "dtype", "missing", "extra", "prices"],
)
def test_tampered_arrays_are_refused_naming_the_array(
    saved: Path, change: Callable[[dict[str, np.ndarray]], object], message: str
) -> None:
    _edit_arrays(saved, change)
    with pytest.raises(RouterLoadError, match=message) as info:
        _load(saved)
    assert "arrays.safetensors" in str(info.value)


@pytest.mark.parametrize(
    "change",
    [
        lambda d: d["candidates"].__setitem__(0, "not-a-candidate"),
        lambda d: d["candidates"].reverse(),
        lambda d: d["arrays"]["train_x"].__setitem__("shape", [1, 1]),
    ],
    ids=["renamed", "reordered", "manifest-edited"],
)
def test_edited_router_json_is_refused(
    saved: Path, change: Callable[[dict[str, Any]], object]
) -> None:
    _edit_json(saved, change)
    with pytest.raises(RouterLoadError, match=r"router\.json|arrays\.safetensors"):
        _load(saved)


def test_renamed_candidates_name_the_field(saved: Path) -> None:
    _edit_json(saved, lambda d: d["candidates"].__setitem__(0, "not-a-candidate"))
    with pytest.raises(RouterLoadError, match=r"router\.json, field 'candidates'.*digest"):
        _load(saved)


def _write_raw_safetensors(path: Path, header: dict[str, Any], data: bytes) -> None:
    raw = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + data)


@pytest.mark.parametrize("with_manifest", [True, False], ids=["manifest", "old-format"])
def test_a_header_declaring_an_enormous_tensor_is_refused_before_allocation(
    saved: Path, with_manifest: bool
) -> None:
    huge = 10**12  # 8 TB of float64
    _write_raw_safetensors(
        saved / "arrays.safetensors",
        {"train_x": {"dtype": "F64", "shape": [huge], "data_offsets": [0, 8 * huge]}},
        b"\0" * 64,
    )
    if with_manifest:
        _edit_json(saved, lambda d: d["arrays"].update(train_x={"dtype": "F64", "shape": [huge]}))
    else:
        _edit_json(saved, lambda d: (d.pop("arrays"), d.pop("digest")))
    tracemalloc.start()
    try:
        with pytest.raises(RouterLoadError, match=r"'train_x'.*needs 8000000000000 bytes"):
            _load(saved)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 20 * 2**20


def test_an_enormous_header_length_is_refused(saved: Path) -> None:
    (saved / "arrays.safetensors").write_bytes(struct.pack("<Q", 2**62) + b"{}")
    with pytest.raises(RouterLoadError, match="header declares"):
        _load(saved)


def test_old_format_router_still_loads(saved: Path, knn: BaseRouter, data: ContractData) -> None:
    _edit_json(saved, lambda d: (d.pop("arrays"), d.pop("digest")))
    loaded = load_router(saved, embeddings=data.embeddings)
    assert _route(loaded, data) == _route(knn, data)


def test_half_a_manifest_is_refused(saved: Path) -> None:
    _edit_json(saved, lambda d: d.pop("digest"))
    with pytest.raises(RouterLoadError, match="'digest'"):
        _load(saved)


# --- the causal-LM router: sizes in its saved config -------------------------------------


@pytest.fixture(scope="module")
def causallm(data: ContractData) -> BaseRouter:
    return fit_router("causallm_router", FAST["causallm_router"], data)


def test_huge_vocab_size_in_params_is_refused_quickly(tmp_path: Path, causallm: BaseRouter) -> None:
    directory = causallm.save(tmp_path / "lm")
    _edit_json(directory, lambda d: d["params"].update(vocab_size=10**12))
    start = time.perf_counter()
    with pytest.raises(ConfigError) as info:
        _load(directory)
    assert info.value.field == "hparam.vocab_size"
    assert time.perf_counter() - start < 5


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("vocab_size", 10**11, r"shape .* where state\.model_config builds"),
        ("hidden_size", 64, r"shape .* where state\.model_config builds"),
        ("num_hidden_layers", 10**9, r"num_hidden_layers is 1000000000"),
    ],
)
def test_saved_model_config_must_fit_the_weights(
    tmp_path: Path, causallm: BaseRouter, field: str, value: int, message: str
) -> None:
    directory = causallm.save(tmp_path / "lm")
    _edit_json(directory, lambda d: d["state"]["model_config"].update({field: value}))
    start = time.perf_counter()
    with pytest.raises(RouterLoadError, match=message) as info:
        _load(directory)
    assert str(directory) in str(info.value)
    assert time.perf_counter() - start < 10


# --- every trainable single-round router still round-trips -------------------------------


def test_fast_params_cover_every_trainable_single_round_router() -> None:
    assert set(TRAINABLE_SINGLE) <= set(FAST)


@pytest.mark.parametrize("name", TRAINABLE_SINGLE)
def test_round_trip(name: str, tmp_path: Path, data: ContractData) -> None:
    router = fit_router(name, FAST[name], data)
    directory = router.save(tmp_path / name)
    document = json.loads((directory / "router.json").read_text(encoding="utf-8"))
    assert set(document["arrays"]) == set(load_file(directory / "arrays.safetensors"))
    loaded = load_router(directory, embeddings=data.embeddings)
    assert type(loaded) is type(router)
    assert loaded.candidates_ == router.candidates_
    assert _route(loaded, data) == _route(router, data)
