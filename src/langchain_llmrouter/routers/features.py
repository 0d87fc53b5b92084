"""Query features shared by the SVM and MLP routers: the embedding, optionally with TF-IDF.

`QueryFeaturizer` turns query texts and their (MiniLM) embeddings into one dense
float32 matrix. With ``tfidf=True`` it appends TF-IDF word 1-2-gram features
learned from the training queries (scikit-learn's `TfidfVectorizer`, sublinear tf,
l2-normalised rows), projected onto the leading right singular vectors of the
training TF-IDF matrix so the result stays small and dense (latent semantic
analysis). Everything learned is saved as JSON (the vocabulary) and numpy arrays
(idf, projection), never pickled.

Only fitting uses scikit-learn. `transform` re-implements the vectoriser's transform
(tokens, n-grams, sublinear tf, idf, l2 norm) in numpy from the saved vocabulary and idf,
so a loaded router featurises queries without importing scikit-learn or scipy.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

import numpy as np

TFIDF_OPTIONS: dict[str, Any] = {
    "ngram_range": (1, 2),
    "sublinear_tf": True,
    "min_df": 2,
    "max_features": 20000,
    "lowercase": True,
}
"""How the TF-IDF vocabulary is built (fixed: saved routers rebuild the same vectoriser)."""

_TOKEN = re.compile(r"(?u)\b\w\w+\b")
"""scikit-learn's default ``token_pattern`` (words of two or more word characters)."""


