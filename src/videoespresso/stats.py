"""Dataset statistics in the style of the paper's dataset figure (Fig. 3): items per task and per
source, core frames per item, gaps between core frames, key objects per item, boxes per object,
evidence length, and, for a build, drops and failures by stage with their reasons.

Works on a build folder (``dataset.jsonl`` + ``store.sqlite``) and on the official files (the
benchmark or a train file): there key objects and boxes come from the evidence's inline tags, and
gaps need frame times, which only our files record. Writes ``stats.json``, ``stats.md`` (Markdown
tables) and one matplotlib PNG per figure.
"""

from __future__ import annotations

import statistics
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

from .errors import FormatError
from .formats.evidence import evidence_objects, strip_evidence_tags
from .schema import find_task


@dataclass
class ItemStats:
    """What one QA item contributes."""

    task: str
    source: str
    core_frames: int
    gaps_s: list[float]
    key_objects: int
    boxes_per_object: list[int]
    evidence_words: int
    split: str = ""


@dataclass
class DatasetStats:
    items: list[ItemStats]
    #: stage -> status (dropped / failed / error) -> reason -> count
    outcomes: dict[str, dict[str, dict[str, int]]] = field(default_factory=dict)
    kind: str = "build"
    #: One line per record left out, with the reason.
    problems: list[str] = field(default_factory=list)

    # ----------------------------------------------------------------- derived

    def counts(self, key: str) -> dict[str, int]:
        return dict(Counter(getattr(i, key) for i in self.items).most_common())

    def values(self, key: str) -> list[float]:
        out: list[float] = []
        for i in self.items:
            value = getattr(i, key)
            out.extend(value if isinstance(value, list) else [value])
        return out

    def summary(self) -> dict[str, Any]:
        def describe(values: Sequence[float]) -> dict[str, Any]:
            if not values:
                return {"n": 0}
            return {
                "n": len(values), "mean": round(statistics.fmean(values), 3), "median": statistics.median(values),
                "min": min(values), "max": max(values),
            }

        return {
            "kind": self.kind,
            "items": len(self.items),
            "per_task": self.counts("task"),
            "per_source": self.counts("source"),
            "per_split": self.counts("split") if any(i.split for i in self.items) else {},
            "core_frames_per_item": describe(self.values("core_frames")),
            "core_frame_gaps_s": describe(self.values("gaps_s")),
            "key_objects_per_item": describe(self.values("key_objects")),
            "boxes_per_object": describe(self.values("boxes_per_object")),
            "evidence_words": describe(self.values("evidence_words")),
            "drops_and_failures": self.outcomes,
        }


def source_of(video_path: str) -> str:
    """The source dataset of a video: the first folder of a relative path (``all_video/``
    skipped, as in the official files), the parent folder of an absolute one, else ``(root)``."""
    path = Path(video_path)
    folders = [p for p in path.parts[:-1] if p not in ("all_video", path.anchor, ".")]
    if not folders:
        return "(root)"
    return folders[-1] if path.is_absolute() else folders[0]


def _task_name(task: str) -> str:
    info = find_task(task)
    return info.paper_name if info else task


def _words(evidence: str) -> int:
    """Words of the evidence as prose (tags removed; raw text when its tags are malformed)."""
    try:
        return len(strip_evidence_tags(evidence).split())
    except FormatError:
        return len(evidence.split())


def _evidence(evidence: str) -> tuple[int, list[int], int]:
    """(key objects, boxes per object, words) of an evidence text with inline tags."""
    try:
        objects = evidence_objects(evidence)
    except FormatError:
        objects = []
    return len(objects), [len(o.boxes) for o in objects], _words(evidence)


def _gaps(seconds: Sequence[float]) -> list[float]:
    ordered = sorted(seconds)
    return [round(b - a, 3) for a, b in zip(ordered, ordered[1:])]


# --------------------------------------------------------------------------- collecting


def build_stats(build: str | Path) -> DatasetStats:
    from .formats.dataset import iter_dataset

    build = Path(build)
    items = []
    problems = []
    for line, record, error in iter_dataset(build / "dataset.jsonl"):
        if error is not None:
            problems.append(f"{build / 'dataset.jsonl'}:{line}: {error}; skipped")
            continue
        qa, cot = record["qa"], record["cot"]
        objects = cot.get("key_objects", [])
        words = _words(cot.get("evidence", ""))
        items.append(ItemStats(
            task=_task_name(qa["task"]), source=source_of(qa["video"]), core_frames=len(cot["core_frames"]),
            gaps_s=_gaps([f["seconds"] for f in cot["core_frames"]]), key_objects=len(objects),
            boxes_per_object=[len(o.get("boxes", [])) for o in objects], evidence_words=words,
            split=record.get("split", ""),
        ))
    return DatasetStats(items=items, outcomes=store_outcomes(build / "store.sqlite"), kind="build", problems=problems)


