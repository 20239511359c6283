"""Crash points for the fault matrix: ``VIDEOESPRESSO_FAILPOINT=<name>`` kills the process there.

The promise "a run killed anywhere resumes to the bytes of an uninterrupted run" is tested by
killing real runs at named points (every stage boundary, inside every stage, before the
export, after the first line of ``eval`` and ``select``) with SIGKILL, exactly what an
out-of-memory killer or a pre-empted node does. Without the variable, :func:`failpoint` is one
dictionary lookup. Names::

    build:before:<stage>   before a stage starts (after the previous one finished)
    build:mid:<stage>      after the stage's first batch is stored (the rest, if any, not yet run)
    build:export           after the last stage, before the dataset files are written
    eval:mid               after the first prediction line is written
    select:mid             after the first selection is journalled
    train:save             after ``train`` wrote a checkpoint
"""

from __future__ import annotations

import os
import signal

ENV = "VIDEOESPRESSO_FAILPOINT"


def failpoint(name: str) -> None:
    """SIGKILL this process if ``VIDEOESPRESSO_FAILPOINT`` names ``name``."""
    if os.environ.get(ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)
