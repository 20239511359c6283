"""Where the VideoQA server's videos come from, and the limits on each way in.

A request names its video in one of four ways; each is bounded and none reads outside what the
operator allowed:

* an **upload** (``upload://<id>``, returned by ``POST /v1/uploads``): stored under the server's
  upload folder, at most ``max_upload_bytes``, kept only if PyAV finds a video stream in it;
* a **path under ``--video-root``** (``file:///abs/path`` or ``file://rel/path`` or a bare
  relative path): ``..`` is refused outright, the resolved real path (symlinks followed) must lie
  inside the resolved root, and without a root no local path is read at all;
* a **remote URL** (``http(s)://``): fetched only when the operator allowed it, streamed to a
  temporary file with a size cap and a wall-clock limit;
* a **data URL** (``data:video/...;base64,``): bounded by the request-body limit.

Several ``image_url`` parts instead of a video are encoded into a short 1 fps clip so the same
selector and reasoner run on them (frame *i* is shown at *i* seconds).

Temporary files (remote fetches, data URLs, image clips) belong to a :class:`MediaLease`, which
deletes them when the request ends.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
import shutil
import tempfile
import threading
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, AsyncIterator, Sequence
from urllib.parse import unquote, urlsplit

from .core import RequestError

VIDEO_SUFFIXES = (".mp4", ".mkv", ".webm", ".mov", ".avi", ".m4v", ".mpg", ".mpeg", ".ts")
_UPLOAD_ID = re.compile(r"^[0-9a-f]{32}\.[a-z0-9]{1,5}$")


@dataclass
class MediaPolicy:
    """What the server may read, and how much."""

    #: Local videos may be read only under this folder (None: no local paths at all).
    video_root: Path | None = None
    #: Uploaded videos live here (created if missing).
    upload_dir: Path | None = None
    allow_remote: bool = False
    max_upload_bytes: int = 200 * 2**20
    max_remote_bytes: int = 200 * 2**20
    remote_timeout_s: float = 30.0
    #: Most ``image_url`` parts one request may carry (frames).
    max_images: int = 64
    #: Uploads kept; past this the oldest are deleted (a later request naming one gets a 404).
    max_uploads: int = 200
    #: Where temporary files go (None: the system default).
    temp_dir: Path | None = None

    def __post_init__(self) -> None:
        if self.video_root is not None:
            self.video_root = Path(self.video_root).resolve()
            if not self.video_root.is_dir():
                from ..errors import ConfigError

                raise ConfigError(f"--video-root {self.video_root} is not a folder")
        if self.upload_dir is None:
            self.upload_dir = Path(tempfile.mkdtemp(prefix="ve-uploads-"))
        self.upload_dir = Path(self.upload_dir).resolve()
        self.upload_dir.mkdir(parents=True, exist_ok=True)


@dataclass
class MediaLease:
    """The temporary files one request created; :meth:`release` deletes them."""

    paths: list[Path] = field(default_factory=list)

    def release(self) -> None:
        for path in self.paths:
            path.unlink(missing_ok=True)
        self.paths.clear()


def check_video_file(path: Path, where: str) -> None:
    """Raise a 415 unless PyAV opens ``path`` and finds a video stream with frames."""
    from ..video import VideoError, probe

    try:
        info = probe(path)
    except VideoError as exc:
        raise RequestError(f"{where}: not a readable video ({exc})", status=415, code="unsupported_media") from None
    except Exception as exc:  # noqa: BLE001 -- any decoder failure means "not a video we can read"
        raise RequestError(f"{where}: not a readable video ({type(exc).__name__})", status=415,
                           code="unsupported_media") from None
    if not getattr(info, "num_frames", 0):
        raise RequestError(f"{where}: the video has no frames", status=415, code="unsupported_media")


def _suffix(name: str | None) -> str:
    suffix = Path(name or "").suffix.lower()
    return suffix if suffix in VIDEO_SUFFIXES else ".mp4"


async def save_upload(policy: MediaPolicy, chunks: AsyncIterator[bytes], filename: str | None,
                      declared_length: int | None) -> tuple[str, Path]:
    """Stream an upload into the upload folder; returns ``(upload id, path)``.

    Refuses (413) as soon as the body passes ``max_upload_bytes`` (or declares more), and (415)
    anything PyAV cannot read as a video; a refused upload leaves no file behind.
    """
    limit = policy.max_upload_bytes
    if declared_length is not None and declared_length > limit:
        raise RequestError(f"upload: {declared_length} bytes is over this server's limit of {limit}",
                           status=413, code="upload_too_large")
    upload_id = f"{uuid.uuid4().hex}{_suffix(filename)}"
    assert policy.upload_dir is not None
    final = policy.upload_dir / upload_id
    partial = final.with_name(final.name + ".part")
    size = 0
    try:
        with partial.open("wb") as handle:
            async for chunk in chunks:
                size += len(chunk)
                if size > limit:
                    raise RequestError(f"upload: more than this server's limit of {limit} bytes",
                                       status=413, code="upload_too_large")
                handle.write(chunk)
        if size == 0:
            raise RequestError("upload: the body is empty; send the video's bytes", code="empty_upload")
        check_video_file(partial, f"upload {filename or upload_id}")
        os.replace(partial, final)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    _evict_old_uploads(policy)
    return upload_id, final


def _evict_old_uploads(policy: MediaPolicy) -> None:
    assert policy.upload_dir is not None
    kept = sorted((p for p in policy.upload_dir.iterdir() if _UPLOAD_ID.match(p.name)),
                  key=lambda p: p.stat().st_mtime_ns)
    for old in kept[: max(0, len(kept) - policy.max_uploads)]:
        old.unlink(missing_ok=True)


def resolve_upload(policy: MediaPolicy, upload_id: str, where: str) -> Path:
    if not _UPLOAD_ID.match(upload_id):
        raise RequestError(f"{where}: {upload_id!r} is not an upload id from POST /v1/uploads", param=where)
    assert policy.upload_dir is not None
    path = policy.upload_dir / upload_id
    if not path.is_file():
        raise RequestError(f"{where}: no upload {upload_id!r} on this server", status=404, param=where,
                           code="upload_not_found")
    return path


def resolve_local(policy: MediaPolicy, raw: str, where: str) -> Path:
    """A path under the video root, or a 403 naming why not."""
    if policy.video_root is None:
        raise RequestError(f"{where}: this server reads no local paths (start it with --video-root)",
                           status=403, param=where, code="path_not_allowed")
    if "\x00" in raw:
        raise RequestError(f"{where}: the path contains a NUL byte", param=where)
    path = Path(raw)
    if ".." in path.parts:
        raise RequestError(f"{where}: '..' is not allowed in video paths", status=403, param=where,
                           code="path_not_allowed")
    root = policy.video_root
    candidate = path if path.is_absolute() else root / path
    real = Path(os.path.realpath(candidate))
    if not real.is_relative_to(root):
        raise RequestError(f"{where}: {raw!r} is outside the video root", status=403, param=where,
                           code="path_not_allowed")
    if not real.is_file():
        raise RequestError(f"{where}: no video {raw!r} under the video root", status=404, param=where,
                           code="video_not_found")
    return real


def list_videos(policy: MediaPolicy, limit: int = 500) -> list[str]:
    """Videos under the root (relative paths, sorted), for the UI's picker."""
    root = policy.video_root
    if root is None:
        return []
    found: list[str] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames):
            if name.lower().endswith(VIDEO_SUFFIXES):
                full = Path(dirpath) / name
                if Path(os.path.realpath(full)).is_relative_to(root):
                    found.append(str(full.relative_to(root)))
                if len(found) >= limit:
                    return found
    return found


