"""The router contract as plain functions: what every single-round router must do.

Each ``check_*`` function raises `AssertionError` (with the router's name and what went wrong)
when a router breaks one rule of the contract; `check_router` runs them all. They need no test
framework; `langchain_llmrouter.testing.RouterContractTests` runs the same checks as pytest
tests, one test per check.

The checks need routing data: by default the synthetic set of
`langchain_llmrouter.testing.contract_data` (no files, downloads or model weights); pass your
own `ContractData` to run the contract on real data.
"""

from __future__ import annotations

import inspect
import itertools
import json
import re
import tempfile
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from langchain_llmrouter.testing.contract_data import ContractData, make_contract_data

if TYPE_CHECKING:
    from langchain_llmrouter.candidates import CandidatePool
    from langchain_llmrouter.data import RoutingDataset
    from langchain_llmrouter.routers.base import BaseRouter

__all__ = [
    "CHECKS",
    "check_bad_params_name_the_field",
    "check_beats_random",
    "check_cost_weight_never_raises_the_average_cost",
    "check_params_match_init",
    "check_predictions_cover_every_candidate",
    "check_registered",
    "check_router",
    "check_routing_before_fit_raises",
    "check_save_load_gives_identical_decisions",
    "check_unknown_param_lists_the_valid_ones",
    "check_usable_inside_router_chat_model",
    "chosen_quality",
    "fit_router",
    "router_class",
    "served_pool",
]

BadParams = Sequence[tuple[dict[str, Any], str]]
"""(hyperparameters, the field the error must name) pairs that must be rejected."""

PICKLE_MAGIC = (b"\x80\x02", b"\x80\x03", b"\x80\x04", b"\x80\x05")
ZIP_MAGIC = b"PK\x03\x04"  # torch.save writes a zip holding a pickle
COST_WEIGHTS = (0.0, 0.03, 0.3, 3.0, 30.0)
"""The cost weights `check_cost_weight_never_raises_the_average_cost` steps through."""


# --- helpers -------------------------------------------------------------------------------


def router_class(router: type[BaseRouter] | str) -> type[BaseRouter]:
    """The class of a router given as a class or a registry name.

    Raises:
        TypeError: If it is not a single-round router (a `BaseRouter` subclass that is not a
            graph router): graph routers have a contract of their own.
    """
    from langchain_llmrouter.routers.base import BaseRouter
    from langchain_llmrouter.routers.registry import get_router_class

    cls: Any = get_router_class(router) if isinstance(router, str) else router
    if not (isinstance(cls, type) and issubclass(cls, BaseRouter)) or cls.graph_router:
        raise TypeError(f"{router!r} is not a single-round router (a BaseRouter subclass)")
    return cls


def _label(router: type[BaseRouter] | str) -> str:
    return router if isinstance(router, str) else router.name


def _query_emb(router: BaseRouter, emb: np.ndarray) -> np.ndarray | None:
    return emb if router.uses_embeddings else None


def chosen_quality(data: RoutingDataset, models: list[str]) -> np.ndarray:
    """The true quality of the candidate chosen for each query."""
    cols = [data.candidates.index(m) for m in models]
    return np.nan_to_num(data.performance[np.arange(len(data)), cols])


def fit_router(
    router: type[BaseRouter] | str, params: dict[str, Any], data: ContractData
) -> BaseRouter:
    """A router built from ``params`` (validated) and fitted on ``data.fit``."""
    built = router_class(router).from_params(dict(params), embeddings=data.embeddings)
    emb = data.fit_emb if built.uses_embeddings else None
    return built.fit(data.fit, query_embeddings=emb)


def _raises(
    error: type[Exception], fn: Callable[[], object], what: str, match: str | None = None
) -> Exception:
    """The error ``fn`` raises; AssertionError when it raises none or another kind."""
    try:
        fn()
    except error as exc:
        if match is not None and not re.search(match, str(exc)):
            raise AssertionError(f"{what}: {error.__name__} {str(exc)!r} lacks {match!r}") from exc
        return exc
    except Exception as exc:
        raise AssertionError(
            f"{what}: expected {error.__name__}, got {type(exc).__name__}: {exc}"
        ) from exc
    raise AssertionError(f"{what}: expected {error.__name__}, nothing was raised")


# --- checks without a fitted router --------------------------------------------------------


