"""``videoespresso models tiny`` and ``videoespresso models check``."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from videoespresso.cli import main


def _run(capsys, *argv: str) -> str:
    try:
        main(list(argv))
    except SystemExit as exc:
        assert exc.code in (0, None)
    return capsys.readouterr().out


def test_models_tiny_prints_folders_and_sizes(capsys, ve_home):
    out = _run(capsys, "models", "tiny", "qwen2", "clip")
    assert "qwen2" in out and "clip" in out and "MB" in out
    assert (ve_home / "tiny" / "qwen2-v1" / "config.json").is_file()


@pytest.mark.parametrize(
    ("spec", "expect"),
    [("tiny:qwen2", "chat"), ("tiny:clip", "similarity matrix (1, 2)"), ("tiny:grounding-dino", "box(es)")],
)
def test_models_check_loads_and_runs_one_call(capsys, spec, expect):
    out = _run(capsys, "models", "check", spec, "--max-new-tokens", "4")
    assert spec in out and "check call:" in out and expect in out


def test_models_check_bad_spec_exits_2_with_one_line():
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in [os.path.abspath("src"), os.environ.get("PYTHONPATH", "")] if p))
    proc = subprocess.run(
        [sys.executable, "-m", "videoespresso", "models", "check", "tiny:nope"],
        capture_output=True, text=True, env=env, timeout=120,
    )
    assert proc.returncode == 2
    assert "unknown tiny architecture 'nope'" in proc.stderr and "Traceback" not in proc.stderr
