"""``llmrouter infer``: route queries (and optionally call the chosen candidates)."""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from langchain_llmrouter.cli.common import (
    add_load_model_arg,
    add_router_args,
    candidate_pool,
    check_writable,
    router_config,
    trained_router,
)
from langchain_llmrouter.errors import ConfigError, DataFormatError
from langchain_llmrouter.jsonl import read_text

if TYPE_CHECKING:
    from langchain_llmrouter.graphs.base import BaseGraphRouter


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of ``infer``."""
    add_router_args(parser)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--query", help="one query to route")
    source.add_argument(
        "--input", type=Path, help="queries: .txt (one per line), .json (list), .jsonl"
    )
    parser.add_argument(
        "--output", type=Path, help="write records here (.jsonl: one per line; .json: a list)"
    )
    parser.add_argument("--route-only", action="store_true", help="only route; call no LLM")
    parser.add_argument("--cost-weight", type=float, help="override the router's cost_weight")
    parser.add_argument("--budget", type=float, help="max estimated dollars per call")
    parser.add_argument(
        "--user", help="route for this user (personalised routers; others route everyone alike)"
    )
    add_load_model_arg(parser)
    parser.add_argument("--max-tokens", type=int, help="max tokens per answer")
    parser.add_argument("--temperature", type=float, help="sampling temperature")


def read_queries(path: Path) -> list[str]:
    """Queries from a .txt, .json or .jsonl file (strings or objects with a "query")."""
    if not path.is_file():
        raise DataFormatError("input file not found", path=path)
    suffix = path.suffix.lower()
    text = read_text(path)
    if suffix == ".txt":
        return [line.strip() for line in text.splitlines() if line.strip()]
    if suffix == ".json":
        try:
            items = json.loads(text)
        except json.JSONDecodeError as exc:
            raise DataFormatError(f"invalid JSON: {exc.msg}", path=path, line=exc.lineno) from None
        if not isinstance(items, list):
            raise DataFormatError("expected a JSON list of queries", path=path, line=1)
        return [_query_of(item, path, None, i) for i, item in enumerate(items)]
    if suffix == ".jsonl":
        queries = []
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                item = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataFormatError(f"invalid JSON: {exc.msg}", path=path, line=number) from None
            queries.append(_query_of(item, path, number, None))
        return queries
    raise DataFormatError(
        f"unsupported input suffix {suffix!r}; use .txt, .json or .jsonl", path=path
    )


def _query_of(item: Any, path: Path, line: int | None, index: int | None) -> str:
    if isinstance(item, str) and item.strip():
        return item
    if isinstance(item, dict) and isinstance(item.get("query"), str) and item["query"].strip():
        return str(item["query"])
    field = "query" if index is None else f"[{index}].query"
    raise DataFormatError(
        "expected a non-empty string or an object with a 'query' string",
        path=path,
        line=line,
        field=field,
    )


def run(args: argparse.Namespace) -> int:
    """Route (and answer) the queries; write one record per query."""
    name, config = router_config(args)
    for flag, value, ok in (
        ("--cost-weight", args.cost_weight, lambda v: math.isfinite(v) and v >= 0),
        ("--budget", args.budget, lambda v: math.isfinite(v) and v > 0),
        ("--max-tokens", args.max_tokens, lambda v: v > 0),
    ):
        if value is not None and not ok(value):
            bound = ">= 0" if flag == "--cost-weight" else "> 0"
            raise ConfigError(f"{flag} must be {bound} and finite, got {value}")
    if args.output is not None:
        check_writable(args.output, what="--output", directory=False)
    model_kwargs: dict[str, Any] = {}
    max_tokens = args.max_tokens if args.max_tokens is not None else config.max_tokens
    temperature = args.temperature if args.temperature is not None else config.temperature
    if max_tokens:
        model_kwargs["max_tokens"] = max_tokens
    if temperature is not None:
        model_kwargs["temperature"] = temperature
    pool = candidate_pool(config, chat_model_kwargs=model_kwargs)
    router = trained_router(name, config, pool, override=args.load_model_path)
    queries = [args.query] if args.query is not None else read_queries(args.input)
    if not queries:
        raise DataFormatError("no queries in the input file", path=args.input)
    options = {"cost_weight": args.cost_weight, "budget": args.budget, "user_id": args.user}
    from langchain_llmrouter.graphs.base import BaseGraphRouter

    if isinstance(router, BaseGraphRouter):  # it answers by running its graph
        answered = _run_graph(name, router, pool, config, queries, args)
        _write(answered, args.output, single=args.query is not None)
        return _exit_status(answered, route_only=False)
    decisions = router.route_batch(queries, **options)
    records: list[dict[str, Any]] = [
        {
            "query": q,
            "model_name": d.model,
            "scores": d.scores,
            "est_cost": d.est_cost,
            "cost_weight": d.cost_weight,
            "reason": d.reason,
            **({"user_id": d.user_id, "personalised": d.personalised} if d.user_id else {}),
        }
        for q, d in zip(queries, decisions, strict=True)
    ]
    if not args.route_only:
        for chosen in sorted({d.model for d in decisions}):
            # A missing endpoint or key is one mistake, not one failure per query: say it once.
            pool.chat_model(chosen)
        _answer(records, router, pool, config, options)
    _write(records, args.output, single=args.query is not None)
    return _exit_status(records, route_only=args.route_only)


def _exit_status(records: list[dict[str, Any]], *, route_only: bool) -> int:
    failed = sum(1 for r in records if "error" in r)
    if failed:
        print(
            f"{failed} of {len(records)} queries failed; see their 'error' field", file=sys.stderr
        )
    return 1 if failed == len(records) and not route_only else 0


def _run_graph(
    name: str,
    router: BaseGraphRouter,
    pool: Any,
    config: Any,
    queries: list[str],
    args: argparse.Namespace,
) -> list[dict[str, Any]]:
    """Answer with a multi-round router's graph; one record per query with its call trace."""
    from langchain_llmrouter.graphs.chat_model import RouterGraphChatModel

    if args.route_only:
        raise ConfigError(
            f"{name} is a multi-round router: it decides while calling LLMs, so --route-only "
            "cannot give its routing without answering"
        )
    if args.budget is not None:
        raise ConfigError(
            f"--budget is a per-call limit of single-round routers; {name} is bounded by "
            "hparam.max_cost instead"
        )
    overrides: dict[str, Any] = {}
    if config.base_model and "llm" in router.get_params():
        overrides["llm"] = config.base_model
    if args.cost_weight is not None:
        from langchain_llmrouter.routers.knn import KNNRouter

        # Only the kNN multi-round graph routes with a cost policy (its sub-questions);
        # automix's cost_weight is a training objective, the others have none.
        if not isinstance(router, KNNRouter):
            raise ConfigError(
                f"--cost-weight does not apply to {name}: its graph has no per-query cost "
                "policy (bound its spending with hparam.max_cost)"
            )
        overrides["cost_weight"] = args.cost_weight
    llm = RouterGraphChatModel(graph=router.as_graph(pool, **overrides))
    inputs: list[Any] = list(queries)
    messages = llm.batch(
        inputs, config={"max_concurrency": config.max_concurrency}, return_exceptions=True
    )
    records: list[dict[str, Any]] = []
    for query, message in zip(queries, messages, strict=True):
        record: dict[str, Any] = {"query": query, "router": name}
        if isinstance(message, BaseException):
            record["error"] = f"{type(message).__name__}: {message}"
        else:
            routing = message.response_metadata.get("routing", {})
            record.update(
                response=message.text,
                models=routing.get("models", []),
                stop_reason=routing.get("stop_reason"),
                actual_cost=routing.get("cost"),
                calls=routing.get("calls", []),
                usage=dict(message.usage_metadata or {}),
            )
        records.append(record)
    return records


