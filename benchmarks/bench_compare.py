"""`videoespresso compare` on two full-size runs (1,382 x 2 predictions).

Prints the time of a paired comparison (McNemar + 2,000-resample video bootstrap per task) and,
as the reference measured in the same run, the time to score the same two files with
`score_file`; the ratio says what the paired statistics cost on top of scoring.

    .venv/bin/python benchmarks/bench_compare.py
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
from pathlib import Path

from videoespresso.bench.compare import compare_runs
from videoespresso.bench.score import score_file
from videoespresso.schema import TASKS


def _run(path: Path, rng: random.Random, skill: float) -> None:
    rows = []
    for i in range(1382):
        task = TASKS[i % len(TASKS)].paper_name
        truth = "ABCD"[i % 4]
        reply = truth if rng.random() < skill else rng.choice("ABCD")
        rows.append({"id": str(i), "task": task, "video_path": f"v{i // 3}.mp4", "correct_answer": truth,
                     "output": f"The answer is ({reply})."})
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    rng = random.Random(0)
    with tempfile.TemporaryDirectory() as tmp:
        a, b = Path(tmp) / "a.jsonl", Path(tmp) / "b.jsonl"
        _run(a, rng, 0.30)
        _run(b, rng, 0.36)
        score_times, compare_times = [], []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            score_file(a)
            score_file(b)
            score_times.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            result = compare_runs(a, b)
            compare_times.append(time.perf_counter() - t0)
        s, c = min(score_times), min(compare_times)
        o = result.overall
        print(f"runs: A {o.accuracy_a:.1f} %, B {o.accuracy_b:.1f} %, B - A {o.difference:+.1f} points "
              f"(95% CI {o.ci95[0]:+.1f} to {o.ci95[1]:+.1f}), McNemar p = {o.p_value:.3g}")
        print(f"scoring both files (reference): {s:.3f} s")
        print(f"compare (paired, {result.bootstrap} bootstrap resamples x {len(result.per_task) + 1} rows): {c:.3f} s")
        print(f"ratio compare / score: {c / s:.2f}")


if __name__ == "__main__":
    main()
