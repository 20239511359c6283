"""The offline build of 3 generated clips under ``--executor ray`` against ``--executor local``.

Slow (each Ray model stage starts an actor that imports torch and loads its tiny model: about
2 minutes a build on the shared 2-core machine). The default suite runs the Ray executor end to
end in ``tests/engine/test_engine_ray.py``. Each Ray here is started by the code under test (in
this process or a ``videoespresso build`` child) in its own temporary folder, and every test
checks that no process mentioning that folder survives.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from _procs import wait_gone
import yaml

from videoespresso.config import load_config
from videoespresso.curate import run_build

pytest.importorskip("ray")

pytestmark = pytest.mark.slow

SRC = str(Path(__file__).resolve().parents[2] / "src")
SETTINGS = {
    "sampling": {"max_side": 96},
    "generation": {"max_new_tokens": 12},
    # batch size 1: every model call is independent of which items share its batch
    "curate": {"batch_size": 1, "group_size": 2, "qa_per_group": 2, "max_text_chars": 16, "max_new_tokens": 120,
               "resources": {"qa": {"workers": 2, "cpus": 0.25}, "caption": {"gpus": 0.5}}},
}
EXPORTS = ("dataset.jsonl", "train_video.json", "train_images.json", "test.json")


@pytest.fixture()
def ray_tmp(monkeypatch):
    """A private parent folder for the Ray temp folder of the run under test."""
    folder = tempfile.mkdtemp(prefix="ve-rb-", dir="/tmp")
    monkeypatch.setenv("VIDEOESPRESSO_RAY_TMPDIR", folder)
    monkeypatch.setenv("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    yield folder
    left = wait_gone(folder)
    for pid in left:  # only processes of the Ray this test started
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    shutil.rmtree(folder, ignore_errors=True)
    assert not left, f"Ray processes left behind: {left}"


@pytest.fixture(scope="module")
def work(tmp_path_factory, tiny_vlm, tiny_llm, minilm, tiny_grounder, tiny_clip):
    from videoespresso.video.synth import make_test_video

    root = tmp_path_factory.mktemp("ray-build")
    videos = root / "videos"
    make_test_video(videos / "a_mixed.mp4", "mixed", seconds=1.5)
    make_test_video(videos / "b_static_moving.mp4", "static_moving", seconds=1.0)
    make_test_video(videos / "sub" / "c_moving.mp4", "moving", seconds=3.0)
    from _split import seed_with_test_video

    config = root / "config.yaml"
    seed = seed_with_test_video(sorted(videos.rglob("*.mp4")), videos / "sub" / "c_moving.mp4")
    config.write_text(yaml.safe_dump({**SETTINGS, "curate": {**SETTINGS["curate"], "split_seed": seed}}))
    models = {"tiny:qwen2-vl": tiny_vlm, "tiny:qwen2": tiny_llm, "minilm": minilm,
              "tiny:grounding-dino": tiny_grounder, "tiny:clip": tiny_clip}
    reference = run_build(videos, root / "local", load_config("tiny", config), preloaded=models, progress=False)
    assert reference.exported.items > 0
    return {"root": root, "videos": videos, "config": config, "local": root / "local", "reference": reference}


def _same_exports(a: Path, b: Path) -> None:
    for name in EXPORTS:
        assert (a / name).read_bytes() == (b / name).read_bytes(), f"{name} differs"


def test_ray_build_is_byte_identical_to_local_and_publishes_to_a_second_root(work, ray_tmp):
    cfg = load_config("tiny", work["config"])
    second_root = work["root"] / "second-root"
    url = "file://" + str(second_root / "build")
    result = run_build(work["videos"], url, cfg, executor="ray", progress=False)
    assert result.startup_seconds > 0
    _same_exports(work["local"], second_root / "build")
    ref = {s.name: (s.inputs, s.outputs, s.ok, s.failed, s.dropped, s.errors, s.model_calls)
           for s in work["reference"].run.stages}
    got = {s.name: (s.inputs, s.outputs, s.ok, s.failed, s.dropped, s.errors, s.model_calls)
           for s in result.run.stages}
    assert got == ref  # counts and model calls as in the local executor's summary
    # The train/test split by video is kept.
    records = [json.loads(line) for line in (second_root / "build" / "dataset.jsonl").read_text().splitlines()]
    assert {r["split"] for r in records} == {"train", "test"}


def _qa_done(db: Path) -> int:
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as conn:
            return conn.execute("SELECT COUNT(*) FROM results WHERE stage = 'qa' AND status != 'error'").fetchone()[0]
    except sqlite3.OperationalError:
        return 0


def test_ray_build_killed_mid_stage_resumes_to_the_same_dataset(work, ray_tmp):
    out = work["root"] / "killed"
    env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}
    cmd = [sys.executable, "-m", "videoespresso", "build", str(work["videos"]), "--out", str(out),
           "--profile", "tiny", "--config", str(work["config"]), "--no-progress", "--executor", "ray"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    total = work["reference"].run.stage("qa").inputs
    try:
        deadline = time.time() + 400
        while time.time() < deadline and proc.poll() is None and _qa_done(out / "store.sqlite") < 1:
            time.sleep(0.05)
        os.killpg(proc.pid, signal.SIGKILL)  # the driver and the Ray it started
    finally:
        proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read().decode()[-2000:]
    done = _qa_done(out / "store.sqlite")
    assert 1 <= done < total, "the kill should land inside stage 5"
    assert not wait_gone(ray_tmp), "killing the driver's process group ends its Ray"

    cfg = load_config("tiny", work["config"])
    resumed = run_build(work["videos"], out, cfg, executor="ray", progress=False)
    qa = resumed.run.stage("qa")
    assert qa.cached == done and qa.computed == total - done
    assert all(resumed.run.stage(n).computed == 0 for n in ("sample", "caption", "dedup", "group"))
    _same_exports(work["local"], out)
