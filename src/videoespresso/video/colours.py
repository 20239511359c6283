"""The fixed colour-name table shared by generated scenes and the classical vision models.

Scenes paint objects in these exact colours; the classical captioner and grounder name a pixel
by hue, saturation and value bands (:func:`colour_labels`), which give each table colour its
own name and name real footage the way people do (a muted olive lawn is "green", not the
nearest table entry "brown").
"""

from __future__ import annotations

import numpy as np

Color = tuple[int, int, int]

#: Colour name -> the sRGB scenes paint it in (each well inside its own name's band).
COLOURS: dict[str, Color] = {
    "black": (20, 20, 20),
    "grey": (128, 128, 128),
    "white": (240, 240, 240),
    "red": (220, 30, 30),
    "orange": (245, 135, 20),
    "yellow": (240, 215, 30),
    "green": (30, 170, 60),
    "cyan": (30, 200, 215),
    "blue": (40, 70, 220),
    "purple": (140, 50, 180),
    "pink": (245, 140, 190),
    "brown": (125, 75, 35),
}

_NAMES = list(COLOURS)


#: Hue bands (degrees, upper bounds) of the chromatic names, in order round the wheel.
_HUES = ((15, "red"), (40, "orange"), (70, "yellow"), (170, "green"), (200, "cyan"), (260, "blue"),
         (300, "purple"), (345, "pink"), (360, "red"))


def colour_labels(pixels: np.ndarray) -> np.ndarray:
    """Index into :data:`COLOURS` order of the colour name of each pixel (``(..., 3)`` RGB).

    Dark pixels are black; weakly saturated ones grey or white by brightness; the rest are
    named by hue band, a dark orange or red being brown and a pale red pink.
    """
    rgb = pixels.reshape(-1, 3).astype(np.float32) / 255.0
    top, low = rgb.max(axis=1), rgb.min(axis=1)
    chroma = top - low
    sat = np.where(top > 0, chroma / np.maximum(top, 1e-6), 0.0)
    r, g, b = rgb[:, 0], rgb[:, 1], rgb[:, 2]
    safe = np.maximum(chroma, 1e-6)
    hue = np.where(top == r, ((g - b) / safe) % 6, np.where(top == g, (b - r) / safe + 2, (r - g) / safe + 4)) * 60
    index = {name: i for i, name in enumerate(_NAMES)}
    out = np.full(rgb.shape[0], index["grey"], dtype=np.int64)
    bounds = np.asarray([h for h, _ in _HUES], dtype=np.float32)
    names = np.asarray([index[n] for _, n in _HUES])
    chromatic = names[np.minimum(np.searchsorted(bounds, hue, side="right"), len(bounds) - 1)]
    warm = (chromatic == index["orange"]) | (chromatic == index["red"])
    chromatic = np.where(warm & (top < 0.6), index["brown"], chromatic)
    chromatic = np.where((chromatic == index["red"]) & (sat < 0.5) & (top > 0.8), index["pink"], chromatic)
    is_chromatic = (sat >= 0.25) & (chroma >= 0.12)
    out = np.where(is_chromatic, chromatic, np.where(top > 0.82, index["white"], index["grey"]))
    out = np.where(top < 0.2, index["black"], out)
    return out.reshape(pixels.shape[:-1])


def colour_name(rgb: "np.ndarray | tuple[float, float, float]") -> str:
    """The name of the table colour nearest to one RGB value."""
    return _NAMES[int(colour_labels(np.asarray(rgb, dtype=np.float32).reshape(1, 3))[0])]


def label_name(label: int) -> str:
    return _NAMES[label]


__all__ = ["COLOURS", "colour_labels", "colour_name", "label_name"]
