"""Exact frame access: by index (:meth:`VideoReader.get_frames_at`) and by time
(:meth:`VideoReader.get_frames_played_at`).

Indices and times come from a table of every frame's presentation timestamp, read by demuxing
the file once (packets only, no decoding: cheap). A frame's index is its rank in presentation
order; its time is its timestamp minus the first frame's, in seconds. Decoded frames are matched
to the table by timestamp, never by counting, so B-frame reordering, edit lists and variable
frame rates cannot shift an index.

Sorted requests are served in one forward pass: the reader seeks only when a keyframe lies
between where it is and the next wanted frame (so seeking saves work), and otherwise decodes on.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Iterable, Iterator, Literal, Sequence, Union

import numpy as np

from ..schema import FrameRef, VideoInfo
from ._media import (
    DEFAULT_TIMEOUT_S,
    Deadline,
    check_file,
    open_container,
    rotation_cw,
    translate_errors,
    video_stream,
)
from .errors import (
    CorruptVideoError,
    EmptyVideoError,
    FrameCountMismatchError,
    FrameOutOfRangeError,
)

if TYPE_CHECKING:
    import av
    from PIL.Image import Image

#: ``None`` (native size), ``(width, height)`` (exact) or an int (longest side at most this,
#: aspect kept, never enlarged).
Size = Union[None, int, tuple[int, int]]
Output = Literal["pil", "numpy"]
#: A forward seek must skip more frames than this to be worth the decoder flush it causes.
SEEK_MIN_SKIP = 4
#: Called with (seconds decoded so far, video duration in seconds).
ProgressFn = Callable[[float, float], None]


@dataclass
class Frame:
    """A decoded frame: the picture (PIL image or HxWx3 uint8 RGB array) and where it sits."""

    image: Union["Image", np.ndarray]
    ref: FrameRef

    @property
    def index(self) -> int:
        return self.ref.index

    @property
    def seconds(self) -> float:
        return self.ref.seconds


def target_size(width: int, height: int, size: Size) -> tuple[int, int] | None:
    """The output (width, height) for a requested ``size``, or None when no resize is needed."""
    if size is None:
        return None
    if isinstance(size, int):
        if size <= 0:
            raise ValueError(f"max side must be positive, got {size}")
        longest = max(width, height)
        if longest <= size:
            return None
        scale = size / longest
        return max(1, int(round(width * scale))), max(1, int(round(height * scale)))
    w, h = size
    if w <= 0 or h <= 0:
        raise ValueError(f"size must be positive, got {w}x{h}")
    return (int(w), int(h)) if (w, h) != (width, height) else None


@dataclass
class _FrameTable:
    """Every frame's presentation timestamp (stream time base), sorted, plus the keyframes."""

    pts: np.ndarray
    key_pts: np.ndarray
    time_base: float
    #: Duration of the last frame in seconds (so the video's end is known).
    last_duration_s: float
    #: Frames carry no timestamps: they are identified by their rank in the decoder's output,
    #: times are rank / average fps, and every request decodes from the start.
    by_order: bool = False

    def __post_init__(self) -> None:
        self.first = int(self.pts[0])
        self.times = np.round((self.pts - self.first) * self.time_base, 6)
        self.times.setflags(write=False)

    def seconds(self, i: int) -> float:
        return float(self.times[i])

    def index_of(self, pts: int) -> int | None:
        i = int(np.searchsorted(self.pts, pts))
        if i < len(self.pts) and self.pts[i] == pts:
            return i
        return None


