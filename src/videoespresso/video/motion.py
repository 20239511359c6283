"""Motion scores: how much of the picture changes, per second of video.

The measure: frames are probed on a fixed time lattice (8 per second by default, so the score
does not depend on the file's frame rate), each shrunk to a small grey thumbnail by the scaler;
the score of a pair of consecutive probes is the fraction of thumbnail pixels whose brightness
changed by more than :data:`PIXEL_DELTA` levels. A second's score is the median of its pairs, so
a single hard cut (one pair where everything changes) does not make a still second "dynamic",
while moving content (every pair changes) does.

Why this measure rather than codec motion vectors or a scene-content score: it needs no
particular codec (motion vectors exist only for some, and are absent in intra-only files), it is
cheap (a 96-pixel thumbnail per probe, taken while the frame is decoded anyway), and its unit is
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


def thumbnail(frame: "av.VideoFrame") -> np.ndarray:
    """A small grey picture of a decoded frame, made by the scaler (no full-size RGB copy)."""
    w, h = frame.width, frame.height
    tw = min(THUMB_WIDTH, w)
    th = max(2, int(round(h * tw / max(w, 1))))
    return frame.to_ndarray(format="gray", width=tw, height=th, interpolation="AREA")


def changed_fraction(a: np.ndarray, b: np.ndarray) -> float:
    """Share of pixels whose brightness differs by more than PIXEL_DELTA."""
    diff = np.abs(a.astype(np.int16) - b.astype(np.int16))
    return float(np.mean(diff > PIXEL_DELTA))


def second_scores(pairs: list[tuple[float, float]], n_seconds: int) -> np.ndarray:
    """Median pair score per second; a pair belongs to the second holding its midpoint.
    Seconds without a pair (a frame gap longer than a second) score 0."""
    buckets: list[list[float]] = [[] for _ in range(n_seconds)]
    for mid, score in pairs:
        s = min(n_seconds - 1, max(0, int(mid)))
        buckets[s].append(score)
    return np.asarray([float(np.median(b)) if b else 0.0 for b in buckets], dtype=float)