def store_outcomes(store_file: Path) -> dict[str, dict[str, dict[str, int]]]:
    """Drops and failures by stage, status and reason: the latest result of each item per stage."""
    if not store_file.is_file():
        return {}
    from .engine import Store

    latest: dict[tuple[str, str], tuple[str, str]] = {}
    store = Store(store_file)
    try:
        for r in store.results():
            latest[(r.stage, r.item_id)] = (r.status, r.reason or "(no reason)")
    finally:
        store.close()
    out: dict[str, dict[str, dict[str, int]]] = {}
    for (stage, _), (status, reason) in latest.items():
        if status == "ok":
            continue
        by_reason = out.setdefault(stage, {}).setdefault(status, {})
        by_reason[reason] = by_reason.get(reason, 0) + 1
    return out


def official_stats(path: str | Path) -> DatasetStats:
    """Statistics of the benchmark file or a train file (key objects from the evidence tags)."""
    from .formats._io import load_json_list

    data = load_json_list(path, "input")
    first = next((d for d in data if isinstance(d, dict)), {}) if isinstance(data, list) else {}
    items: list[ItemStats] = []
    if "correct_answer" in first or "options" in first:
        from .formats.bench import read_bench

        for b in read_bench(path):
            n, boxes, words = _evidence(b.evidence)
            seconds = b.extra.get("keyframes_seconds")
            items.append(ItemStats(
                task=_task_name(b.task), source=source_of(b.video_path), core_frames=len(b.core_frames_paths),
                gaps_s=_gaps(seconds) if isinstance(seconds, list) else [], key_objects=n,
                boxes_per_object=boxes, evidence_words=words, split="test",
            ))
        return DatasetStats(items=items, kind="bench")
    from .formats.train import read_train

    for t in read_train(path):
        n, boxes, words = _evidence(t.evidence)
        seconds = t.extra.get("keyframes_seconds")
        items.append(ItemStats(
            task=_task_name(t.task), source=source_of(t.video_path or (t.keyframes[0] if t.keyframes else "")),
            core_frames=len(t.keyframes), gaps_s=_gaps(seconds) if isinstance(seconds, list) else [],
            key_objects=n, boxes_per_object=boxes, evidence_words=words, split="train",
        ))
    return DatasetStats(items=items, kind="train")


def collect(source: str | Path) -> DatasetStats:
    source = Path(source)
    if source.is_dir():
        if not (source / "dataset.jsonl").is_file():
            raise FormatError(f"{source}: no dataset.jsonl (not a build folder, or the build has not exported yet)")
        return build_stats(source)
    return official_stats(source)


# --------------------------------------------------------------------------- writing

FIGURES = (
    ("tasks", "Items per task"),
    ("sources", "Items per source"),
    ("core_frames", "Core frames per item"),
    ("gaps", "Gap between consecutive core frames (s)"),
    ("key_objects", "Key objects per item"),
    ("boxes", "Boxes per key object"),
    ("evidence", "Evidence length (words)"),
    ("drops", "Drops and failures by stage"),
)


def figure_titles(stats: DatasetStats) -> dict[str, str]:
    """Each figure's title with its sample size, named by what it counts: a gap figure has one
    value per gap and a box figure one per key object, not one per item."""
    items = len(stats.items)
    drops = sum(n for statuses in stats.outcomes.values() for by_reason in statuses.values() for n in by_reason.values())
    counted = {
        "gaps": (len(stats.values("gaps_s")), "gaps"),
        "boxes": (len(stats.values("boxes_per_object")), "key objects"),
        "drops": (drops, "dropped or failed items"),
    }
    titles = {}
    for name, title in FIGURES:
        n, what = counted.get(name, (items, "items"))
        titles[name] = f"{title} (n = {n} {what})"
    return titles


def _bar(ax, labels: Sequence[str], values: Sequence[float], horizontal: bool = True) -> None:
    if not labels:
        ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes)
        return
    if horizontal:
        ax.barh(list(range(len(labels)))[::-1], values, color="#6b4f3a")
        ax.set_yticks(list(range(len(labels)))[::-1], labels)
    else:
        ax.bar(labels, values, color="#6b4f3a")


