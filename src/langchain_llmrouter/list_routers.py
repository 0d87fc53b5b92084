"""``python -m langchain_llmrouter.list_routers``: the same as ``llmrouter list-routers``."""

from langchain_llmrouter.cli.main import run_verb

if __name__ == "__main__":
    run_verb("list-routers")
