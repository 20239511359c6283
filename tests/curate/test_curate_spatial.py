"""Stage 8 with the tiny GroundingDINO and CLIP: boxes kept by the image-text check, rendered
into the evidence tags; nothing passing degrades to empty boxes with a recorded reason."""

from __future__ import annotations

from PIL import Image, ImageDraw

from videoespresso.curate import GroundObjects, ModelPool
from videoespresso.formats.evidence import evidence_objects


def _item(tmp_path):
    frames = []
    for k, color in enumerate(("red", "blue")):
        img = Image.new("RGB", (96, 72), "white")
        ImageDraw.Draw(img).rectangle((20 + 10 * k, 15, 60 + 10 * k, 50), fill=color)
        (tmp_path / "frames").mkdir(exist_ok=True)
        img.save(tmp_path / "frames" / f"f{k}.jpg")
        frames.append({"index": 25 * k, "seconds": float(k), "path": f"frames/f{k}.jpg"})
    return {
        "id": "v#g000/q0",
        "core_frames": frames,
        "key_objects": ["red square", "man"],
        "evidence_text": "The red square moves right while the man watches.",
    }


def _stage(tmp_path, models, clip_threshold):
    pool = ModelPool(preloaded=models)
    stage = GroundObjects(tmp_path, pool, "tiny:grounding-dino", "tiny:clip", box_threshold=0.0,
                          text_threshold=0.0, clip_threshold=clip_threshold, max_boxes=3)
    stage.setup()
    return stage


def test_boxes_pass_the_image_text_check_and_enter_the_evidence(tmp_path, tiny_grounder, tiny_clip):
    models = {"tiny:grounding-dino": tiny_grounder, "tiny:clip": tiny_clip}
    [out] = _stage(tmp_path, models, clip_threshold=-1.0).process([_item(tmp_path)])
    objects = {o["name"]: o for o in out["key_objects_grounded"]}
    assert set(objects) == {"red square", "man"}
    found = [o for o in objects.values() if o["boxes"]]
    assert found, "at threshold 0 the grounder returns boxes for words of the phrases"
    for obj in found:
        assert 1 <= len(obj["boxes"]) <= 3 and obj["frame"]["index"] in (0, 25)
        assert all(0 <= b["x0"] <= b["x1"] <= 1 and 0 <= b["y0"] <= b["y1"] <= 1 for b in obj["boxes"])
    tags = {t.name.lower(): t for t in evidence_objects(out["evidence"])}
    assert set(tags) == {"red square", "man"}
    for name, obj in objects.items():
        assert len(tags[name].boxes) == len(obj["boxes"])
        assert all(len(b) == 4 and all(0 <= v <= 100 for v in b) for b in tags[name].boxes)


def test_nothing_passing_the_check_degrades_to_empty_boxes(tmp_path, tiny_grounder, tiny_clip):
    models = {"tiny:grounding-dino": tiny_grounder, "tiny:clip": tiny_clip}
    [out] = _stage(tmp_path, models, clip_threshold=1.01).process([_item(tmp_path)])
    assert all(o["boxes"] == [] for o in out["key_objects_grounded"])
    assert all(t.boxes == [] for t in evidence_objects(out["evidence"]))
    assert {w["reason"] for w in out["_warnings"]} == {"no_box"}
    assert len(out["_warnings"]) == 2