def check_registered(router: type[BaseRouter] | str) -> None:
    """The registry returns this very class under the router's ``name`` (so `load_router`,
    configs and the CLI build it)."""
    from langchain_llmrouter.errors import UnknownRouterError
    from langchain_llmrouter.routers.registry import get_router_class

    cls = router_class(router)
    try:
        found: Any = get_router_class(cls.name)
    except UnknownRouterError:
        found = None
    assert found is cls, (
        f"{cls.name}: the registry holds {found!r} under this name, not {cls!r}; decorate the "
        "class with @register_router(), and for a plugin file found by discovery "
        "(./custom_routers/) name it by its registry name instead of importing the file"
    )


def check_params_match_init(router: type[BaseRouter] | str) -> None:
    """Every ``__init__`` hyperparameter is a ``Params`` field with the same default.

    ``Params`` validates configs and documents the defaults, ``__init__`` is what
    `create_router` calls: they must agree. An ``__init__`` default of None that ``__init__``
    replaces (the idiom for a mutable default such as a list) counts as the value it stores,
    read back with ``get_params()`` from a router built with no arguments. ``Params`` may hold
    fields that ``__init__`` does not take (a baseline inherits ``cost_weight`` and rejects it).
    """
    cls = router_class(router)
    fields = cls.Params.model_fields
    signature = inspect.signature(cls.__init__)
    names = cls._param_names()
    problems = []
    for name in names:
        parameter = signature.parameters[name]
        if name not in fields:
            problems.append(f"{name!r} is an __init__ argument but not a field of Params")
            continue
        if parameter.default is inspect.Parameter.empty:
            problems.append(f"{name!r} has no default in __init__")
            continue
        expected = fields[name].get_default(call_default_factory=True)
        if parameter.default is not None and parameter.default != expected:
            problems.append(
                f"{name!r}: Params default {expected!r}, __init__ default {parameter.default!r}"
            )
    if not problems:
        built = cls()
        for name, value in built.get_params().items():
            expected = fields[name].get_default(call_default_factory=True)
            if value != expected:
                problems.append(
                    f"{name!r}: Params default {expected!r}, {cls.__name__}() stores {value!r}"
                )
    assert not problems, f"{cls.name}: Params and __init__ disagree: " + "; ".join(problems)


def check_bad_params_name_the_field(router: type[BaseRouter] | str, bad_params: BadParams) -> None:
    """Each bad hyperparameter raises `ConfigError` naming ``hparam.<field>``."""
    from langchain_llmrouter.errors import ConfigError

    assert bad_params, "list at least one bad hyperparameter"
    cls = router_class(router)
    for params, field in bad_params:

        def build(params: dict[str, Any] = params) -> object:
            return cls.from_params(dict(params))

        error = _raises(ConfigError, build, f"{cls.name}{params}")
        assert field in str(error), (params, str(error))


def check_unknown_param_lists_the_valid_ones(router: type[BaseRouter] | str) -> None:
    """An unknown hyperparameter raises `ConfigError` naming it and listing the valid ones."""
    from langchain_llmrouter.errors import ConfigError

    cls = router_class(router)
    error = _raises(
        ConfigError,
        lambda: cls.from_params({"no_such_knob": 1}),
        f"{cls.name}(no_such_knob=1)",
        match="valid:",
    )
    assert "hparam.no_such_knob" in str(error)


def check_routing_before_fit_raises(
    router: type[BaseRouter] | str, params: dict[str, Any], data: ContractData | None = None
) -> None:
    """Routing with an unfitted router raises `NotFittedError`."""
    from langchain_llmrouter.errors import NotFittedError

    embeddings = None if data is None else data.embeddings
    built = router_class(router).from_params(dict(params), embeddings=embeddings)
    _raises(
        NotFittedError, lambda: built.route("What is 2 + 2?"), f"{built.name}: route before fit"
    )


# --- checks of a fitted router -------------------------------------------------------------


