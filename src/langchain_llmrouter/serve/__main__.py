"""``python -m langchain_llmrouter.serve``: the same as ``llmrouter serve``."""

from langchain_llmrouter.cli.main import run_verb

if __name__ == "__main__":
    run_verb("serve")
