"""GPU smoke test of the in-process vLLM policy: the Router-R1 graph on a tiny random model.

Creates, with no downloads, a randomly initialised Qwen2-architecture model (2 layers, hidden
size 256) and a byte-level BPE tokenizer trained here on a few hundred lines of Router-R1-style
text, with a Qwen-style chat template; saves both to a temporary directory; serves that model
with `VLLMChatModel` (an in-process ``vllm.LLM``); and runs the Router-R1 graph on a few
questions, in both transcript modes, with candidates served by the local fake OpenAI server.
It prints each run's turns, calls, stop reason and wall time. A random model writes random
text, so expect corrective turns and ``max_turns`` stops: the point is that the engine, the
chat template (generation prompt and ``continue_final_message``), stop strings, token counts
and the graph loop work together on a real vLLM.

Usage:
    python benchmarks/vllm_router_r1_smoke.py              # needs a GPU and the vllm extra
    python benchmarks/vllm_router_r1_smoke.py --cpu-check  # only build the model and tokenizer,
                                                           # reload them with transformers and
                                                           # generate a few tokens on the CPU
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
from pathlib import Path
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage

from langchain_llmrouter.candidates import APIKeys, CandidatePool, LLMCandidate
from langchain_llmrouter.graphs.router_r1 import (
    DEFAULT_PROMPT,
    build_router_r1_graph,
    describe_candidates,
)
from langchain_llmrouter.graphs.vllm_policy import VLLMChatModel
from langchain_llmrouter.testing import FakeOpenAIServer

CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
"""A Qwen-style chat template (``<|im_start|>role\\ncontent<|im_end|>``)."""

SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]

CANDIDATES = [
    LLMCandidate.model_validate(
        {"name": name, "model": model, "size": size, "input_price": price, "output_price": price,
         "description": description}
    )
    for name, model, size, price, description in [
        ("qwen2.5-7b-instruct", "qwen/qwen2.5-7b-instruct", "7B", 0.2,
         "A multilingual 7B instruction model."),
        ("llama-3.1-8b-instruct", "meta/llama-3.1-8b-instruct", "8B", 0.2,
         "An 8B model for conversation and reasoning."),
        ("mixtral-8x22b-instruct-v0.1", "mistralai/mixtral-8x22b-instruct-v0.1", "141B", 1.2,
         "A large mixture-of-experts model."),
    ]
]  # fmt: skip

QUESTIONS = [
    "Who wrote the novel that Blade Runner is based on",
    "What is the capital of the country where the Danube ends",
    "Which element has the atomic number 26",
]


def training_lines(count: int = 400, seed: int = 0) -> list[str]:
    """Router-R1-style text for the tokenizer: the prompt, tags, names, questions, answers."""
    rng = random.Random(seed)
    names = [c.name for c in CANDIDATES]
    words = ["the", "a", "of", "to", "is", "which", "what", "who", "city", "river", "novel"]
    prompt = DEFAULT_PROMPT.format(
        candidates=describe_candidates(CandidatePool(CANDIDATES)), question=QUESTIONS[0] + "?"
    )
    lines = prompt.splitlines()
    while len(lines) < count:
        sentence = " ".join(rng.choices(words, k=rng.randint(3, 9)))
        lines += [
            f"<think> I {sentence}. </think>",
            f"<search> {rng.choice(names)}: {rng.choice(QUESTIONS)}? </search>",
            f"<information> {sentence.capitalize()}. </information>",
            f"<answer> {rng.choice(['Paris', 'Philip K. Dick', 'Iron', 'Bucharest'])} </answer>",
        ]
    return lines[:count]


def make_tiny_model(directory: Path, seed: int = 0) -> Path:
    """Write a random Qwen2 model and a locally trained tokenizer to ``directory``."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=1024,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    bpe.train_from_iterator(training_lines(), trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        additional_special_tokens=["<|im_start|>"],
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    tokenizer.save_pretrained(directory)
    # Name a class that every transformers version has (v5 writes its new backend's name).
    config_path = directory / "tokenizer_config.json"
    tokenizer_config = json.loads(config_path.read_text())
    tokenizer_config["tokenizer_class"] = "PreTrainedTokenizerFast"
    config_path.write_text(json.dumps(tokenizer_config, indent=2))

    torch.manual_seed(seed)
    config = Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=256,
        intermediate_size=512,
        num_hidden_layers=2,
        num_attention_heads=4,  # head size 64, which every vLLM attention backend supports
        num_key_value_heads=2,
        max_position_embeddings=4096,
        tie_word_embeddings=True,
        eos_token_id=tokenizer.convert_tokens_to_ids("<|im_end|>"),
        pad_token_id=tokenizer.pad_token_id,
    )
    Qwen2ForCausalLM(config).save_pretrained(directory)
    return directory


