"""The kNN router's exact top-k search against a plain `np.argpartition`."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from langchain_llmrouter import create_router, load_router
from langchain_llmrouter.routers.knn import smallest_k
from langchain_llmrouter.testing import ContractData


def _kth_values(dist: np.ndarray, index: np.ndarray) -> np.ndarray:
    return np.sort(np.take_along_axis(dist, index, axis=1), axis=1)


@pytest.mark.parametrize(("rows", "width", "k"), [(1, 5608, 50), (37, 3000, 50), (8, 250, 7)])
def test_smallest_k_finds_the_same_distances_as_a_full_partition(
    rows: int, width: int, k: int
) -> None:
    rng = np.random.default_rng(rows)
    dist = rng.random((rows, width)).astype(np.float32)
    dist[:, ::97] = dist[:, :1]  # ties with the first column, which the bound is taken from
    found = smallest_k(dist, k)
    assert found.shape == (rows, k)
    assert all(len(set(row)) == k for row in found)
    full = np.argpartition(dist, k - 1, axis=1)[:, :k]
    np.testing.assert_array_equal(_kth_values(dist, found), _kth_values(dist, full))


def test_smallest_k_when_the_best_columns_are_all_past_the_first_quarter() -> None:
    dist = np.ones((3, 1000), dtype=np.float32)
    dist[:, 900:910] = 0.0
    found = smallest_k(dist, 10)
    assert all(sorted(row) == list(range(900, 910)) for row in found)


def test_smallest_k_with_nan_distances_falls_back_to_a_full_partition() -> None:
    dist = np.random.default_rng(0).random((4, 800))
    dist[1] = np.nan
    found = smallest_k(dist, 20)
    assert found.shape == (4, 20)
    full = np.argpartition(dist, 19, axis=1)[:, :20]
    np.testing.assert_array_equal(
        _kth_values(dist, found)[[0, 2, 3]], _kth_values(dist, full)[[0, 2, 3]]
    )


def test_dims_searches_the_principal_components_and_survives_save_and_load(
    router_slice: ContractData, tmp_path: Path
) -> None:
    data = router_slice
    router = create_router("knnrouter", k=10, dims=16)
    router.fit(data.fit, query_embeddings=data.fit_emb)
    assert router.pca_components_ is not None and router.pca_components_.shape == (384, 16)
    assert router.train_x_.shape == (len(data.fit), 16)
    # The same search by hand: centre, project onto the top 16 right singular vectors.
    centred = data.fit_emb - data.fit_emb.mean(axis=0)
    vt = np.linalg.svd(centred, full_matrices=False)[2][:16]
    projected = centred @ vt.T
    assert np.allclose(np.abs(router.train_x_), np.abs(projected), atol=1e-3)
    predicted = router.predict_quality(data.held.queries, query_embeddings=data.held_emb)
    router.save(tmp_path / "knn")
    loaded = load_router(tmp_path / "knn")
    assert loaded.dims == 16
    np.testing.assert_allclose(
        loaded.predict_quality(data.held.queries, query_embeddings=data.held_emb), predicted
    )
    with pytest.raises(ValueError, match="dimension 8 but the router was trained on 384"):
        router.predict_quality(["x"], query_embeddings=np.ones((1, 8), dtype=np.float32))


def test_dims_at_or_over_the_vector_size_keeps_the_whole_vectors(
    router_slice: ContractData,
) -> None:
    data = router_slice
    whole = create_router("knnrouter", k=10).fit(data.fit, query_embeddings=data.fit_emb)
    wide = create_router("knnrouter", k=10, dims=384).fit(data.fit, query_embeddings=data.fit_emb)
    assert wide.pca_components_ is None
    np.testing.assert_array_equal(
        wide.predict_quality(data.held.queries, query_embeddings=data.held_emb),
        whole.predict_quality(data.held.queries, query_embeddings=data.held_emb),
    )
