"""Scoring: both averages, the published leaderboard reproduced, clustered errors, bad input."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from videoespresso.bench.leaderboard import leaderboard_columns, leaderboard_rows, published_test_counts
from videoespresso.bench.score import (
    PredictionRecord,
    compute_score,
    read_predictions,
    score_file,
    score_records,
    task_key,
)
from videoespresso.bench.stats import weighted_overall
from videoespresso.schema import TASKS, find_task


def _records_for_row(per_task: dict[str, float], counts: dict[str, int]) -> list[PredictionRecord]:
    """Predictions that realise a leaderboard row: round(acc * n) right answers per task."""
    records = []
    for column, acc in per_task.items():
        n = counts[column]
        right = round(acc / 100 * n)
        for i in range(n):
            records.append(
                PredictionRecord(
                    id=f"{column}-{i}",
                    output="The answer is (A)." if i < right else "B",
                    task=column,
                    correct="A",
                    video=f"{column}-{i // 3}.mp4",
                )
            )
    return records


def test_leaderboard_overall_reproduced_from_per_task_rows() -> None:
    rows = leaderboard_rows()
    counts = published_test_counts()
    assert len(rows) == 15
    assert sum(counts.values()) == 1382
    assert list(counts) == leaderboard_columns()
    worst = 0.0
    for row in rows:
        report = score_records(_records_for_row(row.per_task, counts))
        score = report.score
        assert score.n == 1382
        assert abs(score.overall_weighted - row.overall) <= 0.1, row.model
        worst = max(worst, abs(score.overall_weighted - row.overall))
        assert abs(weighted_overall(row.per_task, counts) - row.overall) <= 0.1, row.model
        for task_score in score.per_task:
            column = find_task(task_score.task).leaderboard_name
            # Some published cells were rounded twice (60/79 = 75.949 -> 75.95 -> "76.0%").
            assert abs(task_score.accuracy - row.per_task[column]) <= 0.1, (row.model, column)
        assert math.isclose(score.overall_unweighted, np.mean([t.accuracy for t in score.per_task]))
    # Published figures are rounded to 0.1; no row may be off by more than one rounding step.
    assert worst < 0.06


def test_per_task_order_is_leaderboard_order_and_names_normalise() -> None:
    records = [
        PredictionRecord(id=str(i), output="A", task=t.leaderboard_name if i % 2 else t.paper_name, correct="A", video=str(i))
        for i, t in enumerate(reversed(TASKS))
    ] + [PredictionRecord(id="x", output="A", task="My Own Task", correct="B", video="x")]
    score = score_records(records, tasks_any=True).score
    assert [t.task for t in score.per_task] == [t.paper_name for t in TASKS] + ["My Own Task"]
    assert task_key("causal analysis") == "Causal Inference"


def test_weighted_and_unweighted_differ_as_they_should() -> None:
    # Task X: 9/10 right; task Y: 0/2 right.
    tasks = ["X"] * 10 + ["Y"] * 2
    correct = np.array([True] * 9 + [False] + [False, False])
    score = compute_score(tasks, [str(i) for i in range(12)], correct, np.ones(12, dtype=bool))
    assert score.overall_weighted == pytest.approx(100 * 9 / 12)
    assert score.overall_unweighted == pytest.approx((90 + 0) / 2)


def test_clustered_stderr_matches_iid_formula_with_one_question_per_video() -> None:
    rng = np.random.default_rng(0)
    correct = rng.random(500) < 0.4
    score = compute_score(["X"] * 500, [str(i) for i in range(500)], correct, np.ones(500, dtype=bool))
    p = correct.mean()
    iid = 100 * math.sqrt(p * (1 - p) / (500 - 1))
    assert score.stderr_weighted == pytest.approx(iid, rel=1e-9)
    low, high = score.ci95_weighted
    assert low < score.overall_weighted < high


def test_clustered_stderr_grows_when_questions_share_a_video() -> None:
    # Ten questions per video, all right or all wrong together: ten times fewer independent units.
    per_video = np.repeat(np.random.default_rng(1).random(50) < 0.5, 10)
    shared = compute_score(["X"] * 500, [str(i // 10) for i in range(500)], per_video, np.ones(500, dtype=bool))
    alone = compute_score(["X"] * 500, [str(i) for i in range(500)], per_video, np.ones(500, dtype=bool))
    assert shared.stderr_weighted > 2.5 * alone.stderr_weighted


def test_unparsed_counted_per_task_and_rules_counted() -> None:
    records = [
        PredictionRecord(id="1", output="Answer: B", task="Traffic Analysis", correct="B", video="v1"),
        PredictionRecord(id="2", output="between A and B", task="Traffic Analysis", correct="A", video="v1"),
        PredictionRecord(id="3", output="", task="Traffic Analysis", correct="A", video="v2"),
        PredictionRecord(id="4", output="(C)", task="Causal Inference", correct="C", video="v3"),
    ]
    report = score_records(records)
    traffic = next(t for t in report.score.per_task if t.task == "Traffic Analysis")
    assert (traffic.n, traffic.correct, traffic.unparsed) == (3, 1, 2)
    assert report.score.unparsed == 2
    assert report.score.rule_counts == {"answer_is": 1, "none:ambiguous": 1, "none:empty": 1, "start": 1}
    assert [e["id"] for e in report.unparsed_examples] == ["2", "3"]


def test_legacy_mode_scores_like_official_score_py() -> None:
    records = [
        PredictionRecord(id="1", output="Answer: B", task="Traffic Analysis", correct="B", video="v1"),
        PredictionRecord(id="2", output="Based on the video, (C)", task="Traffic Analysis", correct="B", video="v2"),
    ]
    assert score_records(records).score.overall_weighted == pytest.approx(50.0)
    legacy = score_records(records, mode="legacy").score
    # score.py reads "Answer: B" as A and "Based on the video, (C)" as B.
    assert legacy.overall_weighted == pytest.approx(50.0)
    assert legacy.per_task[0].correct == 1
    assert score_records(records[:1], mode="legacy").score.per_task[0].correct == 0


def _official_file(tmp_path: Path) -> Path:
    items = []
    for i in range(6):
        items.append(
            {
                "video_path": f"all_video/v{i // 2}.mp4",
                "question": f"q{i}",
                "options": ["(A): one", "(B): two", "(C): three", "(D): four"],
                "correct_answer": "(B)",
                "answer": "two",
                "evidence": "",
                "task": "Role Identification",
                "model_output": ["B", "Answer: B", "two", "A", "", None][i],
            }
        )
    path = tmp_path / "official.json"
    path.write_text(json.dumps(items), encoding="utf-8")
    return path


def test_official_format_file_scores_without_benchmark(tmp_path: Path) -> None:
    path = _official_file(tmp_path)
    records, problems = read_predictions(path)
    assert problems == [] and [r.id for r in records] == [str(i) for i in range(6)]
    assert records[0].options == ["one", "two", "three", "four"]
    report = score_file(path)
    role = report.score.per_task[0]
    assert (role.n, role.correct, role.unparsed) == (6, 3, 2)
    assert report.score.rule_counts["option_text"] == 1
    assert report.score.rule_counts["none:missing"] == 1


def _bench_file(tmp_path: Path, n: int = 5) -> Path:
    from videoespresso.formats.bench import write_bench
    from videoespresso.schema import BenchItem

    items = [
        BenchItem(
            id=str(i),
            video_path=f"v{i}.mp4",
            question=f"q{i}",
            options=["one", "two", "three", "four"],
            raw_options=["(A): one", "(B): two", "(C): three", "(D): four"],
            correct_answer="C",
            task="Traffic Analysis",
        )
        for i in range(n)
    ]
    path = tmp_path / "bench.json"
    write_bench(items, path)
    return path


def test_bad_prediction_file_reports_each_problem_and_scores_the_rest(tmp_path: Path) -> None:
    bench = _bench_file(tmp_path)
    lines = [
        json.dumps({"id": "0", "task": "Traffic Analysis", "output": "C"}),
        json.dumps({"id": "1", "task": "Traffic Analysis", "output": "three"}),
        '{"id": "2", "task": "Traffic Analysis", "output": "C"',  # truncated by a crash
        json.dumps({"id": "1", "task": "Traffic Analysis", "output": "A"}),  # duplicate
        json.dumps({"id": "99", "task": "Traffic Analysis", "output": "C"}),  # not in the benchmark
        json.dumps({"task": "Traffic Analysis", "output": "C"}),  # no id
        json.dumps({"id": "3", "task": "Traffic Analysis"}),  # no output
    ]
    preds = tmp_path / "preds.jsonl"
    preds.write_text("\n".join(lines) + "\n", encoding="utf-8")
    report = score_file(preds, bench)
    assert report.problem_counts == {
        "malformed_json": 1,
        "duplicate_id": 1,
        "unknown_id": 1,
        "missing_id": 1,
        "invalid_record": 1,
        "missing_prediction": 2,
    }
    by_kind = {p.kind: p for p in report.problems}
    assert by_kind["malformed_json"].line == 3
    assert by_kind["duplicate_id"].id == "1" and "first was kept" in by_kind["duplicate_id"].message
    assert by_kind["unknown_id"].id == "99"
    assert {p.id for p in report.problems if p.kind == "missing_prediction"} == {"2", "4"}
    # ids 0 and 1 were scored: both right (the second by option text, read with the benchmark's options)
    assert (report.score.n, report.score.per_task[0].correct) == (2, 2)
    # A deliberately partial run (eval --limit) does not report the rest as missing.
    partial = score_file(preds, bench, partial=True)
    assert "missing_prediction" not in partial.problem_counts and partial.score.n == 2


def test_jsonl_without_benchmark_needs_task_and_answer(tmp_path: Path) -> None:
    preds = tmp_path / "preds.jsonl"
    preds.write_text(
        json.dumps({"id": "a", "task": "Traffic Analysis", "output": "B", "correct_answer": "B"}) + "\n"
        + json.dumps({"id": "b", "task": "Traffic Analysis", "output": "B"}) + "\n",
        encoding="utf-8",
    )
    report = score_file(preds)
    assert report.score.n == 1
    assert report.problems[0].kind == "invalid_record" and "correct_answer" in report.problems[0].message


# --------------------------------------------------------------------------- interval of the average


def write_generated_predictions(path: Path, sizes: list[int], *, seed: int = 0, per_video: int = 3,
                                accuracy: float | None = None, video_sd: float = 0.2) -> Path:
    """A predictions JSONL over ``len(sizes)`` tasks: ``per_video`` questions share a video and a
    per-video chance of being right (so they are correlated), around a per-task accuracy."""
    rng = np.random.default_rng(seed)
    lines = []
    for t_i, n in enumerate(sizes):
        task = TASKS[t_i].paper_name
        p = rng.uniform(0.3, 0.7) if accuracy is None else accuracy
        for q in range(n):
            v = q // per_video
            if q % per_video == 0:
                p_video = float(np.clip(p + rng.normal(0.0, video_sd), 0.0, 1.0)) if video_sd else p
            right = bool(rng.random() < p_video)
            lines.append(json.dumps({"id": f"{t_i}-{q}", "task": task, "video_path": f"{t_i}-{v}.mp4",
                                     "correct_answer": "(A)", "output": "A" if right else "B"}))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def bootstrap_average_interval(path: Path, draws: int = 4000, seed: int = 1) -> tuple[float, float]:
    """95% percentile interval of the unweighted average, resampling videos within each task."""
    records, _ = read_predictions(path)
    rng = np.random.default_rng(seed)
    per_task = []
    for task in dict.fromkeys(r.task for r in records):
        rows = [r for r in records if r.task == task]
        _, video = np.unique([r.video for r in rows], return_inverse=True)
        right = np.bincount(video, weights=[float(r.output == r.correct) for r in rows])
        count = np.bincount(video).astype(float)
        picks = rng.integers(0, len(right), size=(draws, len(right)))
        per_task.append(right[picks].sum(axis=1) / count[picks].sum(axis=1))
    low, high = np.percentile(100.0 * np.mean(per_task, axis=0), [2.5, 97.5])
    return float(low), float(high)


def width_ratio(path: Path) -> float:
    """Width of our interval of the average over the bootstrap's."""
    ours = score_file(path).score.ci95_unweighted
    boot = bootstrap_average_interval(path)
    return (ours[1] - ours[0]) / (boot[1] - boot[0])


