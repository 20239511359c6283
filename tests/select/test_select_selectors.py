"""Selectors on a generated video: valid, sorted, in-range frames with times; caption-llm reply
repair; the embedding selector with the real MiniLM embedder; the oracle; the selections file."""

import json

import numpy as np
import pytest

from videoespresso.config import load_config
from videoespresso.errors import ConfigError, FormatError
from videoespresso.schema import BenchItem, FrameRef, Generation, GenerationSettings, QAPair, Selection
from videoespresso.select import (
    CaptionLLMSelector,
    EmbeddingSelector,
    OracleSelector,
    SelectionError,
    UniformSelector,
    load_selections,
    load_selector,
    parse_frame_numbers,
    save_selections,
    uniform_indices,
)
from videoespresso.video import FrameOutOfRangeError, VideoReader
from videoespresso.video.synth import make_test_video

FPS = 10.0


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """6 s at 10 fps: 60 frames."""
    path = tmp_path_factory.mktemp("select") / "clip.mp4"
    make_test_video(path, "mixed", fps=FPS)
    return path


@pytest.fixture(scope="module")
def refs(clip):
    with VideoReader(clip) as reader:
        return reader.refs(range(reader.num_frames))


def assert_valid(selection: Selection, refs: list[FrameRef]) -> None:
    indices = [f.index for f in selection.frames]
    assert indices, "a selection is never empty"
    assert indices == sorted(set(indices))
    for f in selection.frames:
        assert 0 <= f.index < len(refs)
        assert f.seconds == pytest.approx(refs[f.index].seconds)
    assert len(selection.scores) == len(selection.frames)
    assert selection.selector and isinstance(selection.params, dict)


def test_uniform_is_the_official_rule(clip, refs):
    selection = UniformSelector(frames=8).select(clip, "q", item_id="7")
    assert_valid(selection, refs)
    assert [f.index for f in selection.frames] == np.linspace(0, 59, 8).astype(int).tolist()
    assert selection.question_id == "7" and selection.params == {"frames": 8}
    assert uniform_indices(3, 8) == [0, 1, 2]  # more frames asked than exist: each frame once
    pool = refs[10:20]
    over = UniformSelector(frames=3).select(clip, "q", candidates=pool)
    assert [f.index for f in over.frames] == [10, 14, 19]


@pytest.mark.parametrize(
    ("reply", "positions", "repairs", "fails"),
    [
        ('{"frames": [3, 1]}', [2, 0], [], False),
        ("I would look at frames 2 and 5, then frame 2 again.", [1, 4], ["prose", "duplicates"], False),
        ('{"frames": [0, 4, 99]}', [3], ["out_of_range"], False),
        ('{"frames": [1, 1, 1, 2]}', [0, 1], ["duplicates"], False),
        ('{"frames": [1, 2, 3, 4, 5, 6]}', [0, 1, 2, 3], ["too_many"], False),
        ('{"frames": []}', [], [], True),
        ("[]", [], [], True),
        ("The frames showing the dog.", [], ["prose"], True),
        ('{"frames": [-3, 17]}', [], ["out_of_range"], True),
        ('Sure! {"frames": ["2", 6.0]}', [1, 5], [], False),
    ],
)
def test_reply_parsing(reply, positions, repairs, fails):
    parsed = parse_frame_numbers(reply, count=16, max_frames=4)
    assert parsed.positions == positions
    assert parsed.repairs == repairs
    assert (parsed.failure is not None) == fails


class ScriptedChat:
    """A ChatModel that answers from a script: the real LLM cannot be made to reply with prose or
    bad numbers on demand, and this is the reply-handling path under test."""

    spec = "scripted"

    def __init__(self, replies):
        self.replies = list(replies)
        self.prompts = []

    def generate(self, conversations, settings=None, schema=None):
        self.prompts += [c[-1].text for c in conversations]
        return [Generation(text=self.replies.pop(0), model=self.spec,
                           settings=settings or GenerationSettings()) for _ in conversations]


CAPTIONS = [f"caption of frame {i}" for i in range(8)]


