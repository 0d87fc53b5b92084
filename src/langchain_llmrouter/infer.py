"""``python -m langchain_llmrouter.infer``: the same as ``llmrouter infer``."""

from langchain_llmrouter.cli.main import run_verb

if __name__ == "__main__":
    run_verb("infer")
