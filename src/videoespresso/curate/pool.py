"""Per-video caption pools under the build root: written once by ``group``, read by ``temporal``.

A pool (:class:`~videoespresso.schema.VideoPool`: every sampled frame of a video with its
caption) lies at ``pools/<video>/<sha>.json``, its name the hash of its content. Items carry
only a :class:`~videoespresso.schema.PoolRef`, so the pool is stored once per video, not once
per group and QA item and again by every later stage; and since the sha is part of each item,
a changed upstream stage (new captions, other frames) still changes every downstream store key.
The pool's embeddings are cached next to it (``<sha>.<embedder key>.npy``), so a rerun of
``temporal`` does not embed the pool again.

The root is a folder or an fsspec URL (a build whose ``--out`` is one), like the frames'.
"""

from __future__ import annotations

import io
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from ..engine import canonical_json, content_hash
from ..schema import PoolRef, VideoPool
from .sample import safe_name

POOLS = "pools"


def write_pool(root: Path | str, pool: VideoPool) -> PoolRef:
    """Store ``pool`` under ``root`` (once: an existing file of the same sha is kept)."""
    data = pool.model_dump(mode="json")
    sha = content_hash(data)
    rel = f"{POOLS}/{safe_name(pool.video_id)}/{sha}.json"
    if not _exists(root, rel):
        _write(root, rel, canonical_json(data).encode("utf-8"))
    return PoolRef(path=rel, sha=sha, frames=len(pool.frames))


def read_pool(root: Path | str, ref: PoolRef) -> VideoPool:
    """The pool ``ref`` names; OSError when the file is missing, ValueError when its content
    does not match the sha (an edited or truncated file)."""
    data = _read(root, ref.path)
    pool = VideoPool.model_validate_json(data)
    if content_hash(pool.model_dump(mode="json")) != ref.sha:
        raise ValueError(f"{ref.path}: content does not match its sha {ref.sha}")
    return pool


def embeddings_path(ref: PoolRef, embedder_key: str) -> str:
    return f"{ref.path.rsplit('.', 1)[0]}.{embedder_key}.npy"


def read_embeddings(root: Path | str, rel: str, rows: int) -> np.ndarray | None:
    """The cached embedding matrix, or None when there is none usable (missing, unreadable, or
    of another shape: a partial write of an interrupted run)."""
    try:
        matrix = np.load(io.BytesIO(_read(root, rel)), allow_pickle=False)
    except (OSError, ValueError):
        return None
    if matrix.ndim != 2 or matrix.shape[0] != rows or matrix.dtype != np.float32:
        return None
    return matrix


def write_embeddings(root: Path | str, rel: str, matrix: np.ndarray) -> None:
    buffer = io.BytesIO()
    np.save(buffer, np.ascontiguousarray(matrix, dtype=np.float32), allow_pickle=False)
    _write(root, rel, buffer.getvalue())


def _fs(root: str, rel: str) -> tuple[Any, str]:
    import fsspec

    return fsspec.core.url_to_fs(f"{root}/{rel}")


def _exists(root: Path | str, rel: str) -> bool:
    if isinstance(root, str):
        fs, path = _fs(root, rel)
        return bool(fs.exists(path))
    return (root / rel).is_file()


def _read(root: Path | str, rel: str) -> bytes:
    if isinstance(root, str):
        fs, path = _fs(root, rel)
        try:
            return bytes(fs.cat_file(path))
        except OSError:
            raise
        except Exception as exc:  # some fsspec backends raise their own types for a missing object
            raise OSError(f"{root}/{rel}: {exc}") from None
    return (root / rel).read_bytes()


def _write(root: Path | str, rel: str, data: bytes) -> None:
    """Write whole or not at all: a temporary name renamed locally; one put for a URL (an
    object store never shows half an object)."""
    if isinstance(root, str):
        fs, path = _fs(root, rel)
        fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
        fs.pipe_file(path, data)
        return
    target = root / rel
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=target.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def embedder_key(spec: str, options: dict[str, Any] | None) -> str:
    """What an embedding cache file is named by: the embedder's spec and load options."""
    return content_hash({"embedder": spec, "options": options or {}})[:12]
