"""Motion scores: how much of the picture changes, per second of video.

The measure: frames are probed on a fixed time lattice (8 per second by default, so the score
does not depend on the file's frame rate), each reduced to a small grey thumbnail;
the score of a pair of consecutive probes is the fraction of thumbnail pixels whose brightness
changed by more than :data:`PIXEL_DELTA` levels. A second's score is the median of its pairs, so
a single hard cut (one pair where everything changes) does not make a still second "dynamic",
while moving content (every pair changes) does.

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
#: Brightness change (0-255) that counts a thumbnail pixel as changed (above codec noise).
PIXEL_DELTA = 12
#: Default share of changed pixels above which a second is dynamic. Generated still shots score
#: below 0.005 and moving shapes 0.04-0.15 (see the adaptive tests); a person talking in a
#: static shot typically changes a few percent of the picture.
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


def changed_fraction(a: np.ndarray, b: np.ndarray) -> float:
    """Share of pixels whose brightness differs by more than PIXEL_DELTA."""
    if a.shape != b.shape:
        return 1.0  # a change of picture size mid-stream is a change of everything
    return float(np.mean(np.abs(a - b) > PIXEL_DELTA))
