"""Stage 3 (`langchain_llmrouter.pipeline.call_candidates`) against the local
OpenAI-compatible server: scored rows with real usage and cost, resumption without
re-calling, failures recorded and retried, retries, rate limits, key rotation, the cost
bound, and clear errors."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest
from pipeline_call_helpers import (
    ROWS_TEST,
    ROWS_TRAIN,
    ok_calls,
    read_jsonl,
    scripted,
    served_usage,
    user_text,
    write_config,
)
from safetensors.numpy import load_file

from langchain_llmrouter.errors import (
    DataFormatError,
    MissingAPIKeyError,
    MissingEndpointError,
    UnknownCandidateError,
)
from langchain_llmrouter.evaluation.task_metrics import register_metric
from langchain_llmrouter.pipeline.call_candidates import (
    call_candidates,
    main,
    write_query_embeddings,
)
from langchain_llmrouter.pipeline.config import load_pipeline_config
from langchain_llmrouter.pipeline.store import SplitStore
from langchain_llmrouter.testing import FakeOpenAIServer, ModelBehavior

ALL_ROWS = [*ROWS_TRAIN, ROWS_TEST[0]]


@pytest.fixture(autouse=True)
def _no_api_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("API_KEYS", raising=False)


def _script(server: FakeOpenAIServer, **extra: ModelBehavior) -> None:
    server.set_behavior("good", ModelBehavior(reply=scripted(ALL_ROWS, right=True)))
    server.set_behavior("bad", ModelBehavior(reply=scripted(ALL_ROWS, right=False)))
    for name, behavior in extra.items():
        server.set_behavior(name, behavior)


def _out(config_path: Path, split: str = "train") -> Path:
    return config_path.parent / "out" / f"routing_{split}.jsonl"


def test_rows_are_scored_with_real_usage_and_cost(served: FakeOpenAIServer, tmp_path: Path) -> None:
    _script(served)
    config = load_pipeline_config(write_config(tmp_path, base_url=served.base_url))
    summary = call_candidates(config, progress=False)

    assert summary.complete and summary.total == 10 and summary.calls == 10
    train, test = read_jsonl(_out(config.source)), read_jsonl(_out(config.source, "test"))
    assert len(train) == 6 and len(test) == 4
    by_pair = {(r["query"], r["model_name"]): r for r in train + test}
    for row in ALL_ROWS:
        assert by_pair[(row["query"], "good")]["performance"] == 1.0
        assert by_pair[(row["query"], "bad")]["performance"] == 0.0
    # Tokens are what the server reported; dollars are those tokens at the candidate's prices.
    for call in ok_calls(served):
        row = next(
            r
            for r in train + test
            if r["query"] in user_text(call.messages) and r["model_name"] == call.model
        )
        assert (row["input_tokens"], row["output_tokens"]) == served_usage(call, row["response"])
        prices = (3.0, 6.0) if call.model == "good" else (1.0, 2.0)
        expected = (row["input_tokens"] * prices[0] + row["output_tokens"] * prices[1]) / 1e6
        assert row["cost"] == pytest.approx(expected)
        assert row["token_num"] == row["input_tokens"] + row["output_tokens"]
        assert row["latency"] > 0 and "usage_estimated" not in row
    # The task's prompt template is what the candidate saw: the options, lettered.
    mmlu = next(c for c in ok_calls(served) if "fruit" in user_text(c.messages))
    assert "(B) apple" in user_text(mmlu.messages)
    assert set(train[0]) >= {
        "task_name",
        "query",
        "ground_truth",
        "metric",
        "choices",
        "task_id",
        "model_name",
        "response",
        "performance",
        "embedding_id",
        "token_num",
        "input_tokens",
        "output_tokens",
        "cost",
        "latency",
    }
    # One embedding id per unique query, shared by the splits; the file holds their vectors.
    ids = {r["query"]: r["embedding_id"] for r in train + test}
    assert sorted(ids.values()) == [0, 1, 2, 3]
    assert ids[ROWS_TRAIN[1]["query"]] == 1
    vectors = load_file(str(write_query_embeddings(config)))["embeddings"]
    assert vectors.shape == (4, 384)


def test_a_second_run_calls_only_what_is_missing(served: FakeOpenAIServer, tmp_path: Path) -> None:
    _script(served)
    path = write_config(tmp_path, base_url=served.base_url, calls={"models": ["good"]})
    first = call_candidates(load_pipeline_config(path), progress=False)
    assert first.complete and len(ok_calls(served, "good")) == 5

    config = load_pipeline_config(write_config(tmp_path, base_url=served.base_url))
    second = call_candidates(config, progress=False)
    assert (second.done_before, second.calls, second.complete) == (5, 5, True)
    assert len(ok_calls(served, "good")) == 5 and len(ok_calls(served, "bad")) == 5

    third = call_candidates(config, progress=False)
    assert (third.done_before, third.calls) == (10, 0)
    assert len(served.calls) == 10
    assert len(read_jsonl(_out(config.source))) == 6


def test_failed_calls_are_recorded_not_scored_and_retried_next_run(
    served: FakeOpenAIServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _script(served, bad=ModelBehavior(fail_status=400))
    path = write_config(tmp_path, base_url=served.base_url)
    assert main(["--config", str(path), "--no-progress"]) == 3
    assert "5 pairs left (5 failed this run" in capsys.readouterr().out

    rows = read_jsonl(_out(path))
    assert {r["model_name"] for r in rows} == {"good"}  # no row scored 0 for a failed call
    failures = read_jsonl(path.parent / "out" / "routing_train.failures.jsonl")
    assert len(failures) == 3
    assert all(f["stage"] == "call" and "400" in f["error"] for f in failures)
    assert len(served.calls_for("bad")) == 5  # a bad request is not retried

    _script(served)
    assert main(["--config", str(path), "--no-progress"]) == 0
    assert len(ok_calls(served, "bad")) == 5 and len(ok_calls(served, "good")) == 5
    assert (
        sorted(r["performance"] for r in read_jsonl(_out(path)) if r["model_name"] == "bad")
        == [0.0] * 3
    )


def test_transient_errors_are_retried_with_back_off(
    served: FakeOpenAIServer, tmp_path: Path
) -> None:
    _script(
        served,
        bad=ModelBehavior(reply=scripted(ALL_ROWS, right=False), fail_status=500, fail_times=2),
    )
    config = load_pipeline_config(
        write_config(
            tmp_path, base_url=served.base_url, calls={"max_concurrency": 1, "max_retries": 3}
        )
    )
    summary = call_candidates(config, progress=False)
    assert summary.complete
    assert len(served.calls_for("bad")) == 7 and len(ok_calls(served, "bad")) == 5
    rows = read_jsonl(_out(config.source)) + read_jsonl(_out(config.source, "test"))
    assert sorted(r["attempts"] for r in rows if r["model_name"] == "bad") == [1, 1, 1, 1, 3]
    assert summary.errors == {"retried HTTP 500": 2}

    # Retries run out: the pair is recorded as failed after 1 + max_retries attempts.
    served.reset()
    served.set_behavior("bad", ModelBehavior(fail_status=503))
    other = load_pipeline_config(
        write_config(
            tmp_path / "again",
            base_url=served.base_url,
            calls={"max_retries": 1, "models": ["bad"], "splits": ["test"]},
        )
    )
    summary = call_candidates(other, progress=False)
    assert summary.failed == 2 and not summary.complete
    assert len(served.calls_for("bad")) == 4


def test_rate_limit_spaces_the_requests_of_a_service(
    served: FakeOpenAIServer, tmp_path: Path
) -> None:
    _script(served)
    config = load_pipeline_config(
        write_config(
            tmp_path,
            base_url=served.base_url,
            calls={"max_concurrency": 8, "requests_per_second": {"LOCAL": 20}},
        )
    )
    call_candidates(config, progress=False)
    times = sorted(c.time for c in served.calls)
    assert len(times) == 10
    # 10 requests at 20/s with a bucket of one: at least 9 intervals of ~50 ms.
    assert times[-1] - times[0] >= 9 / 20 * 0.7


def test_api_keys_rotate_per_request(
    served: FakeOpenAIServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _script(served)
    monkeypatch.setenv("API_KEYS", '["key-one", "key-two"]')
    config = load_pipeline_config(
        write_config(tmp_path, base_url=served.base_url, calls={"models": ["good"]})
    )
    call_candidates(config, progress=False)
    keys = [c.api_key for c in served.calls]
    assert (
        sorted(keys) == ["key-one"] * 2 + ["key-two"] * 3
        or sorted(keys) == ["key-one"] * 3 + ["key-two"] * 2
    )


def test_max_cost_stops_before_the_spend_would_pass_it(
    served: FakeOpenAIServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _script(served)
    # Dear candidates: each call's worst case (prompt + 512 output tokens) is about $0.05.
    models = {
        "good": {"input_price": 50.0, "output_price": 100.0},
        "bad": {"input_price": 50.0, "output_price": 100.0},
    }
    path = write_config(
        tmp_path, base_url=served.base_url, models=models, calls={"max_concurrency": 2}
    )
    assert main(["--config", str(path), "--no-progress", "--max-cost", "0.12"]) == 3
    out = capsys.readouterr().out
    assert "stopped at max cost" in out
    rows = read_jsonl(_out(path)) + read_jsonl(_out(path, "test"))
    assert 0 < len(rows) < 10
    assert sum(r["cost"] for r in rows) <= 0.12
    assert len(served.calls) == len(rows)  # nothing was called past the bound

    assert main(["--config", str(path), "--no-progress", "--max-cost", "5"]) == 0
    assert len(served.calls) == 10  # the rest, and nothing twice


FLAKY = {"fail": True}


@register_metric("flaky_for_tests")
def _flaky(prediction: str, ground_truth: object, row: object) -> float:
    if FLAKY["fail"]:
        raise RuntimeError("scorer crashed")
    return 1.0 if "Paris" in prediction else 0.0


def test_a_scoring_failure_keeps_the_paid_answer_and_rescores_without_calling(
    served: FakeOpenAIServer, tmp_path: Path
) -> None:
    _script(served)
    rows = [{**ROWS_TRAIN[2], "metric": "flaky_for_tests"}]
    path = write_config(
        tmp_path, base_url=served.base_url, train=rows, test=[], calls={"splits": ["train"]}
    )
    FLAKY["fail"] = True
    first = call_candidates(load_pipeline_config(path), progress=False)
    assert first.failed == 2 and not first.complete
    failures = read_jsonl(path.parent / "out" / "routing_train.failures.jsonl")
    assert {f["stage"] for f in failures} == {"score"} and all(f["response"] for f in failures)
    assert first.spent == pytest.approx(sum(f["cost"] for f in failures))

    FLAKY["fail"] = False
    second = call_candidates(load_pipeline_config(path), progress=False)
    assert (second.rescored, second.calls, second.complete) == (2, 0, True)
    assert len(served.calls) == 2
    assert sorted(r["performance"] for r in read_jsonl(_out(path))) == [0.0, 1.0]


def test_a_line_cut_short_by_a_kill_is_dropped_and_its_pair_called_again(
    served: FakeOpenAIServer, tmp_path: Path
) -> None:
    _script(served)
    config = load_pipeline_config(write_config(tmp_path, base_url=served.base_url))
    call_candidates(config, progress=False)
    routing = _out(config.source)
    text = routing.read_text(encoding="utf-8")
    last = text.splitlines()[-1]
    routing.write_text(text[: len(text) - len(last) // 2 - 1], encoding="utf-8")  # torn row
    served.reset()

    summary = call_candidates(config, progress=False)
    assert summary.calls == 1 and summary.complete
    rows = read_jsonl(routing)
    assert len(rows) == 6 and rows[-1]["query"] == json.loads(last)["query"]


def test_a_malformed_line_in_the_middle_names_file_and_line(
    served: FakeOpenAIServer, tmp_path: Path
) -> None:
    _script(served)
    config = load_pipeline_config(write_config(tmp_path, base_url=served.base_url))
    call_candidates(config, progress=False)
    routing = _out(config.source)
    lines = routing.read_text(encoding="utf-8").splitlines(keepends=True)
    routing.write_text(lines[0] + "{not json\n" + "".join(lines[1:]), encoding="utf-8")
    with pytest.raises(DataFormatError, match=r"routing_train\.jsonl, line 2: invalid JSON"):
        call_candidates(config, progress=False)


def test_an_unknown_metric_fails_before_any_call(served: FakeOpenAIServer, tmp_path: Path) -> None:
    _script(served)
    rows = [ROWS_TRAIN[0], {**ROWS_TRAIN[1], "metric": "no_such_metric"}]
    config = load_pipeline_config(write_config(tmp_path, base_url=served.base_url, train=rows))
    with pytest.raises(
        DataFormatError,
        match=r"q_train\.jsonl, line 2, field 'metric': unknown metric 'no_such_metric'; valid metrics: .*em_mc",
    ):
        call_candidates(config, progress=False)
    assert served.calls == []


def test_a_metric_override_per_task(served: FakeOpenAIServer, tmp_path: Path) -> None:
    served.set_behavior("good", ModelBehavior(reply=lambda m: "It is Paris, of course."))
    rows = [ROWS_TRAIN[2]]
    path = write_config(
        tmp_path,
        base_url=served.base_url,
        train=rows,
        test=[],
        calls={"models": ["good"], "splits": ["train"], "metrics": {"natural_qa": "cem"}},
    )
    call_candidates(load_pipeline_config(path), progress=False)
    (row,) = read_jsonl(_out(path))
    assert (row["metric"], row["performance"]) == ("cem", 1.0)


def test_candidates_without_endpoint_or_unknown_names_are_clear_errors(tmp_path: Path) -> None:
    config = load_pipeline_config(write_config(tmp_path, base_url=None))
    with pytest.raises(MissingEndpointError, match="candidate 'good' has no api_endpoint"):
        call_candidates(config, progress=False)
    config = load_pipeline_config(write_config(tmp_path, base_url="https://llm.example.com/v1"))
    with pytest.raises(MissingAPIKeyError, match="candidate 'good': no API key: set API_KEYS"):
        call_candidates(config, progress=False)
    config = load_pipeline_config(
        write_config(
            tmp_path, base_url="http://127.0.0.1:9/v1", calls={"models": ["good", "gpt-9"]}
        )
    )
    with pytest.raises(UnknownCandidateError, match=r"gpt-9.*bad, good"):
        call_candidates(config, progress=False)


def test_no_more_calls_in_flight_than_max_concurrency(
    served: FakeOpenAIServer, tmp_path: Path
) -> None:
    in_flight, peak, lock = [0], [0], threading.Lock()
    good = scripted(ALL_ROWS, right=True)

    def slow(messages: list[dict]) -> str:
        with lock:
            in_flight[0] += 1
            peak[0] = max(peak[0], in_flight[0])
        time.sleep(0.05)
        with lock:
            in_flight[0] -= 1
        return good(messages)

    served.set_behavior("good", ModelBehavior(reply=slow))
    served.set_behavior("bad", ModelBehavior(reply=slow))
    config = load_pipeline_config(
        write_config(tmp_path, base_url=served.base_url, calls={"max_concurrency": 3})
    )
    call_candidates(config, progress=False)
    assert 2 <= peak[0] <= 3


def test_a_bad_config_is_one_line_naming_file_line_and_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(
        "data_path:\n  llm_data: x.json\ncalls:\n  max_concurency: 4\n", encoding="utf-8"
    )
    assert main(["--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert (
        err.startswith("error: ")
        and "bad.yaml, line 4, field 'calls.max_concurency': unknown key" in err
    )


def test_the_store_survives_odd_text_and_a_last_line_without_newline(tmp_path: Path) -> None:
    path = tmp_path / "routing.jsonl"
    store = SplitStore(path).open()
    store.add(
        {**ROWS_TRAIN[2], "model_name": "good", "response": "Paris\u2028is the answer", "cost": 0.5}
    )
    store.close()
    text = path.read_text(encoding="utf-8")
    assert "\u2028" in text  # written as is: reading must not split the row there
    path.write_text(text.rstrip("\n"), encoding="utf-8")  # a whole row, its newline missing

    store = SplitStore(path).open()
    assert len(store.done) == 1 and store.spent == 0.5
    store.add({**ROWS_TRAIN[1], "model_name": "good", "response": "(B)", "cost": 0.25})
    store.close()
    assert [r["response"] for r in read_jsonl(path)] == ["Paris\u2028is the answer", "(B)"]
