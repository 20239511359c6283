"""A contact sheet: the chosen frames side by side, each labelled with its time and index."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Sequence

if TYPE_CHECKING:
    from PIL.Image import Image

#: Pixel size of the title and labels (Pillow's default font; 10 px is hard to read).
FONT_SIZE = 12


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
    font = ImageFont.load_default(size=FONT_SIZE)
    label_h, pad = FONT_SIZE + 6, 6
    thumbs = []
    for f in frames:
        image = f.image if hasattr(f.image, "resize") else Image.fromarray(f.image)
        h = max(1, round(image.height * thumb / image.width))
        thumbs.append(image.convert("RGB").resize((thumb, h)))
    cell_h = max(t.height for t in thumbs) + label_h
    cols = min(columns, len(thumbs))
    rows = math.ceil(len(thumbs) / cols)
    width = cols * (thumb + pad) + pad
    lines = wrap_words(title, font, width - 2 * pad) if title else []
    top = len(lines) * label_h + pad if lines else 0
    sheet = Image.new("RGB", (width, top + rows * (cell_h + pad) + pad), "white")
    draw = ImageDraw.Draw(sheet)
    for row, line in enumerate(lines):
        for x, word in line:
            draw.text((pad + x, pad + row * label_h), word, fill="black", font=font)
    for i, (f, t) in enumerate(zip(frames, thumbs)):
        x = pad + (i % cols) * (thumb + pad)
        y = top + pad + (i // cols) * (cell_h + pad)
        sheet.paste(t, (x, y))
        draw.text(
            (x, y + t.height + 3), f"{f.ref.seconds:.1f} s  (#{f.ref.index})", fill="black",
            font=font,
        )
    return sheet


def wrap_words(text: str, font: Any, width: float, max_lines: int = 3) -> list[list[tuple[float, str]]]:
    """``text`` laid out word by word in lines at most ``width`` px wide: each line a list of
    (x, word). Words are placed one by one with a fixed gap because the default font's space
    is 2 px wide and hinting renders it as nothing ("happensafter"); a word wider than a line
    is cut, and text beyond ``max_lines`` ends in an ellipsis."""
    gap = font.getlength("n") * 0.6
    lines: list[list[tuple[float, str]]] = [[]]
    x = 0.0
    for word in text.split():
        size = font.getlength(word)
        if lines[-1] and x + gap + size > width:
            if len(lines) == max_lines:
                last_x, last = lines[-1][-1]
                lines[-1][-1] = (last_x, last + "...")
                return lines
            lines.append([])
            x = 0.0
        while size > width and len(word) > 1:
            word = word[:-1]
            size = font.getlength(word)
        start = x + gap if lines[-1] else 0.0
        lines[-1].append((start, word))
        x = start + size
    return lines if lines[0] else []
