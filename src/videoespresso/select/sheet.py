"""A contact sheet: the chosen frames side by side, each labelled with its time and index."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Sequence

if TYPE_CHECKING:
    from PIL.Image import Image


def contact_sheet(
    frames: Sequence[Any],
    *,
    columns: int = 4,
    thumb: int = 320,
    title: str | None = None,
) -> "Image":
    """Tile ``frames`` (objects with ``.image`` and ``.ref``) into one RGB image, ``columns``
    wide, each resized to ``thumb`` px wide and captioned ``"12.0 s  (#300)"``."""
    from PIL import Image, ImageDraw, ImageFont

    if not frames:
        raise ValueError("a contact sheet needs at least one frame")
    font = ImageFont.load_default()
    label_h, pad = 18, 6
    thumbs = []
    for f in frames:
        image = f.image if hasattr(f.image, "resize") else Image.fromarray(f.image)
        h = max(1, round(image.height * thumb / image.width))
        thumbs.append(image.convert("RGB").resize((thumb, h)))
    cell_h = max(t.height for t in thumbs) + label_h
    cols = min(columns, len(thumbs))
    rows = math.ceil(len(thumbs) / cols)
    top = label_h + pad if title else 0
    sheet = Image.new(
        "RGB", (cols * (thumb + pad) + pad, top + rows * (cell_h + pad) + pad), "white"
    )
    draw = ImageDraw.Draw(sheet)
    if title:
        draw.text((pad, pad), title[:160], fill="black", font=font)
    for i, (f, t) in enumerate(zip(frames, thumbs)):
        x = pad + (i % cols) * (thumb + pad)
        y = top + pad + (i // cols) * (cell_h + pad)
        sheet.paste(t, (x, y))
        draw.text(
            (x, y + t.height + 3), f"{f.ref.seconds:.1f} s  (#{f.ref.index})", fill="black",
            font=font,
        )
    return sheet