def _temp_path(policy: MediaPolicy, suffix: str, lease: MediaLease) -> Path:
    fd, name = tempfile.mkstemp(prefix="ve-media-", suffix=suffix, dir=policy.temp_dir)
    os.close(fd)
    path = Path(name)
    lease.paths.append(path)
    return path


def fetch_remote(policy: MediaPolicy, url: str, where: str, lease: MediaLease) -> Path:
    """Download ``url`` to a temporary file, within the size limit and one wall-clock deadline
    for the whole fetch (connecting, headers and body together), however slowly the bytes come."""
    if not policy.allow_remote:
        raise RequestError(f"{where}: this server fetches no remote URLs (start it with --allow-remote)",
                           status=403, param=where, code="remote_not_allowed")
    path = _temp_path(policy, _suffix(urlsplit(url).path), lease)
    outcome: dict[str, BaseException] = {}
    done, cancelled = threading.Event(), threading.Event()

    def work() -> None:
        try:
            _download(policy, url, where, path, cancelled)
        except BaseException as exc:  # noqa: BLE001 -- handed to the request below
            outcome["error"] = exc
        finally:
            if cancelled.is_set():  # the lease may have gone before the file was (re)opened
                path.unlink(missing_ok=True)
            done.set()

    # A socket timeout bounds each read, not their sum (a server dripping a byte a second never
    # trips it), so the download runs on its own thread and the request waits for the deadline;
    # past it, the thread stops at its next read and its partial file goes with the lease.
    threading.Thread(target=work, name="ve-fetch", daemon=True).start()
    if not done.wait(policy.remote_timeout_s):
        cancelled.set()
        raise RequestError(f"{where}: fetching took over {policy.remote_timeout_s:g} s", status=408, param=where,
                           code="remote_timeout")
    if "error" in outcome:
        raise outcome["error"]
    check_video_file(path, where)
    return path


