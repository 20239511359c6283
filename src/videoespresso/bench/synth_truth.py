"""Check classical roles against a scene's truth: caption facts and grounder boxes.

A caption's facts (:class:`~videoespresso.models.classical.describe.FrameFacts`) are checked one
by one against :class:`~videoespresso.video.scenes.Scene`: the object count, each object's
colour, shape, size and position, each "moving D" / "standing still" claim against the true
displacement to the next frame of the request, and each "has appeared" / "has left" / "has
turned C" claim against the previous one. An object the captioner reports that the scene does
not have, and one it misses, count as false facts. Position words are not scored for an object
whose true centre lies within :data:`POSITION_MARGIN` of a third's boundary (one pixel decides).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

from ..models.classical import vision
from ..models.classical.describe import FrameFacts, caption, describe_frames
from ..video.scenes import ObjectTruth, Scene

#: Share of the frame around a third's boundary where position words are not scored.
POSITION_MARGIN = 0.03


def iou(a: Sequence[float], b: Sequence[float]) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


@dataclass
class FactTally:
    right: int = 0
    wrong: int = 0
    #: ``kind -> [right, wrong]``.
    by_kind: dict[str, list[int]] = field(default_factory=dict)
    #: A few wrong facts, for the report.
    mistakes: list[str] = field(default_factory=list)

    def add(self, kind: str, ok: bool, what: str = "") -> None:
        cell = self.by_kind.setdefault(kind, [0, 0])
        cell[0 if ok else 1] += 1
        if ok:
            self.right += 1
        else:
            self.wrong += 1
            if len(self.mistakes) < 20:
                self.mistakes.append(f"{kind}: {what}")

    @property
    def accuracy(self) -> float:
        total = self.right + self.wrong
        return self.right / total if total else 0.0

    def merge(self, other: "FactTally") -> None:
        self.right += other.right
        self.wrong += other.wrong
        for kind, (r, w) in other.by_kind.items():
            cell = self.by_kind.setdefault(kind, [0, 0])
            cell[0] += r
            cell[1] += w
        self.mistakes.extend(other.mistakes[: max(0, 20 - len(self.mistakes))])


def _match_truth(scene: Scene, facts: FrameFacts, truth: list[ObjectTruth]) -> dict[int, ObjectTruth | None]:
    out: dict[int, ObjectTruth | None] = {}
    for n, blob in enumerate(facts.view.objects):
        best = max(truth, key=lambda t: iou(blob.box, t.box), default=None)
        out[n] = best if best is not None and iou(blob.box, best.box) >= 0.5 else None
    return out


def _position_scored(scene: Scene, t: ObjectTruth) -> tuple[bool, bool]:
    w, h = scene.size
    cx, cy = t.centre
    near = lambda v, span: any(abs(v / span - b) < POSITION_MARGIN for b in (1 / 3, 2 / 3))  # noqa: E731
    return not near(cx, w), not near(cy, h)


def check_frames(scene: Scene, indices: Sequence[int], facts: Sequence[FrameFacts]) -> FactTally:
    """Score the facts of frames ``indices`` of ``scene`` (captioned together, in this order)."""
    tally = FactTally()
    w, h = scene.size
    for pos, (index, f) in enumerate(zip(indices, facts)):
        truth = scene.frame_truth(index)
        tally.add("count", len(f.view.objects) == len(truth), f"frame {index}: {len(f.view.objects)} for {len(truth)}")
        matched = _match_truth(scene, f, truth)
        for n, blob in enumerate(f.view.objects):
            t = matched[n]
            if t is None:
                tally.add("object", False, f"frame {index}: no {blob.name} at {blob.box}")
                continue
            tally.add("colour", blob.colour == t.colour, f"frame {index}: {blob.colour} for {t.colour}")
            tally.add("shape", blob.shape == t.shape, f"frame {index}: {blob.shape} for {t.shape}")
            tally.add("size", blob.size == t.size, f"frame {index}: {blob.size} for {t.size}")
            truth_pos = vision.position_of(*t.centre, w, h)
            for axis, scored in enumerate(_position_scored(scene, t)):
                if scored:
                    tally.add("position", blob.position[axis] == truth_pos[axis],
                              f"frame {index}: {blob.position} for {truth_pos}")
            motion = f.moving(blob)
            if motion is not None:
                tense, claimed = motion
                other = indices[pos + 1] if tense == "ahead" else indices[pos - 1]
                then = next((o for o in scene.frame_truth(other) if o.id == t.id), None)
                if then is None:
                    tally.add("motion", False, f"frame {index}: {blob.name} not in frame {other}")
                    continue
                dx, dy = then.centre[0] - t.centre[0], then.centre[1] - t.centre[1]
                if tense == "behind":
                    dx, dy = -dx, -dy
                real = vision.direction_of(dx, dy, vision.STILL_SHARE * w)
                tally.add("motion", claimed == real, f"frame {index}: {claimed} for {real}")
        seen = {id(t) for t in matched.values() if t is not None}
        for t in truth:
            if id(t) not in seen:
                tally.add("object", False, f"frame {index}: missed the {t.colour} {t.shape}")
        if f.behind is not None and pos > 0:
            before = {o.id: o for o in scene.frame_truth(indices[pos - 1])}
            now = {o.id: o for o in truth}
            for blob in f.behind.new:
                t = next((o for o in truth if iou(o.box, blob.box) >= 0.5), None)
                tally.add("appeared", t is not None and t.id not in before, f"frame {index}: {blob.name}")
            for blob in f.behind.gone:
                t = next((o for o in before.values() if iou(o.box, blob.box) >= 0.5), None)
                tally.add("left", t is not None and t.id not in now, f"frame {index}: {blob.name}")
            for p, q, _ in f.behind.moved:
                if p.colour != q.colour:
                    t = next((o for o in truth if iou(o.box, q.box) >= 0.5), None)
                    ok = t is not None and t.id in before and before[t.id].colour == p.colour and t.colour == q.colour
                    tally.add("recolour", ok, f"frame {index}: {p.colour} -> {q.colour}")
    return tally


def caption_accuracy(scene: Scene, frames: Sequence[Any], indices: Sequence[int]) -> tuple[FactTally, list[str]]:
    """Caption ``frames`` (decoded frames ``indices`` of the scene's video) together; score them."""
    facts = describe_frames(frames)
    return check_frames(scene, indices, facts), [caption(f) for f in facts]


def box_iou(scene: Scene, index: int, detections: Sequence[Any], object_id: str) -> float:
    """IoU of the best detection against the true box of ``object_id`` in frame ``index`` (0 when
    nothing was found or the object is not visible)."""
    truth = next((o for o in scene.frame_truth(index) if o.id == object_id), None)
    if truth is None or not detections:
        return 0.0
    w, h = scene.size
    best = max(detections, key=lambda d: d.score)
    b = best.box
    return iou((b.x0 * w, b.y0 * h, b.x1 * w, b.y1 * h), truth.box)


__all__ = ["FactTally", "box_iou", "caption_accuracy", "check_frames", "iou"]
