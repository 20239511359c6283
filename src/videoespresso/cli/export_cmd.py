"""``videoespresso export sft|hf``: a build or the official files for other tools (LLaMA-Factory,
ms-swift, Hugging Face ``datasets``)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from . import app
from ._common import console, err_console

export_app = typer.Typer(
    help="Export a build or the official files for other tools: SFT files (LLaMA-Factory, ms-swift) "
    "and Hugging Face datasets folders.",
    no_args_is_help=True,
)
app.add_typer(export_app, name="export")


def _report(problems: list[str], limit: int = 20) -> None:
    from rich.text import Text

    from ..errors import printable

    for line in problems[:limit]:
        err_console.print(Text.assemble(("skipped:", "yellow"), f" {printable(line)}"), highlight=False)
    if len(problems) > limit:
        err_console.print(f"[yellow]... and {len(problems) - limit} more[/]", highlight=False)


def _is_build(path: Path) -> bool:
    return path.is_dir() and (path / "dataset.jsonl").is_file()


@export_app.command("sft")
def export_sft_command(
    source: Path = typer.Argument(..., help="A build folder, or an official train file (either keyframe spelling)."),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder (gets llamafactory/ and/or swift/)."),
    fmt: str = typer.Option("both", "--format", "-f", help="llamafactory, swift or both."),
    targets: str = typer.Option("selector,stage1,stage2", "--targets", "-t", help="Comma-separated: selector, stage1, stage2."),
    split: str = typer.Option("train", "--split", help="Build items to export: train, test or all."),
    media: str = typer.Option("images", "--media", help="What the reasoner sees: images (core frames) or video (the whole video)."),
    frames_root: Optional[Path] = typer.Option(None, "--frames-root", help="Folder a train file's keyframe paths are relative to (default: the file's folder)."),
    video_root: Optional[Path] = typer.Option(None, "--video-root", help="Folder video paths are relative to (needed with --media video)."),
    max_frames: int = typer.Option(4, "--max-frames", min=1, help="Most frames the selector prompt allows (as the selector's config)."),
) -> None:
    """Write SFT files for the selector, stage 1 (frames + question -> evidence) and stage 2
    (frames + question + evidence -> answer).

    Example: videoespresso export sft build/ --out sft/ --format both --targets selector,stage1,stage2
    """
    from ..errors import ConfigError
    from ..formats.sft import FORMATS, write_sft
    from ..formats.train import read_train
    from ..train import TARGETS, examples_from_build, examples_from_train_items

    formats = list(FORMATS) if fmt == "both" else [fmt]
    if any(f not in FORMATS for f in formats):
        raise ConfigError(f"--format must be llamafactory, swift or both, not {fmt!r}")
    chosen = [t.strip() for t in targets.split(",") if t.strip()]
    if not chosen or any(t not in TARGETS for t in chosen):
        raise ConfigError(f"--targets takes a comma-separated subset of {', '.join(TARGETS)}, not {targets!r}")
    if split not in ("train", "test", "all"):
        raise ConfigError(f"--split must be train, test or all, not {split!r}")
    if media not in ("images", "video"):
        raise ConfigError(f"--media must be images or video, not {media!r}")
    if media == "video" and video_root is None:
        raise ConfigError("--media video needs --video-root (the folder the videos' paths are relative to)")
    if _is_build(source):
        examples, problems = examples_from_build(
            source, chosen, split=split, media=media, video_root=video_root, max_frames=max_frames  # type: ignore[arg-type]
        )
    elif source.is_file():
        items = read_train(source)
        examples, problems = examples_from_train_items(
            items, chosen, frames_root=frames_root or source.parent, video_root=video_root, media=media  # type: ignore[arg-type]
        )
    else:
        raise ConfigError(f"{source} is neither a build folder (with dataset.jsonl) nor a train file")
    _report(problems)
    if not examples:
        # The same rule as export hf and stats: an input with nothing in it is bad input (exit 2),
        # never empty files and exit 0.
        raise ConfigError(f"{source}: nothing to export (no {', '.join(chosen)} example in split {split!r})")
    counts = write_sft(examples, out, formats)
    for name, per_target in counts.items():
        summary = ", ".join(f"{t}: {n}" for t, n in sorted(per_target.items())) or "nothing"
        console.print(f"{name}: {summary} -> {out / name}", highlight=False)


@export_app.command("hf")
def export_hf_command(
    source: Path = typer.Argument(..., help="A build folder, a benchmark file (bench_hard.json shape) or a train file."),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder (a datasets save_to_disk folder, or Parquet files)."),
    fmt: str = typer.Option("arrow", "--format", "-f", help="arrow (datasets.load_from_disk) or parquet."),
    kind: str = typer.Option("auto", "--kind", help="What SOURCE is: auto, build, bench or train."),
    frames_root: Optional[Path] = typer.Option(None, "--frames-root", help="Folder a file's frame paths are relative to (default: the file's folder)."),
) -> None:
    """Write a Hugging Face datasets folder: the records as columns, frames as Image features.

    Example: videoespresso export hf build/ --out build_hf/ ; videoespresso export hf bench_hard.json --out bench_hf/ --frames-root frames/
    """
    from ..errors import ConfigError
    from ..formats import hf
    from ..formats.bench import read_bench
    from ..formats.train import read_train

    if fmt not in hf.FORMATS:
        raise ConfigError(f"--format must be arrow or parquet, not {fmt!r}")
    if kind == "auto":
        if _is_build(source):
            kind = "build"
        elif source.is_file():
            kind = _file_kind(source)
        else:
            raise ConfigError(f"{source} is neither a build folder (with dataset.jsonl) nor a file")
    if kind not in ("build", "bench", "train"):
        raise ConfigError(f"--kind must be auto, build, bench or train, not {kind!r}")
    _quiet_datasets()
    root = frames_root or (source if source.is_dir() else source.parent)
    if kind == "build":
        folder, counts, problems = hf.export_build(source, out, fmt)
        summary = ", ".join(f"{k}: {v}" for k, v in counts.items())
    elif kind == "bench":
        folder, n, problems = hf.export_bench(read_bench(source), out, root, fmt)
        summary = f"test: {n}"
    else:
        folder, n, problems = hf.export_train(read_train(source), out, root, fmt)
        summary = f"train: {n}"
    _report(problems)
    console.print(f"{kind} -> {folder} ({fmt}; {summary})", highlight=False)


def _file_kind(path: Path) -> str:
    """A benchmark file has options and correct answers; a train file has neither."""
    from ..formats._io import load_json_list

    data = load_json_list(path, "input")
    first = next((d for d in data if isinstance(d, dict)), {}) if isinstance(data, list) else {}
    return "bench" if "correct_answer" in first or "options" in first else "train"


def _quiet_datasets() -> None:
    try:
        import datasets

        datasets.disable_progress_bars()
    except ImportError:
        pass