def cpu_check(directory: Path) -> None:
    """Reload the model and tokenizer with transformers and generate a few tokens."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(directory)
    model: Any = AutoModelForCausalLM.from_pretrained(directory)
    chat = [{"role": "user", "content": training_lines(20)[-1]}]
    for continue_final in (False, True):
        messages = chat + (
            [{"role": "assistant", "content": "<think> I"}] if continue_final else []
        )
        prompt = tokenizer.apply_chat_template(
            messages,
            tokenize=False,
            add_generation_prompt=not continue_final,
            continue_final_message=continue_final,
        )
        ids = tokenizer(prompt, add_special_tokens=False, return_tensors="pt").input_ids
        with torch.no_grad():
            out = model.generate(ids, max_new_tokens=8, do_sample=False, pad_token_id=0)
        new = tokenizer.decode(out[0, ids.shape[1] :])
        print(f"continue_final_message={continue_final}: prompt ends {prompt[-30:]!r}")
        print(f"  {ids.shape[1]} prompt tokens, {out.shape[1] - ids.shape[1]} generated: {new!r}")
    # The adapter builds the same prompts from LangChain messages (no vLLM needed for that).
    adapter = VLLMChatModel(model=str(directory))
    text = chat[0]["content"]
    histories: list[list[BaseMessage]] = [
        [HumanMessage(text)],
        [HumanMessage(text), AIMessage("<think> I")],
    ]
    for history in histories:
        continue_final = isinstance(history[-1], AIMessage)
        roles = {"human": "user", "ai": "assistant"}
        expected = tokenizer.apply_chat_template(
            [{"role": roles[m.type], "content": m.text} for m in history],
            tokenize=False,
            add_generation_prompt=not continue_final,
            continue_final_message=continue_final,
        )
        assert adapter.build_prompt(tokenizer, history) == expected
    print("VLLMChatModel.build_prompt matches the chat template in both modes")
    params = sum(p.numel() for p in model.parameters())
    print(f"model: {type(model).__name__}, {params:,} parameters, vocab {len(tokenizer)}")


def gpu_run(directory: Path, max_turns: int, max_tokens: int) -> None:
    """Run the Router-R1 graph with the in-process vLLM policy on a few questions."""
    policy = VLLMChatModel(
        model=str(directory),
        llm_kwargs={
            "dtype": "bfloat16",
            "max_model_len": 4096,
            "gpu_memory_utilization": 0.3,
            "enforce_eager": True,
            "seed": 0,
        },
        temperature=1.0,
        seed=0,
    )
    start = time.perf_counter()
    policy.engine()
    print(f"vLLM engine ready in {time.perf_counter() - start:.1f} s")
    with FakeOpenAIServer() as server:
        pool = CandidatePool(CANDIDATES, api_endpoint=server.base_url, api_keys=APIKeys())
        for continue_final_message in (True, False):
            graph = build_router_r1_graph(
                policy=policy,
                candidates=pool,
                max_turns=max_turns,
                policy_max_tokens=max_tokens,
                continue_final_message=continue_final_message,
            )
            print(f"\ncontinue_final_message={continue_final_message}")
            for question in QUESTIONS:
                start = time.perf_counter()
                out = graph.invoke({"question": question})
                wall = time.perf_counter() - start
                calls = ", ".join(
                    f"{c['role']}:{c['model'].rsplit('/', 1)[-1]}"
                    f"({c['input_tokens']}>{c['output_tokens']})"
                    for c in out["calls"]
                )
                print(f"  {question}?")
                print(
                    f"    turns {out['turns']}, stop {out['stop_reason']}, "
                    f"answer {out['answer']!r}, {wall:.2f} s"
                )
                print(f"    calls: {calls}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cpu-check", action="store_true", help="build and check on the CPU only")
    parser.add_argument("--max-turns", type=int, default=5)
    parser.add_argument("--max-tokens", type=int, default=64, help="tokens per policy turn")
    parser.add_argument("--keep", type=Path, help="write the model here instead of a temp dir")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        directory = args.keep or Path(tmp) / "tiny-qwen2"
        directory.mkdir(parents=True, exist_ok=True)
        start = time.perf_counter()
        make_tiny_model(directory)
        print(
            f"tiny model and tokenizer written to {directory} in {time.perf_counter() - start:.1f} s"
        )
        if args.cpu_check:
            cpu_check(directory)
        else:
            gpu_run(directory, args.max_turns, args.max_tokens)


if __name__ == "__main__":
    main()
