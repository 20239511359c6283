"""SFT exports from a real build: LLaMA-Factory (sharegpt + dataset_info.json) and ms-swift
(messages JSONL), checked against the fields those projects document, written as JSON schemas
here, and read by ms-swift's own loader. LLaMA-Factory's loader does not install here: its data
package imports torchaudio, which has no build for torch 2.14."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from videoespresso.cli import main as cli_main
from videoespresso.formats.sft import check_llamafactory_row, check_swift_row
from videoespresso.formats.train import read_train
from videoespresso.train import examples_from_build, examples_from_train_items

_MESSAGE = {
    "type": "object", "required": ["role", "content"], "additionalProperties": False,
    "properties": {"role": {"enum": ["system", "user", "assistant"]}, "content": {"type": "string"}},
}
_PATHS = {"type": "array", "items": {"type": "string", "minLength": 1}}
#: LLaMA-Factory data/README.md, "Sharegpt Format" with OpenAI-style tags (messages/role/content).
LLAMAFACTORY_ROW = {
    "type": "object", "required": ["messages"], "additionalProperties": False,
    "properties": {"messages": {"type": "array", "minItems": 2, "items": _MESSAGE}, "system": {"type": "string"},
                   "images": _PATHS, "videos": _PATHS},
}
LLAMAFACTORY_INFO_ENTRY = {
    "type": "object", "required": ["file_name", "formatting", "columns", "tags"],
    "properties": {
        "file_name": {"type": "string"}, "formatting": {"const": "sharegpt"},
        "columns": {"type": "object", "required": ["messages"],
                    "propertyNames": {"enum": ["messages", "system", "images", "videos", "tools"]}},
        "tags": {"type": "object", "required": ["role_tag", "content_tag", "user_tag", "assistant_tag"]},
    },
}
#: ms-swift docs, "Custom Dataset", the standard messages format.
SWIFT_ROW = {
    "type": "object", "required": ["messages"], "additionalProperties": False,
    "properties": {"messages": {"type": "array", "minItems": 2, "items": _MESSAGE}, "images": _PATHS, "videos": _PATHS},
}


def _export(argv: list[str]) -> None:
    try:
        cli_main(argv)
    except SystemExit as exc:
        assert exc.code in (0, None)


def test_llamafactory_and_swift_files_follow_the_documented_schemas(built_dataset, tmp_path):
    out = tmp_path / "sft"
    _export(["export", "sft", str(built_dataset), "--out", str(out), "--split", "all"])
    records = [json.loads(line) for line in (built_dataset / "dataset.jsonl").read_text().splitlines()]
    info = json.loads((out / "llamafactory" / "dataset_info.json").read_text())
    assert set(info) == {"videoespresso_selector", "videoespresso_stage1", "videoespresso_stage2"}
    for name, entry in info.items():
        jsonschema.validate(entry, LLAMAFACTORY_INFO_ENTRY)
        rows = json.loads((out / "llamafactory" / entry["file_name"]).read_text())
        assert len(rows) == len(records)
        for row in rows:
            jsonschema.validate(row, LLAMAFACTORY_ROW)
            assert set(row) - {"messages"} <= set(entry["columns"])
            assert check_llamafactory_row(row, out / "llamafactory") == []
            assert [m["role"] for m in row["messages"]] == ["user", "assistant"]
    for target in ("selector", "stage1", "stage2"):
        rows = [json.loads(line) for line in (out / "swift" / f"{target}.jsonl").read_text().splitlines()]
        assert len(rows) == len(records)
        for row in rows:
            jsonschema.validate(row, SWIFT_ROW)
            assert check_swift_row(row) == []
    by_question = {r["qa"]["question"] for r in records}
    stage1 = json.loads((out / "llamafactory" / "videoespresso_stage1.json").read_text())
    assert {r["messages"][1]["content"] for r in stage1} <= {r["cot"]["evidence"] for r in records}
    assert all(r["messages"][0]["content"].count("<image>") == len(r["images"]) > 0 for r in stage1)
    assert any(q in stage1[0]["messages"][0]["content"] for q in by_question)


def test_selector_examples_choose_the_core_frames_among_the_group_with_the_inference_prompt(built_dataset):
    from videoespresso.schema import FrameRef
    from videoespresso.select.caption_llm import CaptionLLMSelector

    examples, problems = examples_from_build(built_dataset, ("selector",), split="all")
    assert problems == [] and examples
    records = {json.loads(line)["qa"]["id"]: json.loads(line) for line in (built_dataset / "dataset.jsonl").read_text().splitlines()}
    selector = CaptionLLMSelector(None, None, max_frames=4)
    for ex in examples:
        record = records[ex.meta["question_id"]]
        chosen = json.loads(ex.completion)["frames"]
        candidates = ex.meta["candidates"]
        assert [candidates[i - 1] for i in chosen] == [f["index"] for f in record["cot"]["core_frames"]]
        prompt = ex.messages[0].content
        lines = [line for line in prompt.splitlines() if line.startswith("Frame ")]
        refs = [FrameRef(index=i, seconds=float(line.split("(")[1].split(" s)")[0])) for i, line in zip(candidates, lines)]
        captions = [line.split("): ", 1)[1] for line in lines]
        assert prompt == selector.render_prompt(record["qa"]["question"], record["options"], refs, captions)


def test_video_media_and_official_train_files(built_dataset, tmp_path):
    videos = built_dataset.parent / "videos"
    examples, problems = examples_from_build(built_dataset, ("stage2",), media="video", video_root=videos)
    assert problems == [] and examples
    out = tmp_path / "video"
    from videoespresso.formats.sft import write_sft

    write_sft(examples, out)
    for row in [json.loads(line) for line in (out / "swift" / "stage2.jsonl").read_text().splitlines()]:
        jsonschema.validate(row, SWIFT_ROW)
        assert row["messages"][0]["content"].startswith("<video>") and Path(row["videos"][0]).is_file()
        assert check_swift_row(row) == []
    items = read_train(built_dataset / "train_images.json")
    official, notes = examples_from_train_items(items, ("selector", "stage1", "stage2"), frames_root=built_dataset)
    assert len(official) == 2 * len(items) and len(notes) == 1 and "selector" in notes[0]
    assert {e.source for e in official} == {"official-images"}
    # a missing keyframe skips that item with its reason; the others go on
    broken = [items[0].model_copy(update={"keyframes": ["nope/1.jpg"]}), *items[1:]]
    kept, notes = examples_from_train_items(broken, ("stage1",), frames_root=built_dataset)
    assert len(kept) == len(items) - 1 and any("nope/1.jpg" in n for n in notes)


@pytest.mark.parametrize(
    ("row", "problem"),
    [
        ({"messages": [{"role": "user", "content": "q"}]}, "end with an assistant"),
        ({"messages": [{"role": "assistant", "content": "a"}, {"role": "user", "content": "q"}]}, "expected 'user'"),
        ({"messages": [{"role": "user", "content": "<image>q"}, {"role": "assistant", "content": "a"}], "images": []}, "1 <image> placeholders for 0"),
        ({"messages": [{"role": "user", "content": "<image>q"}, {"role": "assistant", "content": "a"}], "images": ["/no/such.jpg"]}, "not found"),
    ],
)
def test_checks_name_the_broken_rule(row, problem):
    assert any(problem in p for p in check_llamafactory_row(row))
    assert any(problem in p for p in check_swift_row(row))


def test_ms_swift_own_loader_reads_the_files(built_dataset, tmp_path, monkeypatch):
    """ms-swift's `swift.dataset.load_dataset` (installed --no-deps by scripts/install.sh) reads
    every target file and keeps our messages and media."""
    swift_dataset = pytest.importorskip("swift.dataset")
    monkeypatch.setenv("MODELSCOPE_CACHE", str(tmp_path / "ms-cache"))
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "hf-cache"))
    from videoespresso.formats.sft import write_sft

    examples, _ = examples_from_build(built_dataset, split="all")
    write_sft(examples, tmp_path / "sft", ["swift"])
    for target in ("selector", "stage1", "stage2"):
        path = tmp_path / "sft" / "swift" / f"{target}.jsonl"
        written = [json.loads(line) for line in path.read_text().splitlines()]
        train, _ = swift_dataset.load_dataset([str(path)], split_dataset_ratio=0, num_proc=1)
        assert len(train) == len(written)
        for row, ours in zip(train, written):
            assert row["messages"] == ours["messages"]
            assert [i["path"] for i in (row.get("images") or [])] == ours.get("images", [])
