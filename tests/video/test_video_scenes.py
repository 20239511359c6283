"""Scenes with known content: the rendered video shows what the scene description says."""

from __future__ import annotations

import av
import numpy as np
import pytest

from videoespresso.video.colours import COLOURS
from videoespresso.video.scenes import (
    MOVE_SECONDS,
    Motion,
    Scene,
    SceneObject,
    random_scene,
    render_scene,
    shape_mask,
)


def _decode(path):
    with av.open(str(path)) as c:
        return [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]


def _overlap(p, q):
    return not (p[2] <= q[0] or q[2] <= p[0] or p[3] <= q[1] or q[3] <= p[1])


def test_random_scenes_are_seeded_and_differ_between_seeds():
    assert random_scene(7) == random_scene(7)
    assert len({random_scene(s) for s in range(10)}) == 10


@pytest.mark.parametrize("seed", range(40))
def test_random_scene_layout_is_valid(seed):
    scene = random_scene(seed)
    w, h = scene.size
    colours = [o.colour for o in scene.objects] + [c for o in scene.objects for _, c in o.recolours]
    assert len(colours) == len(set(colours)), "every colour names one object"
    assert sum(bool(o.motions) for o in scene.objects) == 1, "exactly one object moves"
    times = [e.time_s for e in scene.events()]
    assert times == sorted(times)
    starts = sorted({round(e.time_s, 6) for e in scene.events()})
    assert all(b - a >= 1.0 - 1e-9 for a, b in zip(starts, starts[1:])), starts
    for i in range(scene.num_frames):
        truth = scene.frame_truth(i)
        for t in truth:
            x0, y0, x1, y1 = t.box
            assert 0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h
        for a in range(len(truth)):
            for b in range(a + 1, len(truth)):
                assert not _overlap(truth[a].box, truth[b].box)


@pytest.mark.parametrize("seed", range(20))
def test_events_are_true_of_the_per_frame_truth(seed):
    scene = random_scene(seed)
    for e in scene.events():
        f = scene.frame_of(e.time_s)
        now = {o.id: o for o in scene.frame_truth(f)}
        before = {o.id: o for o in scene.frame_truth(f - 1)}
        if e.kind == "enter":
            assert e.object in now and e.object not in before
        elif e.kind == "leave":
            assert e.object in before and e.object not in now
        elif e.kind == "recolour":
            assert before[e.object].colour != now[e.object].colour == e.colour
        elif e.kind == "move":
            later = {o.id: o for o in scene.frame_truth(scene.frame_of(e.time_s + MOVE_SECONDS))}
            dx = later[e.object].centre[0] - now[e.object].centre[0]
            dy = later[e.object].centre[1] - now[e.object].centre[1]
            expected = {"left": dx < -10 and abs(dy) < 1, "right": dx > 10 and abs(dy) < 1,
                        "up": dy < -10 and abs(dx) < 1, "down": dy > 10 and abs(dx) < 1}
            assert expected[e.direction], (e, dx, dy)
            assert now[e.object].moving == e.direction
        elif e.kind == "stop":
            after = {o.id: o for o in scene.frame_truth(min(scene.num_frames - 1, f + 5))}
            assert after[e.object].box == now[e.object].box and now[e.object].moving is None


def test_rendered_video_shows_the_truth(tmp_path):
    scene = random_scene(5)
    clip = render_scene(scene, tmp_path / "s.mp4")
    frames = _decode(clip.path)
    assert len(frames) == scene.num_frames == clip.num_frames
    bg = np.asarray(COLOURS[scene.background])
    for i in range(0, scene.num_frames, 7):
        img = frames[i].astype(int)
        outside = np.ones(img.shape[:2], dtype=bool)
        for t in scene.frame_truth(i):
            x0, y0, x1, y1 = t.box
            outside[max(0, y0 - 2) : y1 + 2, max(0, x0 - 2) : x1 + 2] = False
            inner = img[y0 + 3 : y1 - 3, (x0 + x1) // 2 - 1 : (x0 + x1) // 2 + 1].reshape(-1, 3)
            # The box's centre column is inside every shape (a triangle's apex narrows it).
            inner = inner[len(inner) // 3 :]
            assert np.abs(np.median(inner, axis=0) - COLOURS[t.colour]).max() < 25, (i, t)
        assert np.abs(img[outside] - bg).max(axis=1).mean() < 6


def test_shape_fill_ratios():
    assert shape_mask("square", 40, 40).mean() == 1.0
    assert shape_mask("circle", 40, 40).mean() == pytest.approx(np.pi / 4, abs=0.03)
    assert shape_mask("triangle", 40, 40).mean() == pytest.approx(0.5, abs=0.03)
    with pytest.raises(ValueError, match="unknown shape 'star'"):
        shape_mask("star", 4, 4)


def test_a_hand_written_scene():
    scene = Scene(
        (
            SceneObject("a", "red", "square", "medium", x=60, y=60, motions=(Motion(1.0, 2.0, "right", 80.0),)),
            SceneObject("b", "blue", "circle", "small", x=200, y=150, enter_s=2.5, recolours=((3.5, "green"),)),
        ),
        seconds=4.0,
    )
    assert [e.text for e in scene.events()] == [
        "the red square starts moving right", "the red square stops", "the blue circle enters",
        "the blue circle turns green",
    ]
    [a] = scene.frame_truth(20)
    assert a.box[0] - scene.frame_truth(0)[0].box[0] == 80
    assert [o.colour for o in scene.frame_truth(39)] == ["red", "green"]
