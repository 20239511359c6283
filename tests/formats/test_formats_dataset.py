"""A build's dataset.jsonl as every reader sees it: an empty build, a record with a mistyped field.

The readers (`export sft`, `export hf`, `stats`) agree: nothing to read is bad input (exit 2,
one line); a bad record is named with its line, item and field, and the others go through.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from _cli import run_cli

READERS = {
    "export sft": lambda src, out: ["export", "sft", str(src), "--out", str(out), "--targets", "stage1,stage2",
                                    "--split", "all"],
    "export hf": lambda src, out: ["export", "hf", str(src), "--out", str(out)],
    "stats": lambda src, out: ["stats", str(src), "--out", str(out), "--dpi", "50"],
}


@pytest.mark.parametrize("reader", list(READERS))
def test_an_empty_build_is_bad_input_for_every_reader(tmp_path, capsys, reader):
    build = tmp_path / "build"
    build.mkdir()
    (build / "dataset.jsonl").write_text("")
    code, _, err = run_cli(capsys, READERS[reader](build, tmp_path / "out"))
    assert code == 2 and "Traceback" not in err, err
    assert err.count("error:") == 1 and "nothing to" in err and "(no " in err, err
    assert not (tmp_path / "out").exists()


def _mistyped(built_dataset: Path, tmp_path: Path) -> tuple[Path, str, int]:
    build = tmp_path / "build"
    shutil.copytree(built_dataset, build)
    lines = (build / "dataset.jsonl").read_text().splitlines()
    record = json.loads(lines[1])
    record["cot"]["core_frames"][0]["seconds"] = "soon"  # a string where a number belongs
    lines[1] = json.dumps(record)
    (build / "dataset.jsonl").write_text("\n".join(lines) + "\n")
    return build, record["qa"]["id"], len(lines)


@pytest.mark.parametrize("reader", list(READERS))
def test_a_mistyped_field_names_line_item_and_field_and_the_others_go_through(built_dataset, tmp_path, capsys, reader):
    build, item_id, n = _mistyped(built_dataset, tmp_path)
    out = tmp_path / "out"
    code, _, err = run_cli(capsys, READERS[reader](build, out))
    assert code == 0 and "Traceback" not in err, err
    skipped = [line for line in err.splitlines() if line.startswith("skipped:")]
    assert len(skipped) == 1, err
    assert f"dataset.jsonl:2: line 2 (item {item_id}): field cot.core_frames.0.seconds: Input should be a valid number" in skipped[0]
    if reader == "stats":
        assert json.loads((out / "stats.json").read_text())["items"] == n - 1
    elif reader == "export hf":
        from videoespresso.formats.hf import load_build_records

        assert len(load_build_records(out)) == n - 1
    else:
        _, whole, _ = run_cli(capsys, READERS[reader](built_dataset, tmp_path / "whole"))
        stage1 = [int(out.split("stage1: ")[1].split(",")[0]) for out in (whole, run_cli(capsys, READERS[reader](build, out))[1])]
        assert stage1[1] == stage1[0] - 1  # the bad record's example alone is missing


def test_record_problem_refuses_wrong_types_strictly():
    from videoespresso.formats.dataset import record_problem

    good = {"qa": {"id": "v#0", "video": "v.mp4", "question": "q", "answer": "a", "task": "t"}, "cot": {}}
    assert record_problem(good) is None
    assert record_problem({**good, "future_key": 1}) is None  # a newer version's key is kept
    assert record_problem({**good, "qa": {**good["qa"], "question": 5}}) == "field qa.question: Input should be a valid string"
    assert record_problem({**good, "options": "A"}) == "field options: Input should be a valid list"
    assert record_problem([1]) == "expected a JSON object, not list"
