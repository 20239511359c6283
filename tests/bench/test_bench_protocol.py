"""Benchmark protocol fidelity: the official frame count, video input, --legacy = score.py,
core-frame images as input, and `eval --protocol official` end to end with the tiny VLM."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from PIL import Image

from videoespresso.bench.run import EvalOptions, core_frames_source, run_eval, sampler_source, write_official
from videoespresso.bench.score import score_file
from videoespresso.cli import main
from videoespresso.formats.bench import read_bench, write_bench
from videoespresso.models.cache import conversation_hash
from videoespresso.models.protocols import VideoClip, user, user_video
from videoespresso.schema import TASKS, BenchItem, GenerationSettings
from videoespresso.video import parse_sampler
from videoespresso.video.samplers import official_frame_count, official_indices


def _run(argv: list[str]) -> int:
    with pytest.raises(SystemExit) as exc:
        main(argv)
        raise SystemExit(0)
    return exc.value.code or 0


# --------------------------------------------------------------------------- frame count


def test_official_frame_count_and_indices_for_short_and_long_clips() -> None:
    # 0.3 s (under 0.5 s): 24 frames whatever the length, repeats included.
    assert official_frame_count(0.3) == 24
    assert official_indices(9, 0.3) == [0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3, 4, 4, 4, 5, 5, 5, 6, 6, 6, 7, 7, 8]
    # 1 s at 30 fps: int(24 * 1) + 1 = 25 frames, linspace truncated.
    assert official_indices(30, 1.0) == [0, 1, 2, 3, 4, 6, 7, 8, 9, 10, 12, 13, 14, 15, 16, 18, 19, 20, 21, 22,
                                         24, 25, 26, 27, 29]
    # 5.3 s: int(127.2) + 1 = 128, exactly the cap.
    assert official_frame_count(5.3) == 128
    # 10 min at 30 fps: capped at 128, first and last frame included.
    ten_min = official_indices(18000, 600.0)
    assert len(ten_min) == 128 and ten_min[:3] == [0, 141, 283] and ten_min[-1] == 17999
    assert official_indices(0, 1.0) == []


def test_official_sampler_on_generated_clips(tmp_path: Path) -> None:
    from videoespresso.video.synth import MovingShapes, make_video

    short = make_video(tmp_path / "short.mp4", [MovingShapes(0.3)], fps=30.0)
    mid = make_video(tmp_path / "mid.mp4", [MovingShapes(5.3)], fps=10.0)
    sampler = parse_sampler("official")
    assert sampler.spec == "official"
    got_short = sampler.sample(short.path)
    assert len(got_short.frames) == 24 and got_short.frames[-1].index == 8
    # Repeated indices decode to repeated pictures, one per index, as decord's get_batch gives.
    from videoespresso.video import sample_frames

    record, images = sample_frames(short.path, "official")
    assert len(images) == 24 and [f.index for f in record.frames][:4] == [0, 0, 0, 1]
    got_mid = sampler.sample(mid.path)
    # 53 frames, 128 asked for: indices repeat, as in the official script.
    assert len(got_mid.frames) == 128 and got_mid.frames[0].index == 0 and got_mid.frames[-1].index == 52
    assert len(parse_sampler("official:32").sample(mid.path).frames) == 32


# --------------------------------------------------------------------------- video input


def _frames(n: int) -> list[Image.Image]:
    return [Image.new("RGB", (64, 48), (20 * i % 255, 100, 200 - 10 * i)) for i in range(n)]


def test_tiny_qwen2_vl_receives_a_video_input(tiny_vlm) -> None:
    frames = _frames(4)
    clip = VideoClip(frames=frames, indices=[0, 10, 20, 30], seconds=[0.0, 0.4, 0.8, 1.2], fps=25.0, total_frames=31)
    video_conv = [user_video("What happens?", clip)]
    image_conv = [user("What happens?", frames)]

    video_inputs = tiny_vlm._encode([tiny_vlm._render(video_conv, 0)], [video_conv])
    assert "pixel_values_videos" in video_inputs and "video_grid_thw" in video_inputs
    assert "pixel_values" not in video_inputs
    # Four frames, temporal patch 2: two temporal groups in one video.
    assert video_inputs["video_grid_thw"].tolist()[0][0] == 2

    image_inputs = tiny_vlm._encode([tiny_vlm._render(image_conv, 0)], [image_conv])
    assert "pixel_values" in image_inputs and "pixel_values_videos" not in image_inputs
    assert image_inputs["image_grid_thw"].shape[0] == 4

    settings = GenerationSettings(max_new_tokens=4)
    replies = tiny_vlm.generate([video_conv, image_conv], settings=settings)
    assert len(replies) == 2 and all(isinstance(r.text, str) for r in replies)
    assert "<|video_pad|>" in tiny_vlm.last_prompts[0] and "<|video_pad|>" not in tiny_vlm.last_prompts[1]
    # The same frames as a video and as images are different requests to the response cache.
    assert conversation_hash(video_conv) != conversation_hash(image_conv)


def test_video_clip_refuses_inconsistent_frames() -> None:
    from videoespresso.errors import UserError

    with pytest.raises(UserError, match="2 frames but 1 indices"):
        VideoClip(frames=_frames(2), indices=[0], seconds=[0.0, 1.0], fps=1.0, total_frames=2)
    with pytest.raises(UserError, match="at least one frame"):
        VideoClip(frames=[], indices=[], seconds=[], fps=1.0, total_frames=0)


# --------------------------------------------------------------------------- --legacy


def _score_py(data: list) -> float:
    """The official rule, written out here from score.py's description, independent of ours."""

    def first(text):
        if not isinstance(text, str):
            return None
        for ch in text:
            if ch in "ABCD":
                return ch
        return None

    right = sum(1 for item in data if first(item.get("model_output")) and first(item.get("model_output")) == first(item.get("correct_answer")))
    return 100.0 * right / len(data)


