"""Build folders on any fsspec filesystem: a local folder, or a URL (``file://``, ``s3://``, ``gs://``,
``memory://``, ...).

A plain path is used in place. For a URL, the stages write and read the frames through fsspec
at ``<url>/frames/...`` (so Ray workers on other machines need no shared disk), while the SQLite
store and the response cache live in a local staging folder on the driver (SQLite needs a real
file system); at the end the staging folder (store, cache, key frames, exports) is published to
the URL. A staging folder without a store is first filled with the published store and cache, so
a run on another machine (or after the staging disk was lost) resumes from what the last run
published.
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
    """True for a URL (any protocol, ``file://`` included): written through fsspec."""
    protocol, _ = split_url(out)
    return protocol is not None


def as_root(root: str | os.PathLike[str]) -> Path | str:
    """A build root as stages keep it: a ``Path`` for a local folder, the URL string otherwise."""
    text = os.fspath(root)
    return text.rstrip("/") if is_remote(text) else Path(text)


def local_folder(out: str | os.PathLike[str], staging: str | os.PathLike[str] | None = None) -> Path:
    """Where the run keeps its store: the folder itself, or a staging folder for a URL
    (``staging`` or ``$VIDEOESPRESSO_HOME/staging/<hash of the URL>``)."""
    protocol, path = split_url(out)
    if protocol is None:
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


def pull(url: str, folder: Path, names: Iterable[str]) -> int:
    """Copy the files ``names`` (the store, the cache) of the build published at ``url`` into
    ``folder`` when ``folder`` lacks the first of them; return the number of files copied."""
    folder = Path(folder)
    names = list(names)
    if (folder / names[0]).exists():
        return 0
    fs, root = _fs(url)
    n = 0
    for name in names:
        if fs.exists(f"{root}/{name}"):
            tmp = folder / (name + ".tmp")
            fs.get_file(f"{root}/{name}", str(tmp))
            tmp.replace(folder / name)
            n += 1
    return n


def put_tree(local: Path, url: str) -> None:
    """Upload the files under ``local`` to ``url`` (same relative paths)."""
    fs, root = _fs(url)
    fs.makedirs(root, exist_ok=True)
    for path in _files(Path(local)):
        rel = path.relative_to(local).as_posix()
        if "/" in rel:
            fs.makedirs(f"{root}/{rel.rsplit('/', 1)[0]}", exist_ok=True)
        fs.put_file(str(path), f"{root}/{rel}")


def get_file(url: str, local: Path) -> None:
    fs, path = _fs(url)
    fs.get_file(path, str(local))


def open_url(url: str, mode: str = "rb"):
    import fsspec

    return fsspec.open(url, mode)


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


__all__ = ["as_root", "get_file", "is_remote", "local_folder", "open_url", "pull", "push", "put_tree", "split_url"]
