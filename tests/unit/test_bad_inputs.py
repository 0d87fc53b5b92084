"""Bad inputs get one located ``error:`` line and exit status 2, never a traceback (issue 17).

Each case writes a small workspace (two candidates, a kNN router on 12 short queries embedded
by the bundled MiniLM), spoils one file, flag or value, runs ``llmrouter`` in-process and checks
the one error line names the file, line or field. A seeded, bounded fuzz pass then feeds
random bytes and random truncations of valid files to the same readers. Router folders are
`test_router_loading_hardening`'s.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from langchain_llmrouter.cli.main import main
from langchain_llmrouter.errors import DataFormatError

CANDIDATES = {
    "a": {"model": "a", "input_price": 0.1, "output_price": 0.2, "size": "7B"},
    "b": {"model": "b", "input_price": 1.0, "output_price": 2.0, "size": "70B"},
}
ROWS = [
    {"query": f"question number {i}", "model_name": m, "performance": p}
    for i in range(12)
    for m, p in (("a", 0.4), ("b", 0.9))
]
ROUTERDC = [{"question": f"question {i}", "scores": {"a": 0.2, "b": 0.8}} for i in range(6)]


def _config(root: Path, **changes: Any) -> dict[str, Any]:
    config: dict[str, Any] = {
        "router": "knnrouter",
        "data_path": {"routing_data_train": "train.jsonl", "llm_data": "cands.json"},
        "model_path": {"save_model_path": str(root / "model")},
        "hparam": {"k": 3},
    }
    for key, value in changes.items():
        section, _, field = key.partition(".")
        if field:
            config[section][field] = value
        else:
            config[section] = value
    return config


def _write(path: Path, content: str | bytes | Any) -> Path:
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif isinstance(content, str):
        path.write_text(content, encoding="utf-8")
    else:
        path.write_text(json.dumps(content), encoding="utf-8")
    return path


def _jsonl(rows: list[dict[str, Any]]) -> str:
    return "".join(json.dumps(r) + "\n" for r in rows)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Candidates, training data, a config and a trained router (``model/``)."""
    root = tmp_path_factory.mktemp("bad_inputs")
    _write(root / "cands.json", CANDIDATES)
    _write(root / "train.jsonl", _jsonl(ROWS))
    _write(root / "cfg.yaml", yaml.safe_dump(_config(root)))
    assert (
        main(["train", "--router", "knnrouter", "--config", str(root / "cfg.yaml"), "--quiet"]) == 0
    )
    return root


Case = Callable[[Path, Path], list[str]]
"""(workspace, tmp_path) -> llmrouter arguments; it writes what the arguments name."""


def _train_with(**changes: Any) -> Case:
    """``train`` with a config changed by ``changes`` (``section.key=value``)."""

    def case(root: Path, tmp: Path) -> list[str]:
        config = _config(root, **{k.replace("__", "."): v for k, v in changes.items()})
        for section in ("data_path",):
            for key, value in list(config[section].items()):
                if value and not Path(value).is_absolute() and not (tmp / value).exists():
                    config[section][key] = str(root / value)
        path = _write(tmp / "cfg.yaml", yaml.safe_dump(config))
        return ["train", "--router", "knnrouter", "--config", str(path), "--quiet"]

    return case


def _train_on(name: str, content: Any) -> Case:
    """``train`` on a routing data file ``name`` holding ``content``."""

    def case(root: Path, tmp: Path) -> list[str]:
        _write(tmp / name, content)
        return _train_with(data_path__routing_data_train=str(tmp / name))(root, tmp)

    return case


def _candidates(content: Any) -> Case:
    """``train`` with a candidates JSON holding ``content``."""

    def case(root: Path, tmp: Path) -> list[str]:
        _write(tmp / "bad_cands.json", content)
        return _train_with(data_path__llm_data=str(tmp / "bad_cands.json"))(root, tmp)

    return case


def _candidate(**fields: Any) -> Case:
    return _candidates({**CANDIDATES, "b": {**CANDIDATES["b"], **fields}})


def _row(**fields: Any) -> Case:
    rows = [dict(r) for r in ROWS]
    rows[3].update(fields)
    return _train_on("bad.jsonl", _jsonl(rows))


def _score(value: Any) -> Case:
    records = [dict(r) for r in ROUTERDC]
    records[2] = {"question": "question 2", "scores": {"a": 0.5, "b": value}}
    return _train_on("bad.json", json.dumps(records, indent=1))


def _config_text(text: str | bytes) -> Case:
    def case(root: Path, tmp: Path) -> list[str]:
        path = _write(tmp / "bad.yaml", text)
        return ["train", "--router", "knnrouter", "--config", str(path)]

    return case


