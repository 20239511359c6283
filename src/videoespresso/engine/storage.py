"""Build folders on any fsspec filesystem: a local folder, ``file://``, or an object store URL.

A local path or a ``file://`` URL is used in place. Any other URL (``s3://``, ``gs://``,
``memory://``, ...) is *published*: the run works in a local staging folder (the SQLite store,
the response cache and the frames need a real file system), and the finished folder is copied to
the URL. A staging folder without a store is first filled from the URL, so a run on another
machine (or after the staging disk was lost) resumes from what the last run published.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Iterable

#: Never published: the lock, SQLite's transient files, temporary names.
SKIP_SUFFIXES = (".lock", "-wal", "-shm", ".tmp")


def split_url(out: str | os.PathLike[str]) -> tuple[str | None, str]:
    """``(protocol, path)``; protocol None for a plain local path."""
    text = os.fspath(out)
    if "://" not in text:
        return None, text
    protocol, rest = text.split("://", 1)
    return protocol, rest


def is_remote(out: str | os.PathLike[str]) -> bool:
    protocol, _ = split_url(out)
    return protocol not in (None, "file", "local")


def local_folder(out: str | os.PathLike[str], staging: str | os.PathLike[str] | None = None) -> Path:
    """Where the run writes: the folder itself, or a staging folder for a remote URL
    (``staging`` or ``$VIDEOESPRESSO_HOME/staging/<hash of the URL>``)."""
    protocol, path = split_url(out)
    if protocol in (None, "file", "local"):
        return Path(path)
    if staging is not None:
        return Path(staging)
    home = Path(os.environ.get("VIDEOESPRESSO_HOME", Path.home() / ".cache" / "videoespresso"))
    return home / "staging" / hashlib.sha256(os.fspath(out).encode("utf-8")).hexdigest()[:16]


def _fs(url: str):
    import fsspec

    fs, path = fsspec.core.url_to_fs(url)
    return fs, path.rstrip("/")


def _files(folder: Path) -> Iterable[Path]:
    for path in sorted(folder.rglob("*")):
        if path.is_file() and not path.name.endswith(SKIP_SUFFIXES):
            yield path


def pull(url: str, folder: Path, marker: str) -> int:
    """Copy the published build at ``url`` into ``folder`` when ``folder`` lacks ``marker``
    (the store file); return the number of files copied."""
    folder = Path(folder)
    if (folder / marker).exists():
        return 0
    fs, root = _fs(url)
    if not fs.exists(f"{root}/{marker}"):
        return 0
    n = 0
    for remote in fs.find(root):
        rel = remote[len(root):].lstrip("/")
        if not rel or rel.endswith(SKIP_SUFFIXES):
            continue
        target = folder / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(target.name + ".tmp")
        fs.get_file(remote, str(tmp))
        tmp.replace(target)
        n += 1
    return n


def push(folder: Path, url: str, only: Iterable[str] | None = None) -> int:
    """Copy ``folder`` (or only the relative paths in ``only``) to ``url``; the store goes last,
    so a published store never names files that are not there yet."""
    folder = Path(folder)
    fs, root = _fs(url)
    paths = [folder / p for p in only] if only is not None else list(_files(folder))
    paths.sort(key=lambda p: p.suffix == ".sqlite")
    for path in paths:
        rel = path.relative_to(folder).as_posix()
        target = f"{root}/{rel}"
        fs.makedirs(target.rsplit("/", 1)[0], exist_ok=True)
        fs.put_file(str(path), target)
    return len(paths)


__all__ = ["is_remote", "local_folder", "pull", "push", "split_url"]
