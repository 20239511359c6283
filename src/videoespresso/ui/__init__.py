"""The web UI, served by the VideoQA-SC server's own process (``videoespresso ui``).

Stack: FastAPI routes that render Jinja2 templates on the server (autoescape on, so a value from a
data file is always text) plus one small script for the Ask page that writes data with
``textContent`` only, all shipped in the package. Why: the server is already FastAPI, so the UI
adds no second process; server-rendered pages need no build step and
work with no internet (no CDN fonts or scripts, no analytics), and every page is plain HTML a
test can read. Boxes are drawn as SVG rectangles over the frame images, so they are in the DOM.

Pages: ``/ui/ask`` (pick or upload a video, ask; frames with times and boxes, evidence with key
objects highlighted, the answer, compute against uniform-128), ``/ui/dataset`` (a ``build``
output folder, filterable by task, video, verdict, warning and failure reason; one item at
``/ui/dataset/item?id=``) and ``/ui/eval`` (a predictions file against a bench file with the run's
protocol; filter to wrong or unparsed items).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .pages import mount_ui


@dataclass
class UIConfig:
    """What the browsers may look at: chosen by the operator at start-up, never by the browser."""

    dataset: Path | None = None
    predictions: Path | None = None
    bench: Path | None = None


__all__ = ["UIConfig", "mount_ui"]
