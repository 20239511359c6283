"""Typed errors of video probing and decoding.

All derive from :class:`videoespresso.errors.VideoError` (a ``UserError``): a batch run records
the message (which names the file and the reason) and goes on with the next video.
"""

from __future__ import annotations

import os

from ..errors import VideoError


class VideoNotFoundError(VideoError):
    """The path does not exist or is not a regular file."""


class EmptyVideoError(VideoError):
    """A zero-byte file, or a video stream without a single decodable frame."""


class CorruptVideoError(VideoError):
    """The file cannot be parsed or decoded (not a video, truncated, damaged)."""


class FrameCountMismatchError(CorruptVideoError):
    """The container promises more (or fewer) frames than its data actually holds."""


class NoVideoStreamError(VideoError):
    """The file is a valid media file but has no video stream (audio only, subtitles ...)."""


class VideoTimeoutError(VideoError):
    """Probing or decoding took longer than the time allowed for one file."""


class FrameOutOfRangeError(VideoError):
    """A frame index or a time outside the video was asked for."""


def describe(path: str | os.PathLike[str]) -> str:
    return f"video {os.fspath(path)!s}"


__all__ = [
    "CorruptVideoError",
    "EmptyVideoError",
    "FrameCountMismatchError",
    "FrameOutOfRangeError",
    "NoVideoStreamError",
    "VideoError",
    "VideoNotFoundError",
    "VideoTimeoutError",
]