def _edge_items() -> list[dict]:
    base = {"video_path": "v.mp4", "question": "q", "options": ["(A): a", "(B): b", "(C): c", "(D): d"],
            "answer": "", "evidence": "", "task": "Causal Inference"}
    rows = [
        ("0", "(A)", "A"), ("1", "(B)", "Answer: B"), ("2", "Option (B)", "B"), ("3", "[C]", "(C)"),
        ("4", "(D)", "d"), ("5", "(a)", "A"), ("6", "(A)", ""), ("7", "(B)", None), ("8", "(C)", 3),
        ("9", "(C)", ["C"]), ("9", "(C)", "C"), ("10", "(D)", "The answer is D"), ("11", "B", "B."),
        ("12", "", "A"), ("13", "(A)", "A"), ("13", "(A)", "B"),
    ]
    items = []
    for item_id, truth, output in rows:
        items.append({**base, "id": item_id, "correct_answer": truth, "model_output": output})
    items.append({**base, "id": "14", "correct_answer": "(A)"})  # no model_output at all
    items.append({**base, "id": "15", "correct_answer": "(B)", "model_output": "B", "task": "Traffic Analysis"})
    return items


def test_legacy_counts_exactly_what_score_py_counts(tmp_path: Path) -> None:
    items = _edge_items()
    path = tmp_path / "edge.json"
    path.write_text(json.dumps(items), encoding="utf-8")
    legacy = score_file(path, mode="legacy")
    assert legacy.score.n == len(items) == 18
    assert legacy.score.overall_weighted == pytest.approx(_score_py(items))
    kinds = legacy.problem_counts
    assert kinds["legacy_repeated_id"] == 2 and kinds["legacy_no_output"] == 1
    assert kinds["legacy_non_string_output"] == 2 and kinds["legacy_no_truth"] == 2
    assert kinds["legacy_loose_truth"] == 2  # "Option (B)" and "[C]"
    # Our own scoring is stricter and says what it left out and why.
    ours = score_file(path)
    assert ours.score.n < legacy.score.n
    assert ours.problem_counts["duplicate_id"] == 2 and ours.problem_counts["unreadable_answer"] >= 2
    assert any("no 'model_output'" in p.message for p in ours.problems)


