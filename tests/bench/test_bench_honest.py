"""Eval runs that cannot mix settings or keep failures; scores and reports that count failures
as failures (issue "Honest results"). Each test first reproduces a defect of the earlier code."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from videoespresso.bench.score import PredictionRecord, compute_score, score_records
from videoespresso.cli import main
from videoespresso.formats.manifest import manifest_path

from test_bench_eval_resume import _env, _make_benchmark


def _run(argv: list[str]) -> int:
    with pytest.raises(SystemExit) as exc:
        main(argv)
        raise SystemExit(0)
    return exc.value.code or 0


def _eval(bench: Path, root: Path, out: Path, *extra: str) -> list[str]:
    return ["eval", "--profile", "tiny", "--bench", str(bench), "--video-root", str(root), "--out", str(out),
            "--frames", "1", "--batch-size", "2", "--max-new-tokens", "2", "--limit", "3", *extra]


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    return _make_benchmark(tmp_path_factory.mktemp("honest"))


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_resume_with_other_settings_is_refused_and_failed_items_are_retried(bench, tmp_path, capsys):
    bench_file, videos = bench
    out = tmp_path / "run.jsonl"
    empty = tmp_path / "empty_root"
    empty.mkdir()
    # A wrong --video-root: every item fails, exit 3.
    assert _run(_eval(bench_file, empty, out, "--model", "tiny:qwen2-vl")) == 3
    assert all(rec.get("error") for rec in _lines(out)) and len(_lines(out)) == 3
    assert manifest_path(out).is_file()
    capsys.readouterr()

    # Another model on the same file is refused, naming the difference; nothing is written.
    before = out.read_bytes()
    assert _run(_eval(bench_file, videos, out, "--model", "tiny:smolvlm")) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "other settings" in err and "model" in err and "tiny:smolvlm" in err
    assert out.read_bytes() == before
    # So are other frames and another template.
    assert _run(_eval(bench_file, videos, out, "--model", "tiny:qwen2-vl", "--template", "letter")) == 2
    assert "template" in capsys.readouterr().err

    # The corrected rerun answers the failed items (once each), it does not call them done.
    assert _run(_eval(bench_file, videos, out, "--model", "tiny:qwen2-vl")) == 0
    printed = " ".join(capsys.readouterr().out.split())
    assert "0 reused, 3 answered, 0 failed (3 earlier failures retried)" in printed
    records = _lines(out)
    assert sorted(r["id"] for r in records) == ["0", "1", "2"] and not any(r.get("error") for r in records)

    # A complete rerun reuses everything and never loads the model.
    assert _run(_eval(bench_file, videos, out, "--model", "tiny:qwen2-vl")) == 0
    printed = " ".join(capsys.readouterr().out.split())
    assert "3 reused, 0 answered" in printed and "not loaded" in printed

    # --overwrite starts over with the new settings.
    assert _run(_eval(bench_file, videos, out, "--model", "tiny:qwen2-vl", "--template", "letter", "--overwrite")) == 0
    assert {r["prompt_template"].split("@")[0] for r in _lines(out)} == {"letter"}


def test_predictions_without_manifest_resume_only_when_their_lines_agree(bench, tmp_path, capsys):
    bench_file, videos = bench
    out = tmp_path / "old.jsonl"
    out.write_text(json.dumps({"id": "0", "task": "Traffic Analysis", "output": "A", "model": "tiny:other",
                               "prompt_template": "official", "extra": {"frames_source": "uniform:1"}}) + "\n")
    assert _run(_eval(bench_file, videos, out, "--model", "tiny:qwen2-vl")) == 2
    assert "tiny:other" in capsys.readouterr().err


def test_score_counts_failures_as_their_own_category_and_exits_3(tmp_path, capsys):
    preds = tmp_path / "p.jsonl"
    rows = [
        {"id": "0", "task": "Traffic Analysis", "output": "A", "correct_answer": "A", "video_path": "a.mp4"},
        {"id": "1", "task": "Traffic Analysis", "output": "B", "correct_answer": "A", "video_path": "b.mp4"},
        {"id": "2", "task": "Traffic Analysis", "output": "", "correct_answer": "A", "video_path": "c.mp4",
         "rule": "none:error", "error": "frames: video c.mp4 does not exist"},
    ]
    preds.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "s.json"
    # Before: exit 0, the failure shown as an unparsed reply.
    assert _run(["score", str(preds), "--json", str(out)]) == 3
    captured = capsys.readouterr()
    err = " ".join(captured.err.split())
    assert "1 items failed" in err and "counted as wrong" in err and "item 2: frames: video c.mp4 does not exist" in err
    data = json.loads(out.read_text())
    task = data["score"]["per_task"][0]
    assert (task["n"], task["correct"], task["unparsed"], task["failed"]) == (3, 1, 0, 1)
    assert data["failures"] == [{"id": "2", "task": "Traffic Analysis", "reason": "frames: video c.mp4 does not exist"}]

    assert _run(["score", str(preds), "--failed", "exclude", "--json", str(out)]) == 3
    data = json.loads(out.read_text())
    assert data["score"]["n"] == 2 and data["score"]["overall_weighted"] == pytest.approx(50.0)
    assert data["failed_rule"] == "exclude" and "left out" in capsys.readouterr().err


def test_files_of_the_wrong_kind_are_refused(tmp_path, capsys):
    from videoespresso.schema import FrameRef, Selection
    from videoespresso.select import save_selections

    sel = tmp_path / "sel.json"
    save_selections(sel, {"0": Selection(video="a.mp4", frames=[FrameRef(index=0, seconds=0.0)], selector="uniform")})
    judge = tmp_path / "p.judge.jsonl"
    judge.write_text(json.dumps({"id": "0", "task": "Traffic Analysis", "scores": None, "judge": "x"}) + "\n")
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    for path, what in ((sel, "selections file"), (judge, "judge output"), (empty, "empty")):
        assert _run(["report", str(path), "--out", str(tmp_path / "rep")]) == 2
        assert what in " ".join(capsys.readouterr().err.split())
        assert _run(["score", str(path)]) == 2
        assert what in " ".join(capsys.readouterr().err.split())
    assert not (tmp_path / "rep" / "report.md").exists()


def test_partial_runs_are_labelled_and_intervals_never_collapse(tmp_path, capsys):
    recs = [PredictionRecord(id=str(i), output="A", task="Traffic Analysis", correct="A", video=f"v{i}.mp4") for i in range(2)]
    report = score_records(recs)
    task = report.score.per_task[0]
    assert task.accuracy == 100.0 and task.ci95[0] < 100.0 and task.ci95[1] == 100.0
    wrong = score_records([PredictionRecord(id=str(i), output="B", task="Traffic Analysis", correct="A", video="v.mp4") for i in range(2)])
    lo, hi = wrong.score.per_task[0].ci95
    assert lo == 0.0 and hi > 30.0  # 0/2 is not "0.0-0.0"
    assert wrong.score.ci95_unweighted[1] > 0.0 and wrong.score.ci95_weighted[1] > 0.0
    assert not report.complete

    preds = tmp_path / "p.jsonl"
    preds.write_text("".join(json.dumps({"id": str(i), "task": "Traffic Analysis", "output": "A", "correct_answer": "A"}) + "\n" for i in range(2)))
    assert _run(["score", str(preds)]) == 0
    printed = " ".join(capsys.readouterr().out.split())
    assert "1 of 14 tasks" in printed and "2 items" in printed

    assert _run(["report", str(preds), "--out", str(tmp_path / "rep")]) == 0
    md = (tmp_path / "rep" / "report.md").read_text()
    assert "partial (1 of 14 tasks) | n/a | n/a" in md and "Partial run" in md


def test_compute_score_interval_with_clustering_is_wider_than_iid():
    tasks = ["Traffic Analysis"] * 40
    correct = np.array([True] * 20 + [False] * 20)
    iid = compute_score(tasks, [f"v{i}" for i in range(40)], correct, np.ones(40, bool))
    clustered = compute_score(tasks, [f"v{i // 10}" for i in range(40)], correct, np.ones(40, bool))
    width = lambda s: s.per_task[0].ci95[1] - s.per_task[0].ci95[0]  # noqa: E731
    assert width(clustered) > width(iid) > 0


def test_atomic_writes_honour_the_umask(tmp_path):
    from videoespresso.formats.jsonl import write_json_atomic

    old = os.umask(0o022)
    try:
        write_json_atomic(tmp_path / "x.json", {"a": 1})
        assert (tmp_path / "x.json").stat().st_mode & 0o777 == 0o644
    finally:
        os.umask(old)


def test_piped_output_is_not_wrapped(tmp_path):
    deep = tmp_path / ("a_rather_long_folder_name_" * 4) / "predictions_with_a_long_name.jsonl"
    deep.parent.mkdir(parents=True)
    deep.write_text(json.dumps({"id": "0", "task": "Traffic Analysis", "output": "A", "correct_answer": "A"}) + "\n")
    env = {k: v for k, v in _env().items() if k != "COLUMNS"}
    proc = subprocess.run([sys.executable, "-m", "videoespresso", "score", str(deep), "--json", str(deep.with_suffix(".json"))],
                          capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert any(str(deep.with_suffix(".json")) in line for line in proc.stdout.splitlines())
