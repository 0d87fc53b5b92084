"""``python -m langchain_llmrouter.calibrate``: the same as ``llmrouter calibrate``."""

from langchain_llmrouter.cli.main import run_verb

if __name__ == "__main__":
    run_verb("calibrate")
