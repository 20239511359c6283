"""Hugging Face datasets folders: round trips of a real build and of the official files, read back
with `datasets` itself, and `eval --bench` on such a folder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from videoespresso.cli import main as cli_main
from videoespresso.formats import hf
from videoespresso.formats.bench import bench_item_to_official, read_bench
from videoespresso.formats.train import read_train, train_item_to_json

datasets = pytest.importorskip("datasets")


def _records(build: Path) -> list[dict]:
    return [json.loads(line) for line in (build / "dataset.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("fmt", ["arrow", "parquet"])
def test_build_to_hf_and_back_gives_the_same_records(built_dataset, tmp_path, fmt):
    out = tmp_path / f"hf-{fmt}"
    assert cli_main_ok(["export", "hf", str(built_dataset), "--out", str(out), "--format", fmt])
    records = _records(built_dataset)
    assert hf.load_build_records(out) == sorted(records, key=lambda r: r["qa"]["id"])
    # what `datasets` itself sees: splits by video, frames as decoded images, records as columns
    if fmt == "arrow":
        loaded = datasets.load_from_disk(str(out))
    else:
        loaded = datasets.load_dataset("parquet", data_dir=str(out), cache_dir=str(tmp_path / "cache"))
    assert {s: len(loaded[s]) for s in loaded} == {
        s: sum(r["split"] == s for r in records) for s in ("train", "test")
    }
    assert isinstance(loaded["train"].features["core_images"].feature, datasets.Image)
    row = loaded["test"][0]
    first = next(r for r in records if r["qa"]["id"] == row["id"])
    assert len(row["core_images"]) == len(first["cot"]["core_frames"])
    assert row["core_images"][0].size[0] > 0
    assert [f["index"] for f in row["core_frames"]] == [f["index"] for f in first["cot"]["core_frames"]]


def test_official_bench_file_to_hf_and_back_gives_the_same_json(built_dataset, tmp_path):
    source = built_dataset / "test.json"
    original = json.loads(source.read_text())
    # an official-shape extra field and an item without images must survive too
    original[0]["key_items"] = ["a cup"]
    original.append({**original[0], "core_frames_paths": ["missing/1.jpg"], "id": "no-image"})
    source = tmp_path / "bench_hard.json"
    source.write_text(json.dumps(original))
    out = tmp_path / "bench-hf"
    folder, n, problems = hf.export_bench(read_bench(source), out, built_dataset)
    assert n == len(original) and len(problems) == 1 and "missing/1.jpg" in problems[0]
    back = [bench_item_to_official(i) for i in read_bench(out)]
    assert back == original
    loaded = datasets.load_from_disk(str(out))["test"]
    assert len(loaded[0]["core_images"]) == len(original[0]["core_frames_paths"]) and loaded[-1]["core_images"] == []


def test_official_train_file_to_hf_and_back_gives_the_same_json(built_dataset, tmp_path):
    for name in ("train_video.json", "train_images.json"):
        source = built_dataset / name
        out = tmp_path / name
        hf.export_train(read_train(source), out, built_dataset, fmt="parquet")
        assert [train_item_to_json(i) for i in hf.load_train_items(out)] == json.loads(source.read_text())


def test_read_bench_takes_a_build_export_and_eval_runs_on_it(built_dataset, tmp_path):
    out = tmp_path / "build-hf"
    hf.export_build(built_dataset, out)
    items, expected = read_bench(out), read_bench(built_dataset / "test.json")
    assert [(i.id, i.options, i.correct_answer, i.task) for i in items] == [
        (i.id, i.options, i.correct_answer, i.task) for i in expected
    ]
    preds = tmp_path / "preds.jsonl"
    assert cli_main_ok([
        "eval", "--bench", str(out), "--video-root", str(built_dataset.parent / "videos"),
        "--model", "tiny:qwen2-vl", "--frames", "2", "--max-new-tokens", "4", "--out", str(preds),
    ])
    lines = [json.loads(line) for line in preds.read_text().splitlines()]
    assert sorted(p["id"] for p in lines) == sorted(i.id for i in expected)
    assert all(not p.get("error") for p in lines)


def test_a_folder_that_is_not_ours_fails_with_one_clear_error(tmp_path):
    from videoespresso.errors import FormatError

    datasets.Dataset.from_list([{"text": "hi"}]).save_to_disk(str(tmp_path / "other"))
    with pytest.raises(FormatError, match="not one videoespresso wrote"):
        read_bench(tmp_path / "other")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FormatError, match="not a Hugging Face datasets folder"):
        read_bench(tmp_path / "empty")


def cli_main_ok(argv: list[str]) -> bool:
    try:
        cli_main(argv)
    except SystemExit as exc:
        return exc.code in (0, None)
    return True


def test_an_empty_split_is_left_out_and_nothing_to_export_says_so(built_dataset, tmp_path):
    from videoespresso.errors import FormatError

    build = tmp_path / "build"
    build.mkdir()
    records = _records(built_dataset)
    (build / "dataset.jsonl").write_text("".join(json.dumps({**r, "split": "test"}) + "\n" for r in records))
    folder, counts, problems = hf.export_build(build, tmp_path / "out")
    assert counts == {"train": 0, "test": len(records)}
    assert list(datasets.load_from_disk(str(folder))) == ["test"]
    # frames are relative to a build folder this copy lacks: rows kept without images, each said
    assert len(problems) == len(records) and all("not found" in p for p in problems)
    assert len(read_bench(folder)) == len(records)
    with pytest.raises(FormatError, match="nothing to export"):
        hf.export_bench([], tmp_path / "none", None)
