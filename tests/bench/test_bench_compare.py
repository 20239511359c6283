"""Paired comparison of two runs: McNemar exact p-values and a video-clustered bootstrap."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from videoespresso.bench.compare import compare_runs, mcnemar_exact
from videoespresso.cli import main


def _write(path: Path, right: list[bool], tasks: list[str]) -> Path:
    rows = [
        {"id": str(i), "task": t, "video_path": f"v{i // 2}.mp4", "correct_answer": "A", "output": "A" if r else "B"}
        for i, (r, t) in enumerate(zip(right, tasks))
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_mcnemar_exact_matches_the_binomial_test():
    assert mcnemar_exact(0, 0) == 1.0
    assert mcnemar_exact(0, 10) == pytest.approx(2 * 0.5**10)
    assert mcnemar_exact(3, 3) == 1.0
    # scipy.stats.binomtest(2, 12, 0.5).pvalue
    assert mcnemar_exact(2, 10) == pytest.approx(0.038574, abs=1e-6)


def test_compare_two_runs(tmp_path, capsys):
    tasks = ["Traffic Analysis"] * 20 + ["Behavior Profiling"] * 20
    a = _write(tmp_path / "a.jsonl", [i % 2 == 0 for i in range(40)], tasks)
    # B is right wherever A is, plus on the 10 other Traffic items
    b = _write(tmp_path / "b.jsonl", [i % 2 == 0 or i < 20 for i in range(40)], tasks)
    result = compare_runs(a, b, bootstrap=500)
    assert result.overall.n == 40 and (result.overall.only_a, result.overall.only_b) == (0, 10)
    assert result.overall.difference == pytest.approx(25.0)
    assert result.overall.p_value == pytest.approx(2 * 0.5**10)
    lo, hi = result.overall.ci95
    assert 0 < lo < 25.0 < hi
    traffic = next(r for r in result.per_task if "Traffic" in r.task)
    assert traffic.only_b == 10 and traffic.difference == pytest.approx(50.0)
    behavior = next(r for r in result.per_task if "Behavior" in r.task)
    assert behavior.difference == 0.0 and behavior.p_value == 1.0 and behavior.ci95 == (0.0, 0.0)

    out = tmp_path / "cmp.json"
    with pytest.raises(SystemExit) as exc:
        main(["compare", str(a), str(b), "--json", str(out), "--bootstrap", "200"])
        raise SystemExit(0)
    assert exc.value.code in (0, None)
    printed = " ".join(capsys.readouterr().out.split())
    assert "+25.0" in printed and "McNemar" in printed
    assert json.loads(out.read_text())["overall"]["only_b"] == 10


def test_compare_reports_items_missing_from_one_run(tmp_path):
    tasks = ["Traffic Analysis"] * 6
    a = _write(tmp_path / "a.jsonl", [True] * 6, tasks)
    b = _write(tmp_path / "b.jsonl", [True] * 4, tasks[:4])
    result = compare_runs(a, b, bootstrap=100)
    assert result.overall.n == 4 and result.only_in_a == 2 and "2 items scored only in A" in result.notes[0]