class VideoReader:
    """Random and sequential access to the frames of one video file.

    >>> with VideoReader("clip.mp4") as r:  # doctest: +SKIP
    ...     frames = r.get_frames_at([0, 48, 96], size=448)
    ...     [f.ref.seconds for f in frames]
    [0.0, 1.92, 3.84]

    Not thread-safe: use one reader per thread (readers are cheap to open).

    ``timeout_s`` bounds each operation (opening, indexing, one decoding pass) on this file;
    ``strict`` makes a container whose header promises more frames than its data holds an error
    (:class:`FrameCountMismatchError`) instead of silently using the frames that exist.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        timeout_s: float | None = DEFAULT_TIMEOUT_S,
        strict: bool = True,
        threads: bool = True,
    ):
        self.path = check_file(path)
        self.timeout_s = timeout_s
        self.strict = strict
        self._threads = threads
        self._container = open_container(self.path, timeout_s)
        try:
            self._stream = video_stream(self._container, self.path)
            if threads:
                self._stream.thread_type = "AUTO"
        except BaseException:
            self._container.close()
            raise
        self._table: _FrameTable | None = None
        self._info: VideoInfo | None = None
        self._rotation: int | None = None
        #: Presentation timestamp of the last frame the decoder returned (None: unknown).
        self._pos: int | None = None
        self._frames: Iterator["av.VideoFrame"] | None = None
        self._active_deadline: Deadline | None = None
        #: Number of demuxer seeks so far (each one flushes the decoder).
        self.seeks = 0
        #: Keyframes a seek does not land on (the demuxer picks an earlier one).
        self._unseekable: set[int] = set()
        #: While set, packets whose timestamp is not in it may be skipped by the decoder.
        self._needed_pts: set[int] | None = None
        #: Timestamps of frames possibly skipped since the last seek (reaching one needs a seek).
        self._maybe_skipped: set[int] = set()

    # ------------------------------------------------------------------ lifecycle

    def close(self) -> None:
        self._container.close()

    def __enter__(self) -> "VideoReader":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"VideoReader({str(self.path)!r})"

    # ------------------------------------------------------------------ metadata

    def _deadline(self, what: str) -> Deadline:
        return Deadline(self.path, self.timeout_s, what)

    @property
    def table(self) -> _FrameTable:
        if self._table is None:
            self._table = self._build_table()
        return self._table

    def _build_table(self) -> _FrameTable:
        stream = self._stream
        tb = float(stream.time_base) if stream.time_base else 1.0 / 90000
        deadline = self._deadline("indexing")
        pts: list[int] = []
        key_pts: list[int] = []
        durations: list[int] = []
        # Packets before the first keyframe (a file cut mid-GOP) cannot be decoded: they are
        # counted against the header but left out of the table.
        leading: list[int] = []
        packets = 0
        missing = False
        with translate_errors(self.path, "indexing"):
            self._seek(0, key=False)
            # A file that cannot seek was reopened: the stream object taken above belongs to the
            # closed container, and demuxing it reads freed memory.
            stream = self._stream
            for packet in self._container.demux(stream):
                deadline.check()
                if packet.size == 0 or packet.is_discard:
                    continue
                packets += 1
                ts = packet.pts if packet.pts is not None else packet.dts
                if ts is None:
                    missing = True
                    break
                if not key_pts and not packet.is_keyframe:
                    leading.append(ts)
                    continue
                pts.append(ts)
                durations.append(packet.duration or 0)
                if packet.is_keyframe:
                    key_pts.append(ts)
        if missing:
            return self._table_by_decoding(tb)
        if not key_pts:
            # No packet is flagged as a keyframe (some intra-only or raw streams): everything is
            # decodable from the start, which is then the only seek point.
            pts, durations, key_pts = leading, [0] * len(leading), leading[:1]
        elif any(ts < key_pts[0] for ts in pts):
            # Open-GOP leading pictures of the first keyframe refer to frames before the cut.
            keep = [i for i, ts in enumerate(pts) if ts >= key_pts[0]]
            pts, durations = [pts[i] for i in keep], [durations[i] for i in keep]
        if not pts:
            raise EmptyVideoError(f"video {self.path}: the video stream holds no frames")
        order = np.argsort(np.asarray(pts, dtype=np.int64), kind="stable")
        sorted_pts = np.asarray(pts, dtype=np.int64)[order]
        if len(np.unique(sorted_pts)) != len(sorted_pts):
            # Duplicate timestamps cannot be told apart when matching decoded frames: identify
            # frames by their rank in the decoder's output instead.
            return self._table_by_decoding(tb)
        last_dur = durations[int(order[-1])]
        if not last_dur and len(sorted_pts) > 1:
            last_dur = int(np.median(np.diff(sorted_pts)))
        table = _FrameTable(
            pts=sorted_pts,
            key_pts=np.asarray(sorted(key_pts), dtype=np.int64),
            time_base=tb,
            last_duration_s=float(last_dur * tb) if last_dur else 0.0,
        )
        claimed = int(stream.frames or 0)
        if self.strict and claimed and claimed != packets:
            raise FrameCountMismatchError(
                f"video {self.path}: the container claims {claimed} frames but its data holds "
                f"{packets} (truncated or damaged file)"
            )
        return table

    def _table_by_decoding(self, tb: float) -> _FrameTable:
        """Fallback for streams whose packets carry no usable timestamps (raw elementary
        streams, some AVI files): count the frames by decoding once; time = rank / fps."""
        deadline = self._deadline("indexing by decoding")
        count = 0
        self._seek(0, key=False)
        with translate_errors(self.path, "indexing"):
            for packet in self._container.demux(self._stream):
                deadline.check()
                count += len(packet.decode())
        self._seek(0, key=False)
        if not count:
            raise EmptyVideoError(f"video {self.path}: the video stream holds no decodable frames")
        rate = float(self._stream.average_rate or self._stream.guessed_rate or 25)
        step = 1.0 / rate / tb
        pts = np.round(np.arange(count) * step).astype(np.int64)
        return _FrameTable(pts=pts, key_pts=pts[:1], time_base=tb, last_duration_s=1.0 / rate, by_order=True)

    @property
    def num_frames(self) -> int:
        return len(self.table.pts)

    @property
    def frame_times(self) -> np.ndarray:
        """Presentation time in seconds (from the first frame) of every frame, by index."""
        return self.table.times

    @property
    def duration_s(self) -> float:
        """From the first frame's start to the last frame's end."""
        t = self.table
        return float(round(t.seconds(len(t.pts) - 1) + t.last_duration_s, 6))

    @property
    def rotation(self) -> int:
        """Clockwise degrees applied for display (decoded frames are returned upright)."""
        if self._rotation is None:
            self.get_frames_at([0], size=(16, 16))
        return self._rotation or 0

    @property
    def info(self) -> VideoInfo:
        """Header facts plus exact counts from the frame table (the reader always builds it)."""
        if self._info is None:
            from .probe import header_info

            t = self.table
            n = len(t.pts)
            duration = self.duration_s
            deltas = np.diff(t.pts) * t.time_base if n > 1 else np.zeros(0)
            base = header_info(self._container, self._stream, self.path)
            self._info = base.model_copy(
                update=dict(
                    duration_s=duration,
                    num_frames=n,
                    num_frames_exact=True,
                    avg_fps=float(round(n / duration, 6)) if duration > 0 else base.avg_fps,
                    is_vfr=is_variable(deltas),
                    rotation=self.rotation,
                )
            )
        return self._info

    def refs(self, indices: Iterable[int]) -> list[FrameRef]:
        """Frame references (index + seconds) without decoding anything."""
        t = self.table
        out = []
        for i in indices:
            self._check_index(i)
            out.append(FrameRef(index=int(i), seconds=float(t.seconds(int(i)))))
        return out

    # ------------------------------------------------------------------ lookups

    def _check_index(self, i: int) -> None:
        n = self.num_frames
        if not isinstance(i, (int, np.integer)) or i < 0 or i >= n:
            raise FrameOutOfRangeError(f"video {self.path}: frame index {i!r} is out of range (the video has {n} frames: 0..{n - 1})")

    def index_played_at(self, seconds: float) -> int:
        """Index of the frame on screen at ``seconds`` (the last one starting at or before it)."""
        end = self.duration_s
        if not (0.0 <= seconds < end or (seconds == 0.0 and end == 0.0)):
            raise FrameOutOfRangeError(f"video {self.path}: time {seconds!r} s is outside the video (0 to {end:g} s)")
        times = self.frame_times
        return max(0, int(np.searchsorted(times, seconds + 1e-9, side="right")) - 1)

    def index_nearest(self, seconds: float) -> int:
        """Index of the frame whose start time is nearest ``seconds`` (ties go to the earlier)."""
        times = self.frame_times
        i = int(np.searchsorted(times, seconds))
        if i <= 0:
            return 0
        if i >= len(times):
            return len(times) - 1
        return i - 1 if seconds - times[i - 1] <= times[i] - seconds else i

    # ------------------------------------------------------------------ decoding

    def get_frames_at(
        self,
        indices: Sequence[int],
        *,
        size: Size = None,
        output: Output = "pil",
        progress: ProgressFn | None = None,
    ) -> list[Frame]:
        """Decode the frames at ``indices`` (any order, repeats allowed); returned in request
        order. One forward pass over the sorted unique indices."""
        if output not in ("pil", "numpy"):
            raise ValueError(f"output must be 'pil' or 'numpy', got {output!r}")
        target_size(2, 2, size)  # reject a bad size before decoding anything
        for i in indices:
            self._check_index(i)
        wanted = sorted({int(i) for i in indices})
        decoded: dict[int, Frame] = {}
        for index, frame in self._decode_indices(wanted, progress=progress):
            decoded[index] = self.make_frame(frame, index, size, output)
        missing = [i for i in wanted if i not in decoded]
        if missing:
            raise CorruptVideoError(
                f"video {self.path}: frames {missing[:5]}{' ...' if len(missing) > 5 else ''} could not be decoded"
            )
        return [decoded[int(i)] for i in indices]

    def get_frames_played_at(
        self,
        seconds: Sequence[float],
        *,
        size: Size = None,
        output: Output = "pil",
        progress: ProgressFn | None = None,
    ) -> list[Frame]:
        """The frames on screen at each time in ``seconds`` (request order kept)."""
        return self.get_frames_at([self.index_played_at(float(s)) for s in seconds], size=size, output=output, progress=progress)

    def make_frame(self, frame: "av.VideoFrame", index: int, size: Size = None, output: Output = "pil") -> Frame:
        """A :class:`Frame` from a decoded PyAV frame at ``index`` (see :meth:`convert`)."""
        image = self.convert(frame, size=size, output=output)
        return Frame(image=image, ref=FrameRef(index=index, seconds=float(self.table.seconds(index))))

    def convert(self, frame: "av.VideoFrame", *, size: Size = None, output: Output = "pil") -> Union["Image", np.ndarray]:
        """RGB picture of a decoded frame, resized by the scaler while converting, turned upright."""
        if self._rotation is None:
            self._rotation = rotation_cw(frame.rotation)
        rot = self._rotation
        w, h = frame.width, frame.height
        disp_w, disp_h = (h, w) if rot in (90, 270) else (w, h)
        target = target_size(disp_w, disp_h, size)
        if target is not None and rot in (90, 270):
            target = (target[1], target[0])
        if target is None:
            arr = frame.to_ndarray(format="rgb24")
        else:
            arr = frame.to_ndarray(format="rgb24", width=target[0], height=target[1], interpolation="AREA")
        if rot:
            arr = np.ascontiguousarray(np.rot90(arr, k=-(rot // 90)))
        if output == "numpy":
            return arr
        if output != "pil":
            raise ValueError(f"output must be 'pil' or 'numpy', got {output!r}")
        from PIL import Image

        return Image.fromarray(arr)

    def _seek(self, offset: int, *, key: bool) -> bool:
        """Position the demuxer. Returns False when the file cannot seek; it is then reopened,
        which puts it back at the start (raw elementary streams, pipes)."""
        import av

        self._pos = None
        self._frames = None
        self._maybe_skipped.clear()
        self.seeks += 1
        try:
            if key:
                self._container.seek(offset, backward=True, any_frame=False, stream=self._stream)
            else:
                self._container.seek(0, backward=True, any_frame=False)
            return True
        except av.FFmpegError:
            self._container.close()
            self._container = open_container(self.path, self.timeout_s)
            self._stream = video_stream(self._container, self.path)
            if self._threads:
                self._stream.thread_type = "AUTO"
            return False

    def _worth_seeking(self, key_i: int) -> bool:
        """Whether keyframe ``key_i`` lies far enough ahead of the decoder that seeking skips
        more work than it costs (a seek flushes the decoder, which must then refill)."""
        if self._pos is None or key_i in self._unseekable:
            return False
        t = self.table
        key = int(t.key_pts[key_i])
        if key <= self._pos:
            return False
        between = int(np.searchsorted(t.pts, key)) - int(np.searchsorted(t.pts, self._pos, side="right"))
        return between > SEEK_MIN_SKIP

    def _next_frames(self) -> Iterator["av.VideoFrame"]:
        """The decoder's output from the current position. Kept between calls: a packet may
        yield several frames, and stopping after the first must not lose the others."""
        if self._frames is None:
            self._frames = self._decode_from_here()
        return self._frames

    def _decode_from_here(self) -> Iterator["av.VideoFrame"]:
        ctx = self._stream.codec_context
        for packet in self._container.demux(self._stream):
            if self._active_deadline is not None:
                self._active_deadline.check()
            needed = self._needed_pts
            if needed is not None and packet.size:
                # Frames no other frame references (most B-frames) cost decoding time but are
                # only worth it when wanted: the decoder drops the others unseen. The setting is
                # read per packet (and copied to frame threads when the packet is submitted).
                skip = packet.pts is not None and packet.pts not in needed
                ctx.skip_frame = "NONREF" if skip else "DEFAULT"
                if skip:
                    self._maybe_skipped.add(int(packet.pts))
            for frame in packet.decode():
                if frame.pts is not None:
                    self._maybe_skipped.discard(frame.pts)
                yield frame

    def _decode_indices(self, wanted: list[int], progress: ProgressFn | None = None) -> Iterator[tuple[int, "av.VideoFrame"]]:
        """Yield (index, frame) for the sorted unique ``wanted`` indices, in one forward pass
        that seeks only where a keyframe sits between the current position and the next
        wanted frame."""
        if not wanted:
            return
        t = self.table
        if t.by_order:
            wanted_set = set(wanted)
            for index, frame in self.iter_decoded(progress=progress):
                if index in wanted_set:
                    yield index, frame
                if index >= wanted[-1]:
                    return
            return
        duration = self.duration_s
        targets = t.pts[np.asarray(wanted)]
        n = len(targets)
        k = 0
        allow_seek = True
        self._active_deadline = self._deadline("decoding")
        self._needed_pts = {int(x) for x in targets}
        try:
            with translate_errors(self.path, "decoding"):
                while k < n:
                    target = targets[k]
                    key_i = max(0, int(np.searchsorted(t.key_pts, target, side="right")) - 1)
                    check_landing = False
                    behind = self._pos is None or self._pos >= target or int(target) in self._maybe_skipped
                    if behind or (allow_seek and self._worth_seeking(key_i)):
                        if allow_seek:
                            # Seeking to the wanted frame's own timestamp lets the demuxer pick
                            # the keyframe before it by its own rules (MP4 and MKV differ).
                            check_landing = self._seek(int(target), key=True)
                            allow_seek = check_landing
                        else:
                            self._seek(0, key=False)
                    for frame in self._next_frames():
                        if frame.pts is None:
                            continue
                        if check_landing:
                            check_landing = False
                            if frame.pts < t.key_pts[key_i]:
                                # Landed on an earlier keyframe: correct, but seeking for this
                                # keyframe again would loop.
                                self._unseekable.add(key_i)
                            if frame.pts > target:
                                # The demuxer landed past the wanted frame: decode from the start
                                # instead, which is always correct.
                                allow_seek = False
                                self._seek(0, key=False)
                                break
                        self._pos = frame.pts
                        if progress is not None:
                            progress(float((frame.pts - t.first) * t.time_base), duration)
                        while k < n and targets[k] < frame.pts:
                            k += 1  # never produced by the decoder; the caller reports it
                        if k < n and frame.pts == targets[k]:
                            yield wanted[k], frame
                            k += 1
                        if k >= n:
                            break
                        if allow_seek:
                            nxt = max(0, int(np.searchsorted(t.key_pts, targets[k], side="right")) - 1)
                            if self._worth_seeking(nxt):
                                break  # a keyframe nearer the next wanted frame: seek there
                    else:
                        self._frames = None
                        break  # end of stream
        finally:
            self._active_deadline = None
            self._needed_pts = None
            self._stream.codec_context.skip_frame = "DEFAULT"

    def iter_decoded(
        self,
        *,
        skip_nonref: bool = False,
        needed: Iterable[int] | None = None,
        progress: ProgressFn | None = None,
    ) -> Iterator[tuple[int, "av.VideoFrame"]]:
        """Frames from the start, as (index, PyAV frame), in presentation order.

        All of them by default. With ``skip_nonref``, the decoder skips frames that no other
        frame references (cheap to skip, about half the frames of H.264 with B-frames), except
        those whose index is in ``needed``: the result is then exact for ``needed`` and a
        subset elsewhere.
        """
        t = self.table
        duration = self.duration_s
        if t.by_order:
            skip_nonref = False  # skipped frames would shift the ranks that identify frames
        with translate_errors(self.path, "decoding"):
            self._seek(0, key=False)
            ctx = self._stream.codec_context
            if skip_nonref and needed is not None:
                self._needed_pts = {int(t.pts[i]) for i in needed}
            ctx.skip_frame = "NONREF" if skip_nonref and needed is None else "DEFAULT"
            self._active_deadline = self._deadline("decoding")
            try:
                rank = -1
                for frame in self._decode_from_here():
                    rank += 1
                    if t.by_order:
                        index: int | None = rank if rank < len(t.pts) else None
                    else:
                        index = t.index_of(frame.pts) if frame.pts is not None else None
                    if index is None:
                        continue
                    self._pos = int(t.pts[index])
                    if progress is not None:
                        progress(float(t.times[index]), duration)
                    yield index, frame
            finally:
                self._active_deadline = None
                self._needed_pts = None
                self._stream.codec_context.skip_frame = "DEFAULT"
                self._pos = None
                self._frames = None


def is_variable(deltas_s: np.ndarray) -> bool:
    """Whether frame durations vary beyond timestamp rounding (1 ms or 2% of the typical one)."""
    if len(deltas_s) < 2:
        return False
    typical = float(np.median(deltas_s))
    tolerance = max(0.001, 0.02 * typical)
    return bool(np.any(np.abs(deltas_s - typical) > tolerance))
