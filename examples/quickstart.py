"""Quickstart: swap ChatOpenAI for RouterChatModel.

Runs against any OpenAI-compatible endpoint:

    LLMROUTER_API_BASE=https://integrate.api.nvidia.com/v1 API_KEYS=nvapi-... python examples/quickstart.py

Environment:
    LLMROUTER_API_BASE  endpoint for candidates without their own api_endpoint (required)
    API_KEYS            key(s): one key, a comma list, a JSON list, or a JSON object by service
                        (not needed for a local endpoint)
    LLMROUTER_ROUTER_DIR  a trained router (default models/knnrouter; trained here if missing)
    LLMROUTER_CANDIDATES  candidates JSON (default: the shared default_llm.json)
    LLMROUTER_TRAIN_DATA  routing data to train on when no trained router exists
"""

from __future__ import annotations

import os
from pathlib import Path

from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.tools import tool

from langchain_llmrouter import (
    CandidatePool,
    RouterChatModel,
    RoutingDataset,
    create_router,
    load_router,
)

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "llmrouter_example"


@tool
def word_count(text: str) -> int:
    """Count the words in a text."""
    return len(text.split())


def trained_router(router_dir: Path, pool: CandidatePool):
    """Load the trained router, or train one on the RouterDC data and save it."""
    if (router_dir / "router.json").is_file():
        return load_router("knnrouter", router_dir)
    data = Path(os.environ.get("LLMROUTER_TRAIN_DATA", SHARED / "routerdc_train.json"))
    print(
        f"no router at {router_dir}: training knnrouter on {data} (embeddings are cached on disk)"
    )
    router = create_router("knnrouter", k=50).fit(RoutingDataset.from_file(data, candidates=pool))
    router.save(router_dir)
    return router


def main() -> None:
    endpoint = os.environ.get("LLMROUTER_API_BASE")
    if not endpoint:
        raise SystemExit(
            "set LLMROUTER_API_BASE to an OpenAI-compatible endpoint (see the docstring)"
        )
    candidates_file = Path(os.environ.get("LLMROUTER_CANDIDATES", SHARED / "default_llm.json"))
    pool = CandidatePool.from_json(candidates_file, api_endpoint=endpoint)
    router = trained_router(Path(os.environ.get("LLMROUTER_ROUTER_DIR", "models/knnrouter")), pool)

    # 1. A drop-in chat model: every request goes to the candidate the router picks.
    llm = RouterChatModel(router=router, candidates=pool)
    reply = llm.invoke("What is the capital of Australia?")
    routing = reply.response_metadata["routing"]
    print(f"[invoke] {routing['model']} answered (est. ${routing['est_cost']:.6f}): {reply.text}")

    # 2. In a chain: prompt | model | parser.
    prompt = ChatPromptTemplate.from_messages(
        [("system", "You are a concise assistant."), ("human", "Explain {topic} in one sentence.")]
    )
    chain = prompt | llm | StrOutputParser()
    print(f"[chain] {chain.invoke({'topic': 'binary search'})}")

    # 3. Streaming, with a cost preference set per call.
    cheap = llm.with_config(configurable={"cost_weight": 2.0})
    print("[stream] ", end="")
    for chunk in cheap.stream("Write a haiku about routers."):
        chosen = chunk.response_metadata.get("routing", {}).get("model")
        if chosen:  # the routing decision rides on the first chunk
            print(f"{chosen} answered: ", end="")
        print(chunk.text, end="", flush=True)
    print()

    # 4. Tool calling passes through to the chosen candidate.
    message = llm.bind_tools([word_count]).invoke("How many words are in 'the quick brown fox'?")
    answered_by = message.response_metadata["routing"]["model"]
    if not message.tool_calls:
        print(f"[tool] {answered_by} answered without a tool call")
    for call in message.tool_calls:
        print(f"[tool] {answered_by} called {call['name']}({call['args']})")
        print(f"[tool] result: {word_count.invoke(call['args'])}")


if __name__ == "__main__":
    main()