def _answer(
    records: list[dict[str, Any]], router: Any, pool: Any, config: Any, options: dict[str, Any]
) -> None:
    from langchain_llmrouter.chat_model import RouterChatModel

    llm = RouterChatModel(
        router=router,
        candidates=pool,
        routing_mode=config.routing_mode,
        retrieval_top_k=config.retrieval_top_k,
    )
    call_options = {k: v for k, v in options.items() if v is not None}
    messages = llm.batch(
        [r["query"] for r in records],
        config={"max_concurrency": config.max_concurrency},
        return_exceptions=True,
        **call_options,
    )
    for record, message in zip(records, messages, strict=True):
        if isinstance(message, BaseException):
            record["error"] = f"{type(message).__name__}: {message}"
            continue
        routing = message.response_metadata.get("routing", {})
        record.update(
            model_name=routing.get("model", record["model_name"]),
            response=message.text,
            fallback=routing.get("fallback", False),
            actual_cost=routing.get("actual_cost"),
            usage=dict(message.usage_metadata or {}),
        )


def _write(records: list[dict[str, Any]], output: Path | None, *, single: bool) -> None:
    if output is None:
        if single:
            print(json.dumps(records[0], indent=2))
        else:
            for record in records:
                print(json.dumps(record))
        return
    if output.suffix.lower() == ".json":
        text = json.dumps(records, indent=2) + "\n"
    else:
        text = "".join(json.dumps(r) + "\n" for r in records)
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(text, encoding="utf-8")
    except OSError as exc:  # checked before routing, but the disk may have changed since
        raise DataFormatError(f"cannot write the records: {exc.strerror}", path=output) from None
    print(f"wrote {len(records)} records to {output}", file=sys.stderr)
