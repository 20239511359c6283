"""Shared set-up of the curate benchmarks: generated videos and the offline profile."""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

KINDS = ("mixed", "static_moving", "moving", "cut")


def parse_args(doc: str) -> argparse.Namespace:
    """The options every curate benchmark takes; ``doc`` is its module docstring."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--videos", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=3.0, help="length of each segment of a test video")
    return parser.parse_args()


def make_videos(folder: Path, n: int, seconds: float = 1.5) -> Path:
    from videoespresso.video.synth import make_test_video

    for i in range(n):
        make_test_video(folder / f"v{i:02d}.mp4", KINDS[i % len(KINDS)], seconds=seconds)
    return folder


def offline_config(tmp: Path):
    import yaml

    from videoespresso.config import load_config

    path = tmp / "bench.yaml"
    path.write_text(yaml.safe_dump({
        "sampling": {"max_side": 112},
        "generation": {"max_new_tokens": 16},
        "curate": {"group_size": 4, "qa_per_group": 2, "max_text_chars": 24, "max_new_tokens": 160},
    }))
    return load_config("offline", path)


def workdir() -> Path:
    return Path(tempfile.mkdtemp(prefix="ve-bench-curate-"))
