"""Videos x commands: every bad or odd video through `frames`, `build`, `eval` and `ask`.

A bad video fails its own item with a reason that names it; odd but valid videos (variable
frame rate, one frame, 16x2000, rotated, 4000x4000, square) are processed. Each command runs
once over the whole zoo (as a user's folder would hold them together); the cells read its
result.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from _faults import VIDEO_KINDS, build_config, make_zoo, run_cli

BAD = [k for k, ok in VIDEO_KINDS.items() if not ok]
GOOD = [k for k, ok in VIDEO_KINDS.items() if ok]

#: The reason each bad kind must be reported with.
REASONS = {
    "zero_byte": "the file is empty",
    "random_bytes": "not a readable video",
    "truncated": "not a readable video",
    "audio_only": "no video stream",
    "lying_count": "claims 100 frames but its data holds",
    "dir_named_mp4": "not a regular file but a folder",
    "symlink_loop": "symbolic link that leads nowhere",
    "dangling_link": "symbolic link that leads nowhere",
    "fifo": "not a regular file but a named pipe (FIFO)",
    "socket": "not a regular file but a socket",
}


@pytest.fixture(scope="module")
def zoo(tmp_path_factory) -> dict[str, Path]:
    return make_zoo(tmp_path_factory.mktemp("zoo") / "videos")


@pytest.fixture(scope="module")
def frames_run(zoo, tmp_path_factory):
    from _pytest.capture import CaptureFixture  # noqa: F401 -- capsys is function-scoped

    import subprocess
    import sys

    from _faults import env

    out = tmp_path_factory.mktemp("frames")
    proc = subprocess.run(
        [sys.executable, "-m", "videoespresso", "frames", *map(str, zoo.values()), "-s", "uniform:2",
         "--size", "64", "-o", str(out)],
        capture_output=True, text=True, env=env(), timeout=300,
    )
    return proc, out


@pytest.mark.parametrize("kind", list(VIDEO_KINDS))
def test_frames(frames_run, zoo, kind):
    proc, out = frames_run
    assert "Traceback" not in proc.stderr
    assert proc.returncode == 1  # some videos failed, the others were written
    text = " ".join(proc.stderr.split())  # rich wraps long lines
    if VIDEO_KINDS[kind]:
        sidecar = json.loads((out / kind / "frames.json").read_text())
        assert len(sidecar["frames"]) >= 1
    else:
        reported = [part for part in text.split("failed: ") if f"{kind}.mp4: " in part]
        assert reported and REASONS[kind] in reported[0], text
        assert not (out / kind / "frames.json").exists()
    assert f"{len(GOOD)} of {len(VIDEO_KINDS)} videos done, {len(BAD)} failed" in text


@pytest.fixture(scope="module")
def build_run(zoo, tmp_path_factory, tiny_vlm, tiny_llm, minilm, tiny_grounder, tiny_clip):
    from videoespresso.config import load_config
    from videoespresso.curate import run_build
    from videoespresso.engine import Store

    root = tmp_path_factory.mktemp("build")
    # A list file names every kind (a folder scan does not descend into a file, and would treat
    # the directory named x.mp4 as a folder).
    listing = root / "videos.txt"
    listing.write_text("".join(f"{p}\n" for p in zoo.values()))
    cfg = load_config("tiny", build_config(root))
    models = {"tiny:qwen2-vl": tiny_vlm, "tiny:qwen2": tiny_llm, "minilm": minilm,
              "tiny:grounding-dino": tiny_grounder, "tiny:clip": tiny_clip}
    result = run_build(listing, root / "out", cfg, preloaded=models, progress=False)
    with Store(result.store) as store:
        failures = {r.item_id: (r.stage, r.reason, r.detail) for s in ("failed", "error") for r in store.results(status=s)}
        sampled = {r.item_id for r in store.results(status="ok") if r.stage == "sample"}
    return result, failures, sampled


@pytest.mark.parametrize("kind", list(VIDEO_KINDS))
def test_build(build_run, zoo, kind):
    result, failures, sampled = build_run
    item_id = str(zoo[kind])
    # no stage raised on any item: every failure is a recorded reason, not an exception
    assert all(stage_stats.errors == 0 for stage_stats in result.run.stages), [
        (s.name, dict(s.failure_reasons)) for s in result.run.stages
    ]
    if VIDEO_KINDS[kind]:
        assert item_id in sampled and item_id not in failures
    else:
        stage, reason, detail = failures[item_id]
        assert stage == "sample" and reason in ("unreadable_video", "missing_video")
        assert REASONS[kind] in detail


def test_build_square_video_reaches_the_export(build_run, zoo):
    """The spatial stage used to raise on a square video (a 1x1 map in the tiny grounder)."""
    result, failures, _ = build_run
    assert result.exported is not None and result.exported.items >= 1
    rows = [json.loads(line) for line in (result.store.parent / "dataset.jsonl").read_text().splitlines()]
    square = [row for row in rows if row["qa"]["video"].endswith("square.mp4")]
    assert square and all(row["cot"]["key_objects"] for row in square)


@pytest.fixture(scope="module")
def eval_run(zoo, tmp_path_factory, tiny_vlm):
    from videoespresso.bench.run import EvalOptions, run_eval, sampler_source
    from videoespresso.formats.bench import read_bench, write_bench
    from videoespresso.schema import TASKS, BenchItem, GenerationSettings

    root = tmp_path_factory.mktemp("eval")
    items = [
        BenchItem(id=kind, video_path=f"{kind}.mp4", question="What moves?", options=["a", "b", "c", "d"],
                  raw_options=["(A): a", "(B): b", "(C): c", "(D): d"], correct_answer="A", answer="a",
                  evidence="", task=TASKS[0].paper_name)
        for kind in VIDEO_KINDS
    ]
    bench = root / "bench.json"
    write_bench(items, bench)
    opts = EvalOptions(settings=GenerationSettings(max_new_tokens=3), batch_size=4, frames_label="uniform:2")
    out = root / "pred.jsonl"
    summary = run_eval(read_bench(bench), tiny_vlm, out, sampler_source("uniform:2", 96), next(iter(zoo.values())).parent, opts)
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    return summary, {line["id"]: line for line in lines}, lines


@pytest.mark.parametrize("kind", list(VIDEO_KINDS))
def test_eval(eval_run, kind):
    summary, by_id, lines = eval_run
    assert len(lines) == len(VIDEO_KINDS) == len(by_id)  # one line per item, none doubled
    line = by_id[kind]
    if VIDEO_KINDS[kind]:
        # a valid video is answered, or its frames are refused by the model's processor with a reason
        assert "error" not in line or line["error"].startswith("model: "), line
        if "error" not in line:
            assert len(line["frames"]) >= 1
    else:
        assert line["error"].startswith("frames: ") and REASONS[kind] in line["error"]
    assert summary.answered + summary.failed == len(VIDEO_KINDS)


@pytest.mark.parametrize("kind", BAD)
def test_ask(zoo, capsys, kind):
    result = run_cli(capsys, ["ask", str(zoo[kind]), "What moves?", "-s", "uniform", "-r", "direct",
                              "-k", "2", "--profile", "tiny"])
    assert result.code == 2 and "Traceback" not in result.err
    text = " ".join(result.err.split())
    assert kind in text and REASONS[kind] in text


@pytest.mark.parametrize("kind", ["square", "tall_16x2000"])
def test_ask_odd_video_is_answered(zoo, capsys, kind):
    result = run_cli(capsys, ["ask", str(zoo[kind]), "What moves?", "-s", "uniform", "-r", "direct",
                              "-k", "2", "--profile", "tiny"])
    assert "Traceback" not in result.err
    # answered, or refused by the model's image processor with a one-line reason
    assert result.code == 0 and "answer:" in result.out or result.code == 2, result.err


def _error_as_nobody(path: Path) -> str:
    """The error sampling ``path`` raises in a child process without root's privileges."""
    from videoespresso.video import sample_frames

    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read)
        message = "no error"
        try:
            if os.getuid() == 0:
                os.setgid(65534)
                os.setuid(65534)
            sample_frames(path, "uniform:2")
        except BaseException as exc:  # noqa: BLE001 -- reported to the parent
            message = f"{type(exc).__name__}: {exc}"
        os.write(write, message.encode())
        os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    message = os.read(read, 4096).decode()
    os.close(read)
    return message


