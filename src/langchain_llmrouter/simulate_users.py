"""``python -m langchain_llmrouter.simulate_users``: the same as ``llmrouter simulate-users``."""

from langchain_llmrouter.cli.main import run_verb

if __name__ == "__main__":
    run_verb("simulate-users")
