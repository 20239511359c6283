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


TAGGED = "The <obj_start>square<obj_end><box_start>[[50, 50, 20, 20]]<box_end> moves  after the cut."


def _keyframe_images(root: Path, names: list[str]) -> None:
    from PIL import Image

    for i, name in enumerate(names):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (160, 120), (30 * i, 90, 200)).save(root / name)


class _RecordingVLM:
    """A reasoner VLM that records each prompt and its image count and replies from a script."""

    spec = "recording-vlm"

    def __init__(self, replies: list[str]) -> None:
        self.replies = list(replies)
        self.calls: list[tuple[str, int]] = []

    def generate(self, conversations, settings=None):  # noqa: ANN001, ARG002
        out = []
        for conversation in conversations:
            self.calls.append((conversation[0].text, len(conversation[0].images)))
            out.append(SimpleNamespace(text=self.replies.pop(0), prompt_tokens=None, completion_tokens=None))
        return out


def test_context_frames_and_stripped_tags_keep_the_inference_prompts(videos, tmp_path):
    from PIL import Image

    from videoespresso.reason.reasoners import ReasonRequest, TwoStageReasoner

    frames_root = tmp_path / "frames"
    _keyframe_images(frames_root, ["kf/1.jpg", "kf/3.jpg", "kf/x.jpg"])
    items = [
        TrainItem(video_path="a.mp4", keyframes=["kf/1.jpg", "kf/3.jpg"], question=" What moves after the cut? ",
                  answer="The square.", evidence=TAGGED, extra={"id": "t1"}),
        TrainItem(video_path="a.mp4", keyframes=["kf/x.jpg"], question="q", answer="a", evidence="e", extra={"id": "t2"}),
        TrainItem(video_path="gone.mp4", keyframes=["kf/1.jpg"], question="q", answer="a", evidence="e", extra={"id": "t3"}),
    ]
    context = tmp_path / "ctx"
    examples, problems = examples_from_train_items(items, ("stage1", "stage2"), frames_root=frames_root, video_root=videos,
                                                   context_frames=4, context_dir=context, evidence_tags="strip")
    assert [e.id for e in examples] == ["t1:stage1", "t1:stage2"]
    assert "item t2: keyframe times unknown" in problems[0] and "item t3: video" in problems[1] and "not found" in problems[1]
    stage1, stage2 = examples
    # 75 frames at 25 fps: keyframes 1.jpg, 3.jpg at 1 fps are frames 25 and 74; the uniform 4 are
    # 0, 24, 49, 74, so 74 is not repeated
    assert [f.index for f in stage1.frames] == [0, 24, 25, 49, 74]
    assert stage1.meta["core_frames"] == [25, 74] and stage1.meta["context_frames"] == [0, 24, 49]
    assert stage1.images[2] == str(frames_root / "kf/1.jpg") and stage1.images[4] == str(frames_root / "kf/3.jpg")
    for i in (0, 1, 3):
        assert Path(stage1.images[i]).parent.parent == context and Image.open(stage1.images[i]).size == (160, 120)
    assert stage1.completion == "The square moves  after the cut." and stage1.meta["evidence_tags"] == "strip"
    with VideoReader(videos / "a.mp4") as reader:  # one clock: every time is the video's own
        assert stage1.frames == reader.refs([0, 24, 25, 49, 74])
    assert "taken at 0.0 s, 1.0 s, 1.0 s, 2.0 s, 3.0 s of the video" in stage1.messages[0].content
    # the prompts are exactly what the two-stage reasoner asks at inference, with the same images
    requests = [ReasonRequest([SimpleNamespace(image=Image.open(p), ref=f) for p, f in zip(stage1.images, stage1.frames)],
                              items[0].question)]
    vlm = _RecordingVLM([stage1.completion, stage2.completion])
    TwoStageReasoner(vlm).answer_batch(requests)
    assert vlm.calls == [(stage1.messages[0].content, 5), (stage2.messages[0].content, 5)]
    assert "The square moves after the cut." in stage2.messages[0].content
    # kept tags: the evidence as the dataset writes it; no context: the core frames only
    kept, problems = examples_from_train_items(items[:1], ("stage1",), frames_root=frames_root)
    assert problems == [] and kept[0].completion == TAGGED and len(kept[0].images) == 2
    assert "context_frames" not in kept[0].meta


def test_context_frames_from_a_build(built_dataset, tmp_path):
    from videoespresso.train.examples import examples_from_build

    videos = built_dataset.parent / "videos"
    examples, problems = examples_from_build(built_dataset, ("stage1",), split="all", video_root=videos,
                                             context_frames=3, context_dir=tmp_path / "ctx")
    assert problems == [] and examples
    records = {json.loads(line)["qa"]["id"]: json.loads(line) for line in (built_dataset / "dataset.jsonl").read_text().splitlines()}
    for ex in examples:
        core = [f["index"] for f in records[ex.meta["question_id"]]["cot"]["core_frames"]]
        indices = [f.index for f in ex.frames]
        assert indices == sorted(indices) and set(core) <= set(indices) and ex.meta["core_frames"] == core
        assert len(ex.images) == len(ex.frames) == len(core) + len(ex.meta["context_frames"])
        assert all(Path(p).is_file() for p in ex.images)
    # without the videos, each item says why
    _, problems = examples_from_build(built_dataset, ("stage1",), split="all", context_frames=3, context_dir=tmp_path / "c2")
    assert problems and all("context frames come from it" in p for p in problems)


def test_cli_stage1_with_context_frames_and_stripped_tags(videos, tmp_path, capsys):
    frames_root = tmp_path / "frames"
    _keyframe_images(frames_root, ["kf/1.jpg", "kf/2.jpg"])
    data = _train_file(tmp_path / "train.json", "path", [
        {"video": "a.mp4", "keyframes": ["kf/1.jpg", "kf/2.jpg"], "question": "What moves?", "evidence": TAGGED}])
    out = tmp_path / "s1"
    cli_main(["train", "stage1", "--data", str(data), "--frames-root", str(frames_root), "--video-root", str(videos),
              "--context-frames", "2", "--evidence-tags", "strip", "--out", str(out), "--examples-only"])
    row = json.loads((out / "examples.jsonl").read_text())
    assert [f["index"] for f in row["frames"]] == [0, 25, 50, 74]
    assert row["messages"][1]["content"] == "The square moves  after the cut."
    assert sorted(p.name for p in (out / "context_frames").rglob("*.jpg")) == ["000000.jpg", "000074.jpg"]
    cli_main(["train", "stage1", "--data", str(data), "--frames-root", str(frames_root), "--video-root", str(videos),
              "--context-frames", "2", "--out", str(tmp_path / "run"), "--base", "tiny:qwen2-vl", "--max-steps", "1",
              "--batch-size", "1"])
    assert "1 stage1 examples, 1 steps" in " ".join(capsys.readouterr().out.split())
    with pytest.raises(SystemExit) as exc:
        cli_main(["train", "stage1", "--data", str(out / "examples.jsonl"), "--evidence-tags", "strip",
                  "--out", str(tmp_path / "x"), "--examples-only"])
    assert exc.value.code == 2 and "--evidence-tags apply while building" in " ".join(capsys.readouterr().err.split())
