"""Stage 2 (`langchain_llmrouter.pipeline.embed_candidates`): description embeddings in the
candidates JSON."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from pipeline_call_helpers import write_config

from langchain_llmrouter.candidates import CandidatePool
from langchain_llmrouter.embeddings import embed_texts
from langchain_llmrouter.errors import DataFormatError
from langchain_llmrouter.pipeline.config import load_pipeline_config
from langchain_llmrouter.pipeline.embed_candidates import embed_candidates, main


def test_every_entry_keeps_its_fields_and_gains_its_description_embedding(
    tmp_path: Path, shared_data: Path
) -> None:
    path = write_config(tmp_path, base_url=None)
    config = load_pipeline_config(path)
    config.data_path.llm_data = str(shared_data / "default_llm.json")
    target = embed_candidates(config)

    source = json.loads((shared_data / "default_llm.json").read_text())
    written = json.loads(target.read_text())
    assert list(written) == list(source)
    for name, entry in source.items():
        assert {k: v for k, v in written[name].items() if k != "embedding"} == entry
    vectors = np.array([written[n]["embedding"] for n in source])
    expected = embed_texts([source[n]["feature"] for n in source])
    assert vectors.shape == (len(source), 384)
    assert np.allclose(vectors, expected, atol=1e-6)
    # The pool reads it back as LLMRouter's embeddings file.
    pool = CandidatePool.from_json(shared_data / "default_llm.json").add_embeddings(target)
    assert all(c.embedding is not None and len(c.embedding) == 384 for c in pool)


def test_a_candidate_without_description_is_named(tmp_path: Path) -> None:
    path = write_config(tmp_path, base_url=None, models={"good": {}, "mute": {"feature": " "}})
    with pytest.raises(DataFormatError, match=r"llm\.json, field 'mute\.feature': no description"):
        embed_candidates(load_pipeline_config(path))


def test_command_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_config(tmp_path, base_url=None)
    assert main(["--config", str(path)]) == 0
    assert "embedded 2 candidate descriptions (384 dims)" in capsys.readouterr().out
    assert (tmp_path / "out" / "llm_embeddings.json").is_file()
