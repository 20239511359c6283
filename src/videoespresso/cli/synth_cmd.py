"""``videoespresso synth-bench``: a generated benchmark whose answers are known."""

from __future__ import annotations

from pathlib import Path

import typer

from ..errors import UserError
from . import app
from ._common import console


@app.command("synth-bench")
def synth_bench_command(
    out: Path = typer.Option(..., "--out", "-o", help="Folder for videos/, core/, scenes.json and the bench files."),
    n: int = typer.Option(40, "--n", min=1, max=100_000, help="Number of clips."),
    seed: int = typer.Option(0, "--seed", help="Seed of the scenes, the questions and the split."),
    heldout: float = typer.Option(0.25, "--heldout", min=0.0, max=1.0, help="Share of clips in the held-out split."),
) -> None:
    """Render N scenes of coloured shapes (entering, leaving, moving, stopping, changing colour)
    and write questions with known answers in the official bench format: bench_train.json and
    bench_heldout.json (disjoint clips), scenes.json (the truth) and gold core frames.

    Example: videoespresso synth-bench --out synth --n 40 --seed 0 ;
    videoespresso eval --bench synth/bench_heldout.json --video-root synth ...
    """
    from rich.table import Table

    from ..bench.synth_bench import KINDS, SPLITS, make_synth_bench

    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file, not a folder")
    made = make_synth_bench(out, n, seed, heldout=heldout)
    table = Table("split", "clips", *KINDS, "file")
    for split in SPLITS:
        counts = made.counts[split]
        table.add_row(split, str(len(made.clips[split])), *(str(counts[k]) for k in KINDS), str(made.files[split]))
    console.print(table)