def _infer(*extra: str, query: str = "hello") -> Case:
    def case(root: Path, tmp: Path) -> list[str]:
        argv = ["infer", "--router", "knnrouter", "--config", str(root / "cfg.yaml")]
        args = [a.replace("{tmp}", str(tmp)).replace("{root}", str(root)) for a in extra]
        if "--input" not in args:
            argv += ["--query", query]
        return [*argv, "--route-only", *args]

    return case


def _input_file(name: str, content: Any) -> Case:
    def case(root: Path, tmp: Path) -> list[str]:
        _write(tmp / name, content)
        return _infer("--input", str(tmp / name))(root, tmp)

    return case


def _file_in_the_way(root: Path, tmp: Path) -> list[str]:
    _write(tmp / "afile", "x")
    return _infer("--output", str(tmp / "afile" / "out.jsonl"))(root, tmp)


def _save_onto_file(flag: bool) -> Case:
    def case(root: Path, tmp: Path) -> list[str]:
        target = _write(tmp / "afile", "x")
        if flag:
            return [*_train_with()(root, tmp), "--save", str(target)]
        return _train_with(model_path__save_model_path=str(target))(root, tmp)

    return case


# (case id, arguments, fragments the error line must hold). The first block is issue 17's.
CASES: list[tuple[str, Case, tuple[str, ...]]] = [
    # --- issue 17: tracebacks -----------------------------------------------------------
    (
        "config-not-utf8",
        _config_text(b"router: knn\n\xff\xfe\x00"),
        ("bad.yaml", "line 2", "UTF-8"),
    ),
    (
        "config-is-directory",
        lambda r, t: ["train", "--router", "knnrouter", "--config", str(t)],
        ("directory",),
    ),
    ("output-under-a-file", _file_in_the_way, ("--output", "afile")),
    ("output-is-directory", _infer("--output", "{tmp}"), ("--output", "directory")),
    ("save-model-path-is-file", _save_onto_file(False), ("model_path.save_model_path", "afile")),
    ("save-flag-is-file", _save_onto_file(True), ("--save", "afile")),
    ("yaml-5000-deep", _config_text("a: " + "[" * 5000), ("bad.yaml", "nested too deeply")),
    # --- issue 17: silently accepted ----------------------------------------------------
    ("cost-weight-flag-inf", _infer("--cost-weight", "inf"), ("--cost-weight", "finite")),
    (
        "output-price-infinity",
        _candidates('{"a": {"output_price": Infinity}}'),
        ("a.output_price", "finite"),
    ),
    (
        "input-price-negative",
        _candidate(input_price=-1),
        ("b.input_price", "greater than or equal to 0"),
    ),
    ("output-price-absurd", _candidate(output_price=1e300), ("b.output_price", "less than")),
    ("context-window-negative", _candidate(context_window=-5), ("b.context_window",)),
    ("context-window-absurd", _candidate(context_window=10**15), ("b.context_window",)),
    ("routerdc-score-5", _score(5), ("bad.json", "line", "[2].scores.b", "[0, 1]")),
    ("routerdc-score-minus-3", _score(-3), ("bad.json", "[2].scores.b", "[0, 1]")),
    ("routerdc-score-1e308", _score(1e308), ("bad.json", "[2].scores.b", "[0, 1]")),
    (
        "performance-1e300",
        _row(performance=1e300),
        ("bad.jsonl", "line 4", "performance", "[0, 1]"),
    ),
    ("input-tokens-negative", _row(input_tokens=-1), ("line 4", "input_tokens")),
    ("output-tokens-absurd", _row(output_tokens=1e20), ("line 4", "output_tokens")),
    ("token-num-negative", _row(token_num=-3), ("line 4", "token_num")),
    ("cost-negative", _row(cost=-0.5), ("line 4", "'cost'")),
    ("cost-absurd", _row(cost=1e12), ("line 4", "'cost'")),
    # --- our own: configs ---------------------------------------------------------------
    ("config-a-list", _config_text("- 1\n- 2\n"), ("bad.yaml", "mapping")),
    ("config-unknown-key", _train_with(colour="blue"), ("colour", "unknown key")),
    ("config-bad-yaml", _config_text("router: [unclosed\n"), ("bad.yaml", "invalid YAML")),
    ("config-batch-size-0", _train_with(embedding={"batch_size": 0}), ("embedding.batch_size",)),
    ("config-max-concurrency-negative", _train_with(max_concurrency=-1), ("max_concurrency",)),
    ("config-temperature-negative", _train_with(temperature=-1), ("temperature",)),
    ("config-router-mismatch", _train_with(router="mlprouter"), ("'router'", "mlprouter")),
    (
        "config-missing-data",
        _train_with(data_path__routing_data_train="nope.jsonl"),
        ("routing_data_train", "not found"),
    ),
    ("config-hparam-unknown", _train_with(hparam={"kk": 3}), ("hparam.kk",)),
    # --- our own: candidate JSON ----------------------------------------------------------
    ("candidates-a-list", _candidates([1, 2]), ("bad_cands.json", "object")),
    ("candidates-entry-not-object", _candidates({"a": 3}), ("bad_cands.json", "'a'")),
    ("candidates-invalid-json", _candidates('{"a": {'), ("bad_cands.json", "invalid JSON")),
    ("candidates-price-text", _candidate(input_price="cheap"), ("b.input_price",)),
    ("candidates-unknown-field", _candidate(colour="red"), ("b.colour",)),
    ("candidates-not-utf8", _candidates(b'{"a": {"model": "\xff"}}'), ("bad_cands.json", "UTF-8")),
    ("candidates-nan-price", _candidates('{"a": {"input_price": NaN}}'), ("a.input_price",)),
    # --- our own: routing data --------------------------------------------------------------
    (
        "jsonl-not-utf8",
        _train_on("bad.jsonl", _jsonl(ROWS[:3]).encode() + b"\xc3\x28\n"),
        ("bad.jsonl", "line 4", "UTF-8"),
    ),
    (
        "jsonl-line-a-list",
        _train_on("bad.jsonl", _jsonl(ROWS[:2]) + "[1]\n"),
        ("bad.jsonl", "line 3"),
    ),
    ("jsonl-missing-performance", _row(performance=None), ("line 4", "performance", "missing")),
    (
        "jsonl-performance-nan",
        _train_on("bad.jsonl", _jsonl(ROWS[:3]).replace("0.4", "NaN", 1)),
        ("line 1", "performance", "finite"),
    ),
    ("jsonl-performance-bool", _row(performance=True), ("line 4", "performance")),
    ("jsonl-performance-negative", _row(performance=-0.1), ("line 4", "performance", "[0, 1]")),
    ("jsonl-verification-2", _row(verification_score=2), ("line 4", "verification_score")),
    ("routerdc-not-a-list", _train_on("bad.json", {"question": "q"}), ("bad.json", "list")),
    (
        "routerdc-empty-scores",
        _train_on("bad.json", [{"question": "q", "scores": {}}]),
        ("[0].scores",),
    ),
    ("routerdc-not-utf8", _train_on("bad.json", b"[\xff]"), ("bad.json", "UTF-8")),
    ("routerdc-score-text", _score("high"), ("[2].scores.b", "number")),
    (
        "csv-score-7",
        _train_on("bad.csv", "prompt,a,b\nq1,0.5,0.5\nq2,0.5,7\n"),
        ("bad.csv", "line 3", "'b'", "[0, 1]"),
    ),
    (
        "csv-not-utf8",
        _train_on("bad.csv", b"prompt,a,b\n\xff,1,0\n"),
        ("bad.csv", "line 2", "UTF-8"),
    ),
    ("data-bad-suffix", _train_on("bad.parquet", "x"), ("bad.parquet", "suffix")),
    # --- our own: command-line arguments ------------------------------------------------------
    ("budget-zero", _infer("--budget", "0"), ("--budget",)),
    ("budget-inf", _infer("--budget", "inf"), ("--budget", "finite")),
    ("max-tokens-zero", _infer("--max-tokens", "0"), ("--max-tokens",)),
    ("cost-weight-negative", _infer("--cost-weight", "-1"), ("--cost-weight",)),
    ("cost-weight-nan", _infer("--cost-weight", "nan"), ("--cost-weight", "finite")),
    ("input-missing", _infer("--input", "{tmp}/none.txt"), ("none.txt", "not found")),
    ("input-bad-suffix", _input_file("q.md", "hello"), ("q.md", "suffix")),
    ("input-json-not-list", _input_file("q.json", {"query": "x"}), ("q.json", "list")),
    ("input-not-utf8", _input_file("q.txt", b"hello\n\xfe\xff\n"), ("q.txt", "line 2", "UTF-8")),
    (
        "input-jsonl-empty-query",
        _input_file("q.jsonl", '{"query": ""}\n'),
        ("q.jsonl", "line 1", "query"),
    ),
    (
        "unknown-router",
        lambda r, t: ["train", "--router", "nope", "--config", str(r / "cfg.yaml")],
        ("nope",),
    ),
]


