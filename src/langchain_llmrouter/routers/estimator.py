"""What both router contracts share: hyperparameters, candidates, fitting and saving.

`RouterEstimator` is the base of `BaseRouter` (single-round routers, which return one
routing decision per query) and of `langchain_llmrouter.graphs.base.BaseGraphRouter`
(routers that run as LangGraph graphs). It follows scikit-learn habits: ``__init__`` stores
arguments, ``fit`` learns, learned state ends in ``_``; a fitted router saves to
``router.json`` + ``arrays.safetensors`` and loads without unpickling or running code
(``router.json`` lists every array's dtype and shape, checked before any is read: see
`langchain_llmrouter.routers.manifest`).
"""

from __future__ import annotations

import inspect
import json
import math
from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Self

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from langchain_llmrouter.candidates import DEFAULT_OUTPUT_TOKENS, CandidatePool, LLMCandidate
from langchain_llmrouter.errors import ConfigError, NotFittedError, RouterLoadError
from langchain_llmrouter.routers.manifest import (
    array_manifest,
    check_saved_arrays,
    state_digest,
)

if TYPE_CHECKING:
    from langchain_core.embeddings import Embeddings

    from langchain_llmrouter.data import RoutingDataset
    from langchain_llmrouter.routers.calibrate_quality import QualityCalibration
    from langchain_llmrouter.routers.new_candidates import AddedCandidates

SAVE_FORMAT = "langchain-llmrouter/router"
SAVE_VERSION = 1


class RouterParams(BaseModel):
    """Base of each router's hyperparameter schema (validated in `fit` and configs)."""

    model_config = ConfigDict(extra="forbid")

    cost_weight: float = Field(default=0.0, ge=0, allow_inf_nan=False)
    """Quality given up per dollar per 1,000 queries (0: best quality regardless of cost)."""
    budget: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    """Max estimated dollars per call; None for no limit."""


