"""Model-free parts of the curate pipeline: JSON repair, grouping, evidence tags, options, CLI input."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import pytest

from videoespresso.curate import discover_videos, group_spans, parse_stage_range, shuffled_options, tag_evidence
from videoespresso.curate._json import interpret, repair_json
from videoespresso.curate.options import length_bounds
from videoespresso.curate.schemas import cot_schema, distractor_schema, qa_schema
from videoespresso.errors import UserError
from videoespresso.formats.evidence import evidence_objects


@pytest.mark.parametrize(
    "text",
    [
        '{"keep": true, "reason": "fine"}',
        'Sure! Here it is:\n```json\n{"keep": true, "reason": "fine"}\n```\nAnything else?',
        'The verdict is {"keep": true, "reason": "fine",} as requested.',
        '{"keep": true, "reason": "fine"',
    ],
    ids=["plain", "fenced", "trailing-comma", "unclosed"],
)
def test_trivially_broken_json_is_repaired(text):
    assert repair_json(text) == {"keep": True, "reason": "fine"}


def test_raw_control_characters_inside_strings_are_accepted():
    assert repair_json('{"keep": false, "reason": "a\x00b"}') == {"keep": False, "reason": "a\x00b"}


@pytest.mark.parametrize("text", ["The man opens the door and leaves.", '{"keep": true, "reason": "cut of', ""])
def test_prose_and_cut_strings_are_not_guessed(text):
    with pytest.raises(ValueError, match="not valid JSON"):
        repair_json(text)


def test_interpret_validates_against_the_schema():
    schema = qa_schema(2, 40, 3)
    good = '{"pairs": [{"question": "Why did he go?", "answer": "Because.", "task": "Causal Inference", "frames": [1, 2]}]}'
    value, error = interpret(good, None, schema)
    assert error is None and value.pairs[0].frames == [1, 2]
    # a question is one line ending with a question mark (the grammar enforces it while decoding)
    for bad in ("1", "Why did he go", 'Why "did" he go?'):
        value, error = interpret(good.replace("Why did he go?", bad.replace('"', '\\"')), None, schema)
        assert value is None and "pairs.0.question" in error, bad
    assert interpret(good.replace("Why did he go?", "他为什么离开？"), None, schema)[1] is None
    value, error = interpret(good.replace("Causal Inference", "Astrology"), None, schema)
    assert value is None and "pairs.0.task" in error
    value, error = interpret(good.replace("[1, 2]", "[1, 4]"), None, schema)
    assert value is None and "pairs.0.frames.1" in error
    too_many = '{"pairs": [' + ",".join(['{"question": "q", "answer": "a", "task": "Causal Inference", "frames": [1]}'] * 3) + "]}"
    assert interpret(too_many, None, schema)[0] is None
    # the backend's parsed object wins over the text when it has one
    value, error = interpret("garbage", {"core_frames": [2], "key_objects": ["cup"], "evidence": "a cup"}, cot_schema(4, 4, 40, 3))
    assert error is None and value.key_objects == ["cup"]


def test_distractor_lengths_are_bounded_by_the_schema():
    low, high = length_bounds("a man in a red jacket")
    assert low == 10 and high == 32
    schema = distractor_schema(low, high).model_json_schema()
    assert schema["properties"]["distractors"]["items"] == {"maxLength": 32, "minLength": 10, "type": "string"}


@pytest.mark.parametrize(
    "n,size,overlap,expected",
    [
        (15, 15, 0, [(0, 15)]),
        (16, 15, 0, [(0, 16)]),  # a 1-frame tail joins the group before it
        (20, 6, 0, [(0, 6), (6, 12), (12, 18), (18, 20)]),
        (10, 6, 2, [(0, 6), (4, 10)]),
        (3, 6, 0, [(0, 3)]),
    ],
)
def test_group_spans(n, size, overlap, expected):
    assert group_spans(n, size, overlap, min_size=2) == expected


def test_tag_evidence_tags_first_mentions_and_appends_the_rest():
    text = "The Man lifts the cup, then the man leaves."
    tagged = tag_evidence(text, [("man", [[50.0, 50.0, 20.0, 40.0]]), ("cup", []), ("door", [])])
    objects = evidence_objects(tagged)
    assert [o.name for o in objects] == ["Man", "cup", "door"]
    assert objects[0].boxes == [[50.0, 50.0, 20.0, 40.0]] and objects[1].boxes == []
    assert tagged.startswith("The <obj_start>Man<obj_end><box_start>[[50, 50, 20, 40]]<box_end> lifts")
    assert "then the man leaves." in tagged


def test_options_are_shuffled_reproducibly_per_item():
    letters = set()
    for k in range(40):
        options, letter = shuffled_options(f"item{k}", "right", ["w1", "w2", "w3"], seed=0)
        assert sorted(options) == ["right", "w1", "w2", "w3"]
        assert options["ABCD".index(letter)] == "right"
        assert (options, letter) == shuffled_options(f"item{k}", "right", ["w1", "w2", "w3"], seed=0)
        letters.add(letter)
    assert letters == set("ABCD")
    assert any(
        shuffled_options(f"item{k}", "r", ["a", "b", "c"], 0) != shuffled_options(f"item{k}", "r", ["a", "b", "c"], 1)
        for k in range(10)
    )


def test_stage_ranges():
    assert parse_stage_range(None) == (1, 10)
    assert parse_stage_range("1-5") == (1, 5)
    assert parse_stage_range("7") == (7, 7)
    assert parse_stage_range("6-") == (6, 10)
    for bad in ("0-3", "5-2", "x", "1-11"):
        with pytest.raises(UserError, match="--stages"):
            parse_stage_range(bad)


def test_discover_videos_from_folder_and_list(tmp_path):
    (tmp_path / "a").mkdir()
    for name in ("a/one.mp4", "two.MKV", "notes.txt"):
        (tmp_path / name).write_bytes(b"x")
    items = discover_videos(tmp_path)
    assert [i["id"] for i in items] == ["a/one.mp4", "two.MKV"]
    assert discover_videos(tmp_path, limit=1)[0]["id"] == "a/one.mp4"
    listing = tmp_path / "list.txt"
    listing.write_text("# comment\na/one.mp4\n\nmissing.mp4\n")
    items = discover_videos(listing)
    assert [i["id"] for i in items] == ["a/one.mp4", "missing.mp4"]
    assert items[1]["size"] is None
    with pytest.raises(UserError, match="no such video, folder or list file"):
        discover_videos(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="no video files"):
        discover_videos(tmp_path / "empty")


def test_reply_text_is_cleaned_before_length_checks():
    schema = distractor_schema(2, 10)
    value = schema.model_validate({"distractors": ["ab\x00c\ufffd\ufffd", "de  f", "g\nhi"]})
    assert value.distractors == ["abc", "de f", "g hi"]


def test_build_and_inspect_refuse_bad_paths_with_one_line(tmp_path, capsys):
    from videoespresso.cli import main

    with pytest.raises(SystemExit) as exc:
        main(["build", str(tmp_path / "nope"), "--out", str(tmp_path / "out"), "--profile", "tiny"])
    assert exc.value.code == 2
    assert "nope: no such video, folder or list file" in " ".join(capsys.readouterr().err.split())
    with pytest.raises(SystemExit) as exc:
        main(["build", str(tmp_path / "typo.mp4"), "--out", str(tmp_path / "out"), "--profile", "tiny"])
    assert exc.value.code == 2
    assert "typo.mp4: no such video, folder or list file" in " ".join(capsys.readouterr().err.split())
    with pytest.raises(SystemExit) as exc:
        main(["inspect", str(tmp_path)])
    assert exc.value.code == 2
    assert "not a build folder" in " ".join(capsys.readouterr().err.split())
    assert not (tmp_path / "out").exists()
    with pytest.raises(SystemExit) as exc:
        main(["build", str(tmp_path), "--out", str(tmp_path / "out"), "--stages", "9-3"])
    assert exc.value.code == 2


def test_both_profiles_build_the_ten_stages_without_loading_models(tmp_path):
    from videoespresso.config import load_config
    from videoespresso.curate import STAGE_NAMES, ModelPool, build_stages

    prints = {}
    for profile in ("offline", "paper"):
        pool = ModelPool()
        stages = build_stages(load_config(profile), tmp_path, pool)
        assert [s.name for s in stages] == list(STAGE_NAMES)
        assert pool._models == {}
        prints[profile] = [s.fingerprint() for s in stages]
        # a distributed executor ships the configured stages to its workers
        copies = pickle.loads(pickle.dumps(stages))
        assert [s.fingerprint() for s in copies] == prints[profile]
        assert all(s.prompt_hash() for s in stages if s.name in ("caption", "qa", "filter", "cot", "options"))
    # frame size, models, group size and thresholds differ: every stage gets other keys
    assert all(a != b for a, b in zip(prints["offline"], prints["paper"]))


def test_split_is_seeded_and_adding_videos_never_moves_one():
    from videoespresso.curate.export import split_videos

    keys = [f"sha256:{i:064x}" for i in range(200)]
    split = split_videos(keys, 0.2, seed=0)
    share = sum(v == "test" for v in split.values()) / len(keys)
    assert 0.12 < share < 0.28 and split == split_videos(list(reversed(keys)), 0.2, seed=0)
    assert split != split_videos(keys, 0.2, seed=1)
    # A key's side is a pure function of (key, seed): every prefix of the list, the issue's
    # "three videos, then a fourth" included, is the full split restricted to it.
    for n in range(1, 12):
        assert split_videos(keys[:n], 0.2) == {k: split[k] for k in keys[:n]}, n
    more = split_videos(keys + [f"sha256:{i:064x}" for i in range(1000, 1050)], 0.2)
    assert all(more[k] == split[k] for k in keys)
    assert set(split_videos(keys[:5], 0.0).values()) == {"train"}
    assert set(split_videos(keys[:5], 1.0).values()) == {"test"}


def _export_item(video_id: str, video: Path) -> dict:
    return {"id": f"{video_id}#q", "video_id": video_id, "video": str(video), "video_path": video_id,
            "question": "What moves first?", "answer": "The square.", "task": "Causal Inference",
            "qa_frames": [], "core_frames": [], "core_captions": [], "key_objects_grounded": [],
            "evidence": "The square moves.", "distractors": ["The circle.", "Nothing.", "The camera."]}


def _old_name_side(name: str, ratio: float, seed: int = 0) -> str:
    """Where the name-keyed split (before content keys) put a video: hash of seed and name."""
    import hashlib

    digest = hashlib.sha256(f"{seed}:{name}".encode("utf-8")).digest()
    return "test" if int.from_bytes(digest[:8], "big") / 2.0**64 < ratio else "train"


def test_split_follows_content_one_file_two_names_or_paths_one_side(tmp_path):
    """The same bytes under two names, and one file reached through a symlink, land on one side
    (names chosen so a split by name would have put them on both)."""
    from videoespresso.curate.export import VIDEO_HASHES, export, video_digests

    videos = tmp_path / "videos"
    videos.mkdir()
    (videos / "a.mp4").write_bytes(b"\x00video-a" * 5000)
    (videos / "other.mp4").write_bytes(b"\x00video-b" * 5000)
    ratio = 0.5
    copy = next(f"copy{i}.mp4" for i in range(100) if _old_name_side(f"copy{i}.mp4", ratio) != _old_name_side("a.mp4", ratio))
    link = next(f"link{i}.mp4" for i in range(100) if _old_name_side(f"link{i}.mp4", ratio) != _old_name_side("a.mp4", ratio))
    (videos / copy).write_bytes((videos / "a.mp4").read_bytes())
    (videos / link).symlink_to(videos / "a.mp4")
    names = ["a.mp4", copy, link, "other.mp4"]
    digests = video_digests([str(videos / n) for n in names])
    assert len({digests[str(videos / n)] for n in names[:3]}) == 1 and len(set(digests.values())) == 2
    out = tmp_path / "build"
    out.mkdir()
    export([_export_item(n, videos / n) for n in names], out, test_ratio=ratio)
    sides = {json.loads(line)["qa"]["id"]: json.loads(line)["split"] for line in (out / "dataset.jsonl").read_text().splitlines()}
    assert sides[f"{copy}#q"] == sides[f"{link}#q"] == sides["a.mp4#q"]
    # the digests are kept for the next export; a changed file is hashed again
    cached = json.loads((out / VIDEO_HASHES).read_text())
    assert cached["split_version"] == 2 and len(cached["files"]) == 3  # the symlink is its target
    (videos / copy).write_bytes(b"\x00changed" * 10)
    assert video_digests([str(videos / copy)], out / VIDEO_HASHES)[str(videos / copy)] != digests[str(videos / copy)]


def test_split_refuses_a_video_it_cannot_read(tmp_path):
    from videoespresso.curate.export import export

    with pytest.raises(UserError, match="gone.mp4: cannot read the video to place it in the train/test split"):
        export([_export_item("gone.mp4", tmp_path / "gone.mp4")], tmp_path)


def test_build_names_failed_videos_and_strict_exits_3(tmp_path, capsys):
    from videoespresso.cli import main
    from videoespresso.video.synth import make_test_video

    videos = tmp_path / "videos"
    videos.mkdir()
    make_test_video(videos / "good.mp4", "static", seconds=1.0)
    (videos / "broken.mp4").write_bytes(b"not a video at all" * 10)

    def run(*extra: str) -> int:
        with pytest.raises(SystemExit) as exc:
            main(["build", str(videos), "--out", str(tmp_path / "out"), "--profile", "tiny", "--stages", "1",
                  "--no-progress", *extra])
            raise SystemExit(0)
        return exc.value.code or 0

    assert run() == 0
    err = " ".join(capsys.readouterr().err.split())
    assert "failed in sample: broken.mp4: unreadable_video" in err
    assert run("--strict") == 3
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    sample = next(s for s in summary["stages"] if s["name"] == "sample")
    assert [f["id"] for f in sample["failures"]] == ["broken.mp4"]
