"""``python -m data_pipeline.embed_candidates``: stage 2, candidate description embeddings.

The same as ``llmrouter pipeline embed-candidates``; the code is `langchain_llmrouter.pipeline`.
"""

from langchain_llmrouter.pipeline.embed_candidates import main

__all__ = ["main"]

if __name__ == "__main__":
    raise SystemExit(main(prog="python -m data_pipeline.embed_candidates"))
