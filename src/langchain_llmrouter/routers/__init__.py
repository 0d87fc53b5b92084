"""Single-round routers: one module per family behind `BaseRouter`."""

from langchain_llmrouter.routers.base import (
    BaseRouter,
    RouterInput,
    RouterParams,
    RoutingDecision,
    query_text,
)
from langchain_llmrouter.routers.policy import choose, rank_candidates
from langchain_llmrouter.routers.registry import (
    available_routers,
    create_router,
    get_router_class,
    load_router,
    register_router,
)

__all__ = [
    "BaseRouter",
    "RouterInput",
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
]
