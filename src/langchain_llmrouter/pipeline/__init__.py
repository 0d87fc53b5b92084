"""The data pipeline: collect benchmark queries, call candidates, score and format routing data.

Run each stage with `llmrouter pipeline <stage>` or, from a repository checkout,
`python -m data_pipeline.<stage>`.
"""
