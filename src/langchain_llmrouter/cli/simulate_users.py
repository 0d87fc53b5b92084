"""``llmrouter simulate-users``: simulated users' ratings over routing data, as GMTRouter JSONL.

Reads routing data with per-model scores (RouterDC JSON, LLMRouter JSONL or wide CSV) and the
candidates JSON (for prices), simulates users with `simulate_users`, writes the interactions
and, with ``--split-output``, the new-user split (`split_users`) and the planted users.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from langchain_llmrouter.errors import DataFormatError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of ``simulate-users``."""
    parser.add_argument(
        "--data", required=True, type=Path, help="routing data with per-model scores"
    )
    parser.add_argument(
        "--llm-data",
        "--llm_data",
        dest="llm_data",
        type=Path,
        help="candidates JSON (default_llm.json); needed for costs (cost_quality)",
    )
    parser.add_argument(
        "--strategy", required=True, choices=["cost_quality", "hidden_taste"], help="how users rate"
    )
    parser.add_argument("--users", type=int, default=200, help="number of users (default 200)")
    parser.add_argument(
        "--min-interactions", type=int, default=10, help="fewest ratings per user (default 10)"
    )
    parser.add_argument(
        "--max-interactions", type=int, default=60, help="most ratings per user (default 60)"
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument(
        "--output", required=True, type=Path, help="interactions file to write (GMTRouter JSONL)"
    )
    parser.add_argument(
        "--split-output",
        type=Path,
        help="also write the new-user split (train, revealed k = 5/10/20, held out) and the "
        "planted users (users.json) into this folder",
    )


def run(args: argparse.Namespace) -> int:
    """Simulate, write, and print one line per file written."""
    from langchain_llmrouter.candidates import CandidatePool
    from langchain_llmrouter.data import RoutingDataset
    from langchain_llmrouter.personal import (
        make_population,
        simulate_users,
        split_users,
        write_gmt_jsonl,
    )

    pool = CandidatePool.from_json(args.llm_data) if args.llm_data else None
    if not args.data.is_file():
        raise DataFormatError("routing data file not found", path=args.data)
    dataset = RoutingDataset.from_file(args.data, candidates=pool)
    interactions = simulate_users(
        dataset,
        strategy=args.strategy,
        n_users=args.users,
        min_interactions=args.min_interactions,
        max_interactions=args.max_interactions,
        seed=args.seed,
    )
    write_gmt_jsonl(args.output, interactions)
    print(
        f"wrote {len(interactions)} interactions of {args.users} simulated users "
        f"({args.strategy}, seed {args.seed}) to {args.output}"
    )
    if args.split_output:
        split = split_users(interactions, seed=args.seed)
        paths = split.write(args.split_output)
        population = make_population(
            dataset, strategy=args.strategy, n_users=args.users, seed=args.seed
        )
        users = args.split_output / "users.json"
        users.write_text(json.dumps(population.profiles(), indent=1) + "\n", encoding="utf-8")
        print(
            f"wrote the split ({len(split.train_users)} training users, {len(split.new_users)} "
            f"new users) and the planted users: {', '.join(p.name for p in [*paths, users])} "
            f"in {args.split_output}"
        )
    return 0