def test_legacy_cli_and_a_file_that_is_not_all_objects(tmp_path: Path) -> None:
    items = _edge_items()[:4] + ["not an item"]
    path = tmp_path / "odd.json"
    path.write_text(json.dumps(items), encoding="utf-8")
    out = tmp_path / "s.json"
    assert _run(["score", str(path), "--legacy", "--json", str(out)]) == 3
    data = json.loads(out.read_text())
    # score.py would stop at the string; we count it as one more wrong element. "Answer: B" reads
    # as A (its first capital), so 3 of the 4 items are right.
    assert data["score"]["n"] == 5
    assert data["score"]["overall_weighted"] == pytest.approx(100.0 * 3 / 5)


# --------------------------------------------------------------------------- eval


def _bench(root: Path, n: int = 3, seconds: float = 1.0) -> tuple[Path, Path]:
    from videoespresso.video.synth import make_test_video

    videos = root / "videos"
    videos.mkdir(parents=True)
    make_test_video(videos / "clip.mp4", "moving", seconds=seconds)
    items = [
        BenchItem(id=str(i), video_path="clip.mp4" if i != n - 1 else "missing.mp4", question=f"What moves {i}",
                  options=["left", "right", "up", "down"], correct_answer="ABCD"[i % 4],
                  task=TASKS[i].paper_name, core_frames_paths=[f"core/{i}/2.jpg", f"core/{i}/0.jpg"])
        for i in range(n)
    ]
    bench = root / "bench.json"
    write_bench(items, bench)
    return bench, videos


@pytest.mark.slow  # 512 sampled tokens per item (the preset fixes them): about 80 s on 2 cores
def test_eval_protocol_official_end_to_end(tmp_path: Path, capsys) -> None:
    bench, videos = _bench(tmp_path)
    out, official = tmp_path / "run.jsonl", tmp_path / "run.official.json"
    argv = ["eval", "--profile", "tiny", "--bench", str(bench), "--video-root", str(videos), "--model", "tiny:qwen2-vl",
            "--out", str(out), "--protocol", "official", "--official", str(official), "--batch-size", "2"]
    assert _run(argv) == 3  # the item with a missing video fails, the run goes on
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [line["id"] for line in lines] == ["0", "1", "2"]
    good = lines[0]
    # 1 s clip: int(24 * 1) + 1 = 25 frames, one video input, the official decoding.
    assert len(good["frames"]) == 25 and good["frames"][-1]["index"] == 24
    assert good["extra"]["input_form"] == "video" and good["extra"]["protocol"] == "official"
    assert good["settings"]["temperature"] == 0.8 and good["settings"]["max_new_tokens"] == 512 and good["settings"]["seed"] == 0
    assert lines[2]["error"].startswith("frames:")
    settings = json.loads((tmp_path / "run.jsonl.manifest.json").read_text())["settings"]
    assert settings["protocol"] == "official" and settings["input_form"] == "video" and settings["max_side"] is None
    # The official file holds every item, the failed one with an empty output.
    written = json.loads(official.read_text())
    assert len(written) == 3 and written[2]["model_output"] == ""
    assert "failed or unanswered" in capsys.readouterr().out

    # Resuming with our protocol is refused, naming the difference.
    ours = [a for a in argv if a not in ("--protocol", "official")]
    assert _run(ours) == 2
    assert "protocol" in capsys.readouterr().err

    # score prints the protocol next to the numbers; the JSON keeps it.
    assert _run(["score", str(out), "--bench", str(bench), "--json", str(tmp_path / "s.json")]) == 3
    printed = capsys.readouterr().out
    assert "run protocol: official" in " ".join(printed.split())
    assert json.loads((tmp_path / "s.json").read_text())["protocols"][0].startswith("official: frames official")


