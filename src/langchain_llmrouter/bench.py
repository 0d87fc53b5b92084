"""``python -m langchain_llmrouter.bench``: the same as ``llmrouter bench``."""

from langchain_llmrouter.cli.main import run_verb

if __name__ == "__main__":
    run_verb("bench")