def check_beats_random(fitted: BaseRouter, data: ContractData, min_margin: float = 0.03) -> None:
    """On held-out queries the router's choices beat a seeded random router and the mean of
    a uniform choice by ``min_margin``."""
    held = data.held
    decisions = fitted.route_batch(held.queries, query_embeddings=_query_emb(fitted, data.held_emb))
    quality = chosen_quality(held, [d.model for d in decisions]).mean()
    random = router_class("randomrouter").from_params({"seed": 0})
    random.fit_candidates(held.candidate_info())
    random_models = [d.model for d in random.route_batch(held.queries)]
    random_quality = chosen_quality(held, random_models).mean()
    # The expected quality of a uniform choice, too, so a lucky seed cannot hide a failure.
    uniform = float(np.nanmean(np.nan_to_num(held.performance)))
    assert quality > max(random_quality, uniform) + min_margin, (
        f"{fitted.name}: held-out quality {quality:.3f}, "
        f"random {random_quality:.3f}, uniform {uniform:.3f}"
    )


def check_predictions_cover_every_candidate(fitted: BaseRouter, data: ContractData) -> None:
    """`predict_quality` gives a finite score for every candidate of the data, in its order."""
    held = data.held
    predicted = fitted.predict_quality(
        held.queries[:20], query_embeddings=_query_emb(fitted, data.held_emb[:20])
    )
    assert predicted.shape == (20, len(held.candidates))
    assert np.isfinite(predicted).all()
    assert fitted.candidates_ == held.candidates


def check_save_load_gives_identical_decisions(
    fitted: BaseRouter, data: ContractData, directory: str | Path | None = None
) -> None:
    """`save` writes only JSON and safetensors (no pickle); `load_router`, by directory or by
    name and directory, gives the same class, parameters, predictions and decisions."""
    if directory is None:
        with tempfile.TemporaryDirectory() as tmp:
            check_save_load_gives_identical_decisions(fitted, data, Path(tmp))
        return
    from safetensors.numpy import load_file

    from langchain_llmrouter.routers.registry import load_router

    saved = fitted.save(Path(directory) / fitted.name)
    document = json.loads((saved / "router.json").read_text(encoding="utf-8"))
    assert document["router"] == fitted.name
    for path in saved.rglob("*"):
        if not path.is_file():
            continue
        if path.suffix == ".safetensors":
            load_file(path)  # parses as safetensors: tensors and a JSON header only
        elif path.suffix == ".json":
            json.loads(path.read_text(encoding="utf-8"))
        else:
            head = path.read_bytes()[:4]
            assert not head.startswith(PICKLE_MAGIC), f"{path} is a pickle"
            assert head != ZIP_MAGIC, f"{path} is a torch.save zip (pickle inside)"

    queries = data.held.queries[:60]
    emb = _query_emb(fitted, data.held_emb[:60])
    embeddings = data.embeddings
    for loaded in (
        load_router(saved, embeddings=embeddings),
        load_router(fitted.name, saved, embeddings=embeddings),
    ):
        assert type(loaded) is type(fitted)
        assert loaded.get_params() == fitted.get_params()
        np.testing.assert_array_equal(
            loaded.predict_quality(queries, query_embeddings=emb),
            fitted.predict_quality(queries, query_embeddings=emb),
        )
        for weight in (0.0, 1.0):
            expected = fitted.route_batch(queries, cost_weight=weight, query_embeddings=emb)
            got = loaded.route_batch(queries, cost_weight=weight, query_embeddings=emb)
            assert [d.model_dump() for d in got] == [d.model_dump() for d in expected]


def check_cost_weight_never_raises_the_average_cost(fitted: BaseRouter, data: ContractData) -> None:
    """A higher ``cost_weight`` never raises the mean estimated cost, and the highest one
    lowers it."""
    held = data.held
    emb = _query_emb(fitted, data.held_emb)
    means = []
    for weight in COST_WEIGHTS:
        decisions = fitted.route_batch(held.queries, cost_weight=weight, query_embeddings=emb)
        means.append(float(np.mean([d.est_cost for d in decisions])))
    assert all(b <= a for a, b in itertools.pairwise(means)), means
    assert means[-1] < means[0], f"{fitted.name}: cost_weight changed nothing: {means}"


def served_pool(data: ContractData, base_url: str) -> CandidatePool:
    """The data's candidates, every one served by the OpenAI-compatible server at
    ``base_url`` (no keys, no retries)."""
    from langchain_llmrouter.candidates import APIKeys, CandidatePool

    return CandidatePool(
        [c.model_copy(update={"api_endpoint": None}) for c in data.pool],
        api_endpoint=base_url,
        api_keys=APIKeys(),
        chat_model_kwargs={"max_retries": 0},
    )


