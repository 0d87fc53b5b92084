"""``llmrouter serve``: the OpenAI-compatible routing server (needs the ``serve`` extra)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from langchain_llmrouter._optional import import_optional

DEFAULT_PORT = 8000
DEFAULT_KEEP_ALIVE_S = 65
"""Seconds an idle client connection stays open: longer than the idle timeouts of common
clients and load balancers (httpx and the openai SDK 5 s, AWS ALB 60 s), so the server never
closes a connection just as a client reuses it (uvicorn's own default is 5 s)."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of ``serve``."""
    parser.add_argument(
        "--config", required=True, type=Path, help="serve YAML config (configs/serve/example.yaml)"
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to serve on")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="port to serve on")
    parser.add_argument(
        "--workers", type=int, default=1, help="worker processes (each loads the routers once)"
    )
    parser.add_argument(
        "--no-auth",
        "--no_auth",
        dest="no_auth",
        action="store_true",
        help="serve without API keys (local use only)",
    )
    parser.add_argument(
        "--timeout-keep-alive",
        type=int,
        default=DEFAULT_KEEP_ALIVE_S,
        help=f"seconds an idle client connection stays open (default {DEFAULT_KEEP_ALIVE_S})",
    )
    parser.add_argument(
        "--log-level",
        default="info",
        choices=("critical", "error", "warning", "info", "debug"),
        help="uvicorn's log level",
    )


def run(args: argparse.Namespace) -> int:
    """Check the config and keys (errors print here, as one line), then serve until Ctrl-C."""
    import_optional("fastapi", extra="serve", feature="llmrouter serve")
    uvicorn = import_optional("uvicorn", extra="serve", feature="llmrouter serve")
    from langchain_llmrouter.serve.app import (
        CONFIG_ENV,
        NO_AUTH_ENV,
        auth_from_config,
        create_app,
    )
    from langchain_llmrouter.serve.auth import ServerAuth
    from langchain_llmrouter.serve.deployment import load_serve_config

    if args.workers < 1:
        raise ValueError("--workers must be at least 1")
    config = load_serve_config(args.config)
    auth = ServerAuth.disabled() if args.no_auth else auth_from_config(config)
    where = f"http://{args.host}:{args.port}/v1"
    if args.workers == 1:
        app = create_app(config, auth=auth)
        print(f"Serving OpenAI-compatible routing at {where} (Ctrl-C to stop)", flush=True)
        uvicorn.run(app, **uvicorn_options(args))
        return 0
    # Several workers: each process builds its own app from the config (uvicorn needs a
    # factory it can import), so routers load once per worker.
    os.environ[CONFIG_ENV] = str(args.config.resolve())
    os.environ[NO_AUTH_ENV] = "1" if args.no_auth else "0"
    print(f"Serving OpenAI-compatible routing at {where} with {args.workers} workers", flush=True)
    uvicorn.run(
        "langchain_llmrouter.serve.app:app_from_env",
        factory=True,
        workers=args.workers,
        **uvicorn_options(args),
    )
    return 0


def uvicorn_options(args: argparse.Namespace) -> dict[str, object]:
    """The uvicorn settings of ``serve``'s flags (the same with one worker or several)."""
    return {
        "host": args.host,
        "port": args.port,
        "log_level": args.log_level,
        "timeout_keep_alive": args.timeout_keep_alive,
    }
