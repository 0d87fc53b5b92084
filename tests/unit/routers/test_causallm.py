"""The causal-LM router: contract, label construction, answer-only loss, tokenizer, checkpoints."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from langchain_llmrouter import (
    ConfigError,
    LLMCandidate,
    RoutingDataset,
    create_router,
    load_router,
)
from langchain_llmrouter.routers.causallm import CausalLMRouter, best_labels
from langchain_llmrouter.testing import RouterContractTests

FAST = {"hidden_size": 64, "n_layers": 2, "n_heads": 4, "vocab_size": 1000, "epochs": 3}

NAMES = ["alpha-7b", "beta-70b", "gamma-1.5b"]
TOPICS = {
    "alpha-7b": ["integral", "derivative", "equation", "solve"],
    "beta-70b": ["poem", "story", "essay", "novel"],
}
FILLER = ["please", "the", "a", "of", "about", "my", "for", "this", "quickly", "now"]


def planted(n: int, seed: int) -> RoutingDataset:
    """Queries whose topic word decides the best candidate; gamma is never the best."""
    rng = np.random.default_rng(seed)
    queries, perf = [], []
    for i in range(n):
        best = NAMES[i % 2]
        words = [*rng.choice(FILLER, 4), rng.choice(TOPICS[best]), *rng.choice(FILLER, 3)]
        queries.append(" ".join(words))
        row = {"alpha-7b": 0.2, "beta-70b": 0.3, "gamma-1.5b": 0.1}
        row[best] = 0.9
        perf.append([row[c] for c in NAMES])
    specs = {
        "alpha-7b": LLMCandidate(name="alpha-7b", input_price=0.2, output_price=0.2),
        "beta-70b": LLMCandidate(name="beta-70b", input_price=0.9, output_price=0.9),
        "gamma-1.5b": LLMCandidate(name="gamma-1.5b", input_price=0.05, output_price=0.05),
    }
    cost = np.tile([0.2e-4, 0.9e-4, 0.05e-4], (n, 1))
    return RoutingDataset(
        queries=queries,
        candidates=list(NAMES),
        performance=np.array(perf),
        cost=cost,
        candidate_specs=specs,
    )


@pytest.fixture(scope="module")
def planted_router() -> CausalLMRouter:
    router = CausalLMRouter(
        hidden_size=32, n_heads=2, vocab_size=600, epochs=10, lr=1e-2, patience=3
    )
    return router.fit(planted(240, seed=1))


class TestCausalLMRouterContract(RouterContractTests):
    router_name = "causallm_router"
    contract_data_fixture = "router_slice"
    fast_params = FAST
    bad_params = [
        ({"epochs": 0}, "hparam.epochs"),
        ({"calibration": "isotonic"}, "hparam.calibration"),
        ({"lr": -1.0}, "hparam.lr"),
        ({"max_length": 8}, "hparam.max_length"),
    ]


def test_hidden_size_must_be_a_multiple_of_the_heads() -> None:
    with pytest.raises(ConfigError, match="multiple of n_heads"):
        create_router("causallm_router", hidden_size=60, n_heads=8)


def test_best_label_breaks_ties_by_cost_then_name_and_skips_nan() -> None:
    names = ["b", "a", "c"]
    perf = np.array(
        [
            [1.0, 1.0, 1.0],  # three-way tie: cheapest (c)
            [1.0, 1.0, 0.0],  # a and b tie at the same cost: name order (a)
            [np.nan, 0.2, 0.5],  # NaN never wins
            [np.nan, np.nan, np.nan],  # nothing known
            [0.3, 0.9, 0.9],  # a and c tie: c is cheaper
        ]
    )
    cost = np.tile([2.0, 2.0, 1.0], (5, 1))
    assert best_labels(perf, cost, names).tolist() == [2, 1, 2, -1, 2]
    # The label follows the names, not the column order.
    flipped = best_labels(perf[:, ::-1], cost[:, ::-1], names[::-1])
    assert [names[::-1][j] if j >= 0 else None for j in flipped] == ["c", "a", "c", None, "c"]


def test_loss_is_the_answer_token_only(planted_router: CausalLMRouter) -> None:
    import torch

    router = planted_router
    prompts = router.encode_prompts(["solve the equation", "a story please about my cat"])
    answers = [int(router.name_ids_[0]), int(router.name_ids_[1])]
    batch = router.make_batch(prompts, answers)
    labels = batch["labels"]
    # Exactly one supervised position per row: the token right after "Best LLM:".
    assert (labels != -100).sum(dim=1).tolist() == [1, 1]
    for i, p in enumerate(prompts):
        assert labels[i, len(p)].item() == answers[i]
        assert batch["input_ids"][i, len(p)].item() == answers[i]
    with torch.no_grad():
        ours = router.answer_loss(batch)
        hf = router.model_(
            input_ids=batch["input_ids"],
            attention_mask=batch["attention_mask"],
            labels=labels,
        ).loss
        # An unmasked loss (the peer's) also scores the prompt tokens and differs.
        unmasked = router.model_(
            input_ids=batch["input_ids"],
            attention_mask=batch["attention_mask"],
            labels=torch.where(batch["attention_mask"] > 0, batch["input_ids"], -100),
        ).loss
    assert ours.item() == pytest.approx(hf.item(), rel=1e-5)
    assert abs(unmasked.item() - ours.item()) > 1e-2


def test_tokenizer_is_trained_on_queries_and_names_are_single_tokens(
    planted_router: CausalLMRouter,
) -> None:
    tok = planted_router.tokenizer_
    for name, token in zip(NAMES, planted_router.name_ids_, strict=True):
        assert tok.encode(name, add_special_tokens=False).ids == [token]
        assert tok.encode(f"use {name} now", add_special_tokens=False).ids.count(token) == 1
    # Words frequent in the training queries became whole tokens of the learned vocabulary.
    # (byte-level BPE: "Ġ" marks a leading space); unseen words split into pieces.
    assert {"Ġderivative", "Ġpoem", "Ġquickly"} <= set(tok.get_vocab())
    assert len(tok.encode(" xylophone", add_special_tokens=False).ids) > 2
    assert tok.get_vocab_size(with_added_tokens=True) <= 600 + len(NAMES)
    # The prompt lists every candidate (one token each) before the query.
    prompt = planted_router.encode_prompts(["solve"])[0]
    assert all(
        int(t) in prompt[: -len(planted_router.suffix_ids_) - 1] for t in planted_router.name_ids_
    )


def test_recovers_a_planted_topic_rule_and_never_picks_the_dominated_candidate(
    planted_router: CausalLMRouter,
) -> None:
    held = planted(60, seed=2)
    proba = planted_router.predict_best_proba(held.queries)
    truth = best_labels(held.performance, held.cost, held.candidates)
    assert (proba.argmax(1) == truth).mean() >= 0.9
    assert proba[:, 2].max() < 0.2  # gamma was never the best
    quality = planted_router.predict_quality(held.queries)
    assert ((quality >= 0) & (quality <= 1)).all()
    chosen = [d.model for d in planted_router.route_batch(held.queries)]
    assert "gamma-1.5b" not in chosen
    assert np.mean([c == held.candidates[t] for c, t in zip(chosen, truth, strict=True)]) >= 0.9


def test_same_seed_same_router_and_a_new_seed_differs() -> None:
    data = planted(80, seed=3)
    params: dict[str, Any] = {"hidden_size": 32, "n_heads": 2, "vocab_size": 600, "epochs": 2}
    a = CausalLMRouter(**params).fit(data).predict_best_proba(data.queries[:10])
    b = CausalLMRouter(**params).fit(data).predict_best_proba(data.queries[:10])
    c = CausalLMRouter(**params, random_state=1).fit(data).predict_best_proba(data.queries[:10])
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)


@pytest.mark.parametrize("make_dir", [False, True])
def test_bad_base_model_path_is_a_clear_error(tmp_path: Path, make_dir: bool) -> None:
    path = tmp_path / "not-a-checkpoint"
    if make_dir:
        path.mkdir()
        (path / "README.md").write_text("nothing here")
    router = create_router("causallm_router", base_model=str(path))
    with pytest.raises(ConfigError, match=r"hparam\.base_model") as info:
        router.fit(planted(20, seed=0))
    assert str(path) in str(info.value)


def test_local_checkpoint_trains_saves_and_loads_without_it(tmp_path: Path) -> None:
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    data = planted(120, seed=4)
    raw = Tokenizer(models.WordPiece(unk_token="<unk>"))
    raw.pre_tokenizer = pre_tokenizers.Whitespace()
    raw.train_from_iterator(
        [*data.queries, "alpha beta gamma 7b 70b 1.5b Route the query to the best LLM"],
        trainers.WordPieceTrainer(vocab_size=200, special_tokens=["<unk>", "<pad>", "<s>"]),
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=raw, unk_token="<unk>", pad_token="<pad>", bos_token="<s>"
    )
    assert len(tokenizer("gamma-1.5b")["input_ids"]) > 1  # a multi-token name before training
    config = GPT2Config(vocab_size=len(tokenizer), n_embd=32, n_layer=2, n_head=2, n_positions=128)
    checkpoint = tmp_path / "tiny-gpt2"
    GPT2LMHeadModel(config).save_pretrained(checkpoint, safe_serialization=True)
    tokenizer.save_pretrained(checkpoint)

    router = create_router(
        "causallm_router", base_model=str(checkpoint), epochs=1, max_length=64, lr=1e-3
    ).fit(data)
    assert router.model_.config.model_type == "gpt2"
    assert [router.tokenizer_.encode(n, add_special_tokens=False).ids for n in NAMES] == [
        [int(t)] for t in router.name_ids_
    ]
    queries = planted(30, seed=5).queries
    expected = router.predict_quality(queries)
    decisions = [d.model_dump() for d in router.route_batch(queries, cost_weight=0.5)]
    saved = router.save(tmp_path / "saved")
    shutil.rmtree(checkpoint)
    loaded = load_router(saved)
    np.testing.assert_array_equal(loaded.predict_quality(queries), expected)
    assert [d.model_dump() for d in loaded.route_batch(queries, cost_weight=0.5)] == decisions