def test_caption_llm_repairs_and_falls_back(clip, refs):
    llm = ScriptedChat(["frames 2 and 9 and 2", '{"frames": []}', "no idea", '{"frames": [8, 1]}'])
    selector = CaptionLLMSelector(llm, max_frames=4, fallback_frames=3)
    cands = refs[::8][:8]
    first = selector.select(clip, "What happens?", candidates=cands, captions=CAPTIONS)
    assert [f.index for f in first.frames] == [cands[1].index] and first.fallback is None
    for _ in range(2):
        fell = selector.select(clip, "What happens?", candidates=cands, captions=CAPTIONS)
        assert_valid(fell, refs)
        assert fell.fallback and len(fell.frames) == 3 and fell.scores == [0.0, 0.0, 0.0]
    ordered = selector.select(clip, "What happens?", options=["a", "b", "c", "d"],
                              candidates=cands, captions=CAPTIONS)
    assert [f.index for f in ordered.frames] == [cands[0].index, cands[7].index]
    assert ordered.scores == [0.5, 1.0]  # the model named frame 8 first
    assert selector.stats == {"prose": 2, "duplicates": 1, "out_of_range": 1, "fallback": 2}
    prompt = llm.prompts[-1]
    assert "Frame 8 (" in prompt and "caption of frame 7" in prompt and "(D) d" in prompt


def test_caption_llm_with_tiny_models(clip, refs, tiny_vlm, tiny_llm):
    selector = CaptionLLMSelector(tiny_llm, tiny_vlm, max_frames=3, candidates=6, image_size=64,
                                  caption_settings=GenerationSettings(max_new_tokens=8))
    selection = selector.select(clip, "What does the red square do?", item_id="q1",
                                options=["moves", "stays", "vanishes", "grows"])
    assert_valid(selection, refs)
    assert 1 <= len(selection.frames) <= 3
    assert selection.params["llm"] == "tiny:qwen2" and selection.params["captioner"] == "tiny:qwen2-vl"
    candidates = set(uniform_indices(60, 6))
    assert {f.index for f in selection.frames} <= candidates
    assert (selection.fallback is None) == (selector.stats.get("fallback", 0) == 0)


def test_captions_must_match_candidates(clip, refs):
    selector = CaptionLLMSelector(ScriptedChat([]), candidates=4)
    with pytest.raises(SelectionError, match="3 captions given for 4 candidate frames"):
        selector.select(clip, "q", captions=["a", "b", "c"])
    with pytest.raises(FrameOutOfRangeError, match="frame index 600 is out of range"):
        selector.select(clip, "q", candidates=[FrameRef(index=600, seconds=60.0)], captions=["a"])


SCENES = [
    "A man walks a dog along a quiet street.",
    "A chef chops onions on a wooden cutting board.",
    "A red car drives down a highway at night.",
    "Children play football on a grass field.",
    "A woman reads a book in a library.",
    "The chef fries the chopped onions in a hot pan.",
    "Rain falls on a roof of a small house.",
    "A cyclist rides across a bridge.",
]


def test_embedding_selector_picks_the_matching_captions(clip, refs, minilm):
    cands = refs[::8][:8]
    selector = EmbeddingSelector(minilm, k=2, min_gap_s=0.5)
    selection = selector.select(clip, "What does the chef do with the onions?",
                                candidates=cands, captions=SCENES)
    assert_valid(selection, refs)
    assert [f.index for f in selection.frames] == [cands[1].index, cands[5].index]
    assert all(s > 0.3 for s in selection.scores)
    traffic = selector.select(clip, "Which vehicle drives on the highway?", candidates=cands, captions=SCENES)
    assert cands[2].index in [f.index for f in traffic.frames]


def test_embedding_selector_keeps_a_minimum_gap(clip, refs, minilm):
    cands = refs[:8]  # 0.1 s apart
    same = ["A chef chops onions."] * 4 + ["A dog sleeps."] * 4
    selection = EmbeddingSelector(minilm, k=3, min_gap_s=0.35).select(
        clip, "What does the chef chop?", candidates=cands, captions=same)
    times = [f.seconds for f in selection.frames]
    assert all(b - a >= 0.35 - 1e-9 for a, b in zip(times, times[1:]))


