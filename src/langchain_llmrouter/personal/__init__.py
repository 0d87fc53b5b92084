"""Personalised routing: per-user interactions, simulated users, the router contract, feedback.

`langchain_llmrouter.personal.interactions` holds the `Interaction` record and the readers and
writers of GMTRouter's JSONL and PersonalizedRouter's CSV; `.simulate` turns routing data with
per-model scores into simulated users' ratings; `.router` is the `PersonalRouter` contract;
`.feedback` the `FeedbackStore` (SQLAlchemy) and `.online` the `FeedbackLoop` that folds
ratings into users' states; `.evaluate` measures personalised routers.
"""

from importlib import import_module
from typing import TYPE_CHECKING, Any

from langchain_llmrouter.personal.interactions import (
    Exchange,
    Interaction,
    read_gmt_jsonl,
    read_personalized_csv,
    write_gmt_jsonl,
)
from langchain_llmrouter.personal.simulate import (
    SimulationConfig,
    UserPopulation,
    UserSplit,
    make_population,
    simulate_users,
    split_users,
    task_clusters,
)

if TYPE_CHECKING:
    from langchain_llmrouter.personal.feedback import FeedbackStore
    from langchain_llmrouter.personal.online import FeedbackLoop
    from langchain_llmrouter.personal.router import PersonalRouter

# Loaded on first use: the store imports SQLAlchemy, the contract the router base.
_LAZY = {
    "FeedbackStore": "langchain_llmrouter.personal.feedback",
    "FeedbackLoop": "langchain_llmrouter.personal.online",
    "PersonalRouter": "langchain_llmrouter.personal.router",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "Exchange",
    "FeedbackLoop",
    "FeedbackStore",
    "Interaction",
    "PersonalRouter",
    "SimulationConfig",
    "UserPopulation",
    "UserSplit",
    "make_population",
    "read_gmt_jsonl",
    "read_personalized_csv",
    "simulate_users",
    "split_users",
    "task_clusters",
    "write_gmt_jsonl",
]
