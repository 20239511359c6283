"""``videoespresso lmms-eval task``: write the lmms-eval task folder for a benchmark."""

from __future__ import annotations

from pathlib import Path

import typer

from . import app
from ._common import console, err_console

lmms_app = typer.Typer(
    help="lmms-eval integration: write the videoespresso task folder (the model, --model videoespresso, "
    "is registered by an entry point when videoespresso is installed).",
    no_args_is_help=True,
)
app.add_typer(lmms_app, name="lmms-eval")


@lmms_app.command("task")
def lmms_task_command(
    out: Path = typer.Argument(..., help="Folder to write (pass it to lmms-eval as --include_path)."),
    bench: Path = typer.Option(..., "--bench", "-b", help="Benchmark file (bench_hard.json shape) or an HF folder from `export hf`."),
    video_root: Path = typer.Option(..., "--video-root", help="Folder the items' video_path values are relative to."),
    max_new_tokens: int = typer.Option(512, "--max-new-tokens", min=1, help="Generation budget written into the task (the official script's 512)."),
) -> None:
    """Write the `videoespresso` lmms-eval task: the official prompt, our answer extraction,
    overall / task-mean / per-task accuracy with standard errors clustered by video.

    Example: videoespresso lmms-eval task lmms_task/ --bench bench_hard.json --video-root videos/ && lmms-eval --model videoespresso --model_args spec=hf:Qwen/Qwen2-VL-2B-Instruct,selector=caption-llm --tasks videoespresso --include_path lmms_task/
    """
    from rich.text import Text

    from ..errors import ConfigError, printable
    from ..formats.bench import read_bench
    from ..integrations.lmms_eval.task import TASK_NAME, write_task

    if not video_root.is_dir():
        raise ConfigError(f"--video-root {video_root} is not a folder")
    items = read_bench(bench)
    folder, problems, left_out = write_task(items, video_root, out, max_new_tokens=max_new_tokens)
    for line in problems[:20]:
        err_console.print(Text.assemble(("warning:", "yellow"), f" {printable(line)}"), highlight=False)
    if len(problems) > 20:
        err_console.print(f"... and {len(problems) - 20} more", highlight=False)
    console.print(f"task {TASK_NAME!r} ({len(items) - left_out} of {len(items)} items) -> {folder}", highlight=False)
    console.print(f"run: lmms-eval --tasks {TASK_NAME} --include_path {folder} --model videoespresso --model_args spec=...", highlight=False)
    if left_out:
        # As eval: a refused item is named and the rest goes on, with exit code 3.
        raise typer.Exit(3)