def _hist(ax, values: Sequence[float], integer: bool) -> None:
    if not values:
        ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes)
        return
    if integer:
        counts = Counter(int(v) for v in values)
        xs = list(range(min(counts), max(counts) + 1))
        ax.bar(xs, [counts.get(x, 0) for x in xs], color="#6b4f3a")
        ax.set_xticks(xs)
    else:
        ax.hist(values, bins=min(30, max(5, len(set(values)))), color="#6b4f3a")
    ax.set_ylabel("count")


def write_stats(stats: DatasetStats, out: str | Path, dpi: int = 100) -> dict[str, Path]:
    """Write ``stats.json``, ``stats.md`` and the PNGs into ``out``; returns the files by name."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .formats.jsonl import write_json_atomic, write_text_atomic

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    summary = stats.summary()
    files: dict[str, Path] = {}
    drops = {
        f"{stage}: {reason}": n
        for stage, statuses in stats.outcomes.items() for by_reason in statuses.values() for reason, n in by_reason.items()
    }
    titles = figure_titles(stats)
    for name, _ in FIGURES:
        fig, ax = plt.subplots(figsize=(7, 4.5))
        if name == "tasks":
            _bar(ax, list(summary["per_task"]), list(summary["per_task"].values()))
        elif name == "sources":
            _bar(ax, list(summary["per_source"]), list(summary["per_source"].values()))
        elif name == "core_frames":
            _hist(ax, stats.values("core_frames"), integer=True)
        elif name == "gaps":
            _hist(ax, stats.values("gaps_s"), integer=False)
        elif name == "key_objects":
            _hist(ax, stats.values("key_objects"), integer=True)
        elif name == "boxes":
            _hist(ax, stats.values("boxes_per_object"), integer=True)
        elif name == "evidence":
            _hist(ax, stats.values("evidence_words"), integer=False)
        else:
            top = sorted(drops.items(), key=lambda kv: -kv[1])[:15]
            _bar(ax, [k[:60] for k, _ in top], [v for _, v in top])
        ax.set_title(titles[name])
        fig.tight_layout()
        path = out / f"{name}.png"
        tmp = out / f".{name}.tmp.png"
        fig.savefig(tmp, dpi=dpi)
        plt.close(fig)
        tmp.replace(path)
        files[name] = path
    write_json_atomic(out / "stats.json", summary)
    files["json"] = out / "stats.json"
    write_text_atomic(out / "stats.md", markdown(summary, [(f"{n}.png", titles[n]) for n, _ in FIGURES]))
    files["markdown"] = out / "stats.md"
    return files


def markdown(summary: dict[str, Any], images: Iterable[tuple[str, str]] = ()) -> str:
    """The tables as Markdown, then each (file, title) image."""
    lines = [f"# Dataset statistics ({summary['kind']}, {summary['items']} items)", ""]

    def table(title: str, header: tuple[str, str], rows: Iterable[tuple[Any, Any]]) -> None:
        lines.extend([f"## {title}", "", f"| {header[0]} | {header[1]} |", "|---|---:|"])
        lines.extend(f"| {a} | {b} |" for a, b in rows)
        lines.append("")

    table("Items per task", ("task", "items"), summary["per_task"].items())
    table("Items per source", ("source", "items"), summary["per_source"].items())
    if summary.get("per_split"):
        table("Items per split", ("split", "items"), summary["per_split"].items())
    lines.extend(["## Distributions", "", "| quantity | n | mean | median | min | max |", "|---|---:|---:|---:|---:|---:|"])
    for key, label in (
        ("core_frames_per_item", "core frames per item"), ("core_frame_gaps_s", "gap between core frames (s)"),
        ("key_objects_per_item", "key objects per item"), ("boxes_per_object", "boxes per key object"),
        ("evidence_words", "evidence length (words)"),
    ):
        d = summary[key]
        if d.get("n"):
            lines.append(f"| {label} | {d['n']} | {d['mean']} | {d['median']} | {d['min']} | {d['max']} |")
        else:
            lines.append(f"| {label} | 0 | | | | |")
    lines.append("")
    outcomes = summary.get("drops_and_failures") or {}
    if outcomes:
        lines.extend(["## Drops and failures by stage", "", "| stage | status | reason | items |", "|---|---|---|---:|"])
        for stage, statuses in outcomes.items():
            for status, reasons in statuses.items():
                for reason, n in sorted(reasons.items(), key=lambda kv: -kv[1]):
                    lines.append(f"| {stage} | {status} | {reason.replace('|', '/')} | {n} |")
        lines.append("")
    for image, title in images:
        lines.append(f"![{title}]({image})")
    return "\n".join(lines) + "\n"
