"""``videoespresso compare A B``: is run B better than run A on the same items?"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from . import app
from ._common import console, err_console


@app.command("compare")
def compare_command(
    run_a: Path = typer.Argument(..., help="Predictions of run A (JSONL from eval, or official-format JSON)."),
    run_b: Path = typer.Argument(..., help="Predictions of run B, on the same benchmark items."),
    bench: Optional[Path] = typer.Option(None, "--bench", "-b", help="Benchmark file (optional when predictions carry task and correct_answer)."),
    failed: str = typer.Option("wrong", "--failed", help="Items a run could not answer: 'wrong' (default) or 'exclude'."),
    bootstrap: int = typer.Option(2000, "--bootstrap", min=100, max=1_000_000, help="Bootstrap resamples (of videos) for the 95% intervals."),
    seed: int = typer.Option(0, "--seed", help="Seed of the bootstrap."),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Write the comparison as JSON here."),
    tasks_any: bool = typer.Option(False, "--tasks-any", help="A custom benchmark: accept task names outside the 14 VideoEspresso tasks."),
) -> None:
    """Paired comparison: per-task and overall accuracy difference (B - A), exact McNemar p-value,
    and a 95% interval from a paired bootstrap over videos.

    Example: videoespresso compare runs/uniform16.jsonl runs/selector.jsonl --bench bench_hard.json
    """
    from rich.table import Table

    from ..bench.compare import compare_runs
    from ..bench.score import check_bench_matches
    from ..errors import ConfigError
    from ..formats.bench import read_bench
    from ..formats.jsonl import write_json_atomic
    from ..schema import find_task

    if failed not in ("wrong", "exclude"):
        raise ConfigError(f"--failed must be wrong or exclude, not {failed!r}")
    items = None
    if bench is not None:
        items = read_bench(bench)
        for run in (run_a, run_b):
            check_bench_matches(run, bench)
    result = compare_runs(run_a, run_b, items, failed=failed, bootstrap=bootstrap, seed=seed,  # type: ignore[arg-type]
                          tasks_any=tasks_any)
    table = Table(title=f"B = {result.name_b} vs A = {result.name_a}")
    for col in ("task", "n", "A", "B", "B - A", "95% CI", "only A", "only B", "p (McNemar)"):
        table.add_column(col, justify="left" if col == "task" else "right")
    for r in [*result.per_task, result.overall]:
        if r is result.overall:
            table.add_section()
        info = find_task(r.task)
        table.add_row(
            info.leaderboard_name if info else r.task, str(r.n), f"{r.accuracy_a:.1f}", f"{r.accuracy_b:.1f}",
            f"{r.difference:+.1f}", f"{r.ci95[0]:+.1f} to {r.ci95[1]:+.1f}", str(r.only_a), str(r.only_b), f"{r.p_value:.3g}",
        )
    console.print(table)
    console.print(f"method: {result.method} ({result.bootstrap} resamples, seed {result.seed})", highlight=False)
    for note in result.notes:
        err_console.print(f"[yellow]{note}[/]", highlight=False)
    if json_out is not None:
        write_json_atomic(json_out, result.model_dump(mode="json"))
        console.print(f"comparison -> {json_out}")
