"""``videoespresso build`` and ``videoespresso inspect``: make a dataset from videos, look at one."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from ..errors import printable
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


@app.command("build")
def build_command(
    videos: list[Path] = typer.Argument(..., help="Video files, folders of videos (searched recursively) or text files "
                                        "listing one video a line; any mix."),
    out: str = typer.Option(..., "--out", "-o", help="Build folder: store, frames, exported files. A folder, or an fsspec "
                            "URL (file://, s3://, gs://, ...): frames go there directly, the store to a local staging folder "
                            "published there at the end."),
    profile: Optional[str] = ProfileOption,
    config: Optional[Path] = ConfigOption,
    dump_config: Optional[Path] = DumpConfigOption,
    stages: Optional[str] = typer.Option(
        None, "--stages", help="Stage numbers to run, e.g. 1-5 (1 sample .. 10 options); earlier "
        "stages are read from the store only. Default: all, then export."
    ),
    limit: Optional[int] = typer.Option(None, "--limit", min=1, help="Use only the first N videos."),
    no_progress: bool = typer.Option(False, "--no-progress", help="Hide the progress bars."),
    strict: bool = typer.Option(False, "--strict", help="Exit with code 3 when any item failed (the dataset is still written)."),
    executor: str = typer.Option("local", "--executor", help="Where stages run: local (this process) or ray "
                                 "(Ray Data; a local Ray unless --ray-address). Results are identical."),
    ray_address: Optional[str] = typer.Option(None, "--ray-address", help="A running Ray cluster for --executor ray "
                                              "(auto, host:6379, ray://host:10001)."),
    staging: Optional[Path] = typer.Option(None, "--staging", help="Local working folder when --out is an object-store "
                                           "URL (default: under $VIDEOESPRESSO_HOME/staging)."),
) -> None:
    """Build a grounded chain-of-thought QA dataset from videos; a rerun resumes.

    Example: videoespresso build videos/ --out build/ --profile offline --limit 3 ;
    videoespresso build clip.mp4 other.mp4 --out build/

    On Ray: videoespresso build videos/ --out s3://bucket/ve-build --executor ray --ray-address auto
    """
    from ..curate import run_build
    from ..engine import print_summary
    from ..formats.jsonl import write_json_atomic

    cfg = effective_config(profile, config, dump_config)
    m = cfg.models
    note_random_weights({"captioner": m.captioner, "llm": m.llm, "grounder": m.grounder, "scorer": m.scorer}
                        | {f"judge {i + 1}": spec for i, spec in enumerate(m.judges)})
    result = run_build(videos, out, cfg, stages=stages, limit=limit, progress=not no_progress, console=err_console,
                       executor=executor, ray_address=ray_address, staging=staging)
    print_summary(result.run, console)
    summary = result.run.to_dict()
    summary["executor"] = executor
    if executor == "ray":
        summary["ray_startup_seconds"] = round(result.startup_seconds, 3)
        console.print(f"Ray start-up: {result.startup_seconds:.1f} s (not in the stage times)")
    url, out = result.url, result.folder
    failures = [(s.name, f) for s in result.run.stages for f in s.failures]
    for stage_name, f in failures[:50]:
        detail = f" ({printable(f['detail'])})" if f["detail"] else ""
        err_console.print(f"failed in {stage_name}: {printable(f['id'])}: {printable(f['reason'])}{detail}",
                          highlight=False, markup=False)
    total_failed = sum(s.failed + s.errors for s in result.run.stages)
    if total_failed > len(failures[:50]):
        err_console.print(f"... {total_failed} failed in all; every one is listed in {out / 'summary.json'} (up to 200 a stage)")
    if result.exported is not None:
        summary["exported"] = {k: str(v) for k, v in result.exported.files.items()}
        summary["exported_items"] = result.exported.items
        summary["split"] = {"train": result.exported.train, "test": result.exported.test,
                            "test_ratio": cfg.curate.test_ratio, "seed": cfg.curate.split_seed}
        console.print(
            f"exported {result.exported.items} QA items to {out}: {result.exported.train} train, "
            f"{result.exported.test} test (split by video)"
        )
    write_json_atomic(out / "summary.json", summary)
    if url is not None:
        from ..curate.pipeline import publish

        publish(out, url, ["summary.json"])
        console.print(f"published to {url} (staging folder {out})", highlight=False)
    if result.exported is not None and result.exported.items == 0:
        # A build that produced nothing is a failure for scripts, whatever the cause
        # (every video bad, the endpoint down): the reasons are in the table above.
        err_console.print(
            f"[bold red]error:[/] no QA item exported from {result.run.stages[0].inputs} video(s); "
            "see the failure reasons above",
            highlight=False,
        )
        raise typer.Exit(1)
    if strict and total_failed:
        raise typer.Exit(3)


@app.command("inspect")
def inspect_command(
    build_dir: Path = typer.Argument(..., help="A build folder written by `videoespresso build`."),
    failures: int = typer.Option(5, "--failures", min=0, help="Show this many recorded failures with their replies."),
) -> None:
    """Summarise a build: stored results per stage, reasons, runs and exported files.

    Example: videoespresso inspect build/ --failures 10
    """
    from rich.table import Table
    from rich.text import Text

    from ..curate.export import DATASET, TEST, TRAIN_IMAGES, TRAIN_VIDEO
    from ..curate.pipeline import STAGE_NAMES, STORE_FILE
    from ..engine import Store
    from ..errors import UserError

    path = build_dir / STORE_FILE
    if not path.is_file():
        raise UserError(f"{build_dir}: not a build folder (no {STORE_FILE})")
    with Store(path) as store:
        counts = store.counts()
        console.print(f"build folder: {build_dir}", highlight=False)
        table = Table(title="stored results")
        for col in ("#", "stage", "ok", "failed", "dropped", "errors"):
            table.add_column(col, justify="left" if col == "stage" else "right")
        names = [n for n in STAGE_NAMES if n in counts] + sorted(set(counts) - set(STAGE_NAMES))
        for name in names:
            c = counts[name]
            number = str(STAGE_NAMES.index(name) + 1) if name in STAGE_NAMES else "-"
            table.add_row(number, name, *(str(c.get(k, 0)) for k in ("ok", "failed", "dropped", "error")))
        console.print(table)
        reasons: dict[tuple[str, str, str], int] = {}
        for res in store.results(status="ok"):
            for output in res.outputs:
                for warning in output.get("_warnings", []):
                    if warning.get("stage") == res.stage:
                        key = (res.stage, "warning", warning.get("reason", ""))
                        reasons[key] = reasons.get(key, 0) + 1
        shown = []
        for status in ("failed", "dropped", "error"):
            for res in store.results(status=status):
                key = (res.stage, status, res.reason or "")
                reasons[key] = reasons.get(key, 0) + 1
                if status != "dropped" and len(shown) < failures:
                    shown.append(res)
        if reasons:
            rt = Table(title="by reason")
            for col in ("stage", "status", "reason", "count"):
                rt.add_column(col)
            for (stage, status, reason), n in sorted(reasons.items()):
                rt.add_row(stage, status, reason, str(n))
            console.print(rt)
        for res in shown:
            console.print(Text.assemble((res.stage, "bold"), f" {printable(res.item_id)}: {printable(res.reason)}: "
                                        f"{printable(res.detail)}"), highlight=False)
            if res.raw:
                console.print(f"  reply: {res.raw[:300]!r}", highlight=False, markup=False)
        runs = store.runs()
    if runs:
        last = runs[-1]
        state = "finished" if last["finished"] else "interrupted"
        console.print(f"{len(runs)} run(s); the last one {state}")
    for name in (DATASET, TRAIN_VIDEO, TRAIN_IMAGES, TEST):
        file = build_dir / name
        if file.is_file():
            n = sum(1 for line in file.open(encoding="utf-8") if line.strip()) if name.endswith(".jsonl") \
                else len(json.loads(file.read_text("utf-8")))
            console.print(f"{name}: {n} items")
