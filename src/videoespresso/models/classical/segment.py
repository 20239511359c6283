"""``segment``: a classical phrase grounder and image-text scorer.

A phrase is read for the words this model can check: a colour name of the table
(:mod:`videoespresso.video.colours`), a shape (square, circle, triangle, rectangle, oval), a
size (small, medium, large) and a position (left, right, top, bottom, centre). On a plain
background each object found by :func:`~videoespresso.models.classical.vision.view` that has
every named attribute is a detection, scored by how cleanly it has them (its colour purity and
how near its fill ratio is to the shape's). On other pictures only a colour can be checked: the
largest regions of that colour are the detections. A phrase naming nothing checkable ("a
person") gets no box: this model does not guess.

As a scorer (in place of CLIP in the spatial stage) an image scores against a text by the same
rule: 1 when the picture's main object has every named attribute, the share of pixels of the
named colour on other pictures, 0 when the text names nothing checkable.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from ...schema import Box, Detection
from ...video.colours import COLOURS, colour_labels
from . import vision
from .vision import Blob

VERSION = "classical-segment-v1"
_SHAPES = {"square": "square", "squares": "square", "circle": "circle", "circles": "circle",
           "disc": "circle", "triangle": "triangle", "triangles": "triangle",
           "rectangle": "rectangle", "oval": "oval"}
_SIZES = ("small", "medium", "large")
_HORIZONTAL = {"left": "left", "right": "right", "centre": "centre", "center": "centre"}
_VERTICAL = {"top": "top", "bottom": "bottom", "middle": "middle"}
_ALIASES = {"gray": "grey", "violet": "purple"}
#: Ideal fill ratio of each shape's box.
_FILL = {"square": 1.0, "rectangle": 1.0, "circle": np.pi / 4, "oval": np.pi / 4, "triangle": 0.5}


@dataclass(frozen=True)
class Query:
    colour: str | None = None
    shape: str | None = None
    size: str | None = None
    horizontal: str | None = None
    vertical: str | None = None

    @property
    def named(self) -> int:
        return sum(v is not None for v in (self.colour, self.shape, self.size, self.horizontal, self.vertical))


def parse_phrase(phrase: str) -> Query:
    words = [_ALIASES.get(w, w) for w in re.findall(r"[a-z]+", phrase.lower())]
    pick = lambda table: next((table[w] for w in words if w in table), None)  # noqa: E731
    return Query(
        colour=next((w for w in words if w in COLOURS), None),
        shape=pick(_SHAPES),
        size=next((w for w in words if w in _SIZES), None),
        horizontal=pick(_HORIZONTAL),
        vertical=pick(_VERTICAL),
    )


def blob_score(blob: Blob, query: Query, area: int | None = None) -> float:
    """0 unless ``blob`` has every attribute ``query`` names; else how cleanly it has them."""
    if query.named == 0:
        return 0.0
    if query.colour is not None and blob.colour != query.colour:
        return 0.0
    if query.shape is not None and blob.shape != query.shape:
        return 0.0
    if query.size is not None and blob.size != query.size:
        return 0.0
    if query.horizontal is not None and blob.position[0] != query.horizontal:
        return 0.0
    if query.vertical is not None and blob.position[1] != query.vertical:
        return 0.0
    x0, y0, x1, y1 = blob.box
    fill = blob.area / max(1, (x1 - x0) * (y1 - y0))
    fit = 1.0 - min(1.0, abs(fill - _FILL.get(blob.shape, fill)) * 2) if query.shape else 1.0
    return round(float(blob.purity * (0.5 + 0.5 * fit)), 6)


def _norm_box(box: tuple[int, int, int, int], w: int, h: int) -> Box:
    x0, y0, x1, y1 = box
    return Box(x0=x0 / w, y0=y0 / h, x1=min(1.0, x1 / w), y1=min(1.0, y1 / h))


def _colour_regions(arr: np.ndarray, colour: str, limit: int = 3) -> list[tuple[tuple[int, int, int, int], float]]:
    """Largest connected regions of one table colour (a coarse grid), with their share of the frame."""
    step = max(1, arr.shape[1] // 96)
    small = arr[::step, ::step]
    mask = colour_labels(small) == list(COLOURS).index(colour)
    labels, count = vision.label_components(mask)
    if count == 0:
        return []
    areas = np.bincount(labels.ravel())[1:]
    out = []
    for k in np.argsort(-areas)[:limit]:
        share = float(areas[k]) / mask.size
        if share < 0.01:
            break
        ys, xs = np.nonzero(labels == k + 1)
        box = (int(xs.min()) * step, int(ys.min()) * step,
               min(arr.shape[1], (int(xs.max()) + 1) * step), min(arr.shape[0], (int(ys.max()) + 1) * step))
        out.append((box, share))
    return out


def central_blob(arr: np.ndarray) -> Blob | None:
    """The object a crop is centred on: the connected region of the table colour that covers
    most of the crop's centre (a crop cut tightly around an object has no background border
    to segment against)."""
    h, w = arr.shape[:2]
    labels = colour_labels(arr)
    centre = labels[h // 4 : h - h // 4 or h, w // 4 : w - w // 4 or w]
    colour = int(np.bincount(centre.ravel()).argmax())
    regions, count = vision.label_components(labels == colour)
    if count == 0:
        return None
    inner = regions[h // 4 : h - h // 4 or h, w // 4 : w - w // 4 or w]
    k = int(np.bincount(inner[inner > 0].ravel()).argmax())
    ys, xs = np.nonzero(regions == k)
    box = (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)
    bw, bh = box[2] - box[0], box[3] - box[1]
    name = list(COLOURS)[colour]
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    return Blob(name, vision.shape_of(len(xs) / (bw * bh), bw / bh), vision.size_of(box, h), box, len(xs), 1.0,
                vision.position_of(cx, cy, w, h))


class ClassicalGrounder:
    """The ``segment`` spec: a :class:`PhraseGrounder` and an :class:`ImageTextScorer`."""

    weights_stamp = VERSION

    def __init__(self, spec: str = "segment") -> None:
        self.spec = spec

    def detect(self, image: Any, phrases: Sequence[str]) -> list[list[Detection]]:
        """Every detection of each phrase in ``image``, best first (the image is segmented once)."""
        arr = vision.as_array(image)
        h, w = arr.shape[:2]
        v = vision.view(arr)
        out = []
        for phrase in phrases:
            query = parse_phrase(phrase)
            found: list[tuple[float, tuple[int, int, int, int]]] = []
            if query.named == 0:
                pass
            elif v.plain:
                found = [(blob_score(b, query), b.box) for b in v.objects]
            elif query.colour is not None and query.named == 1:
                found = [(min(1.0, 0.4 + share), box) for box, share in _colour_regions(arr, query.colour)]
            found = sorted((f for f in found if f[0] > 0), key=lambda f: -f[0])
            out.append([Detection(phrase=phrase, box=_norm_box(box, w, h), score=score) for score, box in found])
        return out

    def ground(
        self,
        images: Sequence[Any],
        phrases: Sequence[Sequence[str]],
        box_threshold: float = 0.35,
        text_threshold: float = 0.25,  # noqa: ARG002 (one score per detection here)
    ) -> list[list[Detection]]:
        if len(images) != len(phrases):
            raise ValueError(f"{len(images)} images but {len(phrases)} phrase lists")
        return [
            [d for found in self.detect(image, group) for d in found if d.score >= box_threshold]
            for image, group in zip(images, phrases)
        ]

    def score(self, images: Sequence[Any], texts: Sequence[str]) -> np.ndarray:
        """How well each image (typically a crop around a detection) shows each text, in [0, 1].

        Size and position words are not checked here: in a crop they describe the crop."""
        out = np.zeros((len(images), len(texts)), dtype=np.float32)
        queries = [parse_phrase(t) for t in texts]
        for i, image in enumerate(images):
            blob = central_blob(vision.as_array(image))
            if blob is None:
                continue
            for j, query in enumerate(queries):
                query = Query(colour=query.colour, shape=query.shape)
                out[i, j] = blob_score(blob, query)
        return out


__all__ = ["ClassicalGrounder", "Query", "blob_score", "central_blob", "parse_phrase"]