class QueryFeaturizer:
    """Embedding features, optionally extended with projected TF-IDF word 1-2-grams.

    Args:
        tfidf: Whether to append TF-IDF features.
        n_components: Dimensions of the TF-IDF projection.
        tfidf_scale: Multiplier on the projected TF-IDF block (its rows have norm <= 1,
            like the unit-norm MiniLM embeddings).
    """

    def __init__(self, *, tfidf: bool = False, n_components: int = 256, tfidf_scale: float = 1.0):
        self.tfidf = tfidf
        self.n_components = n_components
        self.tfidf_scale = tfidf_scale
        self.vocabulary_: list[str] = []
        self.idf_: np.ndarray | None = None
        self.projection_: np.ndarray | None = None
        self._index: dict[str, int] = {}

    # --- fitting and transforming -----------------------------------------------------------

    def fit_transform(self, queries: list[str], embeddings: np.ndarray) -> np.ndarray:
        """Learn the TF-IDF vocabulary and projection (if enabled) and featurise ``queries``."""
        x = np.asarray(embeddings, dtype=np.float32)
        if not self.tfidf:
            return x
        from sklearn.feature_extraction import text as sklearn_text

        min_df = TFIDF_OPTIONS["min_df"] if len(queries) >= 10 else 1
        vectorizer = sklearn_text.TfidfVectorizer(
            **{**TFIDF_OPTIONS, "min_df": min_df}, dtype=np.float32
        )
        counts = vectorizer.fit_transform(queries)
        terms = vectorizer.get_feature_names_out()
        self.vocabulary_ = [str(t) for t in terms]
        self.idf_ = np.asarray(vectorizer.idf_, dtype=np.float32)
        self._index = {t: i for i, t in enumerate(self.vocabulary_)}
        self.projection_ = _leading_right_vectors(counts, self.n_components)
        return self._combine(x, counts)

    def transform(self, queries: list[str], embeddings: np.ndarray) -> np.ndarray:
        """Featurise ``queries`` with what `fit_transform` learned (numpy only)."""
        x = np.asarray(embeddings, dtype=np.float32)
        if not self.tfidf:
            return x
        assert self.projection_ is not None
        projected = np.zeros((len(queries), self.projection_.shape[1]), dtype=np.float32)
        for i, (ids, values) in enumerate(self.tfidf_rows(queries)):
            if len(ids):
                # Only the query's own terms (a dense vocabulary row would cost far more),
                # summed in float64 so the order of the sum does not show in float32.
                projected[i] = values.astype(np.float64) @ self.projection_[ids].astype(np.float64)
        return np.hstack([x, projected * np.float32(self.tfidf_scale)])

    def tfidf_rows(self, queries: list[str]) -> list[tuple[np.ndarray, np.ndarray]]:
        """Each query's TF-IDF vector as (sorted term ids, float32 values).

        The same numbers as the fitted `TfidfVectorizer`'s ``transform`` (its analyser,
        ``1 + log(count)``, times idf, then the l2 norm of the row), without scikit-learn.
        """
        assert self.idf_ is not None
        index, idf = self._index, self.idf_
        rows = []
        for query in queries:
            counts = Counter(index[t] for t in _terms(query) if t in index)
            ids = np.array(sorted(counts), dtype=np.int64)
            values = np.array([counts[i] for i in ids], dtype=np.float32)
            values = (np.log(values) + np.float32(1.0)) * idf[ids]
            # scikit-learn squares in float32, sums and divides in float64.
            norm = float(np.sqrt(np.sum((values * values).astype(np.float64))))
            if norm > 0.0:
                values = (values.astype(np.float64) / norm).astype(np.float32)
            rows.append((ids, values))
        return rows

    def _combine(self, x: np.ndarray, counts: Any) -> np.ndarray:
        assert self.projection_ is not None
        projected = np.asarray(counts @ self.projection_, dtype=np.float32) * self.tfidf_scale
        return np.hstack([x, projected])

    # --- persistence ------------------------------------------------------------------------

    def get_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """(JSON-able settings and vocabulary, arrays) to save with a router."""
        meta: dict[str, Any] = {
            "tfidf": self.tfidf,
            "n_components": self.n_components,
            "tfidf_scale": self.tfidf_scale,
        }
        if not self.tfidf:
            return meta, {}
        assert self.idf_ is not None and self.projection_ is not None
        meta["vocabulary"] = self.vocabulary_
        return meta, {"idf": self.idf_, "projection": self.projection_}

    @classmethod
    def from_state(cls, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> QueryFeaturizer:
        """Rebuild a featuriser saved with `get_state` (no code is loaded from the files)."""
        featurizer = cls(
            tfidf=bool(meta["tfidf"]),
            n_components=int(meta["n_components"]),
            tfidf_scale=float(meta["tfidf_scale"]),
        )
        if not featurizer.tfidf:
            return featurizer
        vocabulary = [str(t) for t in meta["vocabulary"]]
        idf = np.asarray(arrays["idf"], dtype=np.float32)
        if len(idf) != len(vocabulary):
            raise KeyError("idf (does not match the vocabulary)")
        featurizer.vocabulary_ = vocabulary
        featurizer.idf_ = idf
        featurizer.projection_ = np.asarray(arrays["projection"], dtype=np.float32)
        featurizer._index = {t: i for i, t in enumerate(vocabulary)}
        return featurizer


def _terms(text: str) -> list[str]:
    """The vectoriser's analyser: lowercase, `_TOKEN` words, then word n-grams joined by a
    space (scikit-learn's ``_word_ngrams``), for ``TFIDF_OPTIONS["ngram_range"]``."""
    low, high = TFIDF_OPTIONS["ngram_range"]
    words = _TOKEN.findall(text.lower() if TFIDF_OPTIONS["lowercase"] else text)
    terms = list(words) if low == 1 else []
    for n in range(max(low, 2), min(high, len(words)) + 1):
        terms += [" ".join(words[i : i + n]) for i in range(len(words) - n + 1)]
    return terms


def _leading_right_vectors(matrix: Any, k: int) -> np.ndarray:
    """(n_terms, k') leading right singular vectors of a sparse matrix (randomised SVD).

    ``k' = min(k, n_docs - 1, n_terms - 1)``; a fixed seed makes it deterministic.
    """
    from sklearn import decomposition

    k = max(1, min(k, matrix.shape[0] - 1, matrix.shape[1] - 1))
    svd = decomposition.TruncatedSVD(n_components=k, algorithm="randomized", random_state=0)
    svd.fit(matrix)
    return np.ascontiguousarray(svd.components_.T, dtype=np.float32)
