"""Probing: what a video file is, from its header, in milliseconds.

The frame count is the container's when it records one (MP4 does: exact). Otherwise it is
estimated from duration x average fps and marked ``num_frames_exact=False``. The header's
variable-frame-rate flag is a guess (the container's base and average rates disagree). Pass
``count_frames=True`` to count the frames (demuxing only, no decoding: fast), which makes both
exact and also reports a file whose header promises frames its data lacks.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from ..schema import VideoInfo
from ._media import (
    DEFAULT_TIMEOUT_S,
    Deadline,
    check_file,
    open_container,
    rotation_cw,
    translate_errors,
    video_stream,
)
from .errors import CorruptVideoError, EmptyVideoError

if TYPE_CHECKING:
    import av.container
    import av.video.stream


def header_info(
    container: "av.container.InputContainer", stream: "av.video.stream.VideoStream", path: Path
) -> VideoInfo:
    """VideoInfo from header fields only (no decoding); rotation is filled in by the caller."""
    tb = float(stream.time_base) if stream.time_base else 0.0
    if stream.duration and tb:
        duration = float(stream.duration * tb)
    elif container.duration:
        duration = container.duration / 1_000_000
    else:
        duration = 0.0
    avg = stream.average_rate or stream.guessed_rate or stream.base_rate
    avg_fps = float(avg) if avg else 0.0
    claimed = int(stream.frames or 0)
    if claimed:
        num_frames, exact = claimed, True
    else:
        num_frames, exact = int(round(duration * avg_fps)), False
    if claimed and duration > 0:
        avg_fps = claimed / duration
    base = stream.base_rate
    # r_frame_rate (base_rate) is the smallest rate all timestamps fit; when it disagrees with
    # the average the frame durations vary.
    is_vfr = bool(base and avg and abs(float(base) - float(avg)) > 0.01 * float(avg))
    start = float(stream.start_time * tb) if stream.start_time is not None and tb else 0.0
    ctx = stream.codec_context
    return VideoInfo(
        path=str(path),
        duration_s=round(duration, 6),
        num_frames=num_frames,
        num_frames_exact=exact,
        avg_fps=round(avg_fps, 6),
        is_vfr=is_vfr,
        width=int(ctx.width or 0),
        height=int(ctx.height or 0),
        rotation=0,
        codec=ctx.name or (stream.codec.name if stream.codec else "unknown"),
        has_audio=any(s.type == "audio" for s in container.streams),
        start_s=round(start, 6),
    )


def probe(
    path: str | os.PathLike[str],
    *,
    count_frames: bool = False,
    timeout_s: float | None = DEFAULT_TIMEOUT_S,
) -> VideoInfo:
    """Describe a video: duration, frame count, fps, VFR flag, size, rotation, codec, audio.

    Decodes the first frame (to read the rotation and prove the stream decodes at all).
    Raises a :class:`~videoespresso.errors.VideoError` subclass naming the file and the reason.
    """
    p = check_file(path)
    if count_frames:
        from .reader import VideoReader

        with VideoReader(p, timeout_s=timeout_s) as reader:
            return reader.info
    deadline = Deadline(p, timeout_s, "probing")
    container = open_container(p, timeout_s)
    try:
        stream = video_stream(container, p)
        info = header_info(container, stream, p)
        rotation = None
        with translate_errors(p, "decoding"):
            for packet in container.demux(stream):
                deadline.check()
                frames = packet.decode()
                if frames:
                    rotation = rotation_cw(frames[0].rotation)
                    break
            else:
                rotation = None
        if rotation is None:
            if info.num_frames:
                raise CorruptVideoError(
                    f"video {p}: the header promises {info.num_frames} frames but none can be decoded"
                )
            raise EmptyVideoError(f"video {p}: the video stream holds no frames")
        return info.model_copy(update={"rotation": rotation})
    finally:
        container.close()
