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
