"""Stage 2: embed each candidate's description into the candidates JSON.

Reads ``data_path.llm_data`` (LLMRouter's ``default_llm.json`` format), embeds every
candidate's ``feature`` text with the configured embedder (the bundled all-MiniLM-L6-v2 by
default, offline) and writes ``data_path.llm_embedding_data``: the same entries, every field
kept, plus ``embedding`` — the shape of ``default_llm_embeddings.json``, which
`CandidatePool.add_embeddings` and the graph routers read.

Run: ``llmrouter pipeline embed-candidates --config CONFIG`` (from a checkout also
``python -m data_pipeline.embed_candidates --config CONFIG``).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from langchain_llmrouter.candidates import APIKeys, CandidatePool
from langchain_llmrouter.embeddings import embed_texts
from langchain_llmrouter.errors import DataFormatError
from langchain_llmrouter.pipeline._io import cli_main, write_atomic
from langchain_llmrouter.pipeline.commands import STAGES
from langchain_llmrouter.pipeline.config import PipelineConfig, load_pipeline_config


def embed_candidates(config: PipelineConfig) -> Path:
    """Write the candidates JSON with description embeddings; return its path.

    Raises:
        DataFormatError: when the candidates file is malformed or a candidate has no
            description (naming the file and the candidate).
    """
    source = config.input(config.data_path.llm_data, what="data_path.llm_data")
    pool = CandidatePool.from_json(source, api_keys=APIKeys())  # validates every entry
    entries = json.loads(source.read_text(encoding="utf-8"))
    missing = [c.name for c in pool if not c.description.strip()]
    if missing:
        raise DataFormatError(
            "no description to embed (give each candidate a 'feature' text)",
            path=source,
            field=f"{missing[0]}.feature",
        )
    vectors = embed_texts([c.description for c in pool], config.build_embeddings())
    out = {
        name: {**entries[name], "embedding": [round(float(x), 7) for x in vector]}
        for name, vector in zip(pool.names, vectors, strict=True)
    }
    target = config.output(config.data_path.llm_embedding_data)
    write_atomic(target, json.dumps(out, indent=2) + "\n")
    print(f"embedded {len(out)} candidate descriptions ({vectors.shape[1]} dims) -> {target}")
    return target


def run(args: argparse.Namespace) -> int:
    """Run stage 2 on parsed flags (``--config``)."""

    def stage() -> int:
        embed_candidates(load_pipeline_config(args.config))
        return 0

    return cli_main(stage)


def main(
    argv: list[str] | None = None,
    *,
    prog: str = "python -m langchain_llmrouter.pipeline.embed_candidates",
) -> int:
    """Command line: ``--config FILE``; the same as ``llmrouter pipeline embed-candidates``."""
    return run(STAGES["embed-candidates"].parser(prog).parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
