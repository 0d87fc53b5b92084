"""``python -m langchain_llmrouter.eval``: the same as ``llmrouter eval``."""

from langchain_llmrouter.cli.main import run_verb

if __name__ == "__main__":
    run_verb("eval")
