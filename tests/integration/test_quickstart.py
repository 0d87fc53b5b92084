"""End to end: ``examples/quickstart.py`` run as a user runs it (a subprocess), against the local
OpenAI-compatible server.

The example runs twice, once per way of getting a router, and each run is shared by the tests
of its class (importing torch and sentence-transformers costs a subprocess ~15 s):

* `TestWithSavedRouter`: ``LLMROUTER_ROUTER_DIR`` holds the session's small kNN router, saved;
  ``API_KEYS`` is a comma list and the candidates are the default example file.
* `TestTrainsWhenNoRouter`: the router directory does not exist yet, so the example trains a
  kNN router on a 100-query slice (``LLMROUTER_TRAIN_DATA``) and saves it; the candidates come
  from ``LLMROUTER_CANDIDATES`` (3 models with their own provider ids) and ``API_KEYS`` is a
  JSON object keyed by service.

Neither run trains on the full 5,608-query file: the saved-router run points
``LLMROUTER_TRAIN_DATA`` at a missing file, so it would fail at once if it tried.

The same section checks apply to both runs: which candidate should answer is worked out here,
in-process, from the router the example used, and compared with what it printed and with the
server's call log (the fake server names the model in every reply: ``"[<model id>] You said:
..."``).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import pytest

from langchain_llmrouter import BaseRouter, CandidatePool, RoutingDecision, load_router
from langchain_llmrouter.testing import FakeOpenAIServer, ServedCall

QUICKSTART = Path(__file__).resolve().parents[2] / "examples" / "quickstart.py"

SECTIONS = ("invoke", "chain", "stream", "tool")

QUERIES = {
    "invoke": "What is the capital of Australia?",
    "chain": "Explain binary search in one sentence.",  # the human turn of the prompt template
    "stream": "Write a haiku about routers.",
    "tool": "How many words are in 'the quick brown fox'?",
}
"""The text the router sees in each section: the last user message the example sends."""

COST_WEIGHTS = {"stream": 2.0}
"""Per-call cost weights the example sets (through ``configurable``); others use the router's."""

CHAIN_SYSTEM = "You are a concise assistant."

TOOL_ARGS = {"text": "hello"}
"""What the fake server fills a required string argument with (``word_count`` counts 1 word)."""

EXAMPLE_ENV = (
    "LLMROUTER_API_BASE",
    "API_KEYS",
    "LLMROUTER_ROUTER_DIR",
    "LLMROUTER_CANDIDATES",
    "LLMROUTER_TRAIN_DATA",
)
"""Variables the example reads; inherited values are dropped so each run sets only its own."""

TRAIN_CANDIDATES = (
    "llama3-chatqa-1.5-8b",
    "mistral-7b-instruct-v0.3",
    "llama-3.3-nemotron-super-49b-v1",
)
"""The candidates of the training slice (in default_llm.json order, as the pool orders them)."""

TRAIN_SIZE = 100
"""Queries in the training slice: more than the example's k=50, so the kNN is not an average."""

TRAIN_MAX_CHARS = 200
"""Longest query kept in the slice (as conftest's `small_train`, whose embeddings are cached)."""