@pytest.mark.parametrize("what", ["file", "folder"])
def test_unreadable(zoo, what):
    """A file the user may not read, or one in a folder the user may not enter."""
    import shutil
    import tempfile

    root = Path(tempfile.mkdtemp(prefix="ve-unreadable-"))
    try:
        os.chmod(root, 0o755)
        folder = root / "private"
        folder.mkdir()
        target = folder / "secret.mp4"
        target.write_bytes(zoo["square"].read_bytes())
        os.chmod(folder if what == "folder" else target, 0)
        message = _error_as_nobody(target)
    finally:
        os.chmod(folder, 0o755)
        shutil.rmtree(root)
    assert message.startswith("VideoNotFoundError: "), message
    assert "permission denied" in message and "secret.mp4" in message


def test_a_folder_scan_keeps_every_entry_named_like_a_video(zoo):
    """A FIFO, socket or dangling link in the input folder was skipped without a word; now each
    is an item that the sample stage fails with what it is (see test_build)."""
    from videoespresso.curate import discover_videos

    ids = {item["id"] for item in discover_videos(next(iter(zoo.values())).parent)}
    # a folder named x.mp4 is searched, not an item
    assert ids == {f"{kind}.mp4" for kind in VIDEO_KINDS if kind != "dir_named_mp4"}
