"""Crash cells: real runs killed with SIGKILL at named points, rerun, compared byte for byte.

``VIDEOESPRESSO_FAILPOINT`` (videoespresso/failpoints.py) kills the process at a stage
boundary, inside a stage, before the export, or after the first line of ``eval`` / ``select``.
The rerun must write exactly the files an uninterrupted run writes: nothing lost, nothing
doubled. The build cells are marked slow (``pytest -m slow``); the eval and select cells run by default.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from _faults import build_config, env
from videoespresso.cli import main as cli_main
from videoespresso.config import load_config
from videoespresso.curate import STAGE_NAMES, run_build

EXPORTS = ("dataset.jsonl", "test.json", "train_video.json", "train_images.json")
#: Build cells are slow (a subprocess build each); the default run has tests/curate/test_curate_build.py's
#: SIGKILL inside stage 5 and the eval and select cells below.
FAST: set[str] = set()
POINTS = (
    [f"build:before:{s}" for s in STAGE_NAMES]
    + [f"build:mid:{s}" for s in STAGE_NAMES]
    + ["build:export"]
)


def _killed_at(point: str, cmd: list[str]) -> subprocess.CompletedProcess:
    run_env = env()
    run_env["VIDEOESPRESSO_FAILPOINT"] = point
    return subprocess.run(cmd, env=run_env, capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def models(tiny_models):
    return tiny_models


@pytest.fixture(scope="module")
def crash_videos(tmp_path_factory):
    from videoespresso.video.synth import make_test_video

    root = tmp_path_factory.mktemp("crashes")
    videos = root / "videos"
    make_test_video(videos / "a_mixed.mp4", "mixed", seconds=1.5)
    make_test_video(videos / "b_moving.mp4", "moving", seconds=1.0)
    make_test_video(videos / "c_cut.mp4", "cut", seconds=1.5)
    return {"root": root, "videos": videos}


@pytest.fixture(scope="module")
def crash_ref(crash_videos, models):
    root, videos = crash_videos["root"], crash_videos["videos"]
    config = build_config(root)
    out = root / "reference"
    run_build(videos, out, load_config("tiny", config), preloaded=models, progress=False)
    return {"root": root, "videos": videos, "config": config, "out": out}


def _cells():
    return [pytest.param(p, id=p, marks=() if p in FAST else pytest.mark.slow) for p in POINTS]


@pytest.mark.parametrize("point", _cells())
def test_build_killed_at_point_resumes_to_the_same_files(crash_ref, models, point):
    out = crash_ref["root"] / point.replace(":", "_")
    cmd = [sys.executable, "-m", "videoespresso", "build", str(crash_ref["videos"]), "--out", str(out),
           "--profile", "tiny", "--config", str(crash_ref["config"]), "--no-progress"]
    killed = _killed_at(point, cmd)
    assert killed.returncode == -signal.SIGKILL, f"{point} was never reached: {killed.stderr[-2000:]}"
    assert not (out / "dataset.jsonl").exists()
    result = run_build(crash_ref["videos"], out, load_config("tiny", crash_ref["config"]),
                       preloaded=models, progress=False)
    if point.startswith("build:mid:") or point == "build:export":
        stage = point.rsplit(":", 1)[1]
        # What the killed run stored is reused, not computed again.
        reused = sum(s.cached for s in result.run.stages) if stage == "export" else result.run.stage(stage).cached
        assert reused >= 1
    for name in EXPORTS:
        assert (out / name).read_bytes() == (crash_ref["out"] / name).read_bytes(), name


# --------------------------------------------------------------------------- eval and select


def _bench(root: Path, videos: Path) -> Path:
    items = [
        {"video_path": name, "question": f"What happens in clip {i}?",
         "options": ["(A): it moves", "(B): it stays", "(C): it turns red", "(D): it vanishes"],
         "correct_answer": "(B)", "task": "Causal Inference"}
        for i, name in enumerate(["a_mixed.mp4", "b_moving.mp4", "c_cut.mp4", "a_mixed.mp4"])
    ]
    bench = root / "bench.json"
    bench.write_text(json.dumps(items))
    return bench


def test_eval_killed_after_first_line_resumes_to_the_same_file(crash_videos, capsys):
    root, videos = crash_videos["root"], crash_videos["videos"]
    bench = _bench(root, videos)
    args = ["eval", "--profile", "tiny", "--bench", str(bench), "--video-root", str(videos),
            "--model", "tiny:qwen2-vl", "--frames", "2", "--batch-size", "1", "--max-new-tokens", "4"]
    full, killed = root / "eval-full.jsonl", root / "eval-killed.jsonl"
    cli_main(args + ["--out", str(full)])
    result = _killed_at("eval:mid", [sys.executable, "-m", "videoespresso", *args, "--out", str(killed)])
    assert result.returncode == -signal.SIGKILL, result.stderr[-2000:]
    assert killed.read_bytes().count(b"\n") == 1
    capsys.readouterr()
    cli_main(args + ["--out", str(killed)])
    assert "1 reused, 3 answered" in " ".join(capsys.readouterr().out.split())
    assert killed.read_bytes() == full.read_bytes()


def test_select_killed_after_first_item_resumes_to_the_same_file(crash_videos, capsys):
    root, videos = crash_videos["root"], crash_videos["videos"]
    bench = _bench(root, videos)
    args = ["select", "--profile", "tiny", "--bench", str(bench), "--video-root", str(videos),
            "--selector", "uniform", "--frames", "3"]
    full, killed = root / "sel-full.json", root / "sel-killed.json"
    cli_main(args + ["--out", str(full)])
    result = _killed_at("select:mid", [sys.executable, "-m", "videoespresso", *args, "--out", str(killed)])
    assert result.returncode == -signal.SIGKILL, result.stderr[-2000:]
    journal = killed.with_name(killed.name + ".partial.jsonl")
    assert not killed.exists() and journal.read_bytes().count(b"\n") == 1
    capsys.readouterr()
    cli_main(args + ["--out", str(killed)])
    assert "1 reused, 3 selected" in " ".join(capsys.readouterr().out.split())
    assert killed.read_bytes() == full.read_bytes() and not journal.exists()


GENERATING = ("caption", "qa", "filter", "cot", "options")


@pytest.mark.slow
def test_build_killed_mid_cot_asks_nothing_the_cache_holds(models, tmp_path):
    """A build killed inside the CoT stage, with several items per batch, then rerun: every reply
    its response cache holds is served from it (0 model calls in every generating stage), in
    fresh processes and with other batches than the run that filled the cache."""
    import yaml

    from _faults import BUILD_SETTINGS

    cache = tmp_path / "responses.sqlite"

    def config(batch_size: int) -> Path:
        data = json.loads(json.dumps(BUILD_SETTINGS))
        data["curate"]["batch_size"] = batch_size
        data["cache"] = str(cache)
        path = tmp_path / f"config-{batch_size}.yaml"
        path.write_text(yaml.safe_dump(data))
        return path

    from videoespresso.video.synth import make_test_video

    videos = tmp_path / "videos"
    for i, kind in enumerate(["mixed", "moving", "cut", "mixed", "moving"]):
        make_test_video(videos / f"v{i}_{kind}.mp4", kind, seconds=2.0)
    full = run_build(videos, tmp_path / "full", load_config("tiny", config(1)), preloaded=models, progress=False)
    assert full.run.stage("cot").inputs >= 3 and full.run.stage("cot").model_calls >= 1
    out = tmp_path / "killed"
    killed = _killed_at("build:mid:cot", [sys.executable, "-m", "videoespresso", "build", str(videos), "--out", str(out),
                                           "--profile", "tiny", "--config", str(config(2)), "--no-progress"])
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    again = run_build(videos, out, load_config("tiny", config(2)), preloaded=models, progress=False)
    assert again.run.stage("cot").cached >= 2  # the killed run's first batch, from the store
    assert {s: again.run.stage(s).model_calls for s in GENERATING} == dict.fromkeys(GENERATING, 0)
    for name in EXPORTS:
        assert (out / name).read_bytes() == (tmp_path / "full" / name).read_bytes(), name
