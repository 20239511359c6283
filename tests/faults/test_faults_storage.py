"""Storage faults x `build` / `eval`: an output path that is a file, sits below a file, or is a
folder where a file is wanted; a read-only folder; a full disk. Each is one line without a
traceback, nothing is half-written, and a rerun once the fault is gone completes and matches an
uninterrupted run."""

from __future__ import annotations

import contextlib
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from _faults import assert_one_line_error, build_config, env, run_cli


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    from videoespresso.formats.bench import write_bench
    from videoespresso.schema import TASKS, BenchItem
    from videoespresso.video.synth import make_test_video

    root = tmp_path_factory.mktemp("storage")
    make_test_video(root / "videos" / "clip.mp4", "moving", seconds=1.0)
    items = [BenchItem(id=str(i), video_path="clip.mp4", question=f"question number {i}", options=["a", "b", "c", "d"],
                       raw_options=[], correct_answer="A", answer="", evidence="", task=TASKS[0].paper_name)
             for i in range(6)]
    write_bench(items, root / "bench.json")
    return root


def _eval_argv(data: Path, out: Path) -> list[str]:
    return ["eval", "--bench", str(data / "bench.json"), "--video-root", str(data / "videos"), "--model",
            "tiny:qwen2-vl", "--out", str(out), "--frames", "1", "--max-new-tokens", "2", "--batch-size", "1",
            "--profile", "tiny", "--no-cache"]


def _build_argv(data: Path, out: Path) -> list[str]:
    return ["build", str(data / "videos"), "--out", str(out), "--profile", "tiny", "--config",
            str(build_config(data)), "--stages", "1", "--no-progress"]


def _bad_path(kind: str, root: Path) -> Path:
    blocker = root / "a_file"
    blocker.write_text("x")
    if kind == "out_is_a_file":
        return blocker
    if kind == "out_below_a_file":
        return blocker / "sub" / "pred.jsonl"
    folder = root / "a_folder.jsonl"
    folder.mkdir()
    return folder


PATH_CELLS = {
    # (command, kind): fragment of the one error line
    ("eval", "out_is_a_folder"): "is a folder",
    ("eval", "out_below_a_file"): "Not a directory",
    ("build", "out_is_a_file"): "is a file",
    ("build", "out_below_a_file"): "Not a directory",
}


@pytest.mark.parametrize("command, kind", list(PATH_CELLS))
def test_output_path_faults(capsys, tmp_path, data, command, kind):
    out = _bad_path(kind, tmp_path)
    argv = _eval_argv(data, out) if command == "eval" else _build_argv(data, out)
    assert_one_line_error(run_cli(capsys, argv), PATH_CELLS[(command, kind)])


@contextlib.contextmanager
def _mounted_tmpfs(path: Path, options: str):
    """A tmpfs at ``path`` (needs root with CAP_SYS_ADMIN); skips the test where it cannot mount."""
    path.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a tmpfs needs root")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


@contextlib.contextmanager
def _read_only_folder(path: Path):
    """A folder this process cannot write: chmod for a normal user, a read-only mount for root."""
    if os.geteuid() != 0:
        path.mkdir(parents=True)
        path.chmod(0o555)
        try:
            yield path
        finally:
            path.chmod(0o755)
        return
    with _mounted_tmpfs(path, "ro,size=1m") as mounted:
        yield mounted


@pytest.mark.parametrize("command", ["eval", "build"])
def test_read_only_folder(capsys, tmp_path, data, command):
    with _read_only_folder(tmp_path / "ro") as folder:
        out = folder / ("pred.jsonl" if command == "eval" else "build")
        argv = _eval_argv(data, out) if command == "eval" else _build_argv(data, out)
        result = run_cli(capsys, argv)
        assert_one_line_error(result, str(folder).replace(" ", ""))
        assert "Read-only file system" in result.err or "Permission denied" in result.err or "not writable" in result.err


def _limited_eval(data: Path, out: Path, limit: int) -> subprocess.CompletedProcess:
    """`eval` in a process whose files may not grow past ``limit`` bytes (a full disk for it)."""

    def cap() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # write() then fails with EFBIG
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return subprocess.run([sys.executable, "-m", "videoespresso", *_eval_argv(data, out)], capture_output=True,
                          text=True, env=env(), timeout=300, preexec_fn=cap)


@pytest.mark.slow
def test_eval_disk_full_then_rerun_matches(tmp_path, data, capsys):
    reference = tmp_path / "ref.jsonl"
    assert run_cli(capsys, _eval_argv(data, reference)).code == 0
    size = reference.stat().st_size
    out = tmp_path / "pred.jsonl"
    full = _limited_eval(data, out, size // 2)
    assert full.returncode == 2 and "Traceback" not in full.stderr, full.stderr[-3000:]
    assert "File too large" in full.stderr or "disk is full" in full.stderr
    lines = out.read_text().splitlines(keepends=True)
    assert 0 < len(lines) < 6
    rerun = run_cli(capsys, _eval_argv(data, out))
    assert rerun.code == 0, rerun.err
    assert _comparable(out) == _comparable(reference)


def _comparable(path: Path) -> list[dict]:
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    for row in rows:
        row.get("extra", {}).pop("cached", None)
    return rows


def test_build_disk_full_then_rerun_matches(capsys, tmp_path, data):
    """A tmpfs too small for the build: one line; with room again the rerun completes, and its
    store and frames equal an uninterrupted build's."""
    from videoespresso.engine import Store

    reference = tmp_path / "reference"
    assert run_cli(capsys, _build_argv(data, reference)).code == 0
    used = sum(p.stat().st_size for p in reference.rglob("*") if p.is_file())
    with _mounted_tmpfs(tmp_path / "small", f"size={max(4, used // 2 // 1024)}k") as small:
        out = small / "build"
        full = run_cli(capsys, _build_argv(data, out))
        assert_one_line_error(full)
        assert "full" in full.err or "No space left" in full.err
        subprocess.run(["mount", "-o", "remount,size=64m", str(small)], check=True)
        again = run_cli(capsys, _build_argv(data, out))
        assert again.code == 0, again.err
        with Store(out / "store.sqlite") as a, Store(reference / "store.sqlite") as b:
            ours = sorted((r.item_id, r.status, json.dumps(r.outputs, sort_keys=True)) for r in a.results())
            theirs = sorted((r.item_id, r.status, json.dumps(r.outputs, sort_keys=True)) for r in b.results())
        assert ours == theirs
        frames = sorted(p.relative_to(out) for p in (out / "frames").rglob("*.jpg"))
        assert frames == sorted(p.relative_to(reference) for p in (reference / "frames").rglob("*.jpg"))
        for rel in frames:
            assert (out / rel).read_bytes() == (reference / rel).read_bytes()
