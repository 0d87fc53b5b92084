"""Route-quality benchmark (BENCHMARK.md): routers vs single candidates, random and oracle.

Usage: python benchmarks/route_quality.py [--routers knnrouter,...] [--config configs/bench/routerdc.yaml]

The same as `llmrouter bench`; kept here so every benchmark lives in benchmarks/.
"""

from __future__ import annotations

import sys

from langchain_llmrouter.cli.main import main

if __name__ == "__main__":
    sys.exit(main(["bench", *sys.argv[1:]]))
