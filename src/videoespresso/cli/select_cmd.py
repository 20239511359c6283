"""``videoespresso select``: choose frames for every question of a benchmark file, once."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ..errors import ConfigError
from . import app
from ._common import (
    ConfigOption,
    DumpConfigOption,
    ProfileOption,
    console,
    effective_config,
    err_console,
    note_random_weights,
)


@app.command("select")
def select_command(
    bench: Path = typer.Option(..., "--bench", "-b", help="Benchmark file in the official shape (bench_hard.json)."),
    video_root: Path = typer.Option(..., "--video-root", help="Folder the items' video_path values are relative to."),
    out: Path = typer.Option(..., "--out", "-o", help="Selections JSON keyed by question id (eval --frames-file reads it)."),
    selector: str = typer.Option("caption-llm", "--selector", "-s", help="uniform, embedding, caption-llm or oracle."),
    frames: Optional[int] = typer.Option(
        None, "--frames", "-k", min=1, help="uniform: frames to use; other selectors: most frames to keep."
    ),
    frame_fps: Optional[float] = typer.Option(
        None, "--frame-fps", min=0.0,
        help="oracle: the fps the core-frame file names (480.jpg) count in; default 1 (the maintainers' statement); 0: match captions.",
    ),
    limit: Optional[int] = typer.Option(None, "--limit", min=1, help="Only the first N items."),
    profile: Optional[str] = ProfileOption,
    config: Optional[Path] = ConfigOption,
    dump_config: Optional[Path] = DumpConfigOption,
) -> None:
    """Run a frame selector over a benchmark and save the selections, so any evaluation (ours or
    another framework's) can reuse them. A question that fails is recorded with its reason and
    the run goes on.

    Example: videoespresso select --bench bench_hard.json --video-root videos --selector caption-llm --out selections.json
    """
    from collections import Counter

    from ..errors import UserError
    from ..formats.bench import read_bench
    from ..select import load_selector, save_selections

    if not video_root.is_dir():
        raise ConfigError(f"--video-root {video_root} is not a folder")
    cfg = effective_config(profile, config, dump_config)
    items = read_bench(bench)[:limit]
    overrides: dict[str, object] = {}
    if frames is not None:
        key = {"uniform": "frames", "embedding": "k"}.get(selector, "max_frames")
        overrides = {key: frames}
    if frame_fps is not None:
        if selector != "oracle":
            raise ConfigError("--frame-fps applies to the oracle selector only")
        overrides["frame_fps"] = frame_fps or None
    if selector in ("embedding", "caption-llm"):
        note_random_weights({"selector captioner": cfg.models.selector_vlm}
                            | ({"selector LLM": cfg.models.selector_llm} if selector == "caption-llm" else {}))
    chooser = load_selector(selector, cfg, items=items, **overrides)
    selections, failures = {}, {}
    from ..bench.run import resolve_video

    for item in items:
        try:
            video = resolve_video(item, video_root)
            selections[item.id] = chooser.select(
                video, item.question, item_id=item.id, options=item.options
            )
        except UserError as exc:
            failures[item.id] = str(exc)
    save_selections(out, selections, failures)
    frames_used = [len(s.frames) for s in selections.values()]
    mean = sum(frames_used) / len(frames_used) if frames_used else 0.0
    console.print(
        f"{len(selections)} selected ({mean:.2f} frames on average), {len(failures)} failed "
        f"-> {out}", highlight=False,
    )
    if chooser.stats:
        console.print("selector events: " + ", ".join(f"{k} {v}" for k, v in sorted(chooser.stats.items())),
                      highlight=False)
    for reason, n in Counter(failures.values()).most_common(5):
        err_console.print(f"failed x{n}: {reason}", highlight=False, markup=False)