def test_oracle_by_recorded_times_and_by_captions(clip, refs, minilm):
    qa = QAPair(id="built-1", video=str(clip), question="Why?", answer="because", task="Causal Inference",
                frames=[FrameRef(index=0, seconds=1.02), FrameRef(index=0, seconds=4.49)])
    item = BenchItem(id="17", video_path=str(clip), question="What does the chef fry?",
                     options=["a", "b", "c", "d"], correct_answer="B", task="Causal Inference",
                     core_frames_paths=["480.jpg", "960.jpg"],
                     core_frames_captions=["The chef is frying onions in a pan.",
                                           "Someone walks a dog down the street."])
    oracle = OracleSelector([qa, item], embedder=minilm)
    by_time = oracle.select(clip, qa.question, item_id="built-1")
    assert_valid(by_time, refs)
    assert [f.index for f in by_time.frames] == [10, 45]
    cands = refs[::8][:8]
    by_caption = oracle.select(clip, item.question, item_id="17", candidates=cands, captions=SCENES)
    assert [f.index for f in by_caption.frames] == [cands[0].index, cands[5].index]
    assert by_caption.params["located_by"] == "caption"
    at_fps = OracleSelector([item], frame_fps=160.0).select(clip, item.question)  # found by question
    assert [f.seconds for f in at_fps.frames] == pytest.approx([3.0, 6.0 - 0.1], abs=0.051)
    with pytest.raises(SelectionError, match="no annotated item"):
        oracle.select(clip, "unknown question", item_id="404")


def test_selections_file_round_trip(tmp_path, clip):
    selections = {
        "0": UniformSelector(frames=3).select(clip, "q0", item_id="0"),
        "1": Selection(video=str(clip), question_id="1", frames=[FrameRef(index=3, seconds=0.3)],
                       scores=[0.9], selector="caption-llm", params={"max_frames": 4},
                       fallback="empty frame list; used 1 uniformly spaced candidates"),
    }
    path = save_selections(tmp_path / "sel.json", selections)
    assert load_selections(path) == selections
    assert json.loads(path.read_text())["format"] == "videoespresso.selections"
    plain = tmp_path / "plain.json"
    plain.write_text(json.dumps({k: v.model_dump(mode="json") for k, v in selections.items()}))
    assert load_selections(plain) == selections


