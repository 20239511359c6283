"""The generated benchmark: official format, answers true of the rendered scenes, disjoint splits."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from videoespresso.bench.synth_bench import KINDS, make_synth_bench, read_scenes, scene_from_json, scene_to_json
from videoespresso.formats.bench import read_bench
from videoespresso.video.scenes import random_scene


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth")
    made = make_synth_bench(out, n=8, seed=3, heldout=0.25)
    return made, read_scenes(out)


def _truth_events(scene):
    """Events derived from the per-frame truth alone (not from the scene's event list)."""
    out = []
    for f in range(1, scene.num_frames):
        before = {o.id: o for o in scene.frame_truth(f - 1)}
        now = {o.id: o for o in scene.frame_truth(f)}
        for obj in scene.objects:
            a, b = before.get(obj.id), now.get(obj.id)
            if a is None and b is not None:
                out.append(f"the {b.colour} {b.shape} enters")
            elif a is not None and b is None:
                out.append(f"the {a.colour} {a.shape} leaves")
            elif a is not None and b is not None:
                if a.colour != b.colour:
                    out.append(f"the {a.colour} {a.shape} turns {b.colour}")
                if a.moving is None and b.moving is not None:
                    out.append(f"the {b.colour} {b.shape} starts moving {b.moving}")
                if a.moving is not None and b.moving is None:
                    out.append(f"the {b.colour} {b.shape} stops")
    first = {o.id: o for o in scene.frame_truth(0)}
    starts = [f"the {o.colour} {o.shape} starts moving {o.moving}" for o in first.values() if o.moving]
    return starts + out


def _first_seen(scene, name):
    for f in range(scene.num_frames):
        if any(f"{o.colour} {o.shape}" == name for o in scene.frame_truth(f)):
            return f
    return None


def _check(item, scene):
    options = item.options
    answer = options["ABCD".index(item.correct_answer)].lower()
    kind = item.extra["kind"]
    if kind in ("moved_colour", "direction"):
        boxes = {}
        for f in range(scene.num_frames):
            for o in scene.frame_truth(f):
                boxes.setdefault(o.id, []).append((o.box, o.colour, o.shape))
        [mover] = [i for i, seq in boxes.items() if len({b for b, _, _ in seq}) > 1]
        seq = boxes[mover]
        (x0, y0, *_), (x1, y1, *_) = seq[0][0], seq[-1][0]
        if kind == "moved_colour":
            moving_colours = {c for (b, c, _), (b2, _, _) in zip(seq, seq[1:]) if b != b2}
            assert moving_colours == {answer}
        else:
            dx, dy = x1 - x0, y1 - y0
            real = ("right" if dx > 0 else "left") if abs(dx) > abs(dy) else ("down" if dy > 0 else "up")
            assert answer == real
            assert f"the {seq[0][1]} {seq[0][2]}" in item.question.lower()
    elif kind == "first":
        seen = {o: _first_seen(scene, o.lower()) for o in options}
        order = sorted((f, o) for o, f in seen.items() if f is not None)
        assert order[0][1].lower() == answer and (len(order) == 1 or order[1][0] > order[0][0])
    elif kind == "count":
        if "at the end" in item.question:
            real = len(scene.frame_truth(scene.num_frames - 1))
        else:
            real = len({o.id for f in range(scene.num_frames) for o in scene.frame_truth(f)})
        assert int(answer) == real
    elif kind == "after":
        events = _truth_events(scene)
        x = item.question.removeprefix("What happens right after ").removesuffix("?")
        assert events[events.index(x) + 1] == answer
        assert sum(o.lower() in events for o in options) <= 3
    else:
        raise AssertionError(kind)


def test_files_read_with_the_bench_reader_and_have_every_kind(bench):
    made, _ = bench
    for split in ("train", "heldout"):
        items = read_bench(made.files[split])
        assert items and all(len(i.options) == 4 and len(set(i.options)) == 4 for i in items)
        assert {i.extra["kind"] for i in items} <= set(KINDS)
    train = read_bench(made.files["train"])
    assert {i.extra["kind"] for i in train} == set(KINDS)
    assert len(made.clips["heldout"]) == 2 and len(made.clips["train"]) == 6


def test_answers_are_true_of_the_scenes(bench):
    made, scenes = bench
    checked = 0
    for split in ("train", "heldout"):
        for item in read_bench(made.files[split]):
            scene = scenes[item.video_path.removeprefix("videos/").removesuffix(".mp4")]
            _check(item, scene)
            checked += 1
    assert checked >= 30


def test_core_frames_exist_and_show_the_facts(bench):
    made, scenes = bench
    for item in read_bench(made.files["train"]):
        scene = scenes[item.video_path.split("/")[1].removesuffix(".mp4")]
        assert (made.out / item.video_path).stat().st_size > 0
        for path, second in zip(item.core_frames_paths, item.extra["core_frames_seconds"]):
            assert (made.out / path).is_file() and path.endswith(f"/{second}.jpg")
            assert 0 <= second < scene.seconds
        if item.extra["kind"] == "direction":
            name = item.question.removeprefix("In which direction does the ").removesuffix(" move?")
            start, stop = item.extra["core_frames_seconds"]
            for s in (start, stop):
                assert any(f"{o.colour} {o.shape}" == name for o in scene.frame_truth(scene.frame_of(s)))


def test_the_checker_rejects_a_wrong_answer(bench):
    made, scenes = bench
    item = read_bench(made.files["train"])[0]
    wrong = item.model_copy(update={"correct_answer": "ABCD"[("ABCD".index(item.correct_answer) + 1) % 4]})
    with pytest.raises(AssertionError):
        _check(wrong, scenes[item.video_path.split("/")[1].removesuffix(".mp4")])


def test_splits_are_disjoint_and_the_draw_is_seeded(bench, tmp_path):
    made, _ = bench
    train = {i.video_path for i in read_bench(made.files["train"])}
    held = {i.video_path for i in read_bench(made.files["heldout"])}
    assert train and held and not train & held
    one, two = (make_synth_bench(tmp_path / name, n=3, seed=5, heldout=0.34) for name in ("one", "two"))
    for split in ("train", "heldout"):
        assert one.files[split].read_bytes() == two.files[split].read_bytes()
    other = make_synth_bench(tmp_path / "other", n=3, seed=6, heldout=0.34)
    assert other.files["train"].read_bytes() != one.files["train"].read_bytes()


def test_scene_json_round_trips():
    scene = random_scene(11)
    assert scene_from_json(json.loads(json.dumps(scene_to_json(scene)))) == scene


def test_cli_writes_the_benchmark_and_refuses_a_file_as_out(tmp_path):
    env = {**os.environ, "COLUMNS": "200"}
    done = subprocess.run([sys.executable, "-m", "videoespresso", "synth-bench", "--out", str(tmp_path / "b"),
                           "--n", "2", "--seed", "0"], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "heldout" in done.stdout and (tmp_path / "b" / "bench_train.json").is_file()
    (tmp_path / "f").write_text("x")
    bad = subprocess.run([sys.executable, "-m", "videoespresso", "synth-bench", "--out", str(tmp_path / "f"),
                          "--n", "2"], capture_output=True, text=True, env=env, timeout=120)
    assert bad.returncode == 2 and "is a file, not a folder" in bad.stderr
