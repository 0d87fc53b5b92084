"""``python -m langchain_llmrouter.train``: the same as ``llmrouter train``."""

from langchain_llmrouter.cli.main import run_verb

if __name__ == "__main__":
    run_verb("train")
