"""Causal-LM router: a small language model fine-tuned to name the best candidate.

A prompt lists the candidates and the query and ends with ``Best LLM:``; the model (a local
checkpoint via ``base_model``, or a tiny Llama-style model trained from scratch) learns the
best candidate's name as the next token, so one forward pass scores every candidate, and a
mixture over the training labels turns P(best) into an expected quality. The method, where it
departs from LLMRouter's ``causallm_router``, and its benchmark figures:
``docs/routers/causallm.md``.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Self, cast

import numpy as np
from pydantic import Field, model_validator

from langchain_llmrouter.errors import ConfigError
from langchain_llmrouter.routers._torch import check_config_fits_weights, torch_threads
from langchain_llmrouter.routers.base import BaseRouter, RouterParams

if TYPE_CHECKING:
    import torch
    from langchain_core.embeddings import Embeddings

    from langchain_llmrouter.data import RoutingDataset

logger = logging.getLogger(__name__)

PROMPT_INTRO = "Route the query to the best LLM.\nCandidates:"
PROMPT_QUERY = "\nQuery: "
PROMPT_ANSWER = "\nBest LLM:"
PAD, BOS, UNK = "[PAD]", "[BOS]", "[UNK]"
MIXTURE_PRIOR = 5.0
"""Pseudo-queries at a candidate's overall mean added to each row of the mixture matrix."""
TEMPERATURES = np.exp(np.linspace(np.log(0.25), np.log(8.0), 41))
"""Grid searched for the softmax temperature on the validation split."""


class CausalLMParams(RouterParams):
    base_model: str | None = None
    """A local Hugging Face causal-LM checkpoint directory; None builds a tiny model."""
    n_layers: int = Field(default=2, ge=1, le=48)
    """Transformer layers of the tiny model (ignored with base_model)."""
    hidden_size: int = Field(default=128, ge=8, le=4096)
    """Hidden size of the tiny model (ignored with base_model)."""
    n_heads: int = Field(default=4, ge=1, le=64)
    """Attention heads of the tiny model; must divide hidden_size (ignored with base_model)."""
    vocab_size: int = Field(default=4000, ge=300, le=100_000)
    """BPE vocabulary trained on the training queries (ignored with base_model)."""
    max_length: int = Field(default=128, ge=32, le=8192)
    """Most tokens per prompt; longer queries keep their head."""
    epochs: int = Field(default=6, ge=1, le=1000)
    """Most passes over the training queries."""
    batch_size: int = Field(default=32, ge=1, le=4096)
    """Queries per optimisation step."""
    lr: float = Field(default=2e-3, gt=0, le=1.0)
    """Peak AdamW learning rate (linear warm-up over 5% of steps, then cosine decay)."""
    weight_decay: float = Field(default=0.01, ge=0)
    """AdamW weight decay."""
    val_fraction: float = Field(default=0.1, ge=0, lt=1)
    """Training queries held out for early stopping and the temperature (0: neither)."""
    patience: int = Field(default=2, ge=1)
    """Epochs without a better validation loss before stopping."""
    num_threads: int | None = Field(default=1, ge=1, le=256)
    """Torch CPU threads while fitting and scoring (None: leave torch's setting)."""
    calibration: Literal["mixture", "none"] = "mixture"
    """``mixture``: expected quality from P(best) via the training labels; ``none``: raw P(best)."""
    random_state: int = 0
    """Seed of the initial weights, the validation split and the batch order."""

    @model_validator(mode="after")
    def _heads_divide_hidden(self) -> Self:
        if self.hidden_size % self.n_heads:
            raise ValueError(
                f"hidden_size ({self.hidden_size}) must be a multiple of n_heads ({self.n_heads})"
            )
        return self


def best_labels(performance: np.ndarray, cost: np.ndarray, names: list[str]) -> np.ndarray:
    """Index of the best candidate per query; -1 where every score is NaN.

    The best has the highest performance; ties go to the lower cost (NaN cost last),
    then to the alphabetically first name, so the label never depends on column order.
    """
    perf = np.asarray(performance, dtype=np.float64)
    cost = np.nan_to_num(np.asarray(cost, dtype=np.float64), nan=np.inf)
    name_rank = np.argsort(np.argsort(np.array(names, dtype=object)))
    labels = np.full(len(perf), -1, dtype=np.int64)
    for i, row in enumerate(perf):
        ok = ~np.isnan(row)
        if ok.any():
            top = np.flatnonzero(ok & (row == np.nanmax(row)))
            labels[i] = min(top, key=lambda j: (cost[i, j], name_rank[j]))
    return labels