def _download(policy: MediaPolicy, url: str, where: str, path: Path, cancelled: threading.Event) -> None:
    import urllib.error
    import urllib.request

    too_large = RequestError(f"{where}: the remote video is over {policy.max_remote_bytes} bytes", status=413,
                             param=where, code="remote_too_large")
    size = 0
    try:
        with urllib.request.urlopen(url, timeout=policy.remote_timeout_s) as response:  # noqa: S310 -- http(s) only
            declared = response.headers.get("content-length")
            if declared and declared.isdigit() and int(declared) > policy.max_remote_bytes:
                raise too_large
            with path.open("wb") as handle:
                # read1 returns what has arrived instead of waiting for a full chunk, so a
                # cancelled fetch notices at the next byte.
                while not cancelled.is_set() and (chunk := response.read1(1 << 16)):
                    size += len(chunk)
                    if size > policy.max_remote_bytes:
                        raise too_large
                    handle.write(chunk)
    except urllib.error.HTTPError as exc:
        raise RequestError(f"{where}: fetching the video gave HTTP {exc.code}", status=422, param=where,
                           code="remote_fetch_failed") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", None) or exc.strerror or type(exc).__name__
        raise RequestError(f"{where}: cannot fetch the video ({reason})", status=422, param=where,
                           code="remote_fetch_failed") from None


def decode_video_data_url(policy: MediaPolicy, url: str, where: str, lease: MediaLease) -> Path:
    header, sep, payload = url.partition(",")
    if not sep or ";base64" not in header or not header[5:].startswith("video/"):
        raise RequestError(f"{where}: expected data:video/<type>;base64,<data>", param=where)
    try:
        raw = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise RequestError(f"{where}: the base64 payload is invalid", param=where) from None
    subtype = header[len("data:video/"):].split(";")[0]
    path = _temp_path(policy, _suffix(f"x.{subtype}"), lease)
    path.write_bytes(raw)
    check_video_file(path, where)
    return path


def resolve_video_url(policy: MediaPolicy, url: str, where: str, lease: MediaLease) -> Path:
    """Any accepted ``video_url`` -> a local file the request may read."""
    url = url.strip()
    if url.startswith("upload://"):
        return resolve_upload(policy, url[len("upload://"):], where)
    if url.startswith("data:"):
        return decode_video_data_url(policy, url, where, lease)
    scheme = urlsplit(url).scheme.lower()
    if scheme in ("http", "https"):
        return fetch_remote(policy, url, where, lease)
    if scheme == "file":
        rest = url[len("file://"):]
        return resolve_local(policy, unquote(rest), where)
    if scheme and len(scheme) > 1:
        raise RequestError(f"{where}: URL scheme {scheme!r} is not supported (use upload://, file://, "
                           "a path under the video root, data: or http(s)://)", param=where)
    return resolve_local(policy, url, where)


def images_to_clip(policy: MediaPolicy, images: Sequence[Any], lease: MediaLease) -> Path:
    """Encode PIL images as a 1 fps H.264 clip (frame i at i seconds), all at the first's size."""
    import av
    import numpy as np

    path = _temp_path(policy, ".mp4", lease)
    width, height = images[0].size
    width, height = max(2, width - width % 2), max(2, height - height % 2)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=1)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"crf": "18", "preset": "veryfast"}
        for image in images:
            frame = av.VideoFrame.from_ndarray(np.asarray(image.convert("RGB").resize((width, height))), format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def clean_stale_parts(policy: MediaPolicy) -> None:
    """Remove half-written uploads a killed server left behind."""
    assert policy.upload_dir is not None
    for part in policy.upload_dir.glob("*.part"):
        part.unlink(missing_ok=True)


def remove_upload_dir(policy: MediaPolicy) -> None:
    if policy.upload_dir is not None and policy.upload_dir.name.startswith("ve-uploads-"):
        shutil.rmtree(policy.upload_dir, ignore_errors=True)
