"""Video probing, exact frame access and frame sampling (PyAV).

Every frame carries its index in the decoded stream and its presentation time in seconds.

    >>> from videoespresso.video import probe, VideoReader, parse_sampler, sample_frames
    >>> probe("clip.mp4").avg_fps  # doctest: +SKIP
    25.0
    >>> record, images = sample_frames("clip.mp4", "adaptive:1:3", out_dir="frames/")  # doctest: +SKIP
"""

from __future__ import annotations

from .errors import (
    CorruptVideoError,
    EmptyVideoError,
    FrameCountMismatchError,
    FrameOutOfRangeError,
    NoVideoStreamError,
    VideoError,
    VideoNotFoundError,
    VideoTimeoutError,
)
from ._media import check_file, path_problem
from .frames_io import SIDECAR, frame_filename, load_frames_json, parse_frame_filename, sample_frames, write_frames
from .motion import DEFAULT_THRESHOLD
from .probe import probe
from .reader import Frame, Size, VideoReader
from .samplers import (
    AdaptiveSampler,
    FpsSampler,
    Sampler,
    SamplerSpecError,
    UniformSampler,
    parse_sampler,
    uniform_indices,
)

__all__ = [
    "AdaptiveSampler",
    "CorruptVideoError",
    "DEFAULT_THRESHOLD",
    "EmptyVideoError",
    "FpsSampler",
    "Frame",
    "FrameCountMismatchError",
    "FrameOutOfRangeError",
    "NoVideoStreamError",
    "SIDECAR",
    "Sampler",
    "SamplerSpecError",
    "Size",
    "UniformSampler",
    "VideoError",
    "VideoNotFoundError",
    "VideoReader",
    "VideoTimeoutError",
    "check_file",
    "frame_filename",
    "load_frames_json",
    "parse_frame_filename",
    "parse_sampler",
    "path_problem",
    "probe",
    "sample_frames",
    "uniform_indices",
    "write_frames",
]
