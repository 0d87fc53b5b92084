"""The ``llmrouter`` command line: train, infer, eval, bench, list-routers."""
