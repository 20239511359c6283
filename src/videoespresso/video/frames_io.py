"""Sampling plus writing: JPEG files named by index and time, and a ``frames.json`` sidecar.

A frame file is named ``f{index:06d}_t{seconds:010.3f}.jpg`` (``f000048_t000001.600.jpg``: frame
48, shown at 1.600 s), so both survive any later renaming of folders; :func:`parse_frame_filename`
reads them back. The sidecar is the :class:`~videoespresso.schema.SampledFrames` record (sampler
name and parameters, each frame's index, seconds and file name relative to the folder). Every
file is written to a temporary name and renamed, so a crash never leaves a half-written one.
The sidecar is the list of record: frame files of an earlier run into the same folder are left
alone, not listed.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from pathlib import Path
from typing import IO, TYPE_CHECKING, Callable, Union

from ..errors import FormatError
from ..formats.jsonl import default_file_mode
from ..schema import FrameRef, SampledFrames
from ._media import DEFAULT_TIMEOUT_S
from .reader import ProgressFn, Size, VideoReader
from .samplers import Sampler, parse_sampler

if TYPE_CHECKING:
    from PIL.Image import Image

SIDECAR = "frames.json"
_NAME = re.compile(r"^f(\d+)_t(\d+(?:\.\d+)?)\.(?:jpe?g|png)$", re.IGNORECASE)


def frame_filename(ref: FrameRef, ext: str = "jpg") -> str:
    return f"f{ref.index:06d}_t{ref.seconds:010.3f}.{ext}"


def parse_frame_filename(name: str | os.PathLike[str]) -> FrameRef:
    """Index and time (to the millisecond) of a frame file written by :func:`sample_frames`."""
    base = Path(name).name
    m = _NAME.match(base)
    if not m:
        raise FormatError(f"frame file name {base!r} is not of the form f<index>_t<seconds>.jpg (e.g. f000048_t000001.600.jpg)")
    return FrameRef(index=int(m.group(1)), seconds=float(m.group(2)))


def _atomic_write(path: Path, write: Callable[[IO[bytes]], object]) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, default_file_mode())
        with os.fdopen(fd, "wb") as fh:
            write(fh)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_frames(
    record: SampledFrames, images: list["Image"], out_dir: str | os.PathLike[str], *, quality: int = 90
) -> SampledFrames:
    """Write ``images`` (parallel to ``record.frames``) and the sidecar; return the record with
    each frame's ``path`` set."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    refs: list[FrameRef] = []
    written: set[str] = set()
    for ref, image in zip(record.frames, images):
        name = frame_filename(ref)
        if name not in written:
            _atomic_write(out / name, lambda fh, im=image: im.save(fh, format="JPEG", quality=quality))
            written.add(name)
        refs.append(ref.model_copy(update={"path": str(out / name)}))
    sidecar = record.model_copy(update={"frames": [r.model_copy(update={"path": Path(r.path or "").name}) for r in refs]})
    text = json.dumps(sidecar.model_dump(mode="json"), indent=2)
    _atomic_write(out / SIDECAR, lambda fh: fh.write(text.encode("utf-8")))
    # Frames of an earlier run into the same folder would read as frames of this one.
    for stale in out.iterdir():
        if stale.name not in written and _NAME.match(stale.name) and stale.is_file():
            stale.unlink()
    return record.model_copy(update={"frames": refs})


def load_frames_json(out_dir: str | os.PathLike[str]) -> SampledFrames:
    """Read a folder's sidecar back, with frame paths resolved against the folder."""
    folder = Path(out_dir)
    path = folder / SIDECAR
    if not path.is_file():
        raise FormatError(f"{path}: no frames sidecar here")
    try:
        record = SampledFrames.model_validate_json(path.read_text("utf-8"))
    except ValueError as exc:
        raise FormatError(f"{path}: not a valid frames sidecar ({exc})") from None
    return record.model_copy(
        update={"frames": [f.model_copy(update={"path": str(folder / f.path) if f.path else None}) for f in record.frames]}
    )


def sample_frames(
    path: str | os.PathLike[str],
    sampler: Union[Sampler, str],
    *,
    out_dir: str | os.PathLike[str] | None = None,
    size: Size = None,
    progress: ProgressFn | None = None,
    quality: int = 90,
    timeout_s: float | None = DEFAULT_TIMEOUT_S,
) -> tuple[SampledFrames, list["Image"]]:
    """Sample ``path`` with ``sampler`` (an object or a spec string) and decode the chosen frames;
    with ``out_dir``, also write them as JPEG files plus the ``frames.json`` sidecar.

    ``timeout_s`` bounds each decoding operation on the file (see :class:`VideoReader`).
    """
    if isinstance(sampler, str):
        sampler = parse_sampler(sampler)
    with VideoReader(path, timeout_s=timeout_s) as reader:
        record, frames = sampler.sample_with_frames(reader, size=size, output="pil", progress=progress)
    if size is not None:
        record = record.model_copy(update={"params": {**record.params, "size": list(size) if isinstance(size, tuple) else size}})
    images = [f.image for f in frames]
    if out_dir is not None:
        record = write_frames(record, images, out_dir, quality=quality)  # type: ignore[arg-type]
    return record, images  # type: ignore[return-value]