def test_eval_protocol_options_are_checked_before_anything_runs(tmp_path: Path, capsys) -> None:
    bench, videos = _bench(tmp_path, n=2)
    base = ["eval", "--bench", str(bench), "--video-root", str(videos), "--model", "tiny:qwen2-vl", "--out", str(tmp_path / "o.jsonl")]
    for extra, message in [
        (["--protocol", "official", "--frames", "8"], "--protocol official fixes"),
        (["--protocol", "official", "--temperature", "0", "--max-side", "448"], "--max-side, --max-new-tokens"),
        (["--protocol", "leaderboard"], "--protocol must be one of ours, official"),
        (["--input", "gif"], "--input must be one of images, video"),
        (["--frames-from", "core-frames", "--frames", "4"], "reads the items' core-frame images"),
        (["--core-root", str(tmp_path)], "--core-root applies to --frames-from core-frames only"),
        (["--max-side", "8"], "--max-side must be 0 (native size) or at least 16"),
    ]:
        assert _run([*base, *extra]) == 2, extra
        assert message in " ".join(capsys.readouterr().err.split()), extra
    assert not (tmp_path / "o.jsonl").exists()


def test_eval_video_input_and_native_size_under_our_protocol(tmp_path: Path, tiny_vlm) -> None:
    bench, videos = _bench(tmp_path, n=2)
    items = read_bench(bench)[:1]
    opts = EvalOptions(settings=GenerationSettings(max_new_tokens=3), frames_label="uniform:4", input_form="video", batch_size=1)
    summary = run_eval(items, tiny_vlm, tmp_path / "v.jsonl", sampler_source("uniform:4", None), videos, opts)
    assert summary.answered == 1 and "<|video_pad|>" in tiny_vlm.last_prompts[0]
    opts_img = EvalOptions(settings=GenerationSettings(max_new_tokens=3), frames_label="uniform:4", batch_size=1)
    summary = run_eval(items, tiny_vlm, tmp_path / "i.jsonl", sampler_source("uniform:4", None), videos, opts_img)
    assert summary.answered == 1 and "<|image_pad|>" in tiny_vlm.last_prompts[0]


def test_eval_from_core_frame_images(tmp_path: Path, tiny_vlm) -> None:
    bench, videos = _bench(tmp_path, n=3)
    core = tmp_path / "core"
    for i in range(2):  # item 2 has no images on disk
        (core / "core" / str(i)).mkdir(parents=True)
        for name in ("0.jpg", "2.jpg"):
            Image.new("RGB", (200, 100), (i * 90, 50, 50)).save(core / "core" / str(i) / name)
    items = read_bench(bench)
    opts = EvalOptions(settings=GenerationSettings(max_new_tokens=3), frames_label="core-frames@1fps",
                       frames_from="core-frames", batch_size=3)
    source = core_frames_source(core, fps=1.0, max_side=64)
    summary = run_eval(items, tiny_vlm, tmp_path / "c.jsonl", source, videos, opts)
    assert summary.answered == 2 and summary.failed == 1
    lines = [json.loads(line) for line in (tmp_path / "c.jsonl").read_text().splitlines()]
    # File names are frame indices at 1 fps, sorted by time whatever their order in the item.
    assert [(f["index"], f["seconds"]) for f in lines[0]["frames"]] == [(0, 0.0), (2, 2.0)]
    assert "core frame 'core/2/2.jpg' not found under --core-root" in lines[2]["error"]
    refs, images = core_frames_source(core, fps=2.0)(items[0], videos / "clip.mp4")
    assert [r.seconds for r in refs] == [0.0, 1.0] and images[0].size == (200, 100)
    escaping = items[0].model_copy(update={"core_frames_paths": ["../../etc/passwd"]})
    from videoespresso.errors import UserError

    with pytest.raises(UserError, match="outside --core-root"):
        core_frames_source(core)(escaping, videos / "clip.mp4")


