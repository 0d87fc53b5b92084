"""The data pipeline on Ray (``engine: ray``): the same stages, outputs and guarantees as the
local engine, with the work spread over a Ray cluster (or a local Ray on this machine).

* **Stages 1 and 2** run their local code unchanged as one Ray task each, pinned to the
  driver's node (their outputs are files the driver reads next). Neither has work worth
  spreading: stage 1 samples benchmark files, stage 2 embeds one description per candidate.
* **Stage 3** keeps everything that decides *what* is done at the driver: the job list
  (`rounds.pending_jobs`, the same as the local engine's), the ``--max-cost``
  reservations (`_Run.reserve`, before a call is dispatched, so the bound holds over the
  whole cluster including calls in flight), the in-flight journal and the append-only
  routing files (`SplitStore`: the driver is their only writer). The calls and their scoring
  run in a pool of Ray actors that use the local engine's code (`Caller` for retries and
  back-off, `paid_call`, `Scorer`). Every actor asks one named actor, the dispenser, before
  each attempt: it holds the token bucket of each service's ``calls.requests_per_second`` and
  rotates the ``API_KEYS``, so both hold across the cluster rather than per actor. (The
  actors are in `langchain_llmrouter.pipeline.ray_actors`.)
* **Query embeddings** go through Ray Data: ``map_batches`` over an actor pool whose actors
  load the featuriser once each.

When a calling actor dies, the pairs it had in flight are counted lost in the journal (their
worst case stays counted against ``--max-cost``), the actor is replaced and the pairs are
dispatched again: none is lost, and none is written twice because only the driver writes.
When the driver dies, its actors go with it; the next run resumes from the routing files and
the journal exactly as after a killed local run.

Ray is imported only here, when ``engine: ray`` is used (``pip install
'langchain-llmrouter[ray]'``).
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from langchain_llmrouter.candidates import CandidatePool
from langchain_llmrouter.errors import ConfigError
from langchain_llmrouter.pipeline.answers import finished_row
from langchain_llmrouter.pipeline.call_candidates import (
    CallSummary,
    _Run,
    query_texts,
    run_stage3,
    save_query_embeddings,
)
from langchain_llmrouter.pipeline.config import PipelineConfig
from langchain_llmrouter.pipeline.ray_actors import _CallWorker, _Dispenser, _routes, require_ray
from langchain_llmrouter.pipeline.rounds import Job
from langchain_llmrouter.pipeline.store import query_key
from langchain_llmrouter.pipeline.tasks import render_messages

WORKER_DEATHS_PER_PAIR = 3
"""Times a pair is dispatched again after its actor died, before it is recorded as failed."""

EMBED_BATCH_SIZE = 256
"""Queries per Ray Data batch when embedding."""


def ensure_ray(config: PipelineConfig) -> Any:
    """Ray, connected: to ``ray_address`` when set, else a local Ray on this machine (left
    running for the next stage; it stops when the process exits). A Ray already initialised
    in this process is used as it is."""
    ray = require_ray()
    if not ray.is_initialized():
        ray.init(
            address=config.ray_address,
            include_dashboard=False,
            log_to_driver=False,
            configure_logging=False,
        )
    return ray


def _on_driver_node(ray: Any) -> dict[str, Any]:
    """Ray options that run a task on the driver's node (where its output files belong)."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    node = ray.get_runtime_context().get_node_id()
    return {"scheduling_strategy": NodeAffinitySchedulingStrategy(node_id=node, soft=False)}


def run_on_driver_node(config: PipelineConfig, stage: Callable[[PipelineConfig], Any]) -> Any:
    """Run a stage's local code as a Ray task on the driver's node (stages 1 and 2); its
    result. The working directory is the driver's, so relative outputs land in the same
    place."""
    ray = ensure_ray(config)
    cwd = os.getcwd()

    def task(config: PipelineConfig) -> Any:
        os.chdir(cwd)
        return stage(config)

    remote = ray.remote(num_cpus=0, max_retries=0)(task).options(**_on_driver_node(ray))
    return ray.get(remote.remote(config))


# --- query embeddings on Ray Data ----------------------------------------------------------


