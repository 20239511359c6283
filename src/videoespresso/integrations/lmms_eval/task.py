"""The ``videoespresso`` lmms-eval task: the functions its YAML names, and :func:`write_task`,
which writes a task folder for one benchmark file.

lmms-eval loads a task from a YAML file plus the ``utils.py`` beside it; the data comes from
``datasets``. A benchmark lives on the user's disk with videos under a root of their choosing, so
the folder is generated: ``videoespresso.jsonl`` (one document per item, video paths made
absolute), ``videoespresso.yaml`` (metrics for the tasks this benchmark holds) and a two-line
``utils.py`` importing the functions below. Scoring uses our extractor
(:func:`videoespresso.bench.extract.extract_answer`), not the official first-capital rule.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Sequence

from ...schema import BenchItem, find_task

TASK_NAME = "videoespresso"
#: Metrics beside the per-task ones: sample-weighted overall (the leaderboard's), the paper's
#: unweighted task mean, and the share of replies no rule could parse.
OVERALL, TASK_MEAN, UNPARSED = "overall", "task_mean", "unparsed"


def task_metric(task: str) -> str:
    """The metric name of one task's accuracy (its paper name, snake case)."""
    info = find_task(task)
    name = info.paper_name if info else task
    return "acc_" + re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")


# --------------------------------------------------------------------------- YAML functions


def _item(doc: dict[str, Any]) -> BenchItem:
    return BenchItem(
        id=str(doc["id"]), video_path=doc["video_path"], question=doc["question"], options=list(doc["options"]),
        correct_answer=doc["correct_answer"], answer=doc.get("answer", ""), evidence=doc.get("evidence", ""),
        task=doc["task"],
    )


def doc_to_visual(doc: dict[str, Any]) -> list[str]:
    return [doc["video_path"]]


def doc_to_text(doc: dict[str, Any], lmms_eval_specific_kwargs: dict[str, Any] | None = None) -> str:
    """The official prompt (``template`` and ``with_evidence`` may be set per model in the YAML)."""
    from ...bench.prompts import render_prompt

    kwargs = lmms_eval_specific_kwargs or {}
    return render_prompt(_item(doc), kwargs.get("template", "official"), bool(kwargs.get("with_evidence", False)))


def process_results(doc: dict[str, Any], results: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Our extraction of the reply; every metric gets ``score`` (0/1) and the video (the cluster)."""
    from ...bench.extract import extract_answer

    reply = results[0] if results else ""
    found = extract_answer(reply, list(doc["options"]))
    correct = int(found.letter == doc["correct_answer"])
    base = {
        "id": str(doc["id"]), "task": doc["task"], "video_path": doc["video_path"],
        "letter": found.letter, "rule": found.rule, "correct_answer": doc["correct_answer"],
    }
    return {
        OVERALL: {**base, "score": correct},
        TASK_MEAN: {**base, "score": correct},
        UNPARSED: {**base, "score": int(found.letter is None)},
        task_metric(doc["task"]): {**base, "score": correct},
    }


def _mean(items: Sequence[dict[str, Any]]) -> float:
    return 100.0 * sum(i["score"] for i in items) / len(items) if items else float("nan")


def aggregate_accuracy(items: Sequence[dict[str, Any]]) -> float:
    """Accuracy in percent over the items given (all items, or one task's)."""
    return _mean(items)


def aggregate_task_mean(items: Sequence[dict[str, Any]]) -> float:
    """The paper's "Avg.": the unweighted mean of the per-task accuracies."""
    by_task: dict[str, list[dict[str, Any]]] = {}
    for i in items:
        by_task.setdefault(i["task"], []).append(i)
    accs = [_mean(v) for v in by_task.values()]
    return sum(accs) / len(accs) if accs else float("nan")


# --------------------------------------------------------------------------- the task folder


def _doc(item: BenchItem, video: Path) -> dict[str, Any]:
    return {
        "id": item.id, "video_path": str(video),
        "question": item.question, "options": list(item.options), "correct_answer": item.correct_answer,
        "answer": item.answer, "evidence": item.evidence, "task": item.task,
    }


def task_yaml(data_file: Path, tasks: Sequence[str], max_new_tokens: int = 512) -> str:
    """The YAML of the task over ``data_file`` with a metric per task present."""
    metric = "  - metric: {name}\n    aggregation: !function utils.{agg}\n    higher_is_better: {better}\n"
    metrics = metric.format(name=OVERALL, agg="aggregate_accuracy", better="true")
    metrics += metric.format(name=TASK_MEAN, agg="aggregate_task_mean", better="true")
    metrics += metric.format(name=UNPARSED, agg="aggregate_accuracy", better="false")
    for task in tasks:
        metrics += metric.format(name=task_metric(task), agg="aggregate_accuracy", better="true")
    return (
        f"# Written by `videoespresso lmms-eval task`; rerun it to change the data.\n"
        f"task: {TASK_NAME}\n"
        f"dataset_path: json\n"
        f"dataset_kwargs:\n"
        f"  data_files:\n"
        f"    test: {json.dumps(str(data_file))}\n"
        f"test_split: test\n"
        f"output_type: generate_until\n"
        f"cluster_key: video_path\n"
        f"doc_to_visual: !function utils.doc_to_visual\n"
        f"doc_to_text: !function utils.doc_to_text\n"
        f"doc_to_target: correct_answer\n"
        f"process_results: !function utils.process_results\n"
        f"generation_kwargs:\n"
        f"  max_new_tokens: {max_new_tokens}\n"
        f"  temperature: 0\n"
        f"  do_sample: false\n"
        f"lmms_eval_specific_kwargs:\n"
        f"  default:\n"
        f"    template: official\n"
        f"    with_evidence: false\n"
        f"metric_list:\n{metrics}"
        f"metadata:\n"
        f"  version: 1.0\n"
    )


UTILS = '''"""Written by `videoespresso lmms-eval task`: the task's functions live in videoespresso."""

from videoespresso.integrations.lmms_eval.task import (  # noqa: F401
    aggregate_accuracy,
    aggregate_task_mean,
    doc_to_text,
    doc_to_visual,
    process_results,
)
'''


def write_task(
    items: Sequence[BenchItem], video_root: str | Path, out: str | Path, *, max_new_tokens: int = 512
) -> tuple[Path, list[str], int]:
    """Write the task folder for ``items``; returns the folder, one line per item whose video is
    missing (kept: lmms-eval's model reports the failure for that item) or outside ``video_root``
    (left out, as ``eval`` refuses it), and how many were left out."""
    from ...bench.run import resolve_video
    from ...errors import UserError
    from ...formats.jsonl import write_jsonl_atomic, write_text_atomic

    out = Path(out).resolve()
    docs, problems = [], []
    for item in items:
        try:
            video = resolve_video(item, Path(video_root))
        except UserError as exc:
            problems.append(f"item {item.id}: {exc} (left out of the task)")
            continue
        if not video.is_file():
            problems.append(f"item {item.id}: video {video} not found")
        docs.append(_doc(item, video))
    data = out / f"{TASK_NAME}.jsonl"
    write_jsonl_atomic(data, docs)
    tasks = sorted({d["task"] for d in docs}, key=lambda t: task_metric(t))
    write_text_atomic(out / f"{TASK_NAME}.yaml", task_yaml(data, tasks, max_new_tokens))
    write_text_atomic(out / "utils.py", UTILS)
    return out, problems, len(items) - len(docs)