def mixture_matrix(performance: np.ndarray, labels: np.ndarray, n: int) -> np.ndarray:
    """``M[k, j]``: candidate j's mean performance on queries labelled k, shrunk to j's mean."""
    perf = np.asarray(performance, dtype=np.float64)
    overall = np.nan_to_num(np.nanmean(perf, axis=0), nan=0.0) if len(perf) else np.zeros(n)
    mix = np.empty((n, n))
    for k in range(n):
        rows = perf[labels == k]
        known = ~np.isnan(rows)
        mix[k] = (np.nan_to_num(rows).sum(0) + MIXTURE_PRIOR * overall) / (
            known.sum(0) + MIXTURE_PRIOR
        )
    return mix


class CausalLMRouter(BaseRouter):
    """Fine-tunes a causal LM to name the best candidate; scores every name in one pass."""

    name = "causallm_router"
    Params = CausalLMParams

    def __init__(
        self,
        *,
        base_model: str | None = None,
        n_layers: int = 2,
        hidden_size: int = 128,
        n_heads: int = 4,
        vocab_size: int = 4000,
        max_length: int = 128,
        epochs: int = 6,
        batch_size: int = 32,
        lr: float = 2e-3,
        weight_decay: float = 0.01,
        val_fraction: float = 0.1,
        patience: int = 2,
        num_threads: int | None = 1,
        calibration: Literal["mixture", "none"] = "mixture",
        random_state: int = 0,
        cost_weight: float = 0.0,
        budget: float | None = None,
        embeddings: Embeddings | None = None,
    ) -> None:
        super().__init__(cost_weight=cost_weight, budget=budget, embeddings=embeddings)
        self.base_model = base_model
        self.n_layers = n_layers
        self.hidden_size = hidden_size
        self.n_heads = n_heads
        self.vocab_size = vocab_size
        self.max_length = max_length
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.val_fraction = val_fraction
        self.patience = patience
        self.num_threads = num_threads
        self.calibration = calibration
        self.random_state = random_state

    # --- model and tokenizer --------------------------------------------------------------

    def _build_tiny(self, queries: list[str]) -> tuple[Any, Any]:
        """A byte-level BPE tokenizer trained on ``queries`` and a Llama-style model."""
        import torch
        from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
        from transformers import LlamaConfig, LlamaForCausalLM

        tokenizer = Tokenizer(models.BPE(unk_token=UNK))
        tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tokenizer.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(
            vocab_size=self.vocab_size,
            special_tokens=[PAD, BOS, UNK],
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
            show_progress=False,
        )
        tokenizer.train_from_iterator(
            [*queries, PROMPT_INTRO, PROMPT_QUERY, PROMPT_ANSWER], trainer=trainer
        )
        tokenizer.add_special_tokens(list(self.candidates_))
        config = LlamaConfig(
            vocab_size=tokenizer.get_vocab_size(with_added_tokens=True),
            hidden_size=self.hidden_size,
            intermediate_size=4 * self.hidden_size,
            num_hidden_layers=self.n_layers,
            num_attention_heads=self.n_heads,
            num_key_value_heads=self.n_heads,
            max_position_embeddings=self.max_length,
            pad_token_id=tokenizer.token_to_id(PAD),
            bos_token_id=tokenizer.token_to_id(BOS),
            eos_token_id=None,
            tie_word_embeddings=True,
        )
        torch.manual_seed(self.random_state)
        return tokenizer, LlamaForCausalLM(config)

    def _load_base(self) -> tuple[Any, Any]:
        """The ``base_model`` checkpoint with one added token per candidate name."""
        import torch
        from tokenizers import Tokenizer
        from transformers import AutoModelForCausalLM, AutoTokenizer

        path = Path(str(self.base_model)).expanduser()
        if not path.is_dir():
            raise ConfigError(
                f"{path} is not a local checkpoint directory (nothing is downloaded)",
                field="hparam.base_model",
            )
        try:
            hf_tok = AutoTokenizer.from_pretrained(
                path, local_files_only=True, trust_remote_code=False
            )
            model = AutoModelForCausalLM.from_pretrained(
                path, local_files_only=True, trust_remote_code=False, dtype=torch.float32
            )
        except (OSError, ValueError, KeyError) as exc:
            raise ConfigError(
                f"{path} is not a loadable causal-LM checkpoint with a tokenizer: {exc}",
                field="hparam.base_model",
            ) from None
        if not getattr(hf_tok, "is_fast", False):
            raise ConfigError(
                f"{path}: the tokenizer has no fast (tokenizer.json) version",
                field="hparam.base_model",
            )
        tokenizer = Tokenizer.from_str(hf_tok.backend_tokenizer.to_str())
        pieces = {n: tokenizer.encode(n, add_special_tokens=False).ids for n in self.candidates_}
        tokenizer.add_special_tokens(list(self.candidates_))
        size = max(tokenizer.get_vocab_size(with_added_tokens=True), model.config.vocab_size)
        if size > cast("torch.Tensor", model.get_input_embeddings().weight).shape[0]:
            model.resize_token_embeddings(size, mean_resizing=False)
        # A new name token starts as the mean of its former sub-word pieces.
        weights = [cast("torch.Tensor", model.get_input_embeddings().weight)]
        output = model.get_output_embeddings()
        if output is not None:
            out_weight = cast("torch.Tensor", output.weight)
            if out_weight.data_ptr() != weights[0].data_ptr():  # untied head
                weights.append(out_weight)
        with torch.no_grad():
            for name, ids in pieces.items():
                new = tokenizer.token_to_id(name)
                if ids and [new] != ids:
                    for weight in weights:
                        weight[new] = weight[ids].mean(0)
        model.config.pad_token_id = hf_tok.pad_token_id
        model.config.bos_token_id = hf_tok.bos_token_id
        return tokenizer, model

    def _setup_prompt(self, tokenizer: Any, bos_id: int | None, pad_id: int | None) -> None:
        enc = lambda text: tokenizer.encode(text, add_special_tokens=False).ids  # noqa: E731
        self.tokenizer_ = tokenizer
        self.bos_id_ = None if bos_id is None else int(bos_id)
        self.name_ids_ = np.array([tokenizer.token_to_id(n) for n in self.candidates_])
        if len(set(self.name_ids_.tolist())) != len(self.candidates_):
            raise ValueError(f"candidate names do not map to distinct tokens: {self.candidates_}")
        self.prefix_ids_ = ([] if bos_id is None else [bos_id]) + enc(PROMPT_INTRO)
        self.prefix_ids_ += [int(i) for i in self.name_ids_] + enc(PROMPT_QUERY)
        self.suffix_ids_ = enc(PROMPT_ANSWER)
        self.pad_id_ = 0 if pad_id is None else int(pad_id)
        room = self.max_length - len(self.prefix_ids_) - len(self.suffix_ids_) - 1
        limit = getattr(self.model_.config, "max_position_embeddings", None)
        if limit is not None:
            room = min(room, int(limit) - len(self.prefix_ids_) - len(self.suffix_ids_) - 1)
        if room < 8:
            raise ConfigError(
                f"max_length {self.max_length} leaves {room} tokens for the query",
                field="hparam.max_length",
            )
        self.query_room_ = room

    def encode_prompts(self, queries: list[str]) -> list[list[int]]:
        """Token ids of each query's prompt, up to and including ``Best LLM:``."""
        encoded = self.tokenizer_.encode_batch(list(queries), add_special_tokens=False)
        return [self.prefix_ids_ + e.ids[: self.query_room_] + self.suffix_ids_ for e in encoded]

    def make_batch(self, prompts: list[list[int]], answers: list[int] | None = None) -> dict:
        """Right-padded tensors; with ``answers``, ``labels`` is -100 except at the answer."""
        import torch

        extra = 0 if answers is None else 1
        width = max(len(p) for p in prompts) + extra
        ids = torch.full((len(prompts), width), self.pad_id_, dtype=torch.long)
        mask = torch.zeros((len(prompts), width), dtype=torch.long)
        for i, p in enumerate(prompts):
            seq = p + ([answers[i]] if answers is not None else [])
            ids[i, : len(seq)] = torch.tensor(seq)
            mask[i, : len(seq)] = 1
        batch = {"input_ids": ids, "attention_mask": mask}
        batch["last"] = torch.tensor([len(p) - 1 for p in prompts])  # predicts the answer
        if answers is not None:
            labels = torch.full_like(ids, -100)
            labels[torch.arange(len(prompts)), batch["last"] + 1] = torch.tensor(answers)
            batch["labels"] = labels
        return batch

    def _answer_logits(self, batch: dict) -> Any:
        """Full-vocabulary logits at each prompt's last position (the answer slot)."""
        import torch

        hidden = self.model_.base_model(
            input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]
        )[0]
        rows = torch.arange(hidden.shape[0])
        return self.model_.get_output_embeddings()(hidden[rows, batch["last"]])

    def answer_loss(self, batch: dict) -> Any:
        """Mean next-token cross-entropy over the answer tokens only (labels != -100)."""
        import torch

        logits = self._answer_logits(batch)
        rows = torch.arange(logits.shape[0])
        return torch.nn.functional.cross_entropy(
            logits.float(), batch["labels"][rows, batch["last"] + 1]
        )

    # --- fitting --------------------------------------------------------------------------

    def _fit(self, dataset: RoutingDataset | None, query_embeddings: np.ndarray | None) -> None:
        assert dataset is not None
        with torch_threads(self.num_threads):
            self._train(dataset)

    def _train(self, dataset: RoutingDataset) -> None:
        import torch

        labels = best_labels(dataset.performance, dataset.cost, self.candidates_)
        keep = np.flatnonzero(labels >= 0)
        if len(keep) == 0:
            raise ValueError("no query has a known score for any candidate")
        if self.base_model is None:
            tokenizer, model = self._build_tiny([dataset.queries[i] for i in keep])
            bos, pad = tokenizer.token_to_id(BOS), tokenizer.token_to_id(PAD)
        else:
            tokenizer, model = self._load_base()
            bos, pad = model.config.bos_token_id, model.config.pad_token_id
        self.model_ = model
        self._setup_prompt(tokenizer, bos, pad)
        self.mixture_ = mixture_matrix(
            dataset.performance[keep], labels[keep], len(self.candidates_)
        )

        rng = np.random.default_rng(self.random_state)
        order = rng.permutation(keep)
        n_val = round(self.val_fraction * len(order)) if len(order) >= 10 else 0
        val, train = order[:n_val], order[n_val:]
        prompts = self.encode_prompts(dataset.queries)
        answers = self.name_ids_[labels].tolist()
        torch.manual_seed(self.random_state)
        steps = self.epochs * math.ceil(len(train) / self.batch_size)
        optim = torch.optim.AdamW(model.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        warm = max(1, steps // 20)
        sched = torch.optim.lr_scheduler.LambdaLR(
            optim,
            lambda s: min((s + 1) / warm, 0.5 * (1 + math.cos(math.pi * min(s / steps, 1.0)))),
        )
        best_loss, best_state, stale = math.inf, None, 0
        self.n_epochs_ = 0
        for _ in range(self.epochs):
            self.n_epochs_ += 1
            model.train()
            for rows in self._batches(train, prompts, rng):
                batch = self.make_batch([prompts[i] for i in rows], [answers[i] for i in rows])
                loss = self.answer_loss(batch)
                optim.zero_grad()
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                optim.step()
                sched.step()
            if len(val) == 0:
                continue
            logits = self._name_logits([prompts[i] for i in val])
            val_loss = _nll(logits, labels[val], 1.0)
            logger.info("%s epoch %d: validation loss %.4f", self.name, self.n_epochs_, val_loss)
            if val_loss < best_loss - 1e-4:
                best_loss, stale = val_loss, 0
                best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            else:
                stale += 1
                if stale >= self.patience:
                    break
        if best_state is not None:
            model.load_state_dict(best_state)
        model.eval()
        self.temperature_ = 1.0
        if len(val):
            logits = self._name_logits([prompts[i] for i in val])
            self.temperature_ = float(
                min(TEMPERATURES, key=lambda t: _nll(logits, labels[val], float(t)))
            )

    def _batches(self, rows: np.ndarray, prompts: list[list[int]], rng: Any) -> list[np.ndarray]:
        """Shuffled batches of similar-length prompts (less padding), in a random order."""
        rows = rng.permutation(rows)
        chunk = self.batch_size * 32
        batches = []
        for start in range(0, len(rows), chunk):
            part = rows[start : start + chunk]
            part = part[np.argsort([len(prompts[i]) for i in part], kind="stable")]
            batches += [part[i : i + self.batch_size] for i in range(0, len(part), self.batch_size)]
        return [batches[i] for i in rng.permutation(len(batches))]

    # --- scoring --------------------------------------------------------------------------

    def _name_logits(self, prompts: list[list[int]], batch_size: int = 64) -> np.ndarray:
        """Logits of the candidate-name tokens after each prompt, shape (n, n_candidates)."""
        import torch

        self.model_.eval()
        order = np.argsort([len(p) for p in prompts], kind="stable")
        out = np.empty((len(prompts), len(self.candidates_)), dtype=np.float64)
        names = torch.as_tensor(self.name_ids_)
        with torch.no_grad():
            for start in range(0, len(order), batch_size):
                rows = order[start : start + batch_size]
                logits = self._answer_logits(self.make_batch([prompts[i] for i in rows]))
                out[rows] = logits[:, names].double().numpy()
        return out

    def predict_best_proba(self, queries: list[str]) -> np.ndarray:
        """P(candidate is best | query), shape (n, n_candidates), at temperature 1."""
        self._check_fitted()
        with torch_threads(self.num_threads):
            return _softmax(self._name_logits(self.encode_prompts(list(queries))), 1.0)

    def _predict_quality(
        self, queries: list[str], query_embeddings: np.ndarray | None
    ) -> np.ndarray:
        with torch_threads(self.num_threads):
            logits = self._name_logits(self.encode_prompts(queries))
        if self.calibration == "none":
            return _softmax(logits, 1.0)
        return _softmax(logits, self.temperature_) @ self.mixture_

    # --- persistence ----------------------------------------------------------------------

    def _get_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        meta = {
            "model_config": json.loads(self.model_.config.to_json_string()),
            "tokenizer": self.tokenizer_.to_str(),
            "bos_id": self.bos_id_,
            "pad_id": self.pad_id_,
            "temperature": self.temperature_,
            "n_epochs": self.n_epochs_,
        }
        arrays = {
            f"lm.{k}": v.detach().cpu().float().numpy().copy()
            for k, v in self.model_.state_dict().items()
        }
        arrays["mixture"] = self.mixture_
        return meta, arrays

    def _set_state(self, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        import torch
        from tokenizers import Tokenizer
        from transformers import AutoConfig, AutoModelForCausalLM

        weights = {k[3:]: torch.from_numpy(v) for k, v in arrays.items() if k.startswith("lm.")}
        config = AutoConfig.for_model(**meta["model_config"])
        check_config_fits_weights(config, weights)
        torch.manual_seed(0)
        model = AutoModelForCausalLM.from_config(config, trust_remote_code=False)
        model.load_state_dict(weights, strict=True)
        model.eval()
        self.model_ = model
        self._setup_prompt(Tokenizer.from_str(meta["tokenizer"]), meta["bos_id"], meta["pad_id"])
        self.temperature_ = float(meta["temperature"])
        self.n_epochs_ = int(meta["n_epochs"])
        self.mixture_ = arrays["mixture"]


def _softmax(logits: np.ndarray, temperature: float) -> np.ndarray:
    z = logits / temperature
    z = np.exp(z - z.max(axis=1, keepdims=True))
    return z / z.sum(axis=1, keepdims=True)


def _nll(logits: np.ndarray, labels: np.ndarray, temperature: float) -> float:
    """Mean negative log-likelihood of ``labels`` under the candidate softmax."""
    p = _softmax(logits, temperature)[np.arange(len(labels)), labels]
    return float(-np.log(np.maximum(p, 1e-12)).mean())
