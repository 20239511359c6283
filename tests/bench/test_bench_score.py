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
    weighted_overall,
)
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
    score = score_records(records).score
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
