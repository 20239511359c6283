"""Motion scores: how much of the picture changes, per second of video.

The measure: frames are probed on a fixed time lattice (8 per second by default, so the score
does not depend on the file's frame rate), each reduced to the mean brightness and colour
(Y, U, V) of the cells of a :data:`GRID` grid (:func:`block_means`). The score of a pair of
consecutive probes is the share of cells whose brightness or colour changed by more than
:data:`BLOCK_DELTA` levels, after removing the change common to the whole picture (the median
cell change, per channel), so a fade or an exposure drift is not motion. A second's score is
the median of its pairs, so a single hard cut (one pair where everything changes) does not make
a still second "dynamic", while moving content (every pair changes) does.

Why cells rather than the share of changed pixels (the measure before): a small object moving
on a still background changes few pixels of the picture (a 60x80 block at 50 px/s in a 320x240
frame: 1-2 % of the thumbnail's pixels per probe pair, under any threshold that keeps still
shots still) but many cells (its leading and trailing edges cross several); averaging inside a
cell also cancels sensor grain, which made whole-picture pixel shares rise on noisy still shots.
Colour is measured because brightness alone misses a red object on a blue background (similar
luma). ``benchmarks/bench_adaptive_quality.py`` measures the separation on generated clips.

Why this measure rather than codec motion vectors or a scene-content score: it needs no
particular codec (motion vectors exist only for some, and are absent in intra-only files), it is
cheap (a 96-pixel thumbnail read from the luma plane of a frame decoded anyway), and its unit is
interpretable (a share of the picture). The test on generated clips with known still and moving
segments (tests/video/test_video_adaptive.py) checks that it separates them with a wide margin.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import av

#: Probes per second of video.
PROBE_HZ = 8.0
#: Width of the grey thumbnail the difference is measured on.
THUMB_WIDTH = 96
#: Cells (columns, rows) the picture is divided into for the block measure.
GRID = (16, 12)
#: Change of a cell's mean Y, U or V (0-255, beyond the picture-wide change) that marks it changed.
BLOCK_DELTA = 8.0
#: Default share of changed cells above which a second is dynamic (chosen by measurement, see
#: docs/architecture.md "Adaptive sampling"): still, grainy and fading shots score 0-0.01 (a
#: frame counter overlay alone changes one or two of 192 cells), a 60x80 object at 50 px/s in
#: 320x240 about 0.04, pans and moving shapes 0.1 and more.
DEFAULT_THRESHOLD = 0.02


#: 8-bit pixel formats whose first plane is the brightness (luma) at full resolution.
_LUMA_FIRST = frozenset(
    {"yuv420p", "yuvj420p", "yuv422p", "yuvj422p", "yuv444p", "yuvj444p", "yuv411p", "yuv410p",
     "yuv440p", "yuvj440p", "nv12", "nv21", "nv16", "gray", "yuva420p"}
)


def thumbnail(frame: "av.VideoFrame") -> np.ndarray:
    """A small grey picture of a decoded frame (about THUMB_WIDTH wide).

    Read straight from the decoder's luma plane: every step-th pixel, averaged with its right,
    lower and diagonal neighbours (tames single-pixel noise). No colour conversion and no
    scaler pass over the full frame, so it costs microseconds rather than a millisecond at 720p.
    """
    w, h = frame.width, frame.height
    step = max(1, int(round(w / THUMB_WIDTH)))
    if frame.format.name not in _LUMA_FIRST:
        tw = max(2, w // step)
        th = max(2, h // step)
        return frame.to_ndarray(format="gray", width=tw, height=th, interpolation="POINT").astype(np.float32)
    plane = frame.planes[0]
    luma = np.frombuffer(plane, dtype=np.uint8).reshape(plane.height, plane.line_size)[:h, :w]
    if step == 1:
        return luma.astype(np.float32)
    rows = (h - 1) // step
    cols = (w - 1) // step
    a = luma[0 : rows * step : step, 0 : cols * step : step].astype(np.float32)
    a += luma[1 : rows * step + 1 : step, 0 : cols * step : step]
    a += luma[0 : rows * step : step, 1 : cols * step + 1 : step]
    a += luma[1 : rows * step + 1 : step, 1 : cols * step + 1 : step]
    return a / 4.0


_PLANAR_YUV = frozenset(
    {"yuv420p", "yuvj420p", "yuv422p", "yuvj422p", "yuv444p", "yuvj444p", "yuv411p", "yuv410p",
     "yuv440p", "yuvj440p", "yuva420p"}
)
#: BT.601 RGB -> (Y, U, V) rows, offsets added separately.
_RGB_TO_YUV = np.array([[0.299, 0.587, 0.114], [-0.169, -0.331, 0.5], [0.5, -0.419, -0.081]], dtype=np.float32)


def yuv_thumbnail(frame: "av.VideoFrame") -> np.ndarray:
    """A small (3, h, w) float picture of a decoded frame: Y as :func:`thumbnail`, U and V
    read from the chroma planes at the same points (no conversion of the full frame)."""
    luma = thumbnail(frame)
    w, h = frame.width, frame.height
    if frame.format.name in _PLANAR_YUV and len(frame.planes) >= 3:
        step = max(1, int(round(w / THUMB_WIDTH)))
        rows = np.arange(luma.shape[0]) * step
        cols = np.arange(luma.shape[1]) * step
        out = np.empty((3,) + luma.shape, dtype=np.float32)
        out[0] = luma
        for c in (1, 2):
            plane = frame.planes[c]
            data = np.frombuffer(plane, dtype=np.uint8).reshape(plane.height, plane.line_size)
            r = np.minimum((rows * plane.height) // h, plane.height - 1)
            k = np.minimum((cols * plane.width) // w, plane.width - 1)
            out[c] = data[np.ix_(r, k)]
        return out
    rgb = frame.to_ndarray(format="rgb24", width=luma.shape[1], height=luma.shape[0], interpolation="POINT")
    yuv = np.tensordot(_RGB_TO_YUV, rgb.astype(np.float32), axes=([1], [2]))
    yuv[1:] += 128.0
    return yuv


def block_means(yuv: np.ndarray, grid: tuple[int, int] = GRID) -> np.ndarray:
    """Mean of each channel over each cell of a ``grid`` (columns, rows): shape (3, rows, cols)."""
    _, h, w = yuv.shape
    gx, gy = min(grid[0], w), min(grid[1], h)
    ys = np.linspace(0, h, gy + 1).astype(int)
    xs = np.linspace(0, w, gx + 1).astype(int)
    sums = np.add.reduceat(np.add.reduceat(yuv, ys[:-1], axis=1), xs[:-1], axis=2)
    area = np.outer(np.diff(ys), np.diff(xs)).astype(np.float32)
    return sums / area


def changed_blocks(a: np.ndarray, b: np.ndarray, delta: float = BLOCK_DELTA) -> float:
    """Share of cells whose Y, U or V mean changed by more than ``delta`` beyond the change
    common to the picture (the median cell change per channel: fades, exposure, white balance)."""
    if a.shape != b.shape:
        return 1.0  # a change of picture size mid-stream is a change of everything
    d = b - a
    d -= np.median(d.reshape(d.shape[0], -1), axis=1)[:, None, None]
    return float(np.mean((np.abs(d) > delta).any(axis=0)))


def signature(frame: "av.VideoFrame") -> tuple[int, int, np.ndarray]:
    """What a probe keeps of a frame: its size and its cell means (:func:`block_means`)."""
    return frame.width, frame.height, block_means(yuv_thumbnail(frame))


def signature_change(a: tuple[int, int, np.ndarray], b: tuple[int, int, np.ndarray]) -> float:
    """The motion score of a probe pair: :func:`changed_blocks`, or 1.0 when the picture size changed."""
    if a[:2] != b[:2]:
        return 1.0
    return changed_blocks(a[2], b[2])