def _assert_user_error(code: int, err: str, fragments: tuple[str, ...] = ()) -> str:
    assert code == 2, err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1, err
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    return lines[0]


@pytest.mark.parametrize(("case", "fragments"), [pytest.param(c, f, id=i) for i, c, f in CASES])
def test_bad_input_is_one_located_error(
    case: Case,
    fragments: tuple[str, ...],
    workspace: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    argv = case(workspace, tmp_path)
    capsys.readouterr()
    code = main(argv)
    _assert_user_error(code, capsys.readouterr().err, fragments)


def test_unwritable_output_is_refused_before_routing(
    workspace: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The output check comes before the candidates, the router and the queries are read."""
    import langchain_llmrouter.cli.infer as infer

    def boom(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("routing work started before the output was checked")

    monkeypatch.setattr(infer, "candidate_pool", boom)
    _write(tmp_path / "afile", "x")
    argv = _infer("--output", str(tmp_path / "afile" / "out.jsonl"))(workspace, tmp_path)
    _assert_user_error(main(argv), capsys.readouterr().err, ("--output",))


def test_hparam_cost_weight_inf_is_refused(
    workspace: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = _train_with(hparam={"k": 3, "cost_weight": float("inf")})(workspace, tmp_path)
    _assert_user_error(main(argv), capsys.readouterr().err, ("hparam.cost_weight",))


def test_cost_weight_option_inf_is_refused() -> None:
    from langchain_llmrouter.errors import InvalidOptionError
    from langchain_llmrouter.options import check_option

    with pytest.raises(InvalidOptionError, match=r"cost_weight.*finite"):
        check_option("cost_weight", float("inf"))


def test_lone_surrogate_routes(workspace: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A lone surrogate in a query is replaced, not a UnicodeEncodeError (MiniLM, cached)."""
    argv = _infer(query="\ud800 what is 2+2?")(workspace, workspace)
    assert main(argv) == 0, capsys.readouterr().err


def test_lone_surrogate_minilm(tmp_path: Path) -> None:
    """RouterDC's path: MiniLM through the embedding cache takes a lone surrogate."""
    from langchain_llmrouter.embeddings import CachedEmbeddings, default_embeddings

    cached = CachedEmbeddings(default_embeddings(), cache_dir=tmp_path)
    vectors = cached.embed_array(["\ud800 hello", "hello"])
    assert vectors.shape == (2, 384)
    assert np.isfinite(vectors).all()


def test_pipeline_query_file_of_random_bytes(tmp_path: Path) -> None:
    from langchain_llmrouter.pipeline.queries import read_query_rows

    path = _write(tmp_path / "queries.jsonl", random.Random(17).randbytes(512))
    with pytest.raises(DataFormatError, match=r"queries\.jsonl, line \d+: expected UTF-8"):
        read_query_rows(path)


# --- seeded fuzz: random bytes and truncated files -----------------------------------------

_VALID = {
    "cands.json": json.dumps(CANDIDATES, indent=1),
    "train.jsonl": _jsonl(ROWS[:6]),
    "train.json": json.dumps(ROUTERDC, indent=1),
    "cfg.yaml": yaml.safe_dump(_config(Path("/nonexistent"))),
}


def _mangled(rng: random.Random, name: str) -> bytes:
    """Random bytes, a cut-off valid file, or a valid file with a few bytes overwritten."""
    valid = _VALID[name].encode()
    kind = rng.randrange(3)
    if kind == 0:
        return rng.randbytes(rng.randrange(1, 200))
    if kind == 1:
        return valid[: rng.randrange(1, len(valid) - 1)]
    data = bytearray(valid)
    for _ in range(rng.randrange(1, 4)):
        data[rng.randrange(len(data))] = rng.randrange(256)
    return bytes(data)


@pytest.mark.parametrize("name", sorted(_VALID))
def test_fuzz_mangled_files(
    name: str, workspace: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """40 seeded mangled copies of each file: exit 0 (still valid) or 2, never a traceback."""
    rng = random.Random(f"issue-17:{name}")
    refused = 0
    for _ in range(40):
        path = tmp_path / name
        path.write_bytes(_mangled(rng, name))
        if name == "cfg.yaml":
            argv = ["train", "--router", "knnrouter", "--config", str(path), "--quiet"]
        elif name == "cands.json":
            argv = _train_with(data_path__llm_data=str(path))(workspace, tmp_path)
        else:
            argv = _train_with(data_path__routing_data_train=str(path))(workspace, tmp_path)
        argv = [*argv, "--save", str(tmp_path / "model")] if "--save" not in argv else argv
        capsys.readouterr()
        code = main(argv)
        err = capsys.readouterr().err
        assert code in (0, 2), err
        if code == 2:
            line = _assert_user_error(code, err)
            assert str(tmp_path) in line or "router" in line, line
            refused += 1
    assert refused >= 20
