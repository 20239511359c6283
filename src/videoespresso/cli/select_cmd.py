"""``videoespresso select``: choose frames for every question of a benchmark file, once."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ..errors import ConfigError, printable
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
    overwrite: bool = typer.Option(False, "--overwrite", help="Start over: remove the selections (and manifest) already at --out."),
    retry_failed: bool = typer.Option(True, "--retry-failed/--no-retry-failed", help="Try again the questions whose earlier attempt failed (default on)."),
    profile: Optional[str] = ProfileOption,
    config: Optional[Path] = ConfigOption,
    dump_config: Optional[Path] = DumpConfigOption,
) -> None:
    """Run a frame selector over a benchmark and save the selections, so any evaluation (ours or
    another framework's) can reuse them. A question that fails is recorded with its reason and
    the run goes on. A killed run resumes where it stopped (each result is journalled as it is
    made); a rerun resumes only with the settings recorded in OUT.manifest.json and tries the
    failed questions again.

    Example: videoespresso select --bench bench_hard.json --video-root videos --selector caption-llm --out selections.json
    """
    from ..formats.bench import bench_fingerprint, read_bench
    from ..select import load_selector
    from ..select.run import open_selections, run_select

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
    roles: dict[str, str] = {}
    if selector in ("embedding", "caption-llm"):
        roles["selector captioner"] = cfg.models.selector_vlm
    if selector == "embedding":
        roles["embedder"] = cfg.models.embedder
    if selector == "caption-llm":
        roles["selector LLM"] = cfg.models.selector_llm
    settings = {
        "selector": selector,
        "overrides": overrides,
        "select": cfg.select.model_dump(mode="json"),
        "max_side": cfg.sampling.max_side,
        "frames": cfg.eval.frames if selector == "uniform" else None,
        "generation": cfg.generation.model_dump(mode="json") if roles else None,
        "models": {role: {"spec": spec, "options": cfg.model_options(spec)} for role, spec in sorted(roles.items())},
        "bench_sha256": bench_fingerprint(bench),
    }
    # The lock comes first: until it is held, nothing at --out (another run's) is touched.
    with open_selections(out, kind="select", settings=settings, overwrite=overwrite,
                         legacy_settings=_legacy_settings) as journal:
        note_random_weights({k: v for k, v in roles.items() if k != "embedder"})
        summary = run_select(
            items, lambda: load_selector(selector, cfg, items=items, **overrides), out, video_root,
            retry_failed=retry_failed, journal=journal,
        )
    console.print(
        f"{summary.total} items: {summary.reused} reused, {summary.selected} selected, {summary.failed} failed "
        f"({summary.retried} earlier failures retried); {summary.in_file} in the file "
        f"({summary.mean_frames:.2f} frames on average) -> {out}",
        highlight=False,
    )
    if not summary.ran_selector:
        console.print("nothing left to select: no model was loaded", highlight=False)
    if summary.stats:
        console.print("selector events: " + ", ".join(f"{k} {v}" for k, v in sorted(summary.stats.items())),
                      highlight=False)
    for reason, n in summary.failure_reasons.most_common(5):
        err_console.print(f"failed x{n}: {printable(reason)}", highlight=False, markup=False)


def _legacy_settings(out: Path) -> dict[str, object] | None:
    """What a selections file written before manifests existed says about its selector."""
    from ..errors import FormatError
    from ..select.store import read_selections_file

    try:
        selections, _ = read_selections_file(out)
    except FormatError:
        return None
    names = {s.selector for s in selections.values()}
    return {"selector": names.pop()} if len(names) == 1 else None
