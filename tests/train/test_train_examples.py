"""Training examples from the official train files: selector examples captioned by the selector
VLM with targets located as the oracle locates core frames; stage examples with context frames
and evidence tags kept or stripped; prompts equal to what inference renders."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from videoespresso.cli import main as cli_main
from videoespresso.formats.train import read_train
from videoespresso.schema import FrameRef, GenerationSettings, TrainItem
from videoespresso.select.base import uniform_indices
from videoespresso.train.examples import examples_from_train_items, selector_examples_from_train_items
from videoespresso.video import VideoReader
from videoespresso.video.synth import make_test_video


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("train-videos")
    make_test_video(root / "a.mp4", "mixed", seconds=1.0)  # 3 s, 75 frames at 25 fps
    make_test_video(root / "b.mp4", "moving", seconds=2.0)  # 2 s, 50 frames
    return root


def _candidates(video: Path, n: int = 16) -> list[FrameRef]:
    with VideoReader(video) as reader:
        return reader.refs(uniform_indices(reader.num_frames, n))


class _RecordingLLM:
    """A selector LLM that records the prompt it is asked and picks frame 1."""

    spec = "recording"

    def __init__(self) -> None:
        self.prompts: list[str] = []

    def generate(self, conversations, settings=None, schema=None):  # noqa: ANN001, ARG002
        self.prompts.extend(c[0].text for c in conversations)
        return [SimpleNamespace(text='{"frames": [1]}', parsed=None, error=None) for _ in conversations]


def _train_file(path: Path, key: str, items: list[dict]) -> Path:
    rows = []
    for item in items:
        row = {"video_path": item.get("video", ""), key: item["keyframes"], "caption": item.get("captions", []),
               "question": item["question"], "answer": "an answer", "evidence": item.get("evidence", "some evidence"),
               "task": "Causal Inference"}
        rows.append(row | item.get("extra", {}))
    path.write_text(json.dumps(rows))
    return path


@pytest.mark.parametrize("key", ["keyframes_path", "path"])
def test_selector_examples_by_time_match_the_inference_prompt(videos, tmp_path, tiny_vlm, key):
    data = _train_file(tmp_path / "train.json", key, [
        {"video": "a.mp4", "keyframes": ["kf/a/1.jpg", "kf/a/2.jpg"], "question": "What happens after the cut?"},
        {"video": "missing.mp4", "keyframes": ["kf/m/1.jpg"], "question": "Lost?"},
        {"video": "", "keyframes": ["kf/n/1.jpg"], "question": "No video?"},
    ])
    items = read_train(data)
    assert items[0].keyframes_key == key
    examples, problems = examples_from_train_items(items, ("selector",), video_root=videos, selector_vlm=tiny_vlm)
    assert len(examples) == 1
    assert len(problems) == 2
    assert "item 1: video" in problems[0] and "missing.mp4" in problems[0] and "not found" in problems[0]
    assert "item 2: no video_path" in problems[1]
    ex = examples[0]
    refs = _candidates(videos / "a.mp4")
    expected = sorted({min(range(len(refs)), key=lambda j: abs(refs[j].seconds - t)) + 1 for t in (1.0, 2.0)})
    assert json.loads(ex.completion) == {"frames": expected}
    assert ex.meta["located_by"] == "time" and ex.meta["keyframe_seconds"] == [1.0, 2.0]
    assert ex.meta["candidates"] == [r.index for r in refs]
    assert ex.meta["chosen_frames"] == [refs[j - 1].index for j in expected]
    assert all(gap <= 0.1 for gap in ex.meta["gaps_s"])
    assert ex.meta["selector_vlm"] == "tiny:qwen2-vl" and ex.meta["caption_prompt"].startswith("select/caption@v")
    assert ex.source == ("official-video" if key == "keyframes_path" else "official-images")
    # the prompt is exactly what the caption-LLM selector asks its LLM at inference
    from videoespresso.select.caption_llm import CaptionLLMSelector

    llm = _RecordingLLM()
    CaptionLLMSelector(llm, tiny_vlm, max_frames=4, candidates=16).select(videos / "a.mp4", items[0].question)
    assert llm.prompts == [ex.messages[0].content]


def test_selector_examples_by_caption_record_scores(videos, tmp_path, tiny_vlm, minilm):
    # the captions the selector VLM gives the candidates of b.mp4 (what a matching keyframe caption says)
    first, _ = selector_examples_from_train_items(
        [TrainItem(video_path="b.mp4", keyframes=["3.jpg"], question="q", answer="a")], vlm=tiny_vlm, video_root=videos)
    lines = [line for line in first[0].messages[0].content.splitlines() if line.startswith("Frame ")]
    texts = [line.split("): ", 1)[1] for line in lines]
    item = TrainItem(video_path="b.mp4", keyframes=["frames/start.jpg", "frames/late.jpg"], captions=[texts[2], texts[12]],
                     question="Which frames show the square?", answer="a", extra={"id": "q7"})
    no_captions = item.model_copy(update={"captions": [], "extra": {"id": "q8"}})
    examples, problems = selector_examples_from_train_items([item, no_captions], vlm=tiny_vlm, embedder=minilm,
                                                            video_root=videos)
    assert len(examples) == 1 and examples[0].id == "q7:selector"
    assert problems == ["item q8: keyframes have neither times (numeric file names) nor one caption each; "
                        "selector example skipped"]
    ex = examples[0]
    chosen = json.loads(ex.completion)["frames"]
    assert ex.meta["located_by"] == "caption" and ex.meta["embedder"] == "minilm"
    assert len(ex.meta["scores"]) == 2 and all(s > 0.999 for s in ex.meta["scores"])
    # each keyframe caption picked a candidate with that very caption
    assert {texts[i - 1] for i in chosen} == {texts[2], texts[12]}
    # without an embedder, caption-located items are skipped with the reason
    _, problems = selector_examples_from_train_items([item], vlm=tiny_vlm, video_root=videos)
    assert "no text embedder" in problems[0]


def test_selector_file_names_past_the_end_fall_back_to_captions(videos, tiny_vlm, minilm, tmp_path):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"not a video")
    items = [
        TrainItem(video_path="b.mp4", keyframes=["480.jpg"], captions=["a frame"], question="q", answer="a"),
        TrainItem(video_path="b.mp4", keyframes=["480.jpg"], question="q", answer="a"),
        TrainItem(video_path=str(bad), keyframes=["1.jpg"], question="q", answer="a"),
    ]
    examples, problems = selector_examples_from_train_items(items, vlm=tiny_vlm, embedder=minilm, video_root=videos)
    assert [e.meta["located_by"] for e in examples] == ["caption"]
    assert "item 1: keyframe at 480 s" in problems[0] and "past the video's end" in problems[0]
    assert "item 2: video" in problems[1] and "cannot be read" in problems[1]


def test_cli_builds_selector_examples_from_a_train_file_and_trains_on_them(videos, tmp_path, capsys):
    data = _train_file(tmp_path / "train.json", "keyframes_path", [
        {"video": "a.mp4", "keyframes": ["1.jpg", "2.jpg"], "question": "What happens after the cut?"},
        {"video": "b.mp4", "keyframes": ["x.jpg"], "captions": ["a square moves"], "question": "What moves?"},
        {"video": "gone.mp4", "keyframes": ["1.jpg"], "question": "Gone?"},
    ])
    out = tmp_path / "sel"
    cli_main(["train", "selector", "--data", str(data), "--video-root", str(videos), "--selector-vlm", "tiny:qwen2-vl",
              "--embedder", "minilm", "--candidates", "8", "--out", str(out), "--examples-only"])
    captured = capsys.readouterr()
    err, text = " ".join(captured.err.split()), " ".join(captured.out.split())
    assert "skipped: item 2: video" in err and "gone.mp4" in err
    assert f"2 selector examples -> {out / 'examples.jsonl'}" in text
    rows = [json.loads(line) for line in (out / "examples.jsonl").read_text().splitlines()]
    assert [r["meta"]["located_by"] for r in rows] == ["time", "caption"]
    assert all(len(r["meta"]["candidates"]) == 8 for r in rows)
    assert (out / "selector_captions.cache.sqlite").is_file()
    cli_main(["train", "selector", "--data", str(out / "examples.jsonl"), "--base", "tiny:qwen2", "--out",
              str(tmp_path / "run"), "--max-steps", "1", "--batch-size", "2"])
    assert "2 selector examples, 1 steps" in " ".join(capsys.readouterr().out.split())