def read_saved_router(directory: str | Path) -> tuple[dict[str, Any], Path]:
    """The checked ``router.json`` of a saved router directory, and its path.

    Raises:
        RouterLoadError: no ``router.json``, invalid JSON, another format, a newer version,
            or no ``router`` name or ``candidates`` list.
    """
    meta_path = Path(directory) / "router.json"
    if not meta_path.is_file():
        raise RouterLoadError(
            f"{Path(directory)}: no router.json here; is this a saved router directory?"
        )
    try:
        document = json.loads(meta_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise RouterLoadError(f"{meta_path}, line {exc.lineno}: invalid JSON: {exc.msg}") from None
    if not isinstance(document, dict) or document.get("format") != SAVE_FORMAT:
        raise RouterLoadError(f"{meta_path}: not a langchain-llmrouter router file")
    if document.get("version", 0) > SAVE_VERSION:
        raise RouterLoadError(
            f"{meta_path}: saved by a newer version (format {document['version']})"
        )
    for key, kind in (("router", str), ("candidates", list)):
        if not isinstance(document.get(key), kind):
            raise RouterLoadError(f"{meta_path}: field {key!r} is missing or not a {kind.__name__}")
    return document, meta_path


class RouterEstimator(ABC):
    """Hyperparameters, candidates, fitting and saving, shared by both router contracts.

    Subclasses set `name`, define `Params` and an explicit keyword-only ``__init__`` that
    stores the same arguments, and implement `_fit` (plus `_get_state` / `_set_state` if
    they learn anything).
    """

    name: str = "base"
    """Registry name (a class attribute; also the run name in traces)."""
    Params: ClassVar[type[RouterParams]] = RouterParams
    """The hyperparameter schema."""
    trainable: ClassVar[bool] = True
    """Whether `fit` learns from routing data (False: it only records the candidates)."""
    uses_embeddings: ClassVar[bool] = False
    """Whether the router needs query embeddings."""
    calibrations_: list[dict[str, Any]]
    """Calibrations to a target share or cost (`langchain_llmrouter.calibration`), saved in
    ``router.json``; unset until one is applied."""
    quality_calibration_: QualityCalibration
    """Isotonic maps of predicted qualities (`langchain_llmrouter.routers.calibrate_quality`),
    saved in ``router.json`` + ``arrays.safetensors``; unset until one is fitted."""
    tuning_: dict[str, Any]
    """What ``fit(tune=True)`` chose (`langchain_llmrouter.routers.tuning`), saved in
    ``router.json`` as ``tuning``; unset without tuning."""
    new_candidates_: AddedCandidates
    """Candidates added after fitting (`langchain_llmrouter.routers.new_candidates`), saved
    like the quality calibration; unset until one is added."""

    def __init__(self, *, embeddings: Embeddings | None = None) -> None:
        self.embeddings = embeddings

    # --- parameters -----------------------------------------------------------------------

    @classmethod
    def _param_names(cls) -> list[str]:
        sig = inspect.signature(cls.__init__)
        return [p for p in sig.parameters if p not in ("self", "embeddings")]

    def get_params(self) -> dict[str, Any]:
        """The constructor arguments (JSON-friendly), as in scikit-learn."""
        return {p: getattr(self, p) for p in self._param_names()}

    def set_params(self, **params: Any) -> Self:
        """Change constructor arguments; unknown names raise a clear error."""
        valid = self._param_names()
        for key, value in params.items():
            if key not in valid:
                raise ConfigError(
                    f"unknown parameter for {self.name}; valid: {', '.join(valid)}", field=key
                )
            setattr(self, key, value)
        return self

    @classmethod
    def from_params(
        cls,
        params: dict[str, Any],
        *,
        embeddings: Embeddings | None = None,
        source: str | None = None,
    ) -> Self:
        """Build from a config's ``hparam`` mapping, validating names and values."""
        cls.validate_params(params, source=source)
        kwargs = dict(params)
        if "embeddings" in inspect.signature(cls.__init__).parameters:
            kwargs["embeddings"] = embeddings
        return cls(**kwargs)

    @classmethod
    def validate_params(cls, params: dict[str, Any], *, source: str | None = None) -> RouterParams:
        """Validate hyperparameters against `Params`; errors name the field."""
        allowed = set(cls._param_names())
        for key in params:
            if key not in allowed:
                raise ConfigError(
                    f"unknown hyperparameter for {cls.name}; valid: {', '.join(sorted(allowed))}",
                    path=source,
                    field=f"hparam.{key}",
                )
        try:
            return cls.Params.model_validate(
                {k: v for k, v in params.items() if k in cls.Params.model_fields}
            )
        except ValidationError as exc:
            err = exc.errors()[0]
            loc = ".".join(str(p) for p in err["loc"])
            raise ConfigError(
                f"{err['msg']} (got {err.get('input')!r})", path=source, field=f"hparam.{loc}"
            ) from None

    # --- fitting --------------------------------------------------------------------------

    def fit(
        self,
        dataset: RoutingDataset,
        *,
        query_embeddings: np.ndarray | None = None,
        tune: bool = False,
        tune_budget_s: float | None = None,
        tune_space: dict[str, list[Any]] | None = None,
        tune_folds: int = 5,
        tune_seed: int = 0,
    ) -> Self:
        """Learn from routing data.

        Args:
            dataset: Queries × candidates quality and cost.
            query_embeddings: Precomputed embeddings of ``dataset.queries`` (computed,
                with the disk cache, when needed and not given).
            tune: First choose the hyperparameters by grouped cross-validation on
                ``dataset`` (`langchain_llmrouter.routers.tuning`); the choice and its CV
                score are kept in ``tuning_`` and saved. Single-round routers only.
            tune_budget_s: Seconds of search (default 300).
            tune_space: Hyperparameter -> values to search (default: the router's own).
            tune_folds: Folds of the grouped cross-validation.
            tune_seed: Seed of the folds and of the search.
        """
        self.validate_params(self.get_params())
        if len(dataset) == 0:
            raise ValueError("cannot fit a router on an empty dataset")
        self._set_candidates(dataset.candidate_info(), dataset)
        if self.uses_embeddings and query_embeddings is None:
            from langchain_llmrouter.embeddings import embed_texts

            query_embeddings = embed_texts(dataset.queries, self.embeddings)
        if query_embeddings is not None and len(query_embeddings) != len(dataset):
            raise ValueError(
                f"query_embeddings has {len(query_embeddings)} rows for {len(dataset)} queries"
            )
        if tune:
            from langchain_llmrouter.routers.tuning import tune_in_fit

            self.tuning_ = tune_in_fit(
                self,
                dataset,
                query_embeddings,
                space=tune_space,
                budget_s=tune_budget_s,
                n_folds=tune_folds,
                seed=tune_seed,
            )
        else:
            self.__dict__.pop("tuning_", None)  # a record of an earlier fit's search
        self._fit(dataset, query_embeddings)
        self.fitted_ = True
        return self

    def fit_candidates(self, candidates: CandidatePool | Sequence[LLMCandidate]) -> Self:
        """Set up an untrained router (baselines) from candidates alone."""
        if self.trainable:
            raise TypeError(f"{self.name} learns from routing data: call fit(dataset)")
        self.validate_params(self.get_params())
        self._set_candidates(list(candidates), None)
        self._fit(None, None)
        self.fitted_ = True
        return self

    def _set_candidates(
        self, candidates: Sequence[LLMCandidate], dataset: RoutingDataset | None
    ) -> None:
        self.candidates_ = [c.name for c in candidates]
        self.input_price_ = np.array([c.input_price for c in candidates], dtype=np.float64)
        self.output_price_ = np.array([c.output_price for c in candidates], dtype=np.float64)
        sizes = [c.size_billions for c in candidates]
        self.sizes_ = np.array([np.nan if s is None else s for s in sizes], dtype=np.float64)
        self.output_tokens_ = np.full(len(candidates), float(DEFAULT_OUTPUT_TOKENS))

    @abstractmethod
    def _fit(self, dataset: RoutingDataset | None, query_embeddings: np.ndarray | None) -> None:
        """Learn (``dataset`` is None for `fit_candidates`)."""

    @property
    def is_fitted(self) -> bool:
        """Whether `fit`, `fit_candidates` or `load` has run."""
        return getattr(self, "fitted_", False)

    def _check_fitted(self) -> None:
        if not self.is_fitted:
            hint = "fit(dataset)" if self.trainable else "fit(dataset) or fit_candidates(pool)"
            raise NotFittedError(
                f"{self.name} is not fitted yet: call {hint} or load a saved router"
            )

    def _estimate_costs(self, queries: Sequence[str]) -> np.ndarray:
        """Estimated dollars per call, shape (n, n_candidates), from prompt length and
        prices (no fitted check, for use inside `_fit`)."""
        tokens_in = np.array([max(1, math.ceil(len(q) / 4)) for q in queries], dtype=np.float64)
        return (
            np.outer(tokens_in, self.input_price_) + self.output_tokens_ * self.output_price_
        ) / 1e6

    # --- persistence ----------------------------------------------------------------------

    def _get_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """Learned state beyond the candidates: (JSON-able dict, named arrays)."""
        return {}, {}

    def _set_state(self, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        """Restore what `_get_state` returned (nothing to restore by default)."""
        return None

    def save(self, directory: str | Path) -> Path:
        """Save to ``directory`` as ``router.json`` + ``arrays.safetensors`` (no pickle).

        Returns:
            The directory.
        """
        from safetensors.numpy import save_file

        from langchain_llmrouter import __version__
        from langchain_llmrouter.embeddings import embedding_name

        self._check_fitted()
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        meta, arrays = self._get_state()
        embedder = None
        if self.uses_embeddings:
            from langchain_llmrouter.embeddings import default_embeddings

            embedder = embedding_name(self.embeddings or default_embeddings())
        document = {
            "format": SAVE_FORMAT,
            "version": SAVE_VERSION,
            "package_version": __version__,
            "router": self.name,
            "params": self.get_params(),
            "candidates": self.candidates_,
            "embeddings": embedder,
            "state": meta,
        }
        if getattr(self, "calibrations_", None):  # `langchain_llmrouter.calibration`
            document["calibrations"] = self.calibrations_
        if getattr(self, "tuning_", None):  # `langchain_llmrouter.routers.tuning`
            document["tuning"] = self.tuning_
        quality_calibration = getattr(self, "quality_calibration_", None)
        if quality_calibration is not None:  # `langchain_llmrouter.routers.calibrate_quality`
            document["quality_calibration"], calibration_arrays = quality_calibration.to_state()
            arrays = {**arrays, **calibration_arrays}
        added = getattr(self, "new_candidates_", None)  # `routers.new_candidates`
        if added is not None:
            document["new_candidates"], added_arrays = added.to_state()
            arrays = {**arrays, **added_arrays}
        base_arrays = {
            "_input_price": self.input_price_,
            "_output_price": self.output_price_,
            "_sizes": self.sizes_,
            "_output_tokens": self.output_tokens_,
        }
        to_save = {k: np.ascontiguousarray(v) for k, v in {**base_arrays, **arrays}.items()}
        manifest = array_manifest(to_save)
        document["arrays"] = manifest
        document["digest"] = state_digest(self.candidates_, manifest)
        save_file(to_save, directory / "arrays.safetensors")
        (directory / "router.json").write_text(
            json.dumps(document, indent=2, sort_keys=True), encoding="utf-8"
        )
        return directory

    @classmethod
    def load(cls, directory: str | Path, *, embeddings: Embeddings | None = None) -> Self:
        """Load a router saved with `save`; never unpickles or runs code from the files.

        The files must hold this router, or a subclass of it registered under the name
        they give. Called on an abstract contract (`BaseGraphRouter`, say), it loads
        whichever router of that kind the files hold, as `load_router` does.

        Args:
            directory: The directory `save` wrote.
            embeddings: The embedder, required if the router was trained with a custom one.

        Raises:
            RouterLoadError: the files are damaged, or hold another router.
        """
        document, meta_path = read_saved_router(directory)
        saved = document["router"]
        if inspect.isabstract(cls):
            from langchain_llmrouter.routers.registry import load_router

            loaded = load_router(directory, embeddings=embeddings)
            if not isinstance(loaded, cls):
                raise RouterLoadError(f"{meta_path}: holds a {saved} router, not a {cls.__name__}")
            return loaded
        if saved.lower() != cls.name.lower():
            # Another name: a subclass of this router registered under it may load the files.
            from langchain_llmrouter.routers.registry import get_router_class

            other = get_router_class(saved)
            if other is not cls:
                if not issubclass(other, cls):
                    raise RouterLoadError(f"{meta_path}: holds a {saved} router, not {cls.name}")
                return other.load(directory, embeddings=embeddings)
        return cls._from_saved(Path(directory), document, embeddings)

    @classmethod
    def _from_saved(
        cls, directory: Path, document: dict[str, Any], embeddings: Embeddings | None
    ) -> Self:
        """This router, from the checked ``router.json`` document and the arrays beside it."""
        from safetensors import SafetensorError
        from safetensors.numpy import load_file

        from langchain_llmrouter.embeddings import DEFAULT_EMBEDDING_MODEL
        from langchain_llmrouter.embeddings import STATIC_EMBEDDING_MODEL as STATIC_NAME

        meta_path = directory / "router.json"
        saved_embedder = document.get("embeddings")
        if saved_embedder == STATIC_NAME and embeddings is None:
            # The package makes this featuriser itself (from the bundled MiniLM, cached).
            from langchain_llmrouter.static_embeddings import StaticEmbeddings

            embeddings = StaticEmbeddings()
        if saved_embedder and embeddings is not None:
            from langchain_llmrouter.embeddings import embedding_name

            given = embedding_name(embeddings)
            if given != saved_embedder and STATIC_NAME in (given, saved_embedder):
                raise RouterLoadError(
                    f"{directory}: this router was trained with embeddings {saved_embedder!r}, "
                    f"not {given!r}; a router routes only with the featuriser it learnt on"
                )
        if saved_embedder and saved_embedder != DEFAULT_EMBEDDING_MODEL and embeddings is None:
            raise RouterLoadError(
                f"{directory}: this router was trained with embeddings {saved_embedder!r}; "
                "pass the same embedder as embeddings=..."
            )
        router = cls.from_params(
            document.get("params", {}), embeddings=embeddings, source=str(meta_path)
        )
        check_saved_arrays(directory, document)  # the header only: no array data read yet
        try:
            arrays = load_file(str(directory / "arrays.safetensors"))
        except (FileNotFoundError, SafetensorError) as exc:
            raise RouterLoadError(f"{directory}/arrays.safetensors: {exc}") from None
        candidates = [str(c) for c in document["candidates"]]
        router.candidates_ = candidates
        try:
            router.input_price_ = arrays.pop("_input_price")
            router.output_price_ = arrays.pop("_output_price")
            router.sizes_ = arrays.pop("_sizes")
            router.output_tokens_ = arrays.pop("_output_tokens")
            if len(router.input_price_) != len(candidates):
                raise RouterLoadError(
                    f"{directory}: arrays do not match the {len(candidates)} candidates"
                )
            if document.get("quality_calibration"):
                from langchain_llmrouter.routers.calibrate_quality import QualityCalibration

                try:
                    router.quality_calibration_ = QualityCalibration.from_state(
                        document["quality_calibration"], arrays, len(candidates)
                    )
                except ValueError as exc:
                    raise RouterLoadError(f"{directory}: {exc}") from None
            if document.get("new_candidates"):  # sets the state on the router's own candidates
                from langchain_llmrouter.routers.new_candidates import restore_added_candidates

                try:
                    restore_added_candidates(
                        router, document.get("state", {}), document["new_candidates"], arrays
                    )
                except ValueError as exc:
                    raise RouterLoadError(f"{directory}: {exc}") from None
            else:
                router._set_state(document.get("state", {}), arrays)
        except KeyError as exc:
            raise RouterLoadError(
                f"{directory}: saved state is incomplete (no {exc.args[0]!r})"
            ) from None
        except RouterLoadError as exc:
            if str(directory) in str(exc):
                raise
            raise RouterLoadError(f"{directory}: {exc}") from None
        if document.get("calibrations"):
            router.calibrations_ = list(document["calibrations"])
        if isinstance(document.get("tuning"), dict):
            router.tuning_ = document["tuning"]
        router.fitted_ = True
        return router

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"
