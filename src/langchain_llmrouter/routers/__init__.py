"""Single-round routers: one module per family behind `BaseRouter`, and the registry of
every router name (graph routers included: see `router_kind`)."""

from langchain_llmrouter.routers.base import (
    BaseRouter,
    RouterInput,
    RouterParams,
    RoutingDecision,
    query_text,
)
from langchain_llmrouter.routers.estimator import RouterEstimator
from langchain_llmrouter.routers.policy import choose, rank_candidates
from langchain_llmrouter.routers.registry import (
    RouterKind,
    available_routers,
    create_router,
    get_router_class,
    load_router,
    register_router,
    router_kind,
)

__all__ = [
    "BaseRouter",
    "RouterEstimator",
    "RouterInput",
    "RouterKind",
    "RouterParams",
    "RoutingDecision",
    "available_routers",
    "choose",
    "create_router",
    "get_router_class",
    "load_router",
    "query_text",
    "rank_candidates",
    "register_router",
    "router_kind",
]
