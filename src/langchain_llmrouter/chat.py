"""``python -m langchain_llmrouter.chat``: the same as ``llmrouter chat``."""

from langchain_llmrouter.cli.main import run_verb

if __name__ == "__main__":
    run_verb("chat")