def check_usable_inside_router_chat_model(
    fitted: BaseRouter, data: ContractData, base_url: str | None = None
) -> None:
    """`RouterChatModel` answers through the router: the routing metadata names it and its
    choice, and the chosen candidate answers (a local `FakeOpenAIServer` serves them all).

    Args:
        base_url: A running `FakeOpenAIServer`'s URL; None starts one for the check.
    """
    if base_url is None:
        from langchain_llmrouter.testing.openai_server import FakeOpenAIServer

        with FakeOpenAIServer() as server:
            check_usable_inside_router_chat_model(fitted, data, server.base_url)
        return
    from langchain_core.messages import HumanMessage

    from langchain_llmrouter.chat_model import RouterChatModel

    query = "What is the capital of France?"
    pool = served_pool(data, base_url)
    model = RouterChatModel(router=fitted, candidates=pool)
    reply = model.invoke([HumanMessage(query)])
    routing = reply.response_metadata["routing"]
    assert routing["router"] == fitted.name
    assert routing["model"] == fitted.route(query).model
    served_model = pool[routing["model"]].model
    assert reply.text.startswith(f"[{served_model}]")


# --- everything at once --------------------------------------------------------------------

CHECKS = (
    "check_registered",
    "check_params_match_init",
    "check_bad_params_name_the_field",
    "check_unknown_param_lists_the_valid_ones",
    "check_routing_before_fit_raises",
    "check_beats_random",
    "check_predictions_cover_every_candidate",
    "check_save_load_gives_identical_decisions",
    "check_cost_weight_never_raises_the_average_cost",
    "check_usable_inside_router_chat_model",
)
"""The checks `check_router` runs, in order (names for its ``skip`` argument)."""


def check_router(
    router: type[BaseRouter] | str,
    *,
    params: dict[str, Any] | None = None,
    bad_params: BadParams = (),
    data: ContractData | None = None,
    min_margin_over_random: float = 0.03,
    skip: Iterable[str] = (),
) -> None:
    """Run the whole router contract on one router (without pytest).

    Args:
        router: The router class or its registry name.
        params: Hyperparameters that train in seconds on ``data``.
        bad_params: (hyperparameters, the field the error must name) pairs that must be
            rejected; at least one.
        data: The routing data (default: `make_contract_data()`).
        min_margin_over_random: How far above random the held-out quality must be.
        skip: Names from `CHECKS` not to run (a router that by design breaks a rule, such as
            one that only ever chooses between two candidates).

    Raises:
        AssertionError: naming the first check that failed and why.
    """
    skipped = set(skip)
    unknown = sorted(skipped - set(CHECKS))
    if unknown:
        raise ValueError(f"unknown checks {unknown}; valid: {', '.join(CHECKS)}")
    params = dict(params or {})
    data = make_contract_data() if data is None else data
    fitted: list[BaseRouter] = []

    def fitted_router() -> BaseRouter:
        if not fitted:
            fitted.append(fit_router(router, params, data))
        return fitted[0]

    runs: dict[str, Callable[[], None]] = {
        "check_registered": lambda: check_registered(router),
        "check_params_match_init": lambda: check_params_match_init(router),
        "check_bad_params_name_the_field": lambda: check_bad_params_name_the_field(
            router, bad_params
        ),
        "check_unknown_param_lists_the_valid_ones": lambda: (
            check_unknown_param_lists_the_valid_ones(router)
        ),
        "check_routing_before_fit_raises": lambda: check_routing_before_fit_raises(
            router, params, data
        ),
        "check_beats_random": lambda: check_beats_random(
            fitted_router(), data, min_margin_over_random
        ),
        "check_predictions_cover_every_candidate": lambda: check_predictions_cover_every_candidate(
            fitted_router(), data
        ),
        "check_save_load_gives_identical_decisions": lambda: (
            check_save_load_gives_identical_decisions(fitted_router(), data)
        ),
        "check_cost_weight_never_raises_the_average_cost": lambda: (
            check_cost_weight_never_raises_the_average_cost(fitted_router(), data)
        ),
        "check_usable_inside_router_chat_model": lambda: check_usable_inside_router_chat_model(
            fitted_router(), data
        ),
    }
    for name in CHECKS:
        if name in skipped:
            continue
        try:
            runs[name]()
        except AssertionError as exc:
            raise AssertionError(f"{_label(router)} fails {name}: {exc}") from exc
