"""The contact sheet's title: words stay apart, and a long question wraps instead of running off."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
from PIL import Image

from videoespresso.select import contact_sheet

TITLE = "What happens after the shapes stop moving?"


def _frames(n: int = 2) -> list[SimpleNamespace]:
    return [SimpleNamespace(image=Image.new("RGB", (160, 90), "gray"), ref=SimpleNamespace(seconds=float(i), index=i))
            for i in range(n)]


def _ink(sheet: Image.Image, top: int, bottom: int) -> np.ndarray:
    """Columns holding any dark pixel between rows ``top`` and ``bottom``."""
    pixels = np.asarray(sheet.convert("L"))[top:bottom]
    return (pixels < 128).any(axis=0)


def _gaps(ink: np.ndarray, at_least: int) -> int:
    columns = np.flatnonzero(ink)
    return int((np.diff(columns) > at_least).sum())


def test_title_words_are_apart():
    """The default font's 2 px space rendered as nothing: "What happensafter the shapesstop"."""
    sheet = contact_sheet(_frames(), thumb=160, title=TITLE)
    # the title's first line sits above the first thumbnail (gray, 160 px wide from x = 6)
    first_thumb = next(y for y in range(sheet.height) if sheet.getpixel((10, y)) == (128, 128, 128))
    assert _gaps(_ink(sheet, 0, first_thumb), at_least=3) == len(TITLE.split()) - 1


def test_a_long_title_wraps_inside_the_sheet():
    long = " ".join([TITLE] * 4)
    sheet = contact_sheet(_frames(), thumb=160, title=long)
    first_thumb = next(y for y in range(sheet.height) if sheet.getpixel((10, y)) == (128, 128, 128))
    ink = _ink(sheet, 0, first_thumb)
    assert not ink[-6:].any()  # nothing runs into the right margin
    rows = np.asarray(sheet.convert("L"))[:first_thumb].min(axis=1) < 128
    lines = int((np.diff(rows.astype(int)) == 1).sum()) + int(rows[0])
    assert lines == 3  # wrapped to the most lines a title gets, then cut with an ellipsis
