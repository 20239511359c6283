"""Classical vision from the pixels (numpy only): objects, colours, motion, cuts, brightness.

Two regimes, told apart per frame:

* **plain background** (most of the border is one colour): the foreground is every pixel far
  from that colour, objects are its connected components, each with a table colour name, a
  rough shape (from its fill ratio and aspect), a size and a position. On generated scenes this
  is exact.
* **anything else** (real footage): only what holds coarsely is said: the dominant colour
  names, the brightness, and, given the next frame, whether the picture shifts (a pan) or which
  large region changes and where it goes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from ...video.colours import COLOURS, colour_labels, colour_name, label_name

Direction = Literal["left", "right", "up", "down"]

#: Channel difference from the background above which a pixel is foreground.
FOREGROUND_LEVEL = 60
#: Smallest object, as a share of the frame (smaller blobs are compression debris).
MIN_OBJECT_SHARE = 0.002
#: Size words by the side of the object's box as a share of the frame height.
SIZE_BOUNDS = ((0.17, "small"), (0.26, "medium"))
#: Displacement (share of the frame width) below which an object counts as still.
STILL_SHARE = 0.01


@dataclass(frozen=True)
class Blob:
    colour: str
    shape: str
    size: str
    #: Pixel corner box ``(x0, y0, x1, y1)``, x1/y1 exclusive.
    box: tuple[int, int, int, int]
    area: int
    #: Share of the blob's pixels whose nearest table colour is ``colour``.
    purity: float
    #: ``(horizontal, vertical)`` position words: left/centre/right, top/middle/bottom.
    position: tuple[str, str]

    @property
    def centre(self) -> tuple[float, float]:
        x0, y0, x1, y1 = self.box
        return ((x0 + x1) / 2, (y0 + y1) / 2)

    @property
    def name(self) -> str:
        return f"{self.colour} {self.shape}"


@dataclass(frozen=True)
class FrameView:
    """What one frame shows."""

    width: int
    height: int
    plain: bool
    background: str
    #: Mean luma, 0-255.
    brightness: float
    #: Dominant colour names with their share of the frame, largest first (share >= 0.2).
    dominant: list[tuple[str, float]]
    #: Objects (plain backgrounds only), left to right.
    objects: list[Blob]


def as_array(image: object) -> np.ndarray:
    arr = np.asarray(image.convert("RGB") if hasattr(image, "convert") else image)
    if arr.ndim != 3 or arr.shape[2] < 3:
        raise ValueError(f"expected an RGB image, got an array of shape {arr.shape}")
    return arr[..., :3]


def luma(arr: np.ndarray) -> np.ndarray:
    return arr[..., 0] * 0.299 + arr[..., 1] * 0.587 + arr[..., 2] * 0.114


def label_components(mask: np.ndarray) -> tuple[np.ndarray, int]:
    """4-connected components of a boolean mask: ``(labels, count)``, 0 = not in the mask.

    Min-label propagation with pointer jumping, vectorised: a few dozen numpy passes for a
    frame, no per-pixel Python loop.
    """
    h, w = mask.shape
    big = h * w
    flat_mask = mask.ravel()
    lab = np.where(flat_mask, np.arange(big), big)
    while True:
        grid = lab.reshape(h, w)
        m = grid.copy()
        np.minimum(m[1:, :], grid[:-1, :], out=m[1:, :])
        np.minimum(m[:-1, :], grid[1:, :], out=m[:-1, :])
        np.minimum(m[:, 1:], grid[:, :-1], out=m[:, 1:])
        np.minimum(m[:, :-1], grid[:, 1:], out=m[:, :-1])
        new = np.where(flat_mask, m.ravel(), big)
        # Pointer jumping: a pixel takes the label of the pixel its label points at.
        ext = np.append(new, big)
        for _ in range(4):
            ext[:-1] = ext[ext[:-1]]
        new = ext[:-1]
        if np.array_equal(new, lab):
            break
        lab = new
    uniq, inverse = np.unique(lab, return_inverse=True)
    labels = inverse.reshape(h, w).astype(np.int32) + 1
    if uniq[-1] == big:
        labels[labels == len(uniq)] = 0
        return labels, len(uniq) - 1
    return labels, len(uniq)


def _erode(mask: np.ndarray, steps: int) -> np.ndarray:
    out = mask.copy()
    for _ in range(steps):
        inner = out.copy()
        inner[1:, :] &= out[:-1, :]
        inner[:-1, :] &= out[1:, :]
        inner[:, 1:] &= out[:, :-1]
        inner[:, :-1] &= out[:, 1:]
        inner[0, :] = inner[-1, :] = False
        inner[:, 0] = inner[:, -1] = False
        out = inner
    return out


def shape_of(fill: float, aspect: float) -> str:
    """Rough shape from the fill ratio of the box and its aspect (width / height)."""
    squareish = 0.75 <= aspect <= 1.33
    if fill >= 0.88:
        return "square" if squareish else "rectangle"
    if fill >= 0.68:
        return "circle" if squareish else "oval"
    if 0.38 <= fill <= 0.62:
        return "triangle"
    return "shape"


def size_of(box: tuple[int, int, int, int], height: int) -> str:
    x0, y0, x1, y1 = box
    side = float(np.sqrt((x1 - x0) * (y1 - y0))) / height
    for bound, word in SIZE_BOUNDS:
        if side < bound:
            return word
    return "large"


def position_of(cx: float, cy: float, width: int, height: int) -> tuple[str, str]:
    horizontal = ("left", "centre", "right")[min(2, int(3 * cx / width))]
    vertical = ("top", "middle", "bottom")[min(2, int(3 * cy / height))]
    return horizontal, vertical


def position_phrase(position: tuple[str, str]) -> str:
    horizontal, vertical = position
    if (horizontal, vertical) == ("centre", "middle"):
        return "in the centre"
    if vertical == "middle":
        return f"on the {horizontal}"
    if horizontal == "centre":
        return f"at the {vertical}"
    return f"at the {vertical} {horizontal}"


def _background(arr: np.ndarray) -> tuple[np.ndarray, bool]:
    """The border's median colour, and whether the frame is a plain background with objects."""
    border = np.concatenate([arr[0], arr[-1], arr[:, 0], arr[:, -1]]).astype(np.int16)
    bg = np.median(border, axis=0)
    near_border = (np.abs(border - bg).max(axis=1) <= 30).mean()
    near_all = (np.abs(arr.astype(np.int16) - bg).max(axis=2) <= 30).mean()
    return bg, bool(near_border >= 0.9 and near_all >= 0.5)