class _Embedder:
    """A Ray Data map-batches actor: loads the featuriser once, embeds batches of queries."""

    def __init__(self, config: PipelineConfig) -> None:
        from langchain_llmrouter.embeddings import default_embeddings

        built = config.build_embeddings()
        self.embeddings = built if built is not None else default_embeddings()

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        from langchain_llmrouter.embeddings import embed_texts

        vectors = embed_texts([str(t) for t in batch["text"]], self.embeddings)
        return {"id": batch["id"], "vector": np.asarray(vectors, dtype=np.float32)}


def write_query_embeddings_on_ray(config: PipelineConfig) -> Path:
    """`call_candidates.write_query_embeddings` with the embedding done by Ray Data: the same
    file (row = embedding id), the same vectors."""
    ray = ensure_ray(config)
    texts = query_texts(config)
    embeddings = config.build_embeddings()
    if not texts:
        return save_query_embeddings(config, np.zeros((0, 0), dtype=np.float32), embeddings)
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False  # the pipeline prints its own one-line report
    context.print_on_execution_start = False
    dataset = ray.data.from_items([{"id": i, "text": t} for i, t in enumerate(texts)])
    embedded = dataset.map_batches(
        _Embedder,
        fn_constructor_args=(config,),
        batch_size=EMBED_BATCH_SIZE,
        compute=ray.data.ActorPoolStrategy(size=config.ray_actors),
        num_cpus=1,
    )
    vectors: np.ndarray | None = None
    seen = 0
    for batch in embedded.iter_batches(batch_format="numpy", batch_size=None):
        block = np.asarray(batch["vector"], dtype=np.float32)
        if vectors is None:
            vectors = np.zeros((len(texts), block.shape[1]), dtype=np.float32)
        vectors[np.asarray(batch["id"], dtype=np.int64)] = block
        seen += len(block)
    assert vectors is not None and seen == len(texts), "Ray Data lost query embeddings"
    return save_query_embeddings(config, vectors, embeddings)


