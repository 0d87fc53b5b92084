"""Tests of personalised routing data: the interaction formats, simulated users, the split.

GMTRouter JSONL round-trips; PersonalizedRouter CSV reads; malformed input names the file,
line and field. The simulated users are built once per strategy over the RouterDC training
data (5,608 queries, 9 candidates priced from ``default_llm.json``), and their planted
preferences must show in their ratings.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest

from langchain_llmrouter import CandidatePool, DataFormatError, RoutingDataset
from langchain_llmrouter.errors import InvalidOptionError
from langchain_llmrouter.personal import (
    Exchange,
    Interaction,
    make_population,
    read_gmt_jsonl,
    read_personalized_csv,
    simulate_users,
    split_users,
    write_gmt_jsonl,
)

GMT_LINES = [
    {
        "judge": "alice",
        "model": "gpt-4",
        "question_id": "81",
        "turn": 1,
        "conversation": [
            {"query": "Write a haiku.", "query_emb": [0.1, -0.2], "response": "Leaves", "rating": 4}
        ],
        "model_emb": [1.0, 0.5],
        "encoder": "sentence-transformers/all-mpnet-base-v2",
    },
    {
        "judge": "alice",
        "model": "vicuna-13b",
        "question_id": "81",
        "turn": 2,
        "conversation": [
            {"query": "Write a haiku.", "response": "Snow", "rating": 2.5},
            {"query": "Now in French — ünïcode.", "rating": 0},
        ],
    },
    {
        "judge": "bob",
        "model": "gpt-4",
        "question_id": "q2",
        "turn": 1,
        "conversation": [{"query": "2+2?", "response": "4", "rating": 5}],
        "task": "math",
    },
]


def write_lines(path: Path, records: list[object]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


# --- GMTRouter JSONL -------------------------------------------------------------------------


def test_gmt_jsonl_reads_the_published_format(tmp_path: Path) -> None:
    first, second, third = read_gmt_jsonl(write_lines(tmp_path / "g.jsonl", GMT_LINES))
    assert first.user_id == "alice" and first.model == "gpt-4" and first.question_id == "81"
    assert first.rating == 4.0 and first.embedding == [0.1, -0.2]
    assert first.model_embedding == [1.0, 0.5] and first.history == ()
    assert second.turn == 2 and second.query == "Now in French — ünïcode."
    assert second.response is None and second.rating == 0.0
    assert second.history == (Exchange(query="Write a haiku.", response="Snow", rating=2.5),)
    assert third.task == "math" and third.embedding is None


def test_gmt_jsonl_round_trips_exactly(tmp_path: Path) -> None:
    source = write_lines(tmp_path / "g.jsonl", GMT_LINES)
    interactions = read_gmt_jsonl(source)
    out = write_gmt_jsonl(tmp_path / "out" / "g.jsonl", interactions)
    # The same JSON values as the source, key for key, and the same records when read back.
    assert [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()] == GMT_LINES
    assert read_gmt_jsonl(out) == interactions
    # Our own file rewrites to the same bytes.
    again = write_gmt_jsonl(tmp_path / "again.jsonl", read_gmt_jsonl(out))
    assert again.read_bytes() == out.read_bytes()
    assert '"rating": 4}' in out.read_text(encoding="utf-8")  # whole ratings stay integers


@pytest.mark.parametrize(
    ("change", "line", "field", "fragment"),
    [
        ({"judge": ""}, 2, "judge", "at least 1 character"),
        ({"turn": 0}, 2, "turn", "greater than or equal to 1"),
        ({"turn": "1"}, 2, "turn", "valid integer"),
        ({"conversation": []}, 2, "conversation", "at least 1 item"),
        ({"conversation": [{"query": "q", "rating": 7}]}, 2, "conversation[0].rating", "less"),
        ({"conversation": [{"query": "q", "rating": True}]}, 2, "conversation[0].rating", ""),
        ({"conversation": [{"query": "q"}]}, 2, "conversation[0].rating", "missing value"),
        ({"model_emb": []}, 2, "model_emb", "at least 1 item"),
        ({"colour": 1, "mood": 2}, 2, "colour", "unknown field(s): colour, mood"),
        (
            {"conversation": [{"query": "q", "rating": 3, "stars": 1}]},
            2,
            "conversation[0].stars",
            "unknown field(s): conversation[0].stars",
        ),
    ],
)
def test_malformed_gmt_lines_name_file_line_and_field(
    tmp_path: Path, change: dict[str, object], line: int, field: str, fragment: str
) -> None:
    bad = {**GMT_LINES[2], **change}
    path = write_lines(tmp_path / "bad.jsonl", [GMT_LINES[0], bad])
    with pytest.raises(DataFormatError) as info:
        read_gmt_jsonl(path)
    assert (info.value.path, info.value.line, info.value.field) == (str(path), line, field)
    assert str(path) in str(info.value) and f"line {line}" in str(info.value)
    assert fragment in str(info.value)


def test_missing_key_and_broken_json(tmp_path: Path) -> None:
    record = {k: v for k, v in GMT_LINES[2].items() if k != "model"}
    with pytest.raises(DataFormatError, match="line 1, field 'model': missing value"):
        read_gmt_jsonl(write_lines(tmp_path / "a.jsonl", [record]))
    broken = tmp_path / "b.jsonl"
    broken.write_text(json.dumps(GMT_LINES[0]) + "\n{not json\n", encoding="utf-8")
    with pytest.raises(DataFormatError, match="line 2: invalid JSON"):
        read_gmt_jsonl(broken)
    with pytest.raises(DataFormatError, match="not found"):
        read_gmt_jsonl(tmp_path / "none.jsonl")


def test_unknown_fields_can_be_ignored(tmp_path: Path) -> None:
    extra = {**GMT_LINES[2], "colour": "red"}
    extra["conversation"] = [{**GMT_LINES[2]["conversation"][0], "stars": 1}]  # type: ignore[index]
    (read,) = read_gmt_jsonl(write_lines(tmp_path / "x.jsonl", [extra]), extra="ignore")
    assert read == read_gmt_jsonl(write_lines(tmp_path / "y.jsonl", [GMT_LINES[2]]))[0]


def test_integer_question_ids_are_read_as_strings(tmp_path: Path) -> None:
    (read,) = read_gmt_jsonl(
        write_lines(tmp_path / "i.jsonl", [{**GMT_LINES[2], "question_id": 81}])
    )
    assert read.question_id == "81"


# --- PersonalizedRouter CSV ------------------------------------------------------------------

CSV_HEADER = "query,llm,query_embedding,effect,cost,performance_preference,best_llm\n"


def test_personalized_csv_user_blocks_and_ratings(tmp_path: Path) -> None:
    rows = [
        'What is 2+2?,small,"[0.1, 0.2]",1.0,0.2,0.5,small\n',
        "What is 2+2?,large,[0.1 0.2],0.5,1.0,0.5,small\n",
        'What is 2+2?,small,"[0.1, 0.2]",1.0,0.2,1.0,small\n',
        "What is 2+2?,large,[0.1 0.2],0.5,1.0,1.0,small\n",
    ]
    path = tmp_path / "p.csv"
    path.write_text(CSV_HEADER + "".join(rows), encoding="utf-8")
    read = read_personalized_csv(path, user_num=2)
    assert [x.user_id for x in read] == ["0", "0", "1", "1"]
    assert [x.model for x in read] == ["small", "large", "small", "large"]
    # 5 · (pref · effect + (1 − pref) · (1 − cost))
    assert [x.rating for x in read] == pytest.approx([4.5, 1.25, 5.0, 2.5])
    assert read[0].embedding == read[1].embedding == [0.1, 0.2]
    assert len({x.question_id for x in read}) == 1
    effect_only = read_personalized_csv(path, user_num=2, rating="effect")
    assert [x.rating for x in effect_only] == [5.0, 2.5, 5.0, 2.5]


def test_personalized_csv_with_a_user_column(tmp_path: Path) -> None:
    path = tmp_path / "u.csv"
    path.write_text("user_id,query,llm,effect\nann,hi,m1,0.2\nben,hi,m1,0.8\n", encoding="utf-8")
    read = read_personalized_csv(path)
    assert [(x.user_id, x.rating, x.embedding) for x in read] == [
        ("ann", 1.0, None),
        ("ben", 4.0, None),
    ]


@pytest.mark.parametrize(
    ("text", "kwargs", "line", "field", "fragment"),
    [
        ("query,llm\nq,m\n", {"user_num": 1}, 1, "effect", "missing column(s): effect"),
        ("query,llm,effect,size,age\nq,m,1\n", {"user_num": 1}, 1, "size", "size, age"),
        ("query,llm,effect\nq,m,1\n", {}, 1, "user_id", "pass user_num"),
        ("query,llm,effect\nq,m,1\nq,m,2\n", {"user_num": 1}, 3, "effect", "[0, 1]"),
        ("query,llm,effect\nq,m,1\nq,,1\n", {"user_num": 1}, 3, "llm", "missing value"),
        (
            "query,llm,effect,query_embedding\nq,m,1,[0.1 x]\n",
            {"user_num": 1},
            2,
            "query_embedding",
            "vector",
        ),
        ("query,llm,effect\nq,m,1\nq,m,1\nq,m,1\n", {"user_num": 2}, None, "user_id", "blocks"),
    ],
)
def test_malformed_csv_names_file_line_and_column(
    tmp_path: Path, text: str, kwargs: dict[str, int], line: int | None, field: str, fragment: str
) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(DataFormatError) as info:
        read_personalized_csv(path, **kwargs)  # type: ignore[arg-type]
    assert (info.value.path, info.value.line, info.value.field) == (str(path), line, field)
    assert fragment in str(info.value)


# --- simulated users -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def routerdc(shared_data: Path) -> RoutingDataset:
    pool = CandidatePool.from_json(shared_data / "default_llm.json")
    return RoutingDataset.from_file(shared_data / "routerdc_train.json", candidates=pool)


@pytest.fixture(scope="module")
def simulated(routerdc: RoutingDataset) -> dict[str, list[Interaction]]:
    return {
        strategy: simulate_users(routerdc, strategy=strategy, seed=7)  # type: ignore[arg-type]
        for strategy in ("cost_quality", "hidden_taste")
    }


def by_user(interactions: list[Interaction]) -> dict[str, list[Interaction]]:
    users: dict[str, list[Interaction]] = defaultdict(list)
    for x in interactions:
        users[x.user_id].append(x)
    return users


@pytest.mark.parametrize("strategy", ["cost_quality", "hidden_taste"])
def test_simulated_users_shape_and_ranges(
    strategy: str, simulated: dict[str, list[Interaction]], routerdc: RoutingDataset
) -> None:
    interactions = simulated[strategy]
    users = by_user(interactions)
    assert len(users) == 200
    counts = [len(v) for v in users.values()]
    assert min(counts) >= 10 and max(counts) <= 60 and max(counts) - min(counts) > 30
    ratings = np.array([x.rating for x in interactions])
    low, high = (0.0, 5.0) if strategy == "cost_quality" else (1.0, 5.0)
    assert ratings.min() >= low and ratings.max() <= high
    assert len(set(ratings.tolist())) >= 5  # the whole scale is used
    if strategy == "hidden_taste":
        assert set(ratings.tolist()) == {1.0, 2.0, 3.0, 4.0, 5.0}
    assert {x.model for x in interactions} == set(routerdc.candidates)
    # Pairwise structure: several candidates per (user, question), distinct, some ties, some not.
    groups: dict[tuple[str, str], list[Interaction]] = defaultdict(list)
    for x in interactions:
        groups[(x.user_id, x.question_id)].append(x)
    sizes = [len(g) for g in groups.values()]
    assert min(sizes) >= 2 and max(sizes) == 3
    assert all(len({x.model for x in g}) == len(g) for g in groups.values())
    assert all(len({x.query for x in g}) == 1 for g in groups.values())
    tied = [len({x.rating for x in g}) < len(g) for g in groups.values()]
    assert 0.05 < np.mean(tied) < 0.95


def test_simulation_is_seeded(
    routerdc: RoutingDataset, simulated: dict[str, list[Interaction]]
) -> None:
    small = routerdc.head(400)
    one = simulate_users(small, strategy="hidden_taste", n_users=20, seed=3)
    assert one == simulate_users(small, strategy="hidden_taste", n_users=20, seed=3)
    assert one != simulate_users(small, strategy="hidden_taste", n_users=20, seed=4)
    assert simulate_users(routerdc, strategy="cost_quality", seed=7) == simulated["cost_quality"]


def test_cost_quality_preference_is_recoverable(
    routerdc: RoutingDataset, simulated: dict[str, list[Interaction]]
) -> None:
    population = make_population(routerdc, strategy="cost_quality", seed=7)
    p = dict(zip(population.user_ids, population.preference.tolist(), strict=True))
    col = {name: j for j, name in enumerate(routerdc.candidates)}
    row = {q: i for i, q in enumerate(routerdc.queries)}
    groups: dict[tuple[str, str], list[Interaction]] = defaultdict(list)
    for x in simulated["cost_quality"]:
        groups[(x.user_id, x.question_id)].append(x)
    # Per user: how much higher the best-quality answer of a question is rated than the rest.
    margin: dict[str, list[float]] = defaultdict(list)
    for (user, _), group in groups.items():
        quality = [routerdc.performance[row[x.query], col[x.model]] for x in group]
        best = int(np.argmax(quality))
        if quality[best] > min(quality):
            rest = [x.rating for i, x in enumerate(group) if i != best]
            margin[user].append(group[best].rating - float(np.mean(rest)))
    users = sorted(margin)
    prefs = np.array([p[u] for u in users])
    means = np.array([np.mean(margin[u]) for u in users])
    assert means[prefs > 0.7].mean() > means[prefs < 0.3].mean() + 2.0
    assert np.corrcoef(prefs, means)[0, 1] > 0.7


def test_hidden_taste_for_a_candidate_shows_in_mean_ratings(
    routerdc: RoutingDataset, simulated: dict[str, list[Interaction]]
) -> None:
    population = make_population(routerdc, strategy="hidden_taste", seed=7)
    col = {name: j for j, name in enumerate(routerdc.candidates)}
    row = {q: i for i, q in enumerate(routerdc.queries)}
    interactions = simulated["hidden_taste"]
    # The population's expected rating of each answer, without anyone's taste.
    base = {
        (x.query, x.model): 3.0 + 1.5 * (2 * routerdc.performance[row[x.query], col[x.model]] - 1)
        for x in interactions
    }
    user = {name: u for u, name in enumerate(population.user_ids)}
    shift: dict[tuple[int, int], list[float]] = defaultdict(list)
    for x in interactions:
        shift[(user[x.user_id], col[x.model])].append(x.rating - base[(x.query, x.model)])
    cells = [(u, j) for (u, j), v in shift.items() if len(v) >= 3]
    planted = np.array([population.model_taste[u, j] for u, j in cells])
    observed = np.array([np.mean(shift[c]) for c in cells])
    assert np.corrcoef(planted, observed)[0, 1] > 0.5
    # And a user's rating of a candidate departs from the population's in the planted direction.
    assert observed[planted > 1.0].mean() > 0.5 > -0.5 > observed[planted < -1.0].mean()


def test_bad_options_are_user_errors(routerdc: RoutingDataset) -> None:
    with pytest.raises(InvalidOptionError, match="min_interactions must not exceed"):
        simulate_users(routerdc, strategy="cost_quality", min_interactions=9, max_interactions=8)
    with pytest.raises(InvalidOptionError, match="nosie"):
        simulate_users(routerdc, strategy="cost_quality", nosie=0.1)
    with pytest.raises(InvalidOptionError, match="too few"):
        simulate_users(routerdc.head(5), strategy="cost_quality")
    unpriced = RoutingDataset(
        queries=routerdc.queries[:50],
        candidates=routerdc.candidates,
        performance=routerdc.performance[:50],
        cost=np.full_like(routerdc.cost[:50], np.nan),
    )
    with pytest.raises(DataFormatError, match=r"field 'cost'.*needs costs"):
        simulate_users(unpriced, strategy="cost_quality", max_interactions=20)
    assert simulate_users(unpriced, strategy="hidden_taste", n_users=2, max_interactions=20)


# --- the new-user split ----------------------------------------------------------------------


def test_split_keeps_new_users_out_and_reveals_exactly_k(
    simulated: dict[str, list[Interaction]],
) -> None:
    interactions = simulated["hidden_taste"]
    split = split_users(interactions, new_user_fraction=0.2, reveal=(5, 10, 20), seed=1)
    users = by_user(interactions)
    assert len(split.new_users) == 40 and len(split.train_users) == 160
    assert set(split.new_users).isdisjoint({x.user_id for x in split.train})
    assert {x.user_id for x in split.train} == set(split.train_users)
    assert len(split.train) == sum(len(users[u]) for u in split.train_users)
    for k in (5, 10, 20):
        revealed, held = by_user(split.revealed[k]), by_user(split.held_out[k])
        assert set(revealed) == set(held) == set(split.new_users)
        for user in split.new_users:
            assert revealed[user] == users[user][:k]  # exactly the first k
            assert held[user] == users[user][k:] and len(held[user]) >= 5
    assert split == split_users(interactions, seed=1)
    assert split.new_users != split_users(interactions, seed=2).new_users
    with pytest.raises(InvalidOptionError, match="too few"):
        split_users(interactions, reveal=(60,))


# --- the CLI ---------------------------------------------------------------------------------


def test_cli_simulate_users_end_to_end(
    shared_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from langchain_llmrouter.cli.main import main

    records = json.loads((shared_data / "routerdc_test.json").read_text(encoding="utf-8"))[:300]
    data = tmp_path / "slice.json"
    data.write_text(json.dumps(records), encoding="utf-8")
    out, split = tmp_path / "users.jsonl", tmp_path / "split"
    argv = [
        "simulate-users",
        "--data",
        str(data),
        "--llm-data",
        str(shared_data / "default_llm.json"),
        "--strategy",
        "cost_quality",
        "--users",
        "30",
        "--seed",
        "5",
        "--output",
        str(out),
        "--split-output",
        str(split),
    ]
    assert main(argv) == 0
    assert "30 simulated users" in capsys.readouterr().out
    interactions = read_gmt_jsonl(out)
    assert len(by_user(interactions)) == 30
    dataset = RoutingDataset.from_file(
        data, candidates=CandidatePool.from_json(shared_data / "default_llm.json")
    )
    assert interactions == simulate_users(dataset, strategy="cost_quality", n_users=30, seed=5)
    manifest = json.loads((split / "split.json").read_text(encoding="utf-8"))
    assert len(manifest["new_users"]) == 6 and manifest["reveal"] == [5, 10, 20]
    revealed = read_gmt_jsonl(split / "new_k10_revealed.jsonl")
    assert len(revealed) == 60 and {x.user_id for x in revealed} == set(manifest["new_users"])
    train_users = {x.user_id for x in read_gmt_jsonl(split / "train.jsonl")}
    assert train_users == set(manifest["train_users"]) and len(train_users) == 24
    profiles = json.loads((split / "users.json").read_text(encoding="utf-8"))
    assert len(profiles) == 30 and 0.0 <= profiles[0]["preference"] <= 1.0

    # A user error is one line on stderr and status 2.
    assert main([*argv[:2], str(tmp_path / "none.json"), *argv[3:]]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "none.json" in err and err.count("\n") == 1
    assert main([*argv[:-4], "--output", str(out), "--users", "0"]) == 2
    assert "n_users" in capsys.readouterr().err
