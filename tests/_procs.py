"""Process checks shared by tests that start servers or clusters: nothing may be left running."""

from __future__ import annotations

import os
import time
from pathlib import Path


def processes_mentioning(text: str) -> list[int]:
    """Pids of live processes (not this one, not zombies) whose command line contains ``text``."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode("utf-8", "replace")
            state = (entry / "stat").read_text().split(") ", 1)[1][:1]
        except OSError:
            continue
        if text in cmdline and state != "Z":
            pids.append(int(entry.name))
    return pids


def wait_gone(text: str, seconds: float = 30.0) -> list[int]:
    """Wait up to ``seconds`` for every process mentioning ``text`` to end; the ones left."""
    deadline = time.time() + seconds
    left = processes_mentioning(text)
    while left and time.time() < deadline:
        time.sleep(0.2)
        left = processes_mentioning(text)
    return left
