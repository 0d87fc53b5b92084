"""``python -m data_pipeline.queries``: stage 1, benchmarks to query files.

The same as ``llmrouter pipeline queries``; the code is `langchain_llmrouter.pipeline`.
"""

from langchain_llmrouter.pipeline.queries import main

__all__ = ["main"]

if __name__ == "__main__":
    raise SystemExit(main(prog="python -m data_pipeline.queries"))
