"""The fixed colour-name table shared by generated scenes and the classical vision models.

Scenes paint objects in these exact colours and the classical captioner and grounder name a
pixel colour by its nearest entry, so on a generated scene a named colour is exact; on a real
video it is the nearest of twelve words.
"""

from __future__ import annotations

import numpy as np

Color = tuple[int, int, int]

#: Colour name -> sRGB. Chosen far apart (the closest pair is more than 90 levels apart).
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
_TABLE = np.asarray([COLOURS[n] for n in _NAMES], dtype=np.float32)


def colour_labels(pixels: np.ndarray) -> np.ndarray:
    """Index into :data:`COLOURS` order of the nearest colour of each pixel (``(..., 3)`` RGB)."""
    flat = pixels.reshape(-1, 3).astype(np.float32)
    d = ((flat[:, None, :] - _TABLE[None, :, :]) ** 2).sum(axis=2)
    return d.argmin(axis=1).reshape(pixels.shape[:-1])


def colour_name(rgb: "np.ndarray | tuple[float, float, float]") -> str:
    """The name of the table colour nearest to one RGB value."""
    return _NAMES[int(colour_labels(np.asarray(rgb, dtype=np.float32).reshape(1, 3))[0])]


def label_name(label: int) -> str:
    return _NAMES[label]


__all__ = ["COLOURS", "colour_labels", "colour_name", "label_name"]
