"""End to end: ``examples/router_graph_agent.py`` run as a user runs it (a subprocess), offline
against the local OpenAI-compatible server it starts."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "router_graph_agent.py"


def test_the_router_graph_runs_as_a_node_of_the_agent() -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("LLMROUTER_API_BASE", "API_KEYS")}
    proc = subprocess.run(
        [sys.executable, str(EXAMPLE)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**env, "LLMROUTER_NO_PLUGINS": "1"},
    )
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    # The greeting never reaches the router; the question runs through all its steps, as
    # updates of the subgraph, in order.
    assert "assistant: Hello! Ask me anything." in out
    steps = re.findall(r"\[router\] (\w+):", out)
    assert steps[:2] == ["read_input", "decompose_and_route"]
    assert steps[-2:] == ["aggregate", "finish"]
    assert steps.count("answer_subquestion") == 2
    assert "-> mistral-7b-instruct-v0.3" in out and "-> llama3-chatqa-1.5-70b" in out
    assert "assistant: Apollo 11's lunar module Eagle, in 1969" in out
    used = re.search(r"answered with (.+) for \$([0-9.]+)", out)
    assert used and used.group(1) == "llama3-chatqa-1.5-70b, mistral-7b-instruct-v0.3"
    spent = re.search(r"spent on this conversation: \$([0-9.]+)", out)
    assert spent and float(spent.group(1)) == float(used.group(2)) > 0
