"""``videoespresso frames`` (sample and write frames) and ``videoespresso probe`` (describe a video)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional, Union

import typer
from rich.markup import escape
from rich.text import Text

from ..errors import UserError, printable
from . import app
from ._common import console, err_console

SizeSpec = Union[None, int, tuple[int, int]]


def parse_size(text: Optional[str]) -> SizeSpec:
    """``448`` -> longest side at most 448 px; ``320x240`` -> exactly that size."""
    if text is None:
        return None
    t = text.strip().lower()
    try:
        if "x" in t:
            w, h = (int(v) for v in t.split("x", 1))
            if w > 0 and h > 0:
                return (w, h)
        elif int(t) > 0:
            return int(t)
    except ValueError:
        pass
    raise UserError(f"--size {text!r}: use a longest side such as 448 or a size such as 320x240")


def _out_dirs(videos: list[Path], out: Path) -> list[Path]:
    """One folder per video: ``out`` itself for one video, ``out/<stem>`` for several."""
    if len(videos) == 1:
        return [out]
    seen: dict[str, int] = {}
    dirs = []
    for v in videos:
        n = seen.get(v.stem, 0)
        seen[v.stem] = n + 1
        dirs.append(out / (v.stem if n == 0 else f"{v.stem}-{n + 1}"))
    return dirs


@app.command("frames")
def frames_command(
    videos: list[Path] = typer.Argument(..., help="Video file(s)."),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder (a sub-folder per video when several are given)."),
    sampler: str = typer.Option(
        "fps:1",
        "--sampler",
        "-s",
        help="uniform:K[:official|vlmevalkit|transformers|rounded], fps:R, official[:MAX], "
        "adaptive[:STATIC_FPS[:DYNAMIC_FPS[:THRESHOLD]]][:fast].",
    ),
    size: Optional[str] = typer.Option(None, "--size", help="Longest side (448) or exact size (320x240)."),
    quality: int = typer.Option(90, "--quality", min=1, max=100, help="JPEG quality, 1-100."),
) -> None:
    """Sample frames and write them as JPEG files (named by index and time) plus frames.json.

    Example: videoespresso frames clip.mp4 --sampler adaptive:1:3 --out frames/ --size 448
    """
    from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeRemainingColumn

    from ..errors import VideoError
    from ..video import parse_sampler, sample_frames

    chosen = parse_sampler(sampler)
    size_spec = parse_size(size)
    if not 1 <= quality <= 100:
        raise UserError(f"--quality {quality}: JPEG quality must be between 1 and 100")
    failures: list[tuple[Path, str]] = []
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        TimeRemainingColumn(),
        console=err_console,
        transient=False,
    )
    with progress:
        for video, folder in zip(videos, _out_dirs(videos, out)):
            task = progress.add_task(escape(printable(video.name)), total=None)

            def report(done: float, total: float, task=task) -> None:
                progress.update(task, completed=done, total=total)

            try:
                record, _ = sample_frames(video, chosen, out_dir=folder, size=size_spec, progress=report, quality=quality)
            except VideoError as exc:
                if len(videos) == 1:
                    raise
                failures.append((video, str(exc)))
                progress.update(task, description=f"[red]{escape(printable(video.name))} (failed)")
                continue
            task_total = progress.tasks[task].total or 1.0
            progress.update(task, completed=task_total, total=task_total)
            # A sampler asked for more frames than the video has repeats some; each is written once.
            distinct = len({f.index for f in record.frames})
            note = "" if distinct == len(record.frames) else (
                f" (the sampler asked for {len(record.frames)}; the video has only {distinct} distinct frames there)"
            )
            console.print(f"{printable(video)}: {distinct} frames written ({chosen.spec}) -> {printable(folder)}{note}",
                          highlight=False, markup=False)
    for _, reason in failures:
        err_console.print(Text.assemble(("failed:", "bold red"), f" {printable(reason)}"), highlight=False)
    if failures:
        err_console.print(f"{len(videos) - len(failures)} of {len(videos)} videos done, {len(failures)} failed")
        raise typer.Exit(1)


@app.command("probe")
def probe_command(
    videos: list[Path] = typer.Argument(..., help="Video file(s)."),
    count_frames: bool = typer.Option(False, "--count-frames", help="Count frames (demux the file) instead of trusting the header."),
    as_json: bool = typer.Option(False, "--json", help="One JSON object per line instead of a table."),
) -> None:
    """Describe videos: duration, frame count, fps, VFR flag, size, rotation, codec, audio.

    Example: videoespresso probe clip.mp4 --count-frames
    """
    from rich.table import Table

    from ..errors import VideoError
    from ..video import probe

    failures = 0
    for video in videos:
        try:
            info = probe(video, count_frames=count_frames)
        except VideoError as exc:
            if len(videos) == 1:
                raise
            failures += 1
            err_console.print(Text.assemble(("failed:", "bold red"), f" {printable(exc)}"), highlight=False)
            continue
        if as_json:
            console.print(json.dumps(info.model_dump(mode="json")), highlight=False, markup=False, soft_wrap=True)
            continue
        table = Table(title=Text(printable(video)), show_header=False, title_justify="left")
        for key, value in info.model_dump().items():
            if key != "path":
                table.add_row(key, str(value))
        console.print(table)
    if failures:
        raise typer.Exit(1)
