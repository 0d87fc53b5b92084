"""Query features shared by the SVM and MLP routers: the embedding, optionally with TF-IDF.

`QueryFeaturizer` turns query texts and their (MiniLM) embeddings into one dense
float32 matrix. With ``tfidf=True`` it appends TF-IDF word 1-2-gram features
learned from the training queries (scikit-learn's `TfidfVectorizer`, sublinear tf,
l2-normalised rows), projected onto the leading right singular vectors of the
training TF-IDF matrix so the result stays small and dense (latent semantic
analysis). Everything learned is saved as JSON (the vocabulary) and numpy arrays
(idf, projection), never pickled; loading rebuilds the vectoriser from them.
"""

from __future__ import annotations

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
        self._vectorizer: Any = None

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
        self._vectorizer = vectorizer
        self.projection_ = _leading_right_vectors(counts, self.n_components)
        return self._combine(x, counts)

    def transform(self, queries: list[str], embeddings: np.ndarray) -> np.ndarray:
        """Featurise ``queries`` with what `fit_transform` learned."""
        x = np.asarray(embeddings, dtype=np.float32)
        if not self.tfidf:
            return x
        return self._combine(x, self._vectorizer.transform(queries))

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
        from sklearn.feature_extraction import text as sklearn_text

        vocabulary = [str(t) for t in meta["vocabulary"]]
        idf = np.asarray(arrays["idf"], dtype=np.float32)
        if len(idf) != len(vocabulary):
            raise KeyError("idf (does not match the vocabulary)")
        vectorizer = sklearn_text.TfidfVectorizer(
            **{k: v for k, v in TFIDF_OPTIONS.items() if k not in ("min_df", "max_features")},
            vocabulary={t: i for i, t in enumerate(vocabulary)},
            dtype=np.float32,
        )
        vectorizer.idf_ = idf
        featurizer.vocabulary_ = vocabulary
        featurizer.idf_ = idf
        featurizer.projection_ = np.asarray(arrays["projection"], dtype=np.float32)
        featurizer._vectorizer = vectorizer
        return featurizer


def _leading_right_vectors(matrix: Any, k: int) -> np.ndarray:
    """(n_terms, k') leading right singular vectors of a sparse matrix (randomised SVD).

    ``k' = min(k, n_docs - 1, n_terms - 1)``; a fixed seed makes it deterministic.
    """
    from sklearn import decomposition

    k = max(1, min(k, matrix.shape[0] - 1, matrix.shape[1] - 1))
    svd = decomposition.TruncatedSVD(n_components=k, algorithm="randomized", random_state=0)
    svd.fit(matrix)
    return np.ascontiguousarray(svd.components_.T, dtype=np.float32)
