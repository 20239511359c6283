"""The score and report commands: output, JSON, exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from videoespresso.cli import main


def _run(argv: list[str]) -> int:
    with pytest.raises(SystemExit) as exc:
        main(argv)
        raise SystemExit(0)
    return exc.value.code or 0


def _official(tmp_path: Path) -> Path:
    items = [
        {
            "video_path": f"v{i}.mp4", "question": f"q{i}", "options": ["(A): one", "(B): two", "(C): three", "(D): four"],
            "correct_answer": "(A)", "answer": "", "evidence": "", "task": "Behavior Profiling",
            "model_output": ["A", "Answer: A", "B", "I do not know"][i],
        }
        for i in range(4)
    ]
    path = tmp_path / "run.json"
    path.write_text(json.dumps(items), encoding="utf-8")
    return path


def test_score_prints_table_and_writes_json(tmp_path: Path, capsys) -> None:
    out = tmp_path / "score.json"
    assert _run(["score", str(_official(tmp_path)), "--json", str(out), "--name", "demo"]) == 0
    printed = capsys.readouterr().out
    assert "Behavior" in printed and "Overall" in printed and "50.0" in printed
    data = json.loads(out.read_text())
    task = data["score"]["per_task"][0]
    assert (task["n"], task["correct"], task["unparsed"]) == (4, 2, 1)
    assert data["name"] == "demo" and data["score"]["overall_weighted"] == pytest.approx(50.0)
    assert data["score"]["rule_counts"]["none:no_letter"] == 1


def test_score_legacy_matches_official_rule(tmp_path: Path) -> None:
    out = tmp_path / "legacy.json"
    assert _run(["score", str(_official(tmp_path)), "--legacy", "--json", str(out)]) == 0
    # score.py: "A" right, "Answer: A" right (first capital is A), "B" wrong, "I do not know" wrong.
    assert json.loads(out.read_text())["score"]["per_task"][0]["correct"] == 2


def test_score_exit_codes_for_problems_and_missing_files(tmp_path: Path, capsys) -> None:
    preds = tmp_path / "p.jsonl"
    preds.write_text('{"id": "0", "task": "Traffic Analysis", "output": "A", "correct_answer": "A"}\n{"id": "0"\n', encoding="utf-8")
    assert _run(["score", str(preds)]) == 3
    assert "malformed_json 1" in capsys.readouterr().err
    assert _run(["score", str(tmp_path / "nope.jsonl")]) == 2
    assert "does not exist" in " ".join(capsys.readouterr().err.split())


def test_report_command_writes_both_files(tmp_path: Path) -> None:
    score = tmp_path / "s.json"
    assert _run(["score", str(_official(tmp_path)), "--json", str(score)]) == 0
    assert _run(["report", str(score), str(_official(tmp_path)), "--out", str(tmp_path / "rep"), "-l", "LongVA"]) == 0
    md = (tmp_path / "rep" / "report.md").read_text()
    assert "LongVA" in md and "LLaVA-Video" not in md
    assert (tmp_path / "rep" / "report.html").stat().st_size > 10_000


def test_eval_rejects_bad_options_before_loading_a_model(tmp_path: Path, capsys) -> None:
    bench = _official(tmp_path)
    base = ["eval", "--bench", str(bench), "--video-root", str(tmp_path), "--model", "tiny:qwen2-vl", "--out", str(tmp_path / "o.jsonl")]
    assert _run([*base, "--frames", "4", "--selector", "uniform"]) == 2
    assert "one frame source" in capsys.readouterr().err
    assert _run([*base, "--mode", "vote"]) == 2
    assert "--mode" in capsys.readouterr().err
    assert _run([*base, "--task", "Cooking Steps"]) == 2
    assert "no benchmark item has task" in " ".join(capsys.readouterr().err.split())
    assert not (tmp_path / "o.jsonl").exists()


def test_judge_command_counts_failures_resumes_and_writes_summary(tmp_path: Path) -> None:
    preds = _official(tmp_path)
    out, summary = tmp_path / "j.jsonl", tmp_path / "j.json"
    argv = ["judge", str(preds), "--judge", "tiny:qwen2", "--profile", "tiny", "--out", str(out), "--json", str(summary),
            "--no-constrained", "--max-new-tokens", "8"]
    code = _run(argv)
    data = json.loads(summary.read_text())
    assert data["n"] == 4 and data["judged"] + data["failed"] == 4
    # Official-format items without a reference answer ("answer": "") are still judged against it.
    assert code == (3 if data["failed"] else 0)
    lines = out.read_text().splitlines()
    assert len(lines) == 4 and all(json.loads(line)["attempts"] in (1, 2) for line in lines)
    # A rerun judges nothing again.
    _run(argv)
    assert len(out.read_text().splitlines()) == 4


def test_legacy_overall_equals_the_official_scorer_on_official_files(tmp_path: Path) -> None:
    import re

    path = _official(tmp_path)
    items = json.loads(path.read_text())
    items[3]["model_output"] = "Based on the video: A"

    def first_capital(text: object) -> str | None:
        found = re.search(r"[A-D]", text) if isinstance(text, str) else None
        return found.group(0) if found else None

    # eval/score.py's accuracy: extracted letters equal, over all items.
    official = 100 * sum(
        1 for it in items if first_capital(it["model_output"]) and first_capital(it["model_output"]) == first_capital(it["correct_answer"])
    ) / len(items)
    path.write_text(json.dumps(items), encoding="utf-8")
    out = tmp_path / "legacy.json"
    assert _run(["score", str(path), "--legacy", "--json", str(out)]) == 0
    assert json.loads(out.read_text())["score"]["overall_weighted"] == pytest.approx(official)


# --------------------------------------------------------------------------- task names


def _fourteen(tmp_path: Path, last: str = "Situational Awarness", name: str = "p.jsonl") -> Path:
    """Predictions over 13 benchmark tasks (paper names) plus one task named ``last``."""
    from videoespresso.schema import TASKS

    names = [t.paper_name for t in TASKS[:13]] + [last]
    rows = [{"id": f"{t}-{q}", "task": task, "video_path": f"{t}-{q}.mp4", "correct_answer": "A", "output": "A" if q else "B"}
            for t, task in enumerate(names) for q in range(3)]
    path = tmp_path / name
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_score_refuses_a_task_name_outside_the_benchmark(tmp_path: Path, capsys) -> None:
    # Before: exit 0 and "14 of 14 tasks", the misspelt task counted as a benchmark task.
    preds = _fourteen(tmp_path)
    assert _run(["score", str(preds), "--json", str(tmp_path / "s.json")]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "'Situational Awarness' (3 items, the first item 13-0) is not a VideoEspresso task" in err
    assert "did you mean 'Situational Awareness'?" in err and "--tasks-any" in err
    assert not (tmp_path / "s.json").exists()
    # Case, spaces and either published name are the same task.
    for spelling in ("  situational   AWARENESS ", "Situation Analysis", "situation_analysis"):
        assert _run(["score", str(_fourteen(tmp_path, spelling))]) == 0
        assert "(unweighted, paper; 14 tasks)" in " ".join(capsys.readouterr().out.split())


def test_tasks_any_scores_a_custom_benchmark_without_the_leaderboard(tmp_path: Path, capsys) -> None:
    preds = _fourteen(tmp_path, "My Own Task")
    out = tmp_path / "s.json"
    assert _run(["score", str(preds), "--tasks-any", "--json", str(out)]) == 0
    captured = capsys.readouterr()
    printed, err = " ".join(captured.out.split()), " ".join(captured.err.split())
    assert "14 tasks, 1 not VideoEspresso's" in printed and "of 14 tasks" not in printed + err
    assert "custom benchmark:" in err and "My Own Task" in err
    assert "My Own Task" in {t["task"] for t in json.loads(out.read_text())["score"]["per_task"]}

    # report: the score file is refused without the flag; with it, the run's own columns only.
    assert _run(["report", str(out), "--out", str(tmp_path / "rep")]) == 2
    assert "My Own Task" in capsys.readouterr().err and not (tmp_path / "rep").exists()
    assert _run(["report", str(out), "--out", str(tmp_path / "rep"), "--tasks-any"]) == 0
    md = (tmp_path / "rep" / "report.md").read_text()
    header = next(line for line in md.splitlines() if line.startswith("| Model"))
    assert "My Own Task" in header and "Situation Analysis" not in header and "Causal Analysis" in header
    assert "| leaderboard |" not in md and "LLaVA-Video" not in md
    # A predictions file given to report is checked the same way.
    assert _run(["report", str(preds), "--out", str(tmp_path / "rep2")]) == 2
    assert "did you mean" not in capsys.readouterr().err  # nothing close to "My Own Task"


def test_report_no_longer_adds_a_misspelt_task_as_a_leaderboard_column(tmp_path: Path, capsys) -> None:
    # Before: "Situational Awarness" became a 15th column beside the leaderboard's 14.
    assert _run(["report", str(_fourteen(tmp_path)), "--out", str(tmp_path / "rep")]) == 2
    assert "did you mean 'Situational Awareness'?" in " ".join(capsys.readouterr().err.split())


def test_eval_refuses_unknown_task_names_before_loading_a_model(tmp_path: Path, capsys) -> None:
    bench = _official(tmp_path)
    items = json.loads(bench.read_text())
    items[2]["task"] = "Behaviour Profiling"
    bench.write_text(json.dumps(items), encoding="utf-8")
    out = tmp_path / "o.jsonl"
    base = ["eval", "--bench", str(bench), "--video-root", str(tmp_path), "--model", "tiny:qwen2-vl", "--out", str(out)]
    assert _run(base) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "'Behaviour Profiling' (1 item, the first item 2)" in err and "did you mean 'Behavior Profiling'?" in err
    assert not out.exists() and not Path(str(out) + ".manifest.json").exists()
    items[2]["task"] = "Behavior Profiling"
    bench.write_text(json.dumps(items), encoding="utf-8")
    assert _run([*base, "--task", "Cooking Stpes"]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "--task: task 'Cooking Stpes' (1 item) is not a VideoEspresso task (did you mean 'Cooking Steps'?)" in err
    assert not out.exists()
    # --tasks-any runs a custom benchmark (here every video is missing: each item fails, exit 3).
    items[2]["task"] = "My Own Task"
    bench.write_text(json.dumps(items), encoding="utf-8")
    assert _run([*base, "--tasks-any", "--task", "My Own Task", "--frames", "1", "--profile", "tiny", "--no-cache"]) == 3
    assert [json.loads(line)["task"] for line in out.read_text().splitlines()] == ["My Own Task"]
