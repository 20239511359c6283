"""The inline evidence tags of VideoEspresso's chain-of-thought text.

An object mention looks like ``<obj_start>person<obj_end><box_start>[[cx, cy, w, h], ...]<box_end>``
where boxes are ``[cx, cy, w, h] x 100`` and ``[]`` means no box. The box part may be missing.
:func:`parse_evidence` splits a text into plain-text pieces and :class:`EvidenceObject` s;
:func:`render_evidence` is its inverse, so ``parse(render(parts)) == parts`` and
``render(parse(text)) == text`` for text in canonical spacing (what we write).
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from typing import Sequence, Union

from ..errors import FormatError
from ..schema import Box, KeyObject
from .boxes import box_from_cxcywh100, box_to_cxcywh100

OBJ_START, OBJ_END = "<obj_start>", "<obj_end>"
BOX_START, BOX_END = "<box_start>", "<box_end>"

_TAG_RE = re.compile(
    r"<obj_start>(?P<name>.*?)<obj_end>(?:\s*<box_start>(?P<boxes>.*?)<box_end>)?", re.DOTALL
)


@dataclass
class EvidenceObject:
    """One tagged object: its name and its boxes as ``[cx, cy, w, h] x 100`` lists."""

    name: str
    boxes: list[list[float]] = field(default_factory=list)
    #: False when the text had no ``<box_start>...<box_end>`` part at all (distinct from ``[]``).
    has_box_part: bool = True

    def to_key_object(self) -> KeyObject:
        return KeyObject(name=self.name, boxes=[box_from_cxcywh100(b) for b in self.boxes])

    @classmethod
    def from_key_object(cls, obj: KeyObject, ndigits: int | None = 2) -> "EvidenceObject":
        return cls(name=obj.name, boxes=[box_to_cxcywh100(b, ndigits) for b in obj.boxes])


EvidencePart = Union[str, EvidenceObject]


def _parse_boxes(raw: str, where: str) -> list[list[float]]:
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise FormatError(f"{where}: box list {raw!r} is not valid JSON ({exc.msg})") from None
    if not isinstance(value, list):
        raise FormatError(f"{where}: box list {raw!r} is not a list")
    # a single flat box [cx, cy, w, h] is accepted and normalised to [[...]]
    if len(value) == 4 and all(isinstance(v, (int, float)) for v in value):
        value = [value]
    boxes: list[list[float]] = []
    for box in value:
        if (
            not isinstance(box, list)
            or len(box) != 4
            or not all(isinstance(v, (int, float)) and math.isfinite(v) for v in box)
        ):
            raise FormatError(f"{where}: {box!r} is not a box of 4 numbers [cx, cy, w, h]")
        boxes.append([float(v) for v in box])
    return boxes


def parse_evidence(text: str, *, where: str = "evidence") -> list[EvidencePart]:
    """Split evidence text into plain strings and tagged objects, in order."""
    parts: list[EvidencePart] = []
    pos = 0
    for match in _TAG_RE.finditer(text):
        if match.start() > pos:
            parts.append(text[pos : match.start()])
        raw = match.group("boxes")
        boxes = _parse_boxes(raw, where) if raw is not None else []
        parts.append(EvidenceObject(match.group("name"), boxes, has_box_part=raw is not None))
        pos = match.end()
    if pos < len(text):
        parts.append(text[pos:])
    return parts


def _fmt(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def _render_boxes(boxes: Sequence[Sequence[float]]) -> str:
    return "[" + ", ".join("[" + ", ".join(_fmt(v) for v in box) + "]" for box in boxes) + "]"


def render_object_tag(name: str, boxes: Sequence[Sequence[float]] | Sequence[Box] = ()) -> str:
    """One tag; ``boxes`` are ``[cx, cy, w, h] x 100`` lists or :class:`Box` records."""
    lists = [box_to_cxcywh100(b) if isinstance(b, Box) else list(b) for b in boxes]
    return f"{OBJ_START}{name}{OBJ_END}{BOX_START}{_render_boxes(lists)}{BOX_END}"


def render_evidence(parts: Sequence[EvidencePart]) -> str:
    out: list[str] = []
    for part in parts:
        if isinstance(part, EvidenceObject):
            if part.has_box_part or part.boxes:
                out.append(render_object_tag(part.name, part.boxes))
            else:
                out.append(f"{OBJ_START}{part.name}{OBJ_END}")
        else:
            out.append(part)
    return "".join(out)


def evidence_objects(text: str) -> list[EvidenceObject]:
    return [p for p in parse_evidence(text) if isinstance(p, EvidenceObject)]


def strip_evidence_tags(text: str) -> str:
    """The evidence as plain prose: tags removed, object names kept (what ``render_evidence``
    wrote, undone: ``strip(render(parts))`` is the parts' text with each object's name).

    Box lists are not parsed, so a malformed one (a train file of 200k items has some) is
    stripped like any other instead of failing the item: the prose needs no boxes."""
    return _TAG_RE.sub(lambda match: match.group("name"), text)