def run_quickstart(cwd: Path, **env: str | None) -> subprocess.CompletedProcess[str]:
    """Run the example with ``sys.executable`` in ``cwd``, with ``os.environ`` plus ``env``.

    ``os.environ`` carries conftest's ``LLMROUTER_CACHE_DIR``; a ``None`` value leaves a
    variable unset. The Hugging Face hub is switched off: the embedder loads from a package.
    """
    environ = {k: v for k, v in os.environ.items() if k not in EXAMPLE_ENV}
    environ.update({k: v for k, v in env.items() if v is not None})
    environ["HF_HUB_OFFLINE"] = "1"
    return subprocess.run(
        [sys.executable, str(QUICKSTART)],
        cwd=cwd,
        env=environ,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def last_user_text(call: ServedCall) -> str:
    """The text of the last user message of a request."""
    user = [m for m in call.messages if m.get("role") == "user"]
    return str(user[-1].get("content")) if user else ""


@dataclass
class QuickstartRun:
    """One run of the example: its process, the requests the server got, what it was given."""

    proc: subprocess.CompletedProcess[str]
    env: dict[str, str]
    """The example's variables it was run with."""
    calls: list[ServedCall]
    """A snapshot of the server's call log for this run."""
    pool: CandidatePool
    """The candidates the example was given (names to provider model ids)."""
    router_dir: Path
    keys: list[str]
    """The API keys it was given, in rotation order."""
    known_router: BaseRouter | None = None
    """The router it should load; None: read the one it saved in `router_dir`."""

    @cached_property
    def router(self) -> BaseRouter:
        """The router the example routed with."""
        return self.known_router or load_router("knnrouter", self.router_dir)

    @cached_property
    def output(self) -> dict[str, list[str]]:
        """Printed lines by section, without the ``[section]`` prefix."""
        lines: dict[str, list[str]] = {section: [] for section in SECTIONS}
        for line in self.proc.stdout.splitlines():
            match = re.match(r"\[(invoke|chain|stream|tool)\] ?(.*)", line)
            if match:
                lines[match[1]].append(match[2])
        return lines

    @cached_property
    def decisions(self) -> dict[str, RoutingDecision]:
        """The router's decision for each section's query (with the section's cost weight)."""
        return {
            s: self.router.route(q, cost_weight=COST_WEIGHTS.get(s)) for s, q in QUERIES.items()
        }

    def decision(self, section: str) -> RoutingDecision:
        """The router's decision for a section."""
        return self.decisions[section]

    def model_id(self, section: str) -> str:
        """The provider model id of the candidate the router chooses for a section."""
        return self.pool[self.decision(section).model].model

    def calls_for(self, model: str) -> list[ServedCall]:
        """The requests for a provider model id, in order (as `FakeOpenAIServer.calls_for`)."""
        return [c for c in self.calls if c.model == model]

    def section_call(self, section: str) -> ServedCall:
        """The one request the example made for a section (found by its user text)."""
        calls = [c for c in self.calls if last_user_text(c) == QUERIES[section]]
        assert len(calls) == 1, f"expected one request for [{section}], got {calls}"
        return calls[0]


def run_against(
    server: FakeOpenAIServer,
    cwd: Path,
    *,
    pool: CandidatePool,
    router_dir: Path,
    keys: list[str],
    known_router: BaseRouter | None = None,
    **env: str,
) -> QuickstartRun:
    """Run the example against ``server`` with an empty call log, and snapshot the log.

    A module-scoped stand-in for conftest's per-test `served` fixture: the log is cleared
    before and after the run.
    """
    env = {"LLMROUTER_API_BASE": server.base_url, "LLMROUTER_ROUTER_DIR": str(router_dir), **env}
    server.reset()
    try:
        proc = run_quickstart(cwd, **env)
        calls = server.calls
    finally:
        server.reset()
    return QuickstartRun(proc, env, calls, pool, router_dir, keys, known_router)


def run_with_saved_router(
    server: FakeOpenAIServer, router: BaseRouter, shared_data: Path, work: Path
) -> QuickstartRun:
    """The example with ``router`` saved in ``LLMROUTER_ROUTER_DIR``."""
    keys = ["key-one", "key-two"]
    return run_against(
        server,
        work,
        pool=CandidatePool.from_json(shared_data / "default_llm.json"),
        router_dir=router.save(work / "router"),
        keys=keys,
        known_router=router,
        API_KEYS=",".join(keys),
        # Fail fast rather than train on the full file if the saved router were not found.
        LLMROUTER_TRAIN_DATA=str(work / "no-such-training-data.json"),
    )


def run_training(server: FakeOpenAIServer, shared_data: Path, work: Path) -> QuickstartRun:
    """The example with no router yet: it trains on a small slice and saves the router."""
    # Three candidates with provider ids of their own, so the requests show this file was used.
    default = json.loads((shared_data / "default_llm.json").read_text(encoding="utf-8"))
    candidates = {n: {**default[n], "model": f"quickstart/{n}"} for n in TRAIN_CANDIDATES}
    candidates_file = work / "candidates.json"
    candidates_file.write_text(json.dumps(candidates), encoding="utf-8")
    records = json.loads((shared_data / "routerdc_train.json").read_text(encoding="utf-8"))
    short = [r for r in records if len(r["question"]) <= TRAIN_MAX_CHARS][:TRAIN_SIZE]
    data = [
        {"question": r["question"], "scores": {n: r["scores"][n] for n in TRAIN_CANDIDATES}}
        for r in short
    ]
    train_file = work / "train_slice.json"
    train_file.write_text(json.dumps(data), encoding="utf-8")
    keys = ["nv-key-a", "nv-key-b"]
    return run_against(
        server,
        work,
        pool=CandidatePool.from_json(candidates_file),
        router_dir=work / "models" / "knnrouter",
        keys=keys,
        API_KEYS=json.dumps({"NVIDIA": keys}),
        LLMROUTER_CANDIDATES=str(candidates_file),
        LLMROUTER_TRAIN_DATA=str(train_file),
    )


@pytest.fixture(scope="module")
def quickstart_runs(
    request: pytest.FixtureRequest,
    openai_server: FakeOpenAIServer,
    shared_data: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[str, QuickstartRun]:
    """Both runs of the example, ``"saved"`` and ``"trained"``, each with a server of its own.

    The training run goes on in a thread while the session's kNN router is fitted and the
    saved-router run goes on: a run is mostly single-threaded imports, so on two CPUs the
    overlap saves about a quarter of the time (~25 s instead of ~35 s).
    """
    with FakeOpenAIServer() as own_server, ThreadPoolExecutor(max_workers=1) as executor:
        training = executor.submit(
            run_training, own_server, shared_data, tmp_path_factory.mktemp("quickstart_train")
        )
        router: BaseRouter = request.getfixturevalue("knn_router")
        saved = run_with_saved_router(
            openai_server, router, shared_data, tmp_path_factory.mktemp("quickstart_saved")
        )
        return {"saved": saved, "trained": training.result()}


class _SectionChecks:
    """Checks of every section that hold whichever way the example got its router."""

    @pytest.fixture
    def run(self) -> QuickstartRun:
        raise NotImplementedError

    def test_exits_cleanly_and_prints_every_section(self, run: QuickstartRun) -> None:
        assert run.proc.returncode == 0, f"stdout:\n{run.proc.stdout}\nstderr:\n{run.proc.stderr}"
        counts = {section: len(lines) for section, lines in run.output.items()}
        assert counts == {"invoke": 1, "chain": 1, "stream": 1, "tool": 2}, run.proc.stdout

    def test_one_successful_request_per_section(self, run: QuickstartRun) -> None:
        assert sorted(last_user_text(c) for c in run.calls) == sorted(QUERIES.values())
        assert [c.status for c in run.calls] == [200] * len(SECTIONS)  # no fallbacks

    def test_invoke_answer_comes_from_the_chosen_candidate(self, run: QuickstartRun) -> None:
        decision = run.decision("invoke")
        model_id = run.model_id("invoke")
        assert run.output["invoke"] == [
            f"{decision.model} answered (est. ${decision.est_cost:.6f}): "
            f"[{model_id}] You said: {QUERIES['invoke']}"
        ]
        call = run.section_call("invoke")
        assert (call.model, call.stream, call.tools) == (model_id, False, None)

    def test_chain_sends_the_prompt_to_the_chosen_candidate(self, run: QuickstartRun) -> None:
        model_id = run.model_id("chain")
        assert run.output["chain"] == [f"[{model_id}] You said: {QUERIES['chain']}"]
        call = run.section_call("chain")
        assert (call.model, call.stream) == (model_id, False)
        assert [(m["role"], m["content"]) for m in call.messages] == [
            ("system", CHAIN_SYSTEM),
            ("user", QUERIES["chain"]),
        ]

    def test_stream_streams_from_the_candidate_chosen_at_its_cost_weight(
        self, run: QuickstartRun
    ) -> None:
        model_id = run.model_id("stream")
        assert run.output["stream"] == [
            f"{run.decision('stream').model} answered: [{model_id}] You said: {QUERIES['stream']}"
        ]
        call = run.section_call("stream")
        assert (call.model, call.stream) == (model_id, True)
        assert [c for c in run.calls if c.stream] == [call]

    def test_tool_schema_goes_to_the_chosen_candidate_and_its_call_is_printed(
        self, run: QuickstartRun
    ) -> None:
        decision = run.decision("tool")
        call = run.section_call("tool")
        assert (call.model, call.stream) == (run.model_id("tool"), False)
        assert call.tools is not None and len(call.tools) == 1
        function = call.tools[0]["function"]
        assert function["name"] == "word_count"
        assert function["description"] == "Count the words in a text."
        assert function["parameters"]["properties"]["text"]["type"] == "string"
        assert function["parameters"]["required"] == ["text"]
        assert run.output["tool"] == [
            f"{decision.model} called word_count({TOOL_ARGS!r})",
            f"result: {len(TOOL_ARGS['text'].split())}",
        ]

    def test_api_keys_reach_the_server_in_rotation(self, run: QuickstartRun) -> None:
        assert run.calls
        for model in {c.model for c in run.calls}:
            sent = [c.api_key for c in run.calls_for(model)]
            assert sent == [run.keys[i % len(run.keys)] for i in range(len(sent))], model


class TestWithSavedRouter(_SectionChecks):
    """``LLMROUTER_ROUTER_DIR`` holds a trained router: the example loads and uses it."""

    @pytest.fixture
    def run(self, quickstart_runs: dict[str, QuickstartRun]) -> QuickstartRun:
        return quickstart_runs["saved"]

    def test_loads_the_saved_router_without_training(self, run: QuickstartRun) -> None:
        assert run.proc.returncode == 0, run.proc.stderr
        assert "training" not in run.proc.stdout


class TestTrainsWhenNoRouter(_SectionChecks):
    """No router yet: the example trains one on ``LLMROUTER_TRAIN_DATA``, saves it, uses it."""

    @pytest.fixture
    def run(self, quickstart_runs: dict[str, QuickstartRun]) -> QuickstartRun:
        return quickstart_runs["trained"]

    def test_trains_on_the_given_data_and_saves_the_router(self, run: QuickstartRun) -> None:
        assert run.proc.returncode == 0, run.proc.stderr
        data = run.env["LLMROUTER_TRAIN_DATA"]
        assert f"no router at {run.router_dir}: training knnrouter on {data}" in run.proc.stdout
        assert sorted(p.name for p in run.router_dir.iterdir()) == [
            "arrays.safetensors",
            "router.json",
        ]
        router = run.router
        assert router.name == "knnrouter"
        assert router.get_params()["k"] == 50
        assert router.candidates_ == list(TRAIN_CANDIDATES)
        assert router.train_x_.shape == (TRAIN_SIZE, 384)

    def test_answers_use_the_candidates_file(self, run: QuickstartRun) -> None:
        assert run.calls
        assert {c.model for c in run.calls} <= {f"quickstart/{n}" for n in TRAIN_CANDIDATES}


@pytest.mark.parametrize("api_base", [None, ""], ids=["unset", "empty"])
def test_without_api_base_exits_with_a_message_naming_it(
    tmp_path: Path, api_base: str | None
) -> None:
    proc = run_quickstart(
        tmp_path,
        LLMROUTER_API_BASE=api_base,
        API_KEYS="unused",
        LLMROUTER_ROUTER_DIR=str(tmp_path / "router"),
        LLMROUTER_TRAIN_DATA=str(tmp_path / "no-such-training-data.json"),
    )
    assert proc.returncode != 0
    assert "LLMROUTER_API_BASE" in proc.stderr
    assert "Traceback" not in proc.stderr  # a message for the user, not a crash
    assert proc.stdout == ""
    assert list(tmp_path.iterdir()) == []  # nothing trained or saved
