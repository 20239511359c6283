"""Box conversions between our records and the dataset's form.

Records store normalised corner boxes ``[x0, y0, x1, y1]`` in ``[0, 1]``. The VideoEspresso files
store GroundingDINO's normalised ``[cx, cy, w, h]`` multiplied by 100.
"""

from __future__ import annotations

from typing import Sequence

from ..errors import FormatError
from ..schema import Box


def _clamp(value: float) -> float:
    return min(1.0, max(0.0, value))


def box_from_cxcywh100(values: Sequence[float], score: float | None = None) -> Box:
    """``[cx, cy, w, h] x 100`` -> a normalised corner :class:`Box` (clamped to the image)."""
    if len(values) != 4:
        raise FormatError(f"a box needs 4 numbers [cx, cy, w, h], got {list(values)!r}")
    cx, cy, w, h = (float(v) / 100.0 for v in values)
    if w < 0 or h < 0:
        raise FormatError(f"box {list(values)!r} has a negative width or height")
    return Box(
        x0=_clamp(cx - w / 2), y0=_clamp(cy - h / 2), x1=_clamp(cx + w / 2), y1=_clamp(cy + h / 2),
        score=score,
    )


def box_to_cxcywh100(box: Box, ndigits: int | None = 2) -> list[float]:
    """A normalised corner :class:`Box` -> ``[cx, cy, w, h] x 100`` (rounded when ``ndigits``)."""
    values = [
        (box.x0 + box.x1) / 2 * 100,
        (box.y0 + box.y1) / 2 * 100,
        (box.x1 - box.x0) * 100,
        (box.y1 - box.y0) * 100,
    ]
    if ndigits is not None:
        values = [round(v, ndigits) for v in values]
    return values