#: Uneven task sizes: 10 to 300 questions.
_UNEVEN = [10, 200, 30, 80, 15, 150, 40, 60, 20, 120, 12, 90, 25, 300]


@pytest.mark.parametrize("sizes", [[60], [100] * 14, _UNEVEN], ids=["one_task", "14_tasks", "uneven_sizes"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_interval_of_the_average_agrees_with_a_video_bootstrap(tmp_path: Path, sizes: list[int], seed: int) -> None:
    path = write_generated_predictions(tmp_path / "p.jsonl", sizes, seed=seed)
    # Our interval carries each task's G/(G-1) factor, which the percentile bootstrap lacks
    # (it is known to be narrow when a task has few videos), so ours may be somewhat wider.
    assert 0.85 < width_ratio(path) < 1.3


@pytest.mark.parametrize(
    ("right", "n", "per_video"),
    [(0, 2, 1), (2, 2, 1), (0, 12, 4), (7, 12, 3), (5, 12, 12), (30, 40, 5)],
    ids=["0_of_2", "2_of_2", "0_of_12_clustered", "7_of_12", "one_video", "30_of_40"],
)
def test_with_one_task_the_average_has_the_overall_interval(right: int, n: int, per_video: int) -> None:
    # Before: 0/2 gave overall 0.0-65.8 but average 0.0-32.9 (a symmetric interval, clipped at 0).
    tasks = ["Traffic Analysis"] * n
    videos = [f"v{i // per_video}" for i in range(n)]
    correct = np.arange(n) < right
    score = compute_score(tasks, videos, correct, np.ones(n, dtype=bool))
    assert score.overall_unweighted == pytest.approx(score.overall_weighted)
    assert score.ci95_unweighted == pytest.approx(score.ci95_weighted, abs=1e-9)
    assert score.ci95_unweighted == pytest.approx(score.per_task[0].ci95, abs=1e-9)


@pytest.mark.parametrize(("per_task", "right"), [(2, 0), (20, 10), (2, 2)], ids=["all_wrong", "half", "all_right"])
def test_14_equal_tasks_give_the_average_the_overall_interval(per_task: int, right: int) -> None:
    # 14 copies of one task (one video per question): the average is the overall accuracy and
    # stratifying by task gains nothing, so its interval is the overall's (up to each task's own
    # small-sample factor G/(G-1)). Before, 0/2 in every task gave the average 0.0-8.8 against
    # an overall 0.0-12.1.
    n = per_task * len(TASKS)
    tasks = [t.paper_name for t in TASKS for _ in range(per_task)]
    correct = np.array([q < right for _ in TASKS for q in range(per_task)])
    score = compute_score(tasks, [f"v{i}" for i in range(n)], correct, np.ones(n, dtype=bool))
    assert score.overall_unweighted == pytest.approx(score.overall_weighted)
    low, high = score.ci95_unweighted
    ref_low, ref_high = score.ci95_weighted
    assert low == pytest.approx(ref_low, abs=0.5) and high == pytest.approx(ref_high, abs=0.5)


def test_interval_of_the_average_covers_the_truth_on_small_tasks() -> None:
    # 14 tasks of 6 questions (3 per video, correlated): the case where the old interval was too
    # narrow (83 % of 300 simulated runs covered the true average, not 95 %).
    rng = np.random.default_rng(123)
    true_p = rng.uniform(0.3, 0.7, len(TASKS))
    tasks = [t.paper_name for t in TASKS for _ in range(6)]
    videos = [f"{t}-{q // 3}" for t in range(len(TASKS)) for q in range(6)]
    covered = 0
    for _ in range(300):
        # Each video's chance of being right is its task's accuracy, moved up or down together.
        shift = rng.choice([-0.2, 0.2], size=(len(TASKS), 2))
        p_video = np.repeat(true_p[:, None] + shift, 3, axis=1).ravel()
        correct = rng.random(len(tasks)) < p_video
        low, high = compute_score(tasks, videos, correct, np.ones(len(tasks), dtype=bool)).ci95_unweighted
        covered += low <= 100.0 * true_p.mean() <= high
    assert covered / 300 >= 0.9


def test_interval_of_the_average_never_collapses() -> None:
    # Seven tasks all wrong, seven all right: every per-task variance is 0, the average is 50.
    tasks = [t.paper_name for t in TASKS for _ in range(5)]
    correct = np.array([i % 2 == 1 for i, _ in enumerate(TASKS) for _ in range(5)])
    score = compute_score(tasks, [f"v{i}" for i in range(70)], correct, np.ones(70, dtype=bool))
    low, high = score.ci95_unweighted
    assert low < 45.0 and high > 55.0
    # One video for everything: no clustered variance, still an interval.
    one = compute_score(tasks, ["v"] * 70, correct, np.ones(70, dtype=bool))
    assert one.ci95_unweighted[0] < 45.0 < 55.0 < one.ci95_unweighted[1]


@pytest.mark.parametrize("bad", [None, [1, 2], True, 2.5, ""], ids=["null", "list", "bool", "float", "empty"])
def test_prediction_ids_that_are_not_strings_or_integers_are_refused(tmp_path: Path, bad) -> None:
    # Before: an official-format item with "id": null was scored as the id "None".
    path = _official_file(tmp_path)
    items = json.loads(path.read_text())
    items[0]["id"] = bad
    path.write_text(json.dumps(items), encoding="utf-8")
    records, problems = read_predictions(path)
    assert [r.id for r in records] == ["1", "2", "3", "4", "5"]
    assert [(p.kind, p.line) for p in problems] == [("missing_id", 0)] and f"bad id {bad!r}" in problems[0].message
    # score.py counts the element whatever its id; the legacy mode does too, and says so.
    legacy, legacy_problems = read_predictions(path, keep_all=True)
    assert len(legacy) == 6 and legacy_problems[0].kind == "legacy_bad_id"
    jsonl = tmp_path / "p.jsonl"
    jsonl.write_text(json.dumps({"id": bad, "task": "Traffic Analysis", "output": "A", "correct_answer": "A"}) + "\n"
                     + json.dumps({"id": 7, "task": "Traffic Analysis", "output": "A", "correct_answer": "A"}) + "\n")
    records, problems = read_predictions(jsonl)
    assert [r.id for r in records] == ["7"] and problems[0].kind == "missing_id" and "bad id" in problems[0].message
