"""Stage 8: boxes for the key objects (PhraseGrounder), kept when an ImageTextScorer agrees.

Each key object is grounded in every core frame; the frame with the strongest detection is its
frame, and those of its ``max_boxes`` strongest boxes whose crop scores at least ``clip_threshold`` against the object
name are kept. An object with no such box keeps an empty box list (as in the original data) and
the item records a ``no_box`` warning. The evidence sentence gets the inline tags.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Sequence

from ..engine import Item, Resources, derive, warn
from ..formats.boxes import box_to_cxcywh100
from ..formats.evidence import EvidenceObject, EvidencePart, render_evidence
from ..schema import Box
from ..engine.storage import as_root
from ._common import ModelPool, ModelStage, load_images


def tag_evidence(text: str, objects: Sequence[tuple[str, list[list[float]]]]) -> str:
    """Tag the first mention of each object in ``text``; objects never mentioned are appended."""
    spans: list[tuple[int, int, EvidenceObject]] = []
    missing: list[EvidenceObject] = []
    for name, boxes in objects:
        tag = EvidenceObject(name=name, boxes=boxes)
        match = re.search(re.escape(name), text, flags=re.IGNORECASE)
        if match and not any(s < match.end() and match.start() < e for s, e, _ in spans):
            spans.append((match.start(), match.end(), EvidenceObject(text[match.start():match.end()], boxes)))
        else:
            missing.append(tag)
    parts: list[EvidencePart] = []
    pos = 0
    for start, end, tag in sorted(spans, key=lambda s: s[0]):
        if start > pos:
            parts.append(text[pos:start])
        parts.append(tag)
        pos = end
    if pos < len(text):
        parts.append(text[pos:])
    for tag in missing:
        parts.append(" ")
        parts.append(tag)
    return render_evidence(parts).strip()


def _crop(image: Any, box: Box) -> Any | None:
    w, h = image.size
    x0, y0 = int(box.x0 * w), int(box.y0 * h)
    x1, y1 = max(int(round(box.x1 * w)), x0 + 1), max(int(round(box.y1 * h)), y0 + 1)
    if x1 > w or y1 > h:
        return None
    return image.crop((x0, y0, x1, y1))


class GroundObjects(ModelStage):
    name = "spatial"
    version = "1"

    def __init__(
        self,
        root: Path,
        pool: ModelPool,
        grounder: str,
        scorer: str,
        box_threshold: float = 0.35,
        text_threshold: float = 0.25,
        clip_threshold: float = 0.2,
        max_boxes: int = 4,
        resources: Resources | None = None,
    ) -> None:
        super().__init__(pool, resources=resources or Resources(gpus=1, batch_size=8))
        self.root = as_root(root)
        self.grounder_spec, self.scorer_spec = grounder, scorer
        self.box_threshold, self.text_threshold, self.clip_threshold = box_threshold, text_threshold, clip_threshold
        self.max_boxes = max_boxes

    def params(self) -> dict[str, Any]:
        return {
            "grounder": self.grounder_spec, "scorer": self.scorer_spec,
            "box_threshold": self.box_threshold, "text_threshold": self.text_threshold,
            "clip_threshold": self.clip_threshold, "max_boxes": self.max_boxes,
        }

    def setup(self) -> None:
        self.grounder = self.pool.get(self.grounder_spec, "grounder")
        self.scorer = self.pool.get(self.scorer_spec, "scorer")

    def process_item(self, item: Item) -> list[Item]:
        objects: list[str] = item["key_objects"]
        core = item["core_frames"]
        key_objects: list[dict[str, Any]] = []
        reasons: list[str] = []
        if objects and core:
            with self.timed("decode"):
                images = load_images(self.root, core)
            with self.timed("model"):
                detections = self.grounder.ground(
                    images, [list(objects)] * len(images),
                    box_threshold=self.box_threshold, text_threshold=self.text_threshold,
                )
            self.model_calls += len(images)
            for name in objects:
                found = self._best_frame(name, detections)
                boxes: list[Box] = []
                frame = None
                if found is None:
                    reasons.append(f"{name}: the grounder found nothing")
                else:
                    f, dets = found
                    frame = core[f]
                    dets = sorted(dets, key=lambda d: -float(d.score))[: self.max_boxes]
                    crops = [(d, _crop(images[f], d.box)) for d in dets]
                    crops = [(d, c) for d, c in crops if c is not None]
                    if crops:
                        with self.timed("model"):
                            sims = self.scorer.score([c for _, c in crops], [name])
                        self.model_calls += 1
                        boxes = [
                            d.box.model_copy(update={"score": round(float(d.score), 6)})
                            for (d, _), s in zip(crops, sims[:, 0]) if float(s) >= self.clip_threshold
                        ]
                    if not boxes:
                        reasons.append(f"{name}: no box passed the image-text check")
                key_objects.append({
                    "name": name,
                    "boxes": [b.model_dump(mode="json") for b in boxes],
                    "frame": frame,
                })
        elif objects:
            reasons.append("no core frame to ground in")
            key_objects = [{"name": n, "boxes": [], "frame": None} for n in objects]
        evidence = tag_evidence(
            item["evidence_text"],
            [(o["name"], [box_to_cxcywh100(Box(**b)) for b in o["boxes"]]) for o in key_objects],
        )
        out = derive(item, key_objects_grounded=key_objects, evidence=evidence)
        for reason in reasons:
            warn(out, self.name, "no_box", reason)
        return [out]

    @staticmethod
    def _best_frame(name: str, detections: list[list[Any]]) -> tuple[int, list[Any]] | None:
        best: tuple[float, int] | None = None
        per_frame: dict[int, list[Any]] = {}
        for f, dets in enumerate(detections):
            mine = [d for d in dets if _same_phrase(d.phrase, name)]
            if mine:
                per_frame[f] = mine
                top = max(float(d.score) for d in mine)
                if best is None or top > best[0]:
                    best = (top, f)
        return None if best is None else (best[1], per_frame[best[1]])


def _same_phrase(label: str, name: str) -> bool:
    a, b = " ".join(label.lower().split()), " ".join(name.lower().split())
    return bool(a) and (a == b or a in b or b in a)
