"""Personalised routing data: per-user interactions, their file formats, simulated users.

`langchain_llmrouter.personal.interactions` holds the `Interaction` record and the readers and
writers of GMTRouter's JSONL and PersonalizedRouter's CSV;
`langchain_llmrouter.personal.simulate` turns routing data with per-model scores into
simulated users' ratings and splits users for the new-user evaluation.
"""

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
)

__all__ = [
    "Exchange",
    "Interaction",
    "SimulationConfig",
    "UserPopulation",
    "UserSplit",
    "make_population",
    "read_gmt_jsonl",
    "read_personalized_csv",
    "simulate_users",
    "split_users",
    "write_gmt_jsonl",
]