def test_write_official_writes_every_item(tmp_path: Path) -> None:
    bench, _ = _bench(tmp_path, n=3)
    items = read_bench(bench)
    preds = tmp_path / "p.jsonl"
    preds.write_text(json.dumps({"id": "0", "output": "A"}) + "\n" + json.dumps({"id": "1", "output": "", "error": "frames: x"}) + "\n")
    out = tmp_path / "o.json"
    assert write_official(items, preds, out) == 3
    assert [row["model_output"] for row in json.loads(out.read_text())] == ["A", "", ""]


def test_oracle_reads_file_names_at_one_fps_by_default(tmp_path: Path) -> None:
    from videoespresso.select.oracle import OracleSelector
    from videoespresso.video.synth import make_test_video

    clip = make_test_video(tmp_path / "c.mp4", "moving", seconds=4.0).path
    item = BenchItem(id="1", video_path="c.mp4", question="q", options=["a", "b", "c", "d"], correct_answer="A",
                     task="Causal Inference", core_frames_paths=["1.jpg", "3.jpg"])
    selection = OracleSelector([item]).select(clip, "q", item_id="1")
    assert [round(f.seconds, 2) for f in selection.frames] == [1.0, 3.0]
    assert re.search("time", selection.params["located_by"])


def test_llava_onevision_takes_the_video_path_too() -> None:
    from videoespresso import load_model

    model = load_model("tiny:llava-onevision")
    clip = VideoClip(frames=_frames(4), indices=[0, 1, 2, 3], seconds=[0.0, 1.0, 2.0, 3.0], fps=1.0, total_frames=4)
    conv = [user_video("What happens?", clip)]
    inputs = model._encode([model._render(conv, 0)], [conv])
    assert "pixel_values_videos" in inputs and "pixel_values" not in inputs
    assert isinstance(model.generate([conv], settings=GenerationSettings(max_new_tokens=3))[0].text, str)


def test_run_settings_record_the_protocol_and_keep_old_manifests_resumable() -> None:
    from videoespresso.bench.run import run_settings
    from videoespresso.formats.manifest import differences

    ours = run_settings(EvalOptions(), "tiny:qwen2-vl", {}, "sha")
    # A run started before protocols existed has none of the three keys: it still resumes.
    assert not {"protocol", "input_form", "frames_from"} & set(ours)
    official = run_settings(EvalOptions(protocol="official", input_form="video"), "tiny:qwen2-vl", {}, "sha")
    diff = differences(ours, official)
    assert any(d.startswith("protocol:") for d in diff) and any(d.startswith("input_form:") for d in diff)


def test_score_and_report_show_the_run_protocol(tmp_path: Path) -> None:
    from videoespresso.bench.protocol import OFFICIAL_SETTINGS
    from videoespresso.bench.report import write_report
    from videoespresso.bench.run import run_settings
    from videoespresso.formats.manifest import check_resume

    preds = tmp_path / "p.jsonl"
    preds.write_text(json.dumps({"id": "0", "task": "Traffic Analysis", "output": "A", "correct_answer": "A"}) + "\n")
    opts = EvalOptions(protocol="official", input_form="video", settings=OFFICIAL_SETTINGS, frames_label="official")
    check_resume(preds, "eval", run_settings(opts, "hf:m", {}, "sha"), has_output=False)
    report = score_file(preds)
    assert report.protocols == [
        "official: frames official (min(128, 24 x seconds + 1) per video) from video, input video, native resolution, "
        "temperature 0.8, top_p 1, seed 0, 512 new tokens, template official, no evidence, mode generate"
    ]
    files = write_report([report], tmp_path / "rep")
    md = files.markdown.read_text()
    assert "this run, partial (1 of 14 tasks) [official protocol]" in md and "Protocol: official: frames official" in md
