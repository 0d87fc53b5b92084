"""``python -m langchain_llmrouter.pipeline <stage>``: the same as
``llmrouter pipeline <stage>``."""

if __name__ == "__main__":
    # Imported here, not at the top: the pipeline sits below the command line.
    from langchain_llmrouter.cli.main import run_verb

    run_verb("pipeline")
