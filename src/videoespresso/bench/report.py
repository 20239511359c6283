"""Markdown and self-contained HTML reports of one or several scored runs.

Each run is a :class:`~videoespresso.bench.score.ScoreReport` (from ``score --json``) or a
predictions file scored on the fly. The per-task table uses the leaderboard's column order and
sits next to the published leaderboard rows; plots are matplotlib PNGs, written beside the
Markdown file and embedded as data URIs in the HTML so that the HTML is one portable file.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from ..errors import FormatError
from ..schema import find_task
from ..templating import render
from .extract import Mode
from .leaderboard import LeaderboardRow, leaderboard_columns, leaderboard_rows, leaderboard_source
from .score import ScoreReport, averages_labels, benchmark_task_count, check_task_names, custom_tasks, score_file


def load_run(path: str | Path, bench: str | Path | None = None, mode: Mode = "default", *,
             tasks_any: bool = False) -> ScoreReport:
    """A score JSON written by ``score --json``, or a predictions file (scored here).

    Task names outside the 14 benchmark tasks are refused unless ``tasks_any``."""
    path = Path(path)
    if not path.is_file():
        raise FormatError(f"run {path} does not exist")
    if path.suffix == ".json":
        try:
            data = json.loads(path.read_text("utf-8"))
        except ValueError as exc:
            raise FormatError(f"run {path} is not valid JSON: {exc}") from None
        if isinstance(data, dict) and "score" in data:
            try:
                report = ScoreReport.model_validate(data)
            except ValueError as exc:
                raise FormatError(f"run {path} is not a score file from `videoespresso score --json`: {exc}") from None
            if not tasks_any:
                check_task_names(((t.task, None) for t in report.score.per_task), f"run {path}")
            return report.model_copy(update={"name": report.name or path.stem})
    return score_file(path, bench, mode=mode, tasks_any=tasks_any)


@dataclass
class ReportFiles:
    markdown: Path
    html: Path
    figures: list[Path]


def _run_columns(report: ScoreReport) -> dict[str, float]:
    out: dict[str, float] = {}
    for task in report.score.per_task:
        info = find_task(task.task)
        out[info.leaderboard_name if info else task.task] = task.accuracy
    return out


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def _columns(runs: Sequence[ScoreReport]) -> list[str]:
    """The per-task columns: the leaderboard's, or the runs' own tasks for a custom benchmark."""
    columns = leaderboard_columns()
    if not any(custom_tasks(r) for r in runs):
        return columns
    present = {t for r in runs for t in _run_columns(r)}
    return [c for c in columns if c in present] + sorted(present - set(columns))


def _comparison_rows(runs: Sequence[ScoreReport], board: Sequence[LeaderboardRow]) -> tuple[list[str], list[list[str]]]:
    columns = _columns(runs)
    extra = sorted({t for r in runs for t in _run_columns(r)} - set(columns))
    header = ["Model", "Source", "Overall (weighted)", "Avg. (unweighted)", *columns, *extra]
    rows: list[list[str]] = []
    for run in runs:
        acc = _run_columns(run)
        if run.complete or custom_tasks(run):
            label, weighted, unweighted = "this run", _fmt(run.score.overall_weighted), _fmt(run.score.overall_unweighted)
        else:
            # Averages over fewer tasks are not the leaderboard's averages: never put them in
            # those columns as if they were comparable.
            label = f"this run, partial ({benchmark_task_count(run)} of 14 tasks)"
            weighted, unweighted = "n/a", "n/a"
        if run.protocols:
            label += " [" + "; ".join(p.split(":", 1)[0] for p in run.protocols) + " protocol]"
        rows.append([run.name, label, weighted, unweighted] + [_fmt(acc.get(c)) for c in [*columns, *extra]])
    for row in board:
        unweighted = sum(row.per_task.values()) / len(row.per_task)
        rows.append(
            [f"{row.model} ({row.params or '?'}, {row.frames} fr.)", "leaderboard", _fmt(row.overall), _fmt(unweighted)]
            + [_fmt(row.per_task.get(c)) for c in columns]
            + ["-" for _ in extra]
        )
    return header, rows


def _detail_rows(run: ScoreReport) -> tuple[list[str], list[list[str]]]:
    header = ["Task", "n", "correct", "unparsed", "failed", "accuracy", "95% CI (Wilson, clustered by video)"]
    rows = []
    for t in run.score.per_task:
        info = find_task(t.task)
        ci = "-" if t.ci95 is None else f"{t.ci95[0]:.1f} - {t.ci95[1]:.1f}"
        rows.append([info.leaderboard_name if info else t.task, str(t.n), str(t.correct), str(t.unparsed), str(t.failed), _fmt(t.accuracy), ci])
    s = run.score
    ci_w = "-" if s.ci95_weighted is None else f"{s.ci95_weighted[0]:.1f} - {s.ci95_weighted[1]:.1f}"
    ci_u = "-" if s.ci95_unweighted is None else f"{s.ci95_unweighted[0]:.1f} - {s.ci95_unweighted[1]:.1f}"
    weighted_label, unweighted_label = averages_labels(run)
    rows.append([weighted_label, str(s.n), str(sum(t.correct for t in s.per_task)), str(s.unparsed), str(s.failed), _fmt(s.overall_weighted), ci_w])
    rows.append([unweighted_label, str(len(s.per_task)), "-", "-", "-", _fmt(s.overall_unweighted), ci_u])
    return header, rows


# --------------------------------------------------------------------------- plots


def _plot_bars(runs: Sequence[ScoreReport], board: Sequence[LeaderboardRow], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    columns = _columns(runs)
    series = [(r.name, [_run_columns(r).get(c, np.nan) for c in columns]) for r in runs]
    series += [(f"{b.model} (leaderboard)", [b.per_task[c] for c in columns]) for b in board]
    width = 0.8 / max(1, len(series))
    x = np.arange(len(columns))
    fig, ax = plt.subplots(figsize=(12, 4.5), dpi=100)
    for i, (name, values) in enumerate(series):
        ax.bar(x + i * width - 0.4 + width / 2, values, width, label=name)
    ax.axhline(25.0, color="grey", linestyle=":", linewidth=1, label="chance (25%)")
    ax.set_xticks(x, [c.replace(" Analysis", "") for c in columns], rotation=40, ha="right")
    ax.set_ylabel("accuracy (%)")
    ax.set_ylim(0, 100)
    ax.legend(fontsize=8, ncols=2)
    ax.set_title("Per-task accuracy (leaderboard column order)")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _plot_radar(runs: Sequence[ScoreReport], board: Sequence[LeaderboardRow], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    columns = _columns(runs)
    angles = np.linspace(0, 2 * np.pi, len(columns), endpoint=False)
    closed = np.concatenate([angles, angles[:1]])
    fig = plt.figure(figsize=(6.5, 6.5), dpi=100)
    ax = fig.add_subplot(projection="polar")
    # A task a run does not cover is a gap in its line (NaN), never a point at 0%.
    series = [(r.name, [_run_columns(r).get(c, np.nan) for c in columns]) for r in runs]
    series += [(f"{b.model} (leaderboard)", [b.per_task[c] for c in columns]) for b in board]
    for name, values in series:
        vals = np.asarray(values + values[:1], dtype=float)
        (line,) = ax.plot(closed, vals, linewidth=1.5, marker="o", markersize=3, label=name)
        if not np.isnan(vals).any():
            ax.fill(closed, vals, alpha=0.08, color=line.get_color())
    ax.set_xticks(angles, [c.replace(" Analysis", "") for c in columns], fontsize=8)
    ax.set_ylim(0, 100)
    ax.legend(loc="upper right", bbox_to_anchor=(1.35, 1.1), fontsize=7)
    fig.tight_layout()
    fig.savefig(path, bbox_inches="tight")
    plt.close(fig)


# --------------------------------------------------------------------------- rendering


def _md_table(header: list[str], rows: list[list[str]]) -> str:
    def cell(text: str) -> str:
        return text.replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(cell(h) for h in header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def write_report(
    runs: Sequence[ScoreReport],
    out_dir: str | Path,
    *,
    leaderboard: Sequence[str] | None = None,
    title: str = "VideoEspresso benchmark report",
) -> ReportFiles:
    """Write ``report.md``, ``report.html`` and the PNG figures into ``out_dir``.

    ``leaderboard`` picks published rows by model name (case-insensitive substring); None shows
    all 15 in the table and the top three in the plots.
    """
    if not runs:
        raise FormatError("a report needs at least one run")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    board_all = leaderboard_rows()
    if leaderboard is None:
        board, plotted = board_all, board_all[:3]
    else:
        wanted = [w.lower() for w in leaderboard]
        board = [b for b in board_all if any(w in b.model.lower() for w in wanted)]
        plotted = board
    if any(custom_tasks(r) for r in runs):
        # Other tasks than the leaderboard's: nothing published to set beside them.
        board, plotted = [], []

    bars, radar = out / "per_task_bars.png", out / "per_task_radar.png"
    _plot_bars(runs, plotted, bars)
    _plot_radar(runs, plotted, radar)

    header, rows = _comparison_rows(runs, board)
    md: list[str] = [f"# {title}", ""]
    md.append(
        "Accuracy in percent. **Overall (weighted)** is the leaderboard's sample-weighted accuracy; "
        "**Avg. (unweighted)** is the paper's mean of the 14 task accuracies. "
        f"Leaderboard rows: {leaderboard_source()}."
    )
    md += ["", "## Per task, next to the published leaderboard", "", _md_table(header, rows), ""]
    md += ["![per-task accuracy](per_task_bars.png)", "", "![per-task radar](per_task_radar.png)", ""]
    page = {"title": title, "source": leaderboard_source(), "comparison": (header, rows), "highlight": len(runs),
            "figures": [("per-task accuracy", _data_uri(bars)), ("per-task radar", _data_uri(radar))], "runs": []}
    for run in runs:
        d_header, d_rows = _detail_rows(run)
        rules = sorted(run.score.rule_counts.items(), key=lambda kv: -kv[1])
        r_rows = [[rule, str(count), f"{100 * count / max(1, run.score.n):.1f}%"] for rule, count in rules]
        p_rows = [[kind, str(count)] for kind, count in sorted(run.problem_counts.items())]
        md += [f"## Run: {run.name}", "", f"Source: `{run.source}` (extraction mode: {run.mode})", ""]
        md += [f"Protocol: {p}" for p in run.protocols] + ([""] if run.protocols else [])
        md += [_md_table(d_header, d_rows), "", "### Extraction rules", "", _md_table(["rule", "count", "share"], r_rows), ""]
        section = {"name": run.name, "source": str(run.source), "mode": run.mode, "protocols": run.protocols,
                   "detail": (d_header, d_rows), "rules": (["rule", "count", "share"], r_rows), "partial": None,
                   "failures": None, "problems": None, "unparsed": []}
        page["runs"].append(section)
        if not run.complete:
            note = (f"Partial run: {len(run.score.per_task)} of 14 tasks. Its averages cover those tasks only and are "
                    "not comparable with the leaderboard's; the comparison table shows n/a for them.")
            md += [f"**{note}**", ""]
            section["partial"] = note
        if run.failures:
            how = "counted as wrong answers" if run.failed_rule == "wrong" else "left out of the accuracies"
            f_rows = [[str(f.get("id")), str(f.get("task")), str(f.get("reason"))] for f in run.failures[:50]]
            note = f"{len(run.failures)} items failed (the run could not answer them); they are {how}."
            md += ["### Failed items", "", note, "", _md_table(["id", "task", "reason"], f_rows), ""]
            section["failures"] = (note, (["id", "task", "reason"], f_rows))
        if p_rows:
            md += ["### Input problems", "", _md_table(["problem", "count"], p_rows), ""]
            section["problems"] = (["problem", "count"], p_rows)
        if run.unparsed_examples:
            md += ["### Unparsed outputs (examples)", ""]
            for ex in run.unparsed_examples:
                text = str(ex.get("output", ""))
                md += [f"- `{ex.get('id')}` ({ex.get('task')}, {ex.get('rule')}):", "", "  ```text"]
                md += ["  " + line for line in (text.splitlines() or [""])] + ["  ```", ""]
                section["unparsed"].append({"id": str(ex.get("id")), "task": str(ex.get("task")),
                                            "rule": str(ex.get("rule")), "output": text})

    md_path, html_path = out / "report.md", out / "report.html"
    md_path.write_text("\n".join(md) + "\n", encoding="utf-8")
    html_path.write_text(render("videoespresso.bench", "report.html", **page), encoding="utf-8")
    return ReportFiles(markdown=md_path, html=html_path, figures=[bars, radar])


def _data_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


__all__ = ["ReportFiles", "load_run", "write_report"]
