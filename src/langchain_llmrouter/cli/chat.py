"""``llmrouter chat``: start the Streamlit chat demo (needs the ``demo`` extra)."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

from langchain_llmrouter._optional import import_optional

DEFAULT_PORT = 8501


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of ``chat``."""
    parser.add_argument(
        "--router", required=True, help="router name (see `llmrouter list-routers`)"
    )
    parser.add_argument("--config", required=True, type=Path, help="inference YAML config")
    parser.add_argument("--host", default="127.0.0.1", help="address to serve on")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="port to serve on")
    parser.add_argument(
        "--mode",
        choices=("current_only", "full_context", "retrieval"),
        default="current_only",
        help="what each message is routed on (default: the last message)",
    )
    parser.add_argument(
        "--top-k",
        "--top_k",
        dest="top_k",
        type=int,
        default=3,
        help="earlier messages in retrieval mode",
    )
    parser.add_argument("--model-dir", type=Path, help="where to look for trained routers")
    parser.add_argument(
        "--feedback-store",
        help="keep the thumbs ratings in this database (a SQLAlchemy URL or SQLite path)",
    )
    parser.add_argument(
        "--cost-weight", type=float, default=0.0, help="the cost_weight slider's starting value"
    )


def app_arguments(args: argparse.Namespace) -> list[str]:
    """The page's own arguments (after ``--`` in ``streamlit run``)."""
    app_args = ["--router", args.router, "--config", str(args.config), "--mode", args.mode]
    app_args += ["--top-k", str(args.top_k), "--cost-weight", str(args.cost_weight)]
    if args.model_dir is not None:
        app_args += ["--model-dir", str(args.model_dir)]
    if args.feedback_store:
        app_args += ["--feedback-store", str(args.feedback_store)]
    return app_args


def command(args: argparse.Namespace) -> list[str]:
    """The ``streamlit run`` command line for these flags."""
    import_optional("streamlit", extra="demo", feature="llmrouter chat")
    script = Path(__file__).resolve().parents[1] / "demo" / "app.py"
    return [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(script),
        "--server.address",
        args.host,
        "--server.port",
        str(args.port),
        "--server.headless",
        "true",
        "--browser.gatherUsageStats",
        "false",
        "--",
        *app_arguments(args),
    ]


def run(args: argparse.Namespace) -> int:
    """Check the config and router (errors print here, not in a browser), then serve the page
    until Ctrl-C."""
    from langchain_llmrouter.demo.session import load_setup, parse_settings

    argv = command(args)
    load_setup(parse_settings(app_arguments(args), {}))
    print(f"Serving the chat demo at http://{args.host}:{args.port} (Ctrl-C to stop)", flush=True)
    try:
        return subprocess.call(argv)
    except KeyboardInterrupt:
        return 0