def test_selections_file_errors_name_the_problem(tmp_path):
    with pytest.raises(FormatError, match="does not exist"):
        load_selections(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(FormatError, match="not valid JSON"):
        load_selections(bad)
    bad.write_text(json.dumps({"q9": {"video": "v.mp4", "frames": [{"index": -1, "seconds": 0}],
                                      "selector": "x"}}))
    with pytest.raises(FormatError, match="question 'q9': frames.0.index"):
        load_selections(bad)


def test_load_selector_from_config():
    cfg = load_config("tiny")
    for name in ("uniform", "embedding", "caption-llm", "oracle"):
        selector = load_selector(name, cfg)
        assert selector.name == name
    assert load_selector("uniform", cfg, frames=5).params == {"frames": 5}
    caption = load_selector("caption-llm", cfg)
    assert caption.params["llm"] == cfg.models.selector_llm
    assert caption.params["max_frames"] == cfg.select.max_frames
    with pytest.raises(ConfigError, match="unknown selector"):
        load_selector("random", cfg)


def test_embedding_selector_captions_with_the_tiny_vlm(clip, refs, tiny_vlm, minilm):
    selector = EmbeddingSelector(minilm, tiny_vlm, k=2, candidates=4, min_gap_s=0.0, image_size=64,
                                 settings=GenerationSettings(max_new_tokens=6))
    wrong_times = [FrameRef(index=r.index, seconds=99.0) for r in refs[10:14]]
    selection = selector.select(clip, "What moves?", candidates=wrong_times)
    assert_valid(selection, refs)  # times come from the video, not from the caller's refs
    assert len(selection.frames) == 2 and {f.index for f in selection.frames} <= set(range(10, 14))
    assert selection.params["captioner"] == "tiny:qwen2-vl"
    assert selection.params["caption_prompt"] == "select/caption@v1"
    assert all(-1.0 <= s <= 1.0 for s in selection.scores)
    calls = tiny_vlm.calls
    again = selector.select(clip, "What stays still?", candidates=refs[10:14])
    assert tiny_vlm.calls == calls  # a video's frames are captioned once per selector
    assert len(again.frames) == 2


def test_select_command_over_a_bench_file(tmp_path, clip, capsys):
    from videoespresso.cli import main

    items = [
        {"video_path": clip.name, "question": f"What happens {i}?", "options": ["(A): a", "(B): b", "(C): c", "(D): d"],
         "correct_answer": "(A)", "task": "Causal Inference"}
        for i in range(2)
    ]
    items.append(dict(items[0], video_path="missing.mp4", question="Lost?"))
    bench = tmp_path / "bench.json"
    bench.write_text(json.dumps(items))
    out = tmp_path / "sel.json"
    main(["select", "--bench", str(bench), "--video-root", str(clip.parent), "--selector", "uniform",
          "--frames", "4", "--out", str(out)])
    assert "0 reused, 2 selected, 1 failed (0 earlier failures retried); 2 in the file (4.00 frames on average)" in " ".join(
        capsys.readouterr().out.split())
    selections = load_selections(out)
    assert set(selections) == {"0", "1"}
    assert [f.index for f in selections["1"].frames] == uniform_indices(60, 4)
    assert "missing.mp4" in json.loads(out.read_text())["failures"]["2"]


def test_select_command_oracle_by_file_names(tmp_path, clip, capsys):
    from videoespresso.cli import main

    item = {"video_path": clip.name, "question": "Why?", "options": ["(A): a", "(B): b", "(C): c", "(D): d"],
            "correct_answer": "(A)", "task": "Causal Inference", "core_frames_paths": ["f/10.jpg", "f/35.jpg"]}
    bench = tmp_path / "bench.json"
    bench.write_text(json.dumps([item]))
    out = tmp_path / "oracle.json"
    main(["select", "--bench", str(bench), "--video-root", str(clip.parent), "--selector", "oracle",
          "--frame-fps", "10", "--out", str(out)])
    assert [f.index for f in load_selections(out)["0"].frames] == [10, 35]
    with pytest.raises(SystemExit) as exc:
        main(["select", "--bench", str(bench), "--video-root", str(clip.parent), "--selector", "uniform",
              "--frame-fps", "10", "--out", str(out)])
    assert exc.value.code == 2


def _select(argv, capsys):
    from videoespresso.cli import main

    try:
        main(argv)
        code = 0
    except SystemExit as exc:
        code = exc.code
    captured = capsys.readouterr()
    return code, " ".join(captured.out.split()), " ".join(captured.err.split())


def test_select_resumes_retries_failures_and_refuses_other_settings(tmp_path, clip, capsys):
    import shutil

    items = [
        {"video_path": name, "question": f"What happens {i}?", "options": ["(A): a", "(B): b", "(C): c", "(D): d"],
         "correct_answer": "(A)", "task": "Causal Inference"}
        for i, name in enumerate(["a.mp4", "b.mp4", "c.mp4"])
    ]
    bench = tmp_path / "bench.json"
    bench.write_text(json.dumps(items))
    videos = tmp_path / "videos"
    videos.mkdir()
    shutil.copy(clip, videos / "a.mp4")
    shutil.copy(clip, videos / "c.mp4")
    out = tmp_path / "sel.json"
    base = ["select", "--bench", str(bench), "--video-root", str(videos), "--selector", "uniform", "--out", str(out)]

    code, text, _ = _select(base + ["--frames", "3"], capsys)
    assert code == 0 and "0 reused, 2 selected, 1 failed" in text
    assert set(json.loads(out.read_text())["failures"]) == {"1"}
    assert json.loads(out.with_name("sel.json.manifest.json").read_text())["kind"] == "select"

    # The missing video appears: the rerun tries only the failed question again.
    shutil.copy(clip, videos / "b.mp4")
    code, text, _ = _select(base + ["--frames", "3"], capsys)
    assert code == 0 and "2 reused, 1 selected, 0 failed (1 earlier failures retried)" in text
    body = json.loads(out.read_text())
    assert list(body["selections"]) == ["0", "1", "2"] and "failures" not in body

    # Done: nothing runs, nothing changes.
    before = out.read_bytes()
    code, text, _ = _select(base + ["--frames", "3"], capsys)
    assert code == 0 and "nothing left to select" in text and out.read_bytes() == before

    # Other settings are refused, naming the difference; --overwrite starts over.
    code, _, err = _select(base + ["--frames", "5"], capsys)
    assert code != 0 and "other settings" in err and "overrides" in err and out.read_bytes() == before
    code, text, _ = _select(base + ["--frames", "5", "--overwrite"], capsys)
    assert code == 0 and "0 reused, 3 selected" in text and "(5.00 frames on average)" in text
