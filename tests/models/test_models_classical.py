"""The classical ``describe`` captioner and ``segment`` grounder, checked against scene truth."""

from __future__ import annotations

import av
import numpy as np
import pytest
from PIL import Image

from videoespresso import load_model
from videoespresso.bench.synth_truth import FactTally, box_iou, caption_accuracy
from videoespresso.errors import SpecError
from videoespresso.models.classical.describe import UNKNOWN
from videoespresso.models.protocols import (
    ImageTextScorer,
    PhraseGrounder,
    VideoClip,
    VisionLanguageModel,
    user,
    user_video,
)
from videoespresso.models.registry import parse_spec
from videoespresso.video.scenes import random_scene, render_scene
from videoespresso.video.synth import Fade, HardCut, MovingBlock, Pan, StaticShot, make_video

SEEDS = range(6)


def _frames(path):
    with av.open(str(path)) as c:
        return [Image.fromarray(f.to_ndarray(format="rgb24")) for f in c.decode(video=0)]


@pytest.fixture(scope="module")
def scenes(tmp_path_factory):
    root = tmp_path_factory.mktemp("scenes")
    out = []
    for seed in SEEDS:
        scene = random_scene(seed)
        out.append((scene, _frames(render_scene(scene, root / f"s{seed}.mp4").path)))
    return out


def test_specs_parse_and_load_as_their_roles():
    assert parse_spec("describe:") == parse_spec("describe") and str(parse_spec("describe:")) == "describe"
    assert str(parse_spec("segment")) == "segment"
    assert isinstance(load_model("describe", kind="vlm"), VisionLanguageModel)
    grounder = load_model("segment:", kind="grounder")
    assert isinstance(grounder, PhraseGrounder) and isinstance(grounder, ImageTextScorer)
    with pytest.raises(SpecError, match="describe: this classical model is a vlm / chat, not 'grounder'"):
        load_model("describe", kind="grounder")
    with pytest.raises(SpecError, match="unknown model spec 'describe:fancy'"):
        parse_spec("describe:fancy")


def test_captions_of_generated_scenes_are_true(scenes):
    """Frames one second apart, captioned together: >= 95 % of the facts are true."""
    total = FactTally()
    for scene, frames in scenes:
        idx = list(range(0, scene.num_frames, int(scene.fps)))
        tally, captions = caption_accuracy(scene, [frames[i] for i in idx], idx)
        total.merge(tally)
        for i, text in zip(idx, captions):
            for t in scene.frame_truth(i):
                assert f"{t.size} {t.colour} {t.shape}" in text, (i, text)
    assert total.right + total.wrong > 300
    for kind in ("count", "colour", "shape", "size", "position", "motion"):
        assert sum(total.by_kind[kind]) > 0, kind
    assert total.accuracy >= 0.95, total.mistakes


def test_video_prompt_names_frames_with_times_and_motion(scenes):
    scene, frames = scenes[0]
    model = load_model("describe")
    move = next(e for e in scene.events() if e.kind == "move")
    i, j = scene.frame_of(move.time_s), scene.frame_of(move.time_s + 0.5)
    clip = VideoClip([frames[i], frames[j]], [i, j], [i / scene.fps, j / scene.fps], scene.fps, scene.num_frames)
    [reply] = model.generate([[user_video("Describe the video frames.", clip)]])
    first, second = reply.text.splitlines()
    name = scene.object(move.object).name
    assert first.startswith(f"Frame 1 ({i / scene.fps:.1f} s): ")
    assert f"{name}" in first and f"moving {move.direction}" in first
    assert f"that has moved {move.direction}" in second


def test_one_image_gets_no_motion_words_and_follows_the_prompt(scenes):
    scene, frames = scenes[0]
    model = load_model("describe")
    [reply] = model.generate([[user('Describe this frame. Start with "The image depicts".', [frames[0]])]])
    assert reply.text.startswith("The image depicts a dark scene, mostly black, with ")
    assert not any(w in reply.text for w in ("moving", "moved", "still", "appeared", "left."))
    assert reply.model == "describe" and reply.completion_tokens == len(reply.text.split())


def test_anything_but_a_caption_request_is_unknown(scenes):
    _, frames = scenes[0]
    model = load_model("describe")
    replies = model.generate([
        [user("What colour is the square? Answer with a letter.", [frames[0]])],
        [user("Describe the scene.")],
    ])
    assert [r.text for r in replies] == [UNKNOWN, UNKNOWN]
    [structured] = model.generate([[user("Describe the frame.", [frames[0]])]], schema={"type": "object"})
    assert structured.parsed is None and "cannot fill a JSON schema" in structured.error


def test_replies_are_cached_under_the_algorithm_version(scenes, tmp_path):
    _, frames = scenes[0]
    conv = [[user("Describe this frame.", [frames[3]])]]
    first = load_model("describe", cache=tmp_path / "c.sqlite").generate(conv)[0]
    again = load_model("describe", cache=tmp_path / "c.sqlite").generate(conv)[0]
    assert again.cached and again.text == first.text and not first.cached


