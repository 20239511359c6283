"""Scoring speed: 1,382 and 1,000,000 predictions, end to end (read JSONL, extract, score).

Claim: scoring is never the slow part of an evaluation. The reference measured in the same run is
the cost of merely parsing the same JSONL file with ``json.loads`` (the least any scorer must do);
the ratio says how much extraction + per-task statistics + clustered errors add on top of it.

Two reply mixes: "realistic" draws replies from the extractor test table (many repeats, as real
model outputs have), "unique" makes every reply distinct (no memoisation possible: worst case).

    PYTHONPATH=src python benchmarks/bench_score_speed.py [--sizes 1382 1000000]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "bench"))

from test_bench_extract import CASES  # noqa: E402

from videoespresso.bench.score import score_file  # noqa: E402
from videoespresso.schema import TASKS  # noqa: E402


def write_predictions(path: Path, n: int, unique: bool, seed: int = 0) -> None:
    rng = random.Random(seed)
    replies = [c[0] for c in CASES if isinstance(c[0], str)]
    options = ["The man opens the door", "The woman leaves the room", "A dog barks at the car", "Nothing happens"]
    with path.open("w", encoding="utf-8") as handle:
        for i in range(n):
            reply = rng.choice(replies)
            if unique:
                reply = f"After watching clip {i}, I note {rng.random():.6f}. {reply}"
            row = {
                "id": str(i),
                "task": TASKS[i % 14].paper_name,
                "video_path": f"all_video/v{i // 3}.mp4",
                "output": reply,
                "correct_answer": "ABCD"[rng.randrange(4)],
                "extra": {"options": options},
            }
            handle.write(json.dumps(row) + "\n")


def parse_only(path: Path) -> float:
    start = time.perf_counter()
    with path.open("r", encoding="utf-8") as handle:
        for line in handle:
            json.loads(line)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[1382, 1_000_000])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.sizes:
            for unique in (False, True):
                path = Path(tmp) / f"p{n}-{unique}.jsonl"
                write_predictions(path, n, unique)
                ref = parse_only(path)
                start = time.perf_counter()
                report = score_file(path)
                took = time.perf_counter() - start
                mix = "unique" if unique else "realistic"
                print(
                    f"n={n:>9,} replies={mix:9s} score: {took:7.2f} s  json.loads only: {ref:6.2f} s  "
                    f"ratio {took / ref:5.1f}x  ({n / took:,.0f} predictions/s; "
                    f"overall {report.score.overall_weighted:.1f}, unparsed {report.score.unparsed})"
                )
                path.unlink()


if __name__ == "__main__":
    main()
