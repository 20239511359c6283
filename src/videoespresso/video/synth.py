"""Synthetic test videos, encoded with PyAV, so no test needs a video from outside.

Content is built from segments (a static shot, moving shapes, a hard cut to a new shot) whose
boundaries are known, so motion-dependent code can be checked against the truth. Every frame can
carry its own index as a Gray-coded barcode in the top-left corner (:func:`read_frame_number`
reads it back), which lets tests prove that a decoded frame really is the frame asked for.

Defaults are small (160x120, 25 fps, a few seconds) so a video is made in a fraction of a second.

    >>> from videoespresso.video.synth import make_test_video
    >>> clip = make_test_video("/tmp/clip.mp4", kind="static_moving")  # doctest: +SKIP
    >>> clip.frame_times[:3]  # doctest: +SKIP
    [0.0, 0.04, 0.08]
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Callable, Literal, Sequence, Union

import numpy as np

Color = tuple[int, int, int]

#: Encoder used for each short codec name; any other name is passed to PyAV as an encoder name.
ENCODERS: dict[str, str] = {"h264": "libx264", "hevc": "libx265", "vp9": "libvpx-vp9", "mpeg4": "mpeg4"}

BARCODE_BITS = 16
_WHITE, _BLACK = 235, 16


@dataclass(frozen=True)
class StaticShot:
    """A still shot: a textured background of one hue; nothing moves."""

    seconds: float
    color: Color = (60, 110, 170)
    seed: int = 0


@dataclass(frozen=True)
class MovingShapes:
    """Coloured squares bouncing across a static textured background.

    ``speed`` is in frame widths per second; the default moves each square a clearly visible
    distance between frames an eighth of a second apart.
    """

    seconds: float
    shapes: int = 3
    speed: float = 0.6
    color: Color = (90, 140, 90)
    seed: int = 1


@dataclass(frozen=True)
class HardCut:
    """An abrupt change to a new static shot in a contrasting colour (a shot boundary)."""

    seconds: float
    color: Color = (200, 70, 50)
    seed: int = 2


@dataclass(frozen=True)
class MovingBlock:
    """One solid block of ``block`` (width, height) pixels sweeping left to right (bouncing) at
    ``speed`` pixels per second over a still textured background: a small object in a fixed
    camera (the surveillance case)."""

    seconds: float
    block: tuple[int, int] = (60, 80)
    speed: float = 50.0
    block_color: Color = (210, 40, 40)
    color: Color = (60, 110, 170)
    seed: int = 0


@dataclass(frozen=True)
class Pan:
    """The camera pans: a textured scene twice the frame width slides by ``speed`` pixels/second."""

    seconds: float
    speed: float = 40.0
    color: Color = (120, 100, 80)
    seed: int = 3


@dataclass(frozen=True)
class Fade:
    """A still shot whose brightness fades linearly by ``delta`` levels over the segment (nothing
    moves: a motion measure should not call it dynamic)."""

    seconds: float
    delta: float = -80.0
    color: Color = (140, 150, 160)
    seed: int = 4


@dataclass(frozen=True)
class Drawn:
    """Frames drawn by ``draw(t)`` (seconds from the segment's start -> an ``(h, w, 3)`` uint8
    array): scenes whose content is described elsewhere (:mod:`videoespresso.video.scenes`)."""

    seconds: float
    draw: Callable[[float], np.ndarray]
    kind: str = "drawn"


Segment = Union[StaticShot, MovingShapes, HardCut, MovingBlock, Pan, Fade, Drawn]


@dataclass
class SynthVideo:
    """What was written: the file plus the ground truth tests compare against."""

    path: Path
    #: Presentation time of every frame, in seconds from the first frame, in order.
    frame_times: list[float]
    fps: float
    size: tuple[int, int]
    codec: str
    vfr: bool
    has_audio: bool
    barcode: bool
    #: ``(kind, start_s, end_s)`` per segment, kind in {"static", "moving", "cut", "fade"}.
    segments: list[tuple[str, float, float]] = field(default_factory=list)

    @property
    def num_frames(self) -> int:
        return len(self.frame_times)

    @property
    def duration_s(self) -> float:
        """End of the last frame (its start plus one nominal frame duration)."""
        return self.frame_times[-1] + 1.0 / self.fps if self.frame_times else 0.0


# --------------------------------------------------------------------------- rendering


def _texture(color: Color, size: tuple[int, int], seed: int) -> np.ndarray:
    """A blocky, smooth-ish texture around ``color`` so frames are not flat (flat frames are an
    unrealistically easy case for both the encoder and a motion measure)."""
    w, h = size
    rng = np.random.default_rng(seed)
    cell = max(4, w // 20)
    low = rng.integers(-35, 36, size=((h + cell - 1) // cell, (w + cell - 1) // cell, 1))
    tex = np.repeat(np.repeat(low, cell, axis=0), cell, axis=1)[:h, :w]
    return np.clip(np.asarray(color, dtype=np.int16)[None, None, :] + tex, 0, 255).astype(np.uint8)


def _bounce(pos: float, span: float) -> float:
    """Position on a segment of length ``span`` of a point moving with wrap-around ``pos``."""
    if span <= 0:
        return 0.0
    p = pos % (2 * span)
    return p if p <= span else 2 * span - p


class _Renderer:
    def __init__(self, segment: Segment, size: tuple[int, int]):
        self.segment = segment
        self.size = size
        if isinstance(segment, Drawn):
            return
        if isinstance(segment, Pan):
            self.background = _texture(segment.color, (2 * size[0], size[1]), segment.seed)
        else:
            self.background = _texture(segment.color, size, segment.seed)
        if isinstance(segment, MovingShapes):
            rng = np.random.default_rng(segment.seed + 1000)
            w, h = size
            self.side = max(4, h // 4)
            self.starts = rng.uniform(0, 1, size=(segment.shapes, 2))
            self.dirs = rng.uniform(0.6, 1.0, size=(segment.shapes, 2)) * rng.choice([-1, 1], size=(segment.shapes, 2))
            self.colors = rng.integers(0, 256, size=(segment.shapes, 3)).astype(np.uint8)

    def render(self, t: float) -> np.ndarray:
        seg = self.segment
        w, h = self.size
        if isinstance(seg, Drawn):
            return seg.draw(t)
        if isinstance(seg, MovingBlock):
            img = self.background.copy()
            bw, bh = seg.block
            x = int(round(_bounce(seg.speed * t, w - bw)))
            y = (h - bh) // 2
            img[y : y + bh, x : x + bw] = seg.block_color
            return img
        if isinstance(seg, Pan):
            x = int(round(_bounce(seg.speed * t, w)))
            return self.background[:, x : x + w].copy()
        if isinstance(seg, Fade):
            level = seg.delta * (t / seg.seconds if seg.seconds > 0 else 1.0)
            return np.clip(self.background.astype(np.float32) + level, 0, 255).astype(np.uint8)
        if not isinstance(seg, MovingShapes):
            return self.background.copy()
        img = self.background.copy()
        w, h = self.size
        s = self.side
        for (sx, sy), (dx, dy), col in zip(self.starts, self.dirs, self.colors):
            x = int(_bounce(sx * (w - s) + dx * seg.speed * w * t, w - s))
            y = int(_bounce(sy * (h - s) + dy * seg.speed * w * t, h - s))
            img[y : y + s, x : x + s] = col
        return img


def _barcode_block(width: int) -> float:
    return width / 40.0


def _draw_barcode(img: np.ndarray, number: int) -> None:
    block = _barcode_block(img.shape[1])
    gray = number ^ (number >> 1)
    b = int(round(block))
    for bit in range(BARCODE_BITS):
        x0 = int(round(bit * block))
        img[0:b, x0 : x0 + b] = _WHITE if (gray >> bit) & 1 else _BLACK


def read_frame_number(image: "object") -> int:
    """Read back the frame index a synthetic frame carries (PIL image or HxWx3 uint8 array).

    Works on proportionally resized frames down to about 160 px wide.
    """
    arr = np.asarray(image)
    if arr.ndim == 3:
        arr = arr[..., :3].mean(axis=2)
    block = _barcode_block(arr.shape[1])
    gray = 0
    for bit in range(BARCODE_BITS):
        cx = (bit + 0.5) * block
        cy = 0.5 * block
        r = max(1, int(block / 4))
        patch = arr[max(0, int(cy) - r) : int(cy) + r, max(0, int(cx) - r) : int(cx) + r]
        if patch.mean() > (_WHITE + _BLACK) / 2:
            gray |= 1 << bit
    number = gray
    shift = 1
    while (gray >> shift) > 0:
        number ^= gray >> shift
        shift += 1
    return number


def _segment_kind(seg: Segment) -> str:
    if isinstance(seg, Drawn):
        return seg.kind
    return {StaticShot: "static", MovingShapes: "moving", HardCut: "cut", MovingBlock: "moving",
            Pan: "moving", Fade: "fade"}[type(seg)]


def _vfr_times(n_seconds: float, fps: float, seed: int = 7) -> list[float]:
    """Irregular frame times: durations between 0.4 and 2.2 nominal frames, on a 1 ms grid."""
    rng = np.random.default_rng(seed)
    times: list[float] = []
    t = 0.0
    while t < n_seconds - 1e-9:
        times.append(round(t, 3))
        t = round(t + max(0.001, round(rng.uniform(0.4, 2.2) / fps, 3)), 3)
    return times


# --------------------------------------------------------------------------- encoding


def make_video(
    path: str | os.PathLike[str],
    segments: Sequence[Segment],
    *,
    fps: float = 25.0,
    size: tuple[int, int] = (160, 120),
    codec: str = "h264",
    vfr: bool = False,
    audio: bool = False,
    barcode: bool = True,
    gop: int | None = None,
    crf: int = 20,
    preset: str = "veryfast",
    faststart: bool = False,
    grain: int = 0,
    pix_fmt: str = "yuv420p",
) -> SynthVideo:
    """Encode ``segments`` one after another into ``path`` (container chosen by the suffix).

    ``vfr`` makes frame durations irregular (a 1 ms time base); ``audio`` adds an AAC sine tone;
    ``gop`` is the keyframe interval in frames (default two seconds, as streaming encoders use);
    ``faststart`` puts the MP4 index before the data; ``grain`` adds per-frame sensor-like noise
    of that amplitude (levels), which makes the file as costly to decode as camera footage;
    ``pix_fmt`` picks the stored pixel format (e.g. ``yuv420p10le`` for 10-bit).
    """
    import av

    path = Path(path)
    w, h = size
    if w % 2 or h % 2:
        raise ValueError(f"size must be even (chroma subsampling), got {w}x{h}")
    if not segments:
        raise ValueError("at least one segment is needed")
    total = float(sum(s.seconds for s in segments))
    if vfr:
        times = _vfr_times(total, fps)
    else:
        n = int(round(total * fps))
        times = [i / fps for i in range(n)]

    bounds: list[tuple[str, float, float]] = []
    start = 0.0
    for seg in segments:
        bounds.append((_segment_kind(seg), start, start + seg.seconds))
        start += seg.seconds
    renderers = [_Renderer(seg, size) for seg in segments]
    # A small bank of noise fields, cycled: fresh noise per frame without its generation cost.
    noise_bank = (
        np.random.default_rng(99).integers(-grain, grain + 1, size=(7, h, w, 1), dtype=np.int16) if grain else None
    )

    encoder = ENCODERS.get(codec, codec)
    path.parent.mkdir(parents=True, exist_ok=True)
    container_options = {"movflags": "+faststart"} if faststart else {}
    rate = Fraction(fps).limit_denominator(1001)
    with av.open(str(path), mode="w", options=container_options) as out:
        stream = out.add_stream(encoder, rate=rate)
        stream.width, stream.height = w, h
        stream.pix_fmt = pix_fmt
        options: dict[str, str] = {}
        gop_frames = gop if gop is not None else max(1, int(round(2 * fps)))
        stream.codec_context.gop_size = gop_frames
        if encoder == "libx264":
            options.update(preset=preset, crf=str(crf), keyint=str(gop_frames), **{"scenecut": "0"})
        stream.options = options
        time_base = Fraction(1, 1000) if vfr else Fraction(1, 1) / rate
        stream.codec_context.time_base = time_base
        astream = None
        if audio:
            astream = out.add_stream("aac", rate=16000, layout="mono")

        def mux_audio(until_s: float, state: dict[str, int]) -> None:
            assert astream is not None
            while state["samples"] / 16000 < until_s:
                n = 1024
                t = (np.arange(state["samples"], state["samples"] + n) / 16000).astype(np.float32)
                samples = (0.2 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)[None, :]
                frame = av.AudioFrame.from_ndarray(samples, format="fltp", layout="mono")
                frame.sample_rate = 16000
                frame.pts = state["samples"]
                frame.time_base = Fraction(1, 16000)
                state["samples"] += n
                out.mux(astream.encode(frame))

        audio_state = {"samples": 0}
        seg_i = 0
        for i, t in enumerate(times):
            while seg_i < len(bounds) - 1 and t >= bounds[seg_i][2] - 1e-9:
                seg_i += 1
            img = renderers[seg_i].render(t - bounds[seg_i][1])
            if noise_bank is not None:
                img = np.clip(img.astype(np.int16) + noise_bank[i % len(noise_bank)], 0, 255).astype(np.uint8)
            if barcode:
                _draw_barcode(img, i)
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            frame.pts = int(round(t * 1000)) if vfr else i
            frame.time_base = time_base
            out.mux(stream.encode(frame))
            if astream is not None:
                mux_audio(t, audio_state)
        out.mux(stream.encode(None))
        if astream is not None:
            mux_audio(total, audio_state)
            out.mux(astream.encode(None))

    return SynthVideo(
        path=path,
        frame_times=[float(t) for t in times],
        fps=float(fps),
        size=size,
        codec=codec,
        vfr=vfr,
        has_audio=audio,
        barcode=barcode,
        segments=bounds,
    )


TestVideoKind = Literal["static", "moving", "cut", "static_moving", "mixed"]


def make_test_video(
    path: str | os.PathLike[str],
    kind: TestVideoKind = "mixed",
    *,
    seconds: float | None = None,
    **options: object,
) -> SynthVideo:
    """Ready-made clips. ``seconds`` scales the default length (per segment).

    * ``static``: one still shot (4 s);
    * ``moving``: shapes moving the whole time (4 s);
    * ``cut``: a still shot, then a hard cut to a different still shot (2 s + 2 s);
    * ``static_moving``: still, moving, still (3 s each), for motion-adaptive sampling;
    * ``mixed``: still, moving, hard cut (2 s each).
    """
    s = seconds
    presets: dict[str, list[Segment]] = {
        "static": [StaticShot(s or 4.0)],
        "moving": [MovingShapes(s or 4.0)],
        "cut": [StaticShot(s or 2.0), HardCut(s or 2.0)],
        "static_moving": [StaticShot(s or 3.0), MovingShapes(s or 3.0), StaticShot(s or 3.0, seed=5)],
        "mixed": [StaticShot(s or 2.0), MovingShapes(s or 2.0), HardCut(s or 2.0)],
    }
    if kind not in presets:
        raise ValueError(f"unknown test video kind {kind!r}; known: {', '.join(presets)}")
    return make_video(path, presets[kind], **options)  # type: ignore[arg-type]


def make_vfr_video(path: str | os.PathLike[str], *, seconds: float = 4.0, **options: object) -> SynthVideo:
    """A variable-frame-rate clip (irregular durations, 1 ms time base) of moving shapes."""
    return make_video(path, [MovingShapes(seconds)], vfr=True, **options)  # type: ignore[arg-type]


def make_audio_only(path: str | os.PathLike[str], *, seconds: float = 1.0) -> Path:
    """A file with one AAC audio stream and no video stream (a ``.mp4`` or ``.m4a``)."""
    import av

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), mode="w", format="mp4") as out:
        astream = out.add_stream("aac", rate=16000, layout="mono")
        done = 0
        while done < seconds * 16000:
            t = (np.arange(done, done + 1024) / 16000).astype(np.float32)
            frame = av.AudioFrame.from_ndarray(
                (0.2 * np.sin(2 * np.pi * 440 * t))[None, :].astype(np.float32), format="fltp", layout="mono"
            )
            frame.sample_rate = 16000
            frame.pts = done
            frame.time_base = Fraction(1, 16000)
            done += 1024
            out.mux(astream.encode(frame))
        out.mux(astream.encode(None))
    return path


BadVideoKind = Literal["empty", "text", "truncated", "lying_count", "audio_only"]


def make_bad_video(path: str | os.PathLike[str], kind: BadVideoKind) -> Path:
    """Files that must be rejected with a typed error:

    * ``empty``: zero bytes;
    * ``text``: a text file named like a video;
    * ``truncated``: the first half of a real MP4 (its index sits at the end, so it is lost);
    * ``lying_count``: an MP4 whose index (placed first) promises every frame but whose data
      stops halfway, so the container claims more frames than can be decoded;
    * ``audio_only``: a valid file with no video stream.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if kind == "empty":
        path.write_bytes(b"")
    elif kind == "text":
        path.write_text("This is not a video, just some text in a file named like one.\n" * 20)
    elif kind in ("truncated", "lying_count"):
        full = path.with_name(path.stem + ".full" + path.suffix)
        make_test_video(full, "moving", faststart=(kind == "lying_count"))
        data = full.read_bytes()
        full.unlink()
        path.write_bytes(data[: len(data) // 2])
    elif kind == "audio_only":
        make_audio_only(path)
    else:
        raise ValueError(f"unknown bad video kind {kind!r}")
    return path


__all__ = [
    "Drawn",
    "ENCODERS",
    "Fade",
    "HardCut",
    "MovingBlock",
    "MovingShapes",
    "Pan",
    "Segment",
    "StaticShot",
    "SynthVideo",
    "make_audio_only",
    "make_bad_video",
    "make_test_video",
    "make_video",
    "make_vfr_video",
    "read_frame_number",
]
