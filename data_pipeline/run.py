"""``python -m data_pipeline.run``: all three stages in order.

The same as ``llmrouter pipeline run``; the code is `langchain_llmrouter.pipeline`.
"""

from langchain_llmrouter.pipeline.run import main

__all__ = ["main"]

if __name__ == "__main__":
    raise SystemExit(main(prog="python -m data_pipeline.run"))
