"""One writer per output: an advisory lock file that names the process holding it.

Two ``eval`` runs appending to one predictions file would both skip nothing and write every id
twice; two ``build`` runs on one folder would race on the export. The second run is refused
with a message naming the holder instead. The lock is ``flock(2)`` on a small file next to the
output: the kernel drops it when the holder exits, even on SIGKILL, so a stale lock file never
blocks a rerun (its content is only there to name the last holder).
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time
from pathlib import Path
from types import TracebackType

from .errors import UserError


class OutputLock:
    """``with OutputLock(path, what):`` holds ``path`` exclusively or raises a UserError."""

    def __init__(self, path: Path, what: str) -> None:
        self.path = Path(path)
        self.what = what
        self._fd: int | None = None

    def __enter__(self) -> "OutputLock":
        import fcntl

        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _describe(os.pread(fd, 4096, 0))
            os.close(fd)
            raise UserError(
                f"{self.what} is in use by another run ({holder}); wait for it to finish or "
                "choose another output"
            ) from None
        except OSError:
            os.close(fd)
            raise
        info = {"pid": os.getpid(), "host": socket.gethostname(), "since": time.strftime("%Y-%m-%d %H:%M:%S"),
                "command": " ".join(sys.argv[:3])}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(info).encode("utf-8"), 0)
        self._fd = fd
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._fd is not None:
            # Closing releases the flock; the file stays, so no other process can be left
            # holding a lock on an unlinked inode while a third one creates a fresh file.
            os.close(self._fd)
            self._fd = None


def _describe(raw: bytes) -> str:
    try:
        info = json.loads(raw.decode("utf-8"))
        return f"pid {info['pid']} on {info['host']} since {info['since']}: {info['command']}"
    except (ValueError, KeyError, TypeError):
        return "holder unknown"
