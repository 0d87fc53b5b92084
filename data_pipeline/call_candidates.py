"""``python -m data_pipeline.call_candidates``: stage 3, calls, scores and routing data.

The same as ``llmrouter pipeline call-candidates``; the code is `langchain_llmrouter.pipeline`.
"""

from langchain_llmrouter.pipeline.call_candidates import main

__all__ = ["main"]

if __name__ == "__main__":
    raise SystemExit(main(prog="python -m data_pipeline.call_candidates"))
