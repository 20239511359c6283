"""``adaptive:static_fps:dynamic_fps``: still seconds at a low rate, moving seconds denser.

One decoding pass does everything: each second's motion score
(:mod:`videoespresso.video.motion`) is measured while the frames go by, and the frames nearest
the second's targets (``s + j / rate``, at the static or the dynamic rate) are kept until the
second's score is known; only the chosen ones are converted to pictures. So deciding and
extracting costs one decode, not a decode for the scores plus seeks for the frames.

The decoder skips the frames no other frame references (in H.264 with B-frames, about half of
them) unless one is the nearest to a target, so the pass costs less than a full decode and the
choice stays exact. ``fast=True`` skips all of them: frames are then chosen among the decoded
ones only, at a small timestamp error (reported in the parameters as ``target_error_max_s`` /
``target_error_mean_s``) for a little less decoding.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from ...schema import SampledFrames
from .. import motion
from ..reader import Frame, Output, ProgressFn, Size, VideoReader
from .base import Sampler, Source, open_source
from .fps import nearest_indices, time_grid

if TYPE_CHECKING:
    import av

    from ...config import SamplingConfig

_LATTICE, _STATIC, _DYNAMIC = 0, 1, 2


def _second_grid(n_seconds: int, duration_s: float, rate: float) -> tuple[np.ndarray, np.ndarray]:
    """Targets ``s + j / rate`` inside each second ``s`` (and before the end), with their second."""
    per_second = time_grid(1.0, rate)
    times = (np.arange(n_seconds)[:, None] + per_second[None, :]).ravel()
    seconds = np.repeat(np.arange(n_seconds), len(per_second))
    keep = times < duration_s
    return times[keep], seconds[keep]


@dataclass
class AdaptiveResult:
    indices: list[int]
    scores: np.ndarray
    dynamic: np.ndarray
    errors: list[float]
    frames: dict[int, Frame] = field(default_factory=dict)


class AdaptiveSampler(Sampler):
    """Motion-adaptive frame rate (the paper's 1 fps for still scenes, 2-4 fps for dynamic ones).

    ``threshold``: share of changed grid cells above which a second is dynamic; ``None`` uses
    :data:`videoespresso.video.motion.DEFAULT_THRESHOLD`.
    """

    name: ClassVar[str] = "adaptive"

    def __init__(
        self,
        static_fps: float = 1.0,
        dynamic_fps: float = 3.0,
        threshold: float | None = None,
        *,
        fast: bool = False,
        probe_hz: float = motion.PROBE_HZ,
    ):
        if not static_fps > 0:
            raise ValueError(f"static_fps must be positive, got {static_fps}")
        if not dynamic_fps >= static_fps:
            raise ValueError(f"dynamic_fps ({dynamic_fps}) must be at least static_fps ({static_fps})")
        if threshold is not None and not 0.0 <= threshold <= 1.0:
            raise ValueError(f"threshold is a share of grid cells in [0, 1], got {threshold}")
        if not probe_hz > 0:
            raise ValueError(f"probe_hz must be positive, got {probe_hz}")
        self.static_fps = float(static_fps)
        self.dynamic_fps = float(dynamic_fps)
        self.threshold = threshold
        self.fast = fast
        self.probe_hz = float(probe_hz)

    @classmethod
    def from_config(cls, sampling: "SamplingConfig", *, fast: bool = False) -> "AdaptiveSampler":
        """The sampler a run's ``sampling`` config section describes."""
        return cls(sampling.static_fps, sampling.dynamic_fps, sampling.motion_threshold, fast=fast)

    @property
    def effective_threshold(self) -> float:
        return motion.DEFAULT_THRESHOLD if self.threshold is None else float(self.threshold)

    @property
    def params(self) -> dict[str, Any]:
        return {
            "static_fps": self.static_fps,
            "dynamic_fps": self.dynamic_fps,
            "threshold": self.effective_threshold,
            "fast": self.fast,
            "probe_hz": self.probe_hz,
            "motion": (f"share of {motion.GRID[0]}x{motion.GRID[1]} cells whose mean Y/U/V changed by more than "
                       f"{motion.BLOCK_DELTA:g} beyond the picture-wide change, median per second"),
        }

    @property
    def spec(self) -> str:
        s = f"adaptive:{self.static_fps:g}:{self.dynamic_fps:g}"
        if self.threshold is not None:
            s += f":{self.threshold:g}"
        if self.fast:
            s += ":fast"
        return s

    # ------------------------------------------------------------------ interface

    def choose(self, reader: VideoReader) -> list[int]:
        return self.run(reader).indices

    def sample(self, source: Source) -> SampledFrames:
        with open_source(source) as reader:
            result = self.run(reader)
            return self._record(reader, result.indices, self._extra(result))

    def sample_with_frames(
        self,
        reader: VideoReader,
        *,
        size: Size = None,
        output: Output = "pil",
        progress: ProgressFn | None = None,
    ) -> tuple[SampledFrames, list[Frame]]:
        result = self.run(reader, images=True, size=size, output=output, progress=progress)
        record = self._record(reader, result.indices, self._extra(result))
        return record, [result.frames[i] for i in result.indices]

    @staticmethod
    def _extra(result: AdaptiveResult) -> dict[str, Any]:
        return {
            "dynamic_seconds": [int(s) for s in np.flatnonzero(result.dynamic)],
            "motion_scores": [round(float(x), 4) for x in result.scores],
            "target_error_max_s": round(max(result.errors, default=0.0), 6),
            "target_error_mean_s": round(float(np.mean(result.errors)) if result.errors else 0.0, 6),
        }

    # ------------------------------------------------------------------ the pass

    def run(
        self,
        reader: VideoReader,
        *,
        images: bool = False,
        size: Size = None,
        output: Output = "pil",
        progress: ProgressFn | None = None,
    ) -> AdaptiveResult:
        """Decode once; measure motion; choose (and, with ``images``, convert) the frames."""
        duration = reader.duration_s
        times = reader.frame_times
        n_sec = max(1, math.ceil(duration - 1e-9))
        lat_t = time_grid(duration, self.probe_hz)
        st_t, st_s = _second_grid(n_sec, duration, self.static_fps)
        dy_t, dy_s = _second_grid(n_sec, duration, self.dynamic_fps)
        t_all = np.concatenate([lat_t, st_t, dy_t])
        kind = np.concatenate([np.full(len(lat_t), _LATTICE), np.full(len(st_t), _STATIC), np.full(len(dy_t), _DYNAMIC)])
        sec = np.concatenate([np.floor(lat_t).astype(int), st_s, dy_s])
        order = np.lexsort((kind, t_all))
        t_all, kind, sec = t_all[order], kind[order], sec[order]

        threshold = self.effective_threshold
        # Probe-pair scores per second (a pair belongs to the second holding its midpoint).
        buckets: list[list[float]] = [[] for _ in range(n_sec)]
        last_probe: tuple[float, tuple[int, int, np.ndarray]] | None = None
        thumbs: dict[int, tuple[int, int, np.ndarray]] = {}
        # (second, kind) -> list of (target time, chosen index)
        picks: dict[tuple[int, int], list[tuple[float, int]]] = {}
        keep: dict[int, "av.VideoFrame"] = {}
        last_second_of: dict[int, int] = {}
        converted: dict[int, Frame] = {}
        chosen: list[int] = []
        errors: list[float] = []
        scores = np.zeros(n_sec)
        dynamic = np.zeros(n_sec, dtype=bool)
        next_final = 0  # first second not yet decided
        probed_until = -1.0

        def assign(p: int, index: int, frame: "av.VideoFrame") -> None:
            nonlocal last_probe, probed_until
            tau = float(t_all[p])
            if kind[p] == _LATTICE:
                thumb = thumbs.get(index)
                if thumb is None:
                    thumb = thumbs[index] = motion.signature(frame)
                if last_probe is not None:
                    mid = (last_probe[0] + tau) / 2
                    buckets[min(n_sec - 1, int(mid))].append(motion.signature_change(last_probe[1], thumb))
                last_probe = (tau, thumb)
                probed_until = tau
                return
            picks.setdefault((int(sec[p]), int(kind[p])), []).append((tau, index))
            if images:
                keep[index] = frame
                last_second_of[index] = max(last_second_of.get(index, -1), int(sec[p]))

        def finalize(upto: int, current: int | None) -> None:
            """Decide seconds ``next_final .. upto - 1``, convert their frames, free the rest."""
            nonlocal next_final
            if upto <= next_final:
                return
            for s in range(next_final, upto):
                # Median: one hard cut (a single pair where everything changes) is not motion.
                # A second without a pair (a frame gap over a second) counts as still.
                scores[s] = float(np.median(buckets[s])) if buckets[s] else 0.0
                dynamic[s] = scores[s] > threshold
                for tau, index in picks.pop((s, _DYNAMIC if dynamic[s] else _STATIC), []):
                    errors.append(abs(float(times[index]) - tau))
                    chosen.append(index)
                    if images and index not in converted:
                        converted[index] = reader.make_frame(keep[index], index, size, output)
                picks.pop((s, _STATIC if dynamic[s] else _DYNAMIC), None)
            next_final = upto
            if images:
                for index in [i for i, last in last_second_of.items() if last < upto and i != current]:
                    keep.pop(index, None)
                    last_second_of.pop(index, None)
            for index in [i for i in thumbs if i != current]:
                thumbs.pop(index)

        # Exact mode decodes the frames nearest each static and dynamic target for sure and lets
        # the decoder skip the other unreferenced frames; the motion probes take whatever frame
        # is nearest among those decoded (their timing need not be exact).
        needed = None
        if not self.fast:
            needed = set(nearest_indices(times, st_t).tolist()) | set(nearest_indices(times, dy_t).tolist())
        p = 0
        prev: tuple[int, float, "av.VideoFrame"] | None = None
        for index, frame in reader.iter_decoded(skip_nonref=True, needed=needed, progress=progress):
            t = float(times[index])
            while p < len(t_all) and t_all[p] <= t:
                tau = float(t_all[p])
                if prev is not None and (tau - prev[1]) <= (t - tau):
                    assign(p, prev[0], prev[2])
                else:
                    assign(p, index, frame)
                p += 1
            prev = (index, t, frame)
            # A second's score is final once the probe at its end has been taken.
            finalize(min(n_sec, int(math.floor(probed_until + 1e-9))), index)
        if prev is None:
            raise reader_empty(reader)
        while p < len(t_all):
            assign(p, prev[0], prev[2])
            p += 1
        finalize(n_sec, None)
        indices = sorted(set(chosen))
        return AdaptiveResult(indices=indices, scores=scores, dynamic=dynamic, errors=errors, frames=converted)


def reader_empty(reader: VideoReader) -> Exception:
    from ..errors import CorruptVideoError

    return CorruptVideoError(f"video {reader.path}: no frame could be decoded")