@pytest.mark.parametrize(
    "segments, frames, expected",
    [
        ([Pan(2.0)], (0, 5), "the picture shifts left"),
        ([Fade(2.0)], (0, 10), "the scene is getting darker"),
        ([StaticShot(1.0), HardCut(1.0)], (5, 10), "a cut follows"),
        ([MovingBlock(2.0)], (5, 10), "region moves right"),
    ],
)
def test_textured_footage_gets_the_coarse_vocabulary(tmp_path, segments, frames, expected):
    clip = make_video(tmp_path / "v.mp4", segments, fps=10, barcode=False)
    decoded = _frames(clip.path)
    [reply] = load_model("describe").generate([[user("Describe these frames.", [decoded[k] for k in frames])]])
    first = reply.text.splitlines()[0]
    assert expected in first, reply.text
    assert "object" not in first or "no objects" in first


def test_grounder_boxes_match_the_known_boxes(scenes):
    grounder = load_model("segment", kind="grounder")
    ious = []
    for scene, frames in scenes:
        for i in range(0, scene.num_frames, 10):
            truth = scene.frame_truth(i)
            phrases = [f"the {t.colour} {t.shape}" for t in truth]
            detections = grounder.ground([frames[i]], [phrases])[0]
            for t, phrase in zip(truth, phrases):
                ious.append(box_iou(scene, i, [d for d in detections if d.phrase == phrase], t.id))
    assert len(ious) > 50
    assert min(ious) >= 0.7 and float(np.mean(ious)) >= 0.9


def test_grounder_returns_nothing_it_cannot_check(scenes):
    scene, frames = scenes[0]
    grounder = load_model("segment", kind="grounder")
    [t, *_] = scene.frame_truth(0)
    absent = next(c for c in ("red", "orange", "yellow", "green", "cyan", "blue", "purple", "white")
                  if all(o.colour != c for o in scene.frame_truth(0)))
    other_shape = next(s for s in ("square", "circle", "triangle") if s != t.shape)
    [found] = grounder.ground([frames[0]], [["a person", f"the {absent} {t.shape}", f"{t.colour} {other_shape}"]])
    assert found == []
    [found] = grounder.ground([frames[0]], [[t.colour]], box_threshold=0.35)
    assert [d.phrase for d in found] == [t.colour]


def test_scorer_checks_a_crop_against_its_name(scenes):
    scene, frames = scenes[1]
    scorer = load_model("segment", kind="scorer")
    for t in scene.frame_truth(0):
        crop = frames[0].crop(t.box)
        sims = scorer.score([crop], [f"{t.colour} {t.shape}", f"a {t.colour} thing", "a dog", f"pink {t.shape}"])
        assert sims.shape == (1, 4)
        assert sims[0, 0] >= 0.8 and sims[0, 1] >= 0.8 and sims[0, 2] == 0 and sims[0, 3] == 0


def test_spatial_stage_with_classical_roles_puts_true_boxes_in_the_evidence(scenes, tmp_path):
    from videoespresso.curate import GroundObjects, ModelPool
    from videoespresso.formats.evidence import evidence_objects

    scene, frames = scenes[2]
    (tmp_path / "frames").mkdir()
    core = []
    for k in (0, scene.num_frames - 1):
        frames[k].save(tmp_path / "frames" / f"{k}.jpg", quality=90)
        core.append({"index": k, "seconds": k / scene.fps, "path": f"frames/{k}.jpg"})
    t = scene.frame_truth(0)[0]
    name = f"{t.colour} {t.shape}"
    item = {"id": "v#g000/q0", "core_frames": core, "key_objects": [name, "man"],
            "evidence_text": f"The {name} stays while the man watches."}
    stage = GroundObjects(tmp_path, ModelPool(), "segment", "segment", max_boxes=2)
    stage.setup()
    [out] = stage.process([item])
    objects = {o["name"]: o for o in out["key_objects_grounded"]}
    assert objects["man"]["boxes"] == []
    [box] = objects[name]["boxes"]
    w, h = scene.size
    frame = objects[name]["frame"]["index"]
    truth = next(o for o in scene.frame_truth(frame) if o.id == t.id)
    from videoespresso.bench.synth_truth import iou

    assert iou((box["x0"] * w, box["y0"] * h, box["x1"] * w, box["y1"] * h), truth.box) >= 0.7
    tags = {o.name.lower(): o for o in evidence_objects(out["evidence"])}
    assert len(tags[name].boxes) == 1


def test_the_fact_checker_catches_false_captions(scenes):
    """Captions of one scene scored against another scene's truth: most facts are false."""
    (scene_a, frames_a), (scene_b, _) = scenes[0], scenes[1]
    idx = list(range(0, min(scene_a.num_frames, scene_b.num_frames), int(scene_a.fps)))
    from videoespresso.bench.synth_truth import check_frames
    from videoespresso.models.classical.describe import describe_frames

    tally = check_frames(scene_b, idx, describe_frames([frames_a[i] for i in idx]))
    assert tally.accuracy < 0.5 and tally.mistakes


@pytest.mark.parametrize("seed", range(4))
def test_connected_components_match_scipy(seed):
    ndimage = pytest.importorskip("scipy.ndimage")
    from videoespresso.models.classical.vision import label_components

    mask = np.random.default_rng(seed).random((37, 53)) > 0.55
    ours, count = label_components(mask)
    theirs, expected = ndimage.label(mask)
    assert count == expected
    assert ((ours > 0) == mask).all()
    # Same partition: each of our labels maps to exactly one of theirs and back.
    pairs = {(a, b) for a, b in zip(ours[mask].ravel(), theirs[mask].ravel())}
    assert len(pairs) == count == len({a for a, _ in pairs}) == len({b for _, b in pairs})
