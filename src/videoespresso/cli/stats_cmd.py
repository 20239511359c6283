"""``videoespresso stats``: the paper's dataset-figure statistics with plots."""

from __future__ import annotations

from pathlib import Path

import typer

from . import app
from ._common import console, err_console


@app.command("stats")
def stats_command(
    source: Path = typer.Argument(..., help="A build folder, the benchmark file or a train file."),
    out: Path = typer.Option(..., "--out", "-o", help="Folder for stats.json, stats.md and the PNG figures."),
    dpi: int = typer.Option(100, "--dpi", min=50, max=600, help="Resolution of the PNGs."),
) -> None:
    """Dataset statistics (the paper's Fig. 3 style): items per task and source, core frames per
    item, gaps between core frames, key objects per item, boxes per object, evidence length, and a
    build's drops and failures by stage and reason. Writes PNGs and a Markdown table.

    Example: videoespresso stats build/ --out build/stats/ ; videoespresso stats bench_hard.json --out bench_stats/
    """
    from rich.table import Table

    from ..errors import FormatError, printable
    from ..stats import collect, write_stats

    stats = collect(source)
    for line in stats.problems[:20]:
        err_console.print(f"skipped: {printable(line)}", highlight=False, markup=False)
    if len(stats.problems) > 20:
        err_console.print(f"... and {len(stats.problems) - 20} more", highlight=False)
    if not stats.items:
        # As export sft and export hf: an input with nothing in it is bad input (exit 2).
        raise FormatError(f"{source}: nothing to count (no items)")
    files = write_stats(stats, out, dpi=dpi)
    summary = stats.summary()
    table = Table(title=f"{source} ({summary['kind']}, {summary['items']} items)")
    for col in ("quantity", "n", "mean", "median", "min", "max"):
        table.add_column(col, justify="left" if col == "quantity" else "right")
    for key in ("core_frames_per_item", "core_frame_gaps_s", "key_objects_per_item", "boxes_per_object", "evidence_words"):
        d = summary[key]
        table.add_row(key.replace("_", " "), str(d["n"]), *(str(d.get(k, "")) for k in ("mean", "median", "min", "max")))
    console.print(table)
    console.print(f"figures and tables -> {out} ({len(files)} files)", highlight=False)
