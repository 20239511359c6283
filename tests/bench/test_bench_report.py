"""Reports: Markdown + one self-contained HTML file that headless Chromium renders."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from videoespresso.bench.leaderboard import leaderboard_columns
from videoespresso.bench.report import load_run, write_report
from videoespresso.bench.score import PredictionRecord, score_records
from videoespresso.schema import TASKS


def _run(name: str, seed: int) -> object:
    rng = np.random.default_rng(seed)
    records = []
    for t_i, task in enumerate(TASKS):
        for i in range(12):
            r = rng.random()
            output = "B" if r < 0.5 else ("The answer is A" if r < 0.85 else "<think>maybe A or C")
            records.append(
                PredictionRecord(id=f"{t_i}-{i}", output=output, task=task.paper_name, correct="B", video=f"{t_i}-{i // 4}")
            )
    return score_records(records, name=name, source=f"{name}.jsonl")


def test_report_markdown_and_html(tmp_path: Path) -> None:
    runs = [_run("model-x", 0), _run("model-<y>", 1)]
    score_json = tmp_path / "y.json"
    score_json.write_text(runs[1].model_dump_json(), encoding="utf-8")
    runs[1] = load_run(score_json)
    files = write_report(runs, tmp_path / "rep", leaderboard=["LLaVA-Video", "LongVA"])
    md = files.markdown.read_text("utf-8")
    page = files.html.read_text("utf-8")
    # leaderboard column order in the table header, both runs and the chosen published rows
    header = next(line for line in md.splitlines() if line.startswith("| Model"))
    positions = [header.index(c) for c in leaderboard_columns()]
    assert positions == sorted(positions)
    for needle in ("model-x", "model-<y>", "LLaVA-Video", "LongVA", "Overall (weighted)", "Avg. (unweighted)", "none:truncated_reasoning"):
        assert needle in md
    assert "model-&lt;y&gt;" in page and "model-<y>" not in page
    # self-contained: figures inline, nothing fetched from anywhere
    assert page.count("data:image/png;base64,") == 2
    assert "http://" not in page.split("Leaderboard rows:")[0] and 'src="http' not in page
    for fig in files.figures:
        assert Image.open(fig).size[0] > 300


@pytest.mark.skipif(shutil.which("chromium") is None, reason="chromium is not installed (scripts/install.sh installs it)")
def test_html_report_renders_in_headless_chromium(tmp_path: Path) -> None:
    files = write_report([_run("model-x", 0)], tmp_path / "rep")
    shot = tmp_path / "shot.png"
    profile = tmp_path / "chromium-profile"
    proc = subprocess.run(
        [
            "chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={profile}",
            "--window-size=1400,2400", f"--screenshot={shot}", files.html.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    image = np.asarray(Image.open(shot).convert("L"), dtype=np.float32)
    assert image.shape == (2400, 1400)
    # Text, tables and both plots make a page far from uniform; a failed render is blank.
    assert image.std() > 20 and (image < 128).mean() > 0.01