class _Workers:
    """The calling actors; a dead one is replaced by a fresh one in its slot."""

    def __init__(self, make: Callable[[int], Any], size: int) -> None:
        self.make = make
        self.serial = size
        self.actors = [make(i) for i in range(size)]
        self.load = [0] * size
        require_ray().get([a.ready.remote() for a in self.actors])

    def pick(self) -> int:
        """The slot with the fewest calls in flight."""
        return min(range(len(self.actors)), key=self.load.__getitem__)

    async def run(self, slot: int, job: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
        """Run a job on a slot's actor; (that actor, its answer). Raises Ray's actor errors."""
        actor = self.actors[slot]
        self.load[slot] += 1
        try:
            return actor, await actor.run.remote(job)
        finally:
            self.load[slot] -= 1

    def replace(self, slot: int, dead: Any) -> None:
        """Start a fresh actor in a slot whose actor died (once, however many calls saw it)."""
        if self.actors[slot] is dead:
            self.actors[slot] = self.make(self.serial)
            self.serial += 1

    def close(self) -> None:
        ray = require_ray()
        for actor in self.actors:
            ray.kill(actor)


class _RayRun(_Run):
    """The driver's side of a Ray run: `_Run`'s reservations, journal and store, with each
    call and its scoring sent to a calling actor."""

    workers: _Workers | None = None
    dispenser: Any = None

    def before_round(self) -> None:
        """Start the dispenser and the calling actors before the first round that has calls."""
        if self.workers is None:
            starting = time.perf_counter()
            self.dispenser, self.workers = _start_actors(
                require_ray(), self.config, self.pool, self.models
            )
            self.summary.engine_start_s = time.perf_counter() - starting

    def close(self) -> None:
        if self.workers is not None:
            self.workers.close()
        if self.dispenser is not None:
            require_ray().kill(self.dispenser)

    async def run_job(self, job: Job) -> None:
        ray = require_ray()
        workers = self.workers
        assert workers is not None, "before_round starts the actors"
        store = self.stores[job.split]
        pair = (query_key(job.row), job.model)
        base = self.base_row(job)
        pending = store.unscored.get(pair)
        payload = {"row": job.row, "model": job.model, "base": base, "paid": pending}
        messages = render_messages(job.row)
        for _ in range(WORKER_DEATHS_PER_PAIR + 1):
            request_id, estimate = None, 0.0
            if pending is None:
                reserved = self.reserve(job, messages)
                if reserved is None:
                    return
                estimate, request_id = reserved, next(self.request_ids)
                store.inflight.start(request_id, pair, estimate)  # before it is dispatched
            slot = workers.pick()
            dead = workers.actors[slot]
            try:
                _, answer = await workers.run(slot, payload)
            except ray.exceptions.RayActorError:
                workers.replace(slot, dead)
                if request_id is not None:
                    self.reserved -= estimate
                    lost = store.inflight.lose(request_id)
                    self.lost_cost += lost
                    self.summary.lost_calls += 1
                    self.summary.lost_cost += lost
                self.summary.errors["worker died"] = self.summary.errors.get("worker died", 0) + 1
                continue
            self.reserved -= estimate
            self._finish(job, base, answer, request_id, rescoring=pending is not None)
            return
        self.record_error(
            job, "call", "ActorDiedError: the pair's actor died each time", "worker died"
        )

    def _finish(
        self,
        job: Job,
        base: dict[str, Any],
        answer: dict[str, Any],
        request_id: str | None,
        *,
        rescoring: bool,
    ) -> None:
        for kind, count in answer.get("retries", {}).items():
            self.summary.errors[kind] = self.summary.errors.get(kind, 0) + count
        if "stage" in answer:
            if answer["stage"] == "score" and not rescoring:
                self.summary.calls += 1
            self.record_error(
                job,
                answer["stage"],
                answer["error"],
                answer["label"],
                paid=answer.get("paid"),
                request_id=request_id,
            )
            return
        self.summary.calls += not rescoring
        row = finished_row(base, answer["paid"], float(answer["performance"]), self.ids)
        self.store_row(job, row, rescoring, request_id)


async def acall_candidates_on_ray(
    config: PipelineConfig,
    *,
    max_cost: float | None = None,
    progress: bool = True,
    pool: CandidatePool | None = None,
) -> CallSummary:
    """Stage 3 on Ray (`call_candidates.acall_candidates` with ``engine: ray``).

    Args:
        config: The pipeline config.
        max_cost: Overrides ``calls.max_cost``.
        progress: Show the progress bar (on stderr).
        pool: Not supported on Ray (the actors build the candidates from
            ``data_path.llm_data``); must be None.

    Returns:
        What the run did, as for the local engine.
    """
    if pool is not None:
        raise ConfigError(
            "engine: ray builds the candidates from data_path.llm_data in each actor; "
            "a pool of chat models cannot be passed (use engine: local)"
        )
    ensure_ray(config)
    return await run_stage3(config, None, max_cost=max_cost, progress=progress, run_class=_RayRun)


def _start_actors(
    ray: Any, config: PipelineConfig, pool: CandidatePool, models: list[str]
) -> tuple[Any, _Workers]:
    """The dispenser (named, so every actor finds the same one) and the calling actors."""
    routes = _routes(config, pool, models)
    name = f"llmrouter-dispenser-{uuid.uuid4().hex[:12]}"
    dispenser = (
        ray.remote(_Dispenser)
        .options(name=name, num_cpus=0, max_concurrency=10_000)
        .remote(os.environ.get("API_KEYS"), routes)
    )
    candidates = [pool[n] for n in models]
    needs_key = {n: routes[n].rotation is not None for n in models}
    worker_cls = ray.remote(_CallWorker)
    options = {
        "num_cpus": 0,
        "max_restarts": 0,
        "max_concurrency": max(2, config.calls.max_concurrency + 1),
    }
    prefix = name.replace("dispenser", "caller")
    kwargs = dict(pool.chat_model_kwargs)
    seed = config.queries.random_seed

    def make(i: int) -> Any:
        return worker_cls.options(name=f"{prefix}-{i}", **options).remote(
            config, candidates, kwargs, models, name, needs_key, seed + i
        )

    return dispenser, _Workers(make, config.ray_actors)