def dominant_colours(arr: np.ndarray, min_share: float = 0.2) -> list[tuple[str, float]]:
    small = arr[:: max(1, arr.shape[0] // 48), :: max(1, arr.shape[1] // 64)]
    labels = colour_labels(small).ravel()
    counts = np.bincount(labels, minlength=len(COLOURS)) / labels.size
    order = np.argsort(-counts)
    return [(label_name(int(i)), round(float(counts[i]), 3)) for i in order if counts[i] >= min_share]


def find_objects(arr: np.ndarray, bg: np.ndarray) -> list[Blob]:
    h, w = arr.shape[:2]
    diff = np.abs(arr.astype(np.int16) - bg).max(axis=2)
    labels, count = label_components(diff > FOREGROUND_LEVEL)
    blobs: list[Blob] = []
    if count == 0:
        return blobs
    areas = np.bincount(labels.ravel(), minlength=count + 1)
    for k in range(1, count + 1):
        if areas[k] < MIN_OBJECT_SHARE * h * w:
            continue
        ys, xs = np.nonzero(labels == k)
        box = (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)
        bw, bh = box[2] - box[0], box[3] - box[1]
        mask = labels[box[1] : box[3], box[0] : box[2]] == k
        # Colour from the interior: edges carry the encoder's blend with the background.
        inner = _erode(mask, 2)
        pixels = arr[box[1] : box[3], box[0] : box[2]][inner if inner.sum() >= 4 else mask]
        colour = colour_name(np.median(pixels, axis=0))
        purity = float((colour_labels(pixels) == list(COLOURS).index(colour)).mean())
        shape = shape_of(float(areas[k]) / (bw * bh), bw / bh)
        cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
        blobs.append(Blob(colour, shape, size_of(box, h), box, int(areas[k]), round(purity, 3),
                          position_of(cx, cy, w, h)))
    return sorted(blobs, key=lambda b: (b.centre[0], b.centre[1]))


def view(image: object) -> FrameView:
    arr = as_array(image)
    h, w = arr.shape[:2]
    bg, plain = _background(arr)
    objects = find_objects(arr, bg) if plain else []
    return FrameView(w, h, plain, colour_name(bg), float(luma(arr.astype(np.float32)).mean()),
                     dominant_colours(arr), objects)


# --------------------------------------------------------------------------- two frames


@dataclass(frozen=True)
class Change:
    """What happens between a frame and the next one."""

    cut: bool
    #: Mean luma change (next minus this), when no cut.
    brightness_delta: float
    #: Objects matched across the two frames: ``(this, next, direction or None)``.
    moved: list[tuple[Blob, Blob, Direction | None]]
    #: In this frame, not in the next (plain backgrounds).
    gone: list[Blob]
    #: In the next frame, not in this one.
    new: list[Blob]
    #: Real footage: the whole picture shifts this way (a pan), or None.
    shift: Direction | None = None
    #: Real footage: the largest changing region ``(colour, size, direction or None)``.
    region: tuple[str, str, Direction | None] | None = None


def direction_of(dx: float, dy: float, still: float) -> Direction | None:
    if max(abs(dx), abs(dy)) < still:
        return None
    if abs(dx) >= abs(dy):
        return "right" if dx > 0 else "left"
    return "down" if dy > 0 else "up"


def _match(a: list[Blob], b: list[Blob]) -> tuple[list[tuple[Blob, Blob]], list[Blob], list[Blob]]:
    """Pair objects of two frames: same shape and size word, nearest centre, greedily. A colour
    change keeps the shape, so colour is not required to match (it is preferred)."""
    pairs: list[tuple[float, int, int]] = []
    for i, p in enumerate(a):
        for j, q in enumerate(b):
            if p.shape != q.shape or p.size != q.size:
                continue
            d = float(np.hypot(p.centre[0] - q.centre[0], p.centre[1] - q.centre[1]))
            pairs.append((d + (0 if p.colour == q.colour else 1e4), i, j))
    used_a: set[int] = set()
    used_b: set[int] = set()
    out = []
    for _, i, j in sorted(pairs):
        if i in used_a or j in used_b:
            continue
        used_a.add(i)
        used_b.add(j)
        out.append((a[i], b[j]))
    return out, [p for i, p in enumerate(a) if i not in used_a], [q for j, q in enumerate(b) if j not in used_b]


def _small_gray(arr: np.ndarray, width: int = 64) -> np.ndarray:
    step = max(1, arr.shape[1] // width)
    return luma(arr[::step, ::step].astype(np.float32))


def global_shift(g0: np.ndarray, g1: np.ndarray) -> tuple[float, float]:
    """Integer ``(dx, dy)`` by which the content of ``g0`` moves to reach ``g1`` (phase correlation)."""
    f0 = np.fft.fft2(g0 - g0.mean())
    f1 = np.fft.fft2(g1 - g1.mean())
    cross = f1 * np.conj(f0)
    cross /= np.abs(cross) + 1e-9
    corr = np.fft.ifft2(cross).real
    y, x = np.unravel_index(int(corr.argmax()), corr.shape)
    h, w = g0.shape
    return (x - w if x > w // 2 else x), (y - h if y > h // 2 else y)


def change(this: object, nxt: object, a: FrameView | None = None, b: FrameView | None = None) -> Change:
    arr0, arr1 = as_array(this), as_array(nxt)
    a = a or view(arr0)
    b = b or view(arr1)
    g0, g1 = _small_gray(arr0), _small_gray(arr1)
    if a.plain and b.plain:
        cut = a.background != b.background
    else:
        # A cut replaces the colours of the picture at once (a pan or a moving object keeps
        # most of them): the colour-name histograms of the two frames hardly overlap.
        cut = _histogram_distance(arr0, arr1) > 1.0
    delta = b.brightness - a.brightness
    if cut:
        return Change(True, delta, [], [], [])
    if a.plain and b.plain:
        pairs, gone, new = _match(a.objects, b.objects)
        still = STILL_SHARE * a.width
        moved = [(p, q, direction_of(q.centre[0] - p.centre[0], q.centre[1] - p.centre[1], still)) for p, q in pairs]
        return Change(False, delta, moved, gone, new)
    return Change(False, delta, [], [], [], *_coarse_motion(arr0, arr1, g0, g1))


def _histogram_distance(arr0: np.ndarray, arr1: np.ndarray) -> float:
    """L1 distance (0-2) between the colour-name histograms of two frames."""
    hists = []
    for arr in (arr0, arr1):
        small = arr[:: max(1, arr.shape[0] // 48), :: max(1, arr.shape[1] // 64)]
        labels = colour_labels(small).ravel()
        hists.append(np.bincount(labels, minlength=len(COLOURS)) / labels.size)
    return float(np.abs(hists[0] - hists[1]).sum())


def _shifted_cost(g0: np.ndarray, g1: np.ndarray, dx: int, dy: int) -> float:
    """Mean absolute difference where ``g0`` moved by ``(dx, dy)`` overlaps ``g1``."""
    h, w = g0.shape
    if abs(dx) >= w or abs(dy) >= h:
        return float("inf")
    a = g0[max(0, -dy) : h - max(0, dy), max(0, -dx) : w - max(0, dx)]
    b = g1[max(0, dy) : h - max(0, -dy), max(0, dx) : w - max(0, -dx)]
    return float(np.abs(a - b).mean())


def _coarse_motion(arr0: np.ndarray, arr1: np.ndarray, g0: np.ndarray, g1: np.ndarray) -> tuple[Direction | None, tuple[str, str, Direction | None] | None]:
    if g0.shape != g1.shape:
        return None, None
    dx, dy = global_shift(g0, g1)
    # The whole picture shifts (a pan) when moving it by the phase-correlation peak explains
    # most of the difference between the frames.
    if (dx, dy) != (0, 0) and _shifted_cost(g0, g1, dx, dy) < 0.4 * _shifted_cost(g0, g1, 0, 0):
        return direction_of(dx, dy, 1.0), None
    moving = np.abs(g0 - g1) > 25
    labels, count = label_components(moving)
    if count == 0:
        return None, None
    areas = np.bincount(labels.ravel())[1:]
    k = int(areas.argmax()) + 1
    if areas[k - 1] < 0.02 * moving.size:
        return None, None
    ys, xs = np.nonzero(labels == k)
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    step = max(1, arr1.shape[1] // 64)
    pixels = arr1[::step, ::step][:g1.shape[0], :g1.shape[1]][labels == k]
    colour = colour_name(np.median(pixels, axis=0))
    share = areas[k - 1] / moving.size
    size = "small" if share < 0.05 else "medium" if share < 0.15 else "large"
    # Where the region's content goes: the shift that best maps its box in g0 onto g1.
    best, best_cost, zero_cost = None, np.inf, np.inf
    patch = g0[y0:y1, x0:x1]
    reach = max(4, g0.shape[1] // 5)
    for sy in range(-reach, reach + 1):
        for sx in range(-reach, reach + 1):
            ty0, tx0 = y0 + sy, x0 + sx
            if ty0 < 0 or tx0 < 0 or ty0 + patch.shape[0] > g1.shape[0] or tx0 + patch.shape[1] > g1.shape[1]:
                continue
            cost = float(np.abs(g1[ty0 : ty0 + patch.shape[0], tx0 : tx0 + patch.shape[1]] - patch).mean())
            if sx == 0 and sy == 0:
                zero_cost = cost
            if cost < best_cost:
                best, best_cost = (sx, sy), cost
    direction = None
    if best is not None and best_cost < 0.7 * zero_cost:
        direction = direction_of(best[0], best[1], 1.0)
    return None, (colour, size, direction)


__all__ = [
    "Blob", "Change", "FrameView", "change", "direction_of", "dominant_colours", "find_objects",
    "global_shift", "label_components", "position_of", "position_phrase", "shape_of", "size_of",
    "view",
]
