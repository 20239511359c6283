"""Private helpers shared by probing and decoding: opening a file safely, turning FFmpeg's
errors into typed ones, and a deadline that bounds the time spent on one file."""

from __future__ import annotations

import errno
import os
import stat
import time
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

from .errors import (
    CorruptVideoError,
    EmptyVideoError,
    NoVideoStreamError,
    VideoNotFoundError,
    VideoTimeoutError,
)

if TYPE_CHECKING:
    import av.container
    import av.video.stream

#: Default wall-clock budget for one operation (probe, one decoding pass) on one file.
DEFAULT_TIMEOUT_S = 600.0
#: FFmpeg gives up a single blocked read or the opening handshake after this long.
IO_TIMEOUT_S = 30.0


def check_file(path: str | os.PathLike[str]) -> Path:
    """Fail early, and clearly, on paths FFmpeg would report confusingly."""
    p = Path(path)
    problem = path_problem(p)
    if problem is not None:
        raise VideoNotFoundError(f"video {p}: {problem}")
    if p.stat().st_size == 0:
        raise EmptyVideoError(f"video {p}: the file is empty (0 bytes)")
    return p


#: What a path is when it is not a regular file, by ``stat`` mode test.
_KINDS = (
    (stat.S_ISDIR, "a folder"),
    (stat.S_ISFIFO, "a named pipe (FIFO)"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
)


def path_problem(path: str | os.PathLike[str]) -> str | None:
    """Why ``path`` cannot be read as a file, in words; None for a readable regular file.

    Stats without opening: opening a FIFO would block until a writer comes.
    """
    p = Path(path)
    try:
        mode = p.stat().st_mode
    except PermissionError:
        # A folder on the way that the user may not enter.
        return "permission denied"
    except FileNotFoundError:
        return "a symbolic link that leads nowhere (dangling or a loop)" if p.is_symlink() else "no such file"
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return "a symbolic link that leads nowhere (dangling or a loop)"
        return exc.strerror or str(exc)
    if stat.S_ISREG(mode):
        return None if os.access(p, os.R_OK) else "permission denied (the file is not readable)"
    kind = next((name for test, name in _KINDS if test(mode)), "not a file")
    return f"not a regular file but {kind}"


class Deadline:
    """A wall-clock budget checked inside decoding loops, so no file can hold a worker forever."""

    def __init__(self, path: Path, timeout_s: float | None, what: str):
        self.path = path
        self.timeout_s = timeout_s
        self.what = what
        self.end = None if timeout_s is None else time.monotonic() + timeout_s

    def check(self) -> None:
        if self.end is not None and time.monotonic() > self.end:
            raise VideoTimeoutError(
                f"video {self.path}: {self.what} took longer than the {self.timeout_s:g} s allowed per file"
            )


def ffmpeg_reason(exc: BaseException) -> str:
    """FFmpeg's own words without the file name PyAV appends (we name the file ourselves)."""
    strerror = getattr(exc, "strerror", None)
    return str(strerror or exc).strip()


@contextmanager
def translate_errors(path: Path, what: str) -> Iterator[None]:
    """Map PyAV / FFmpeg failures to typed video errors naming the file and what was going on
    (``what`` is an activity: "opening", "decoding" ...)."""
    import av

    try:
        yield
    except (VideoTimeoutError, CorruptVideoError, EmptyVideoError, NoVideoStreamError, VideoNotFoundError):
        raise
    except av.ExitError:
        raise VideoTimeoutError(f"video {path}: {what} was interrupted by the I/O timeout (a read blocked too long)") from None
    except av.FFmpegError as exc:
        raise CorruptVideoError(f"video {path}: not a readable video ({what} failed: {ffmpeg_reason(exc)})") from None
    except (EOFError, MemoryError, OSError) as exc:
        raise CorruptVideoError(f"video {path}: not a readable video ({what} failed: {exc})") from None


def open_container(path: Path, timeout_s: float | None) -> "av.container.InputContainer":
    import av

    io_timeout = IO_TIMEOUT_S if timeout_s is None else min(IO_TIMEOUT_S, timeout_s)
    with translate_errors(path, "opening"):
        return av.open(
            str(path),
            mode="r",
            timeout=(io_timeout, io_timeout),
            # Bound the probing of junk: FFmpeg otherwise reads up to 5 s / 5 MB by default anyway;
            # these keep the defaults explicit so a huge non-video file cannot stall it.
            options={"probesize": str(5_000_000), "analyzeduration": str(5_000_000)},
        )


def video_stream(container: "av.container.InputContainer", path: Path) -> "av.video.stream.VideoStream":
    """The best video stream, ignoring cover pictures (an MP3's album art is not a video)."""
    candidates = [
        s for s in container.streams.video if not (int(s.disposition) & int(type(s.disposition).attached_pic))
    ]
    if not candidates:
        kinds = sorted({s.type for s in container.streams}) or ["none"]
        raise NoVideoStreamError(f"video {path}: the file has no video stream (streams: {', '.join(kinds)})")
    return max(candidates, key=lambda s: (s.codec_context.width or 0) * (s.codec_context.height or 0))


def rotation_cw(frame_rotation: float | int | None) -> int:
    """Degrees the picture is turned clockwise for display (0/90/180/270).

    FFmpeg's display matrix angle is counter-clockwise; the old ``rotate`` tag (and phones) speak
    clockwise, which is what users compare with.
    """
    if not frame_rotation:
        return 0
    return int(round(-float(frame_rotation) / 90.0)) * 90 % 360
