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
    assert result.overall.n == 4 and result.only_in_a == 2 and "2 items scored only in A" in result.notes[-1]


# --------------------------------------------------------------------------- same benchmark


def _cli(argv: list[str]) -> int:
    with pytest.raises(SystemExit) as exc:
        main(argv)
        raise SystemExit(0)
    return exc.value.code or 0


def _bench(path: Path, answers: str) -> Path:
    """A benchmark file of len(answers) items (ids 0..), the i-th with correct answer answers[i]."""
    items = [{"id": str(i), "video_path": f"v{i // 2}.mp4", "question": f"What is shown in {path.stem} {i}?",
              "options": ["(A): a", "(B): b", "(C): c", "(D): d"], "correct_answer": f"({letter})", "answer": "",
              "evidence": "", "task": "Traffic Analysis"} for i, letter in enumerate(answers)]
    path.write_text(json.dumps(items), encoding="utf-8")
    return path


def _run_on(bench: Path, out: Path, outputs: str) -> Path:
    """The predictions eval writes for ``bench`` (one line per item) and its run manifest."""
    from videoespresso.formats.bench import bench_fingerprint, read_bench
    from videoespresso.formats.manifest import check_resume

    items = read_bench(bench)
    out.write_text("".join(json.dumps({"id": it.id, "task": it.task, "video_path": it.video_path, "correct_answer": it.correct_answer,
                                       "output": letter, "extra": {"options": it.options}}) + "\n"
                           for it, letter in zip(items, outputs)))
    check_resume(out, "eval", {"model": "tiny:qwen2-vl", "bench_sha256": bench_fingerprint(bench)}, has_output=False)
    return out


def test_compare_refuses_runs_made_on_different_benchmark_files(tmp_path, capsys):
    # Before: rc 0 and no warning, pairing other questions with other answers by id.
    first, second = _bench(tmp_path / "first.json", "ABCDABCD"), _bench(tmp_path / "second.json", "DCBADCBA")
    a = _run_on(first, tmp_path / "a.jsonl", "ABCDABCD")
    b = _run_on(second, tmp_path / "b.jsonl", "ABCDABCD")
    assert _cli(["compare", str(a), str(b), "--bootstrap", "100"]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "were run on different benchmark files" in err and "run manifests" in err
    # --bench that is not the file a run was made on is refused too (compare and score).
    assert _cli(["compare", str(a), str(a), "--bench", str(second), "--bootstrap", "100"]) == 2
    assert "was run on another benchmark file" in " ".join(capsys.readouterr().err.split())
    assert _cli(["score", str(a), "--bench", str(second)]) == 2
    assert "was run on another benchmark file" in " ".join(capsys.readouterr().err.split())
    # The same benchmark file: compared, nothing to warn about.
    c = _run_on(first, tmp_path / "c.jsonl", "ABCDDCBA")
    assert _cli(["compare", str(a), str(c), "--bench", str(first), "--bootstrap", "100"]) == 0
    assert "manifest" not in capsys.readouterr().err


def test_compare_without_manifests_checks_the_shared_items(tmp_path, capsys):
    from videoespresso.formats.manifest import manifest_path

    first, second = _bench(tmp_path / "first.json", "ABCDABCD"), _bench(tmp_path / "second.json", "ABCDABCA")
    a = _run_on(first, tmp_path / "a.jsonl", "ABCDABCD")
    b = _run_on(second, tmp_path / "b.jsonl", "ABCDABCD")
    for run in (a, b):
        manifest_path(run).unlink()
    # The answers of item 7 differ: not the same benchmark.
    assert _cli(["compare", str(a), str(b), "--bootstrap", "100"]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "not run on the same benchmark: item 7: correct_answer 'D' vs 'A'" in err
    # Agreeing items: compared, saying what could not be checked and what was.
    c = _run_on(first, tmp_path / "c.jsonl", "ABCDDCBA")
    manifest_path(c).unlink()
    assert _cli(["compare", str(a), str(c), "--bootstrap", "100"]) == 0
    err = " ".join(capsys.readouterr().err.split())
    assert "a.jsonl has no eval run manifest" in err and "the same" in err
    # Official-format runs whose questions differ under the same ids.
    official = []
    for bench in (first, _bench(tmp_path / "third.json", "ABCDABCD")):
        items = json.loads(bench.read_text())
        for item in items:
            item["model_output"] = "A"
        official.append(tmp_path / f"{bench.stem}.official.json")
        official[-1].write_text(json.dumps(items), encoding="utf-8")
    assert _cli(["compare", *map(str, official), "--bootstrap", "100"]) == 2
    assert "item 0: question" in " ".join(capsys.readouterr().err.split())
    # Nothing to compare at all: refused rather than trusted.
    bare = [tmp_path / "bare_a.jsonl", tmp_path / "bare_b.jsonl"]
    for path in bare:
        path.write_text(json.dumps({"id": "0", "output": "A"}) + "\n")
    assert _cli(["compare", *map(str, bare), "--bench", str(first), "--bootstrap", "100"]) == 2
    assert "cannot tell whether" in " ".join(capsys.readouterr().err.split())
