"""The UI's routes and pages: every page is a Jinja2 template with autoescaping on
(:mod:`videoespresso.templating`), so no value from a data file can become markup."""

from __future__ import annotations

import json
import os
import sqlite3
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlencode

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response

from ..formats.dataset import BadRecord, DatasetRecord, read_dataset
from ..schema import LETTERS
from ..templating import render

if TYPE_CHECKING:
    from . import UIConfig

_STATIC = {"ui.css": "text/css", "ask.js": "text/javascript"}
_IMAGES = (".jpg", ".jpeg", ".png")
#: Items shown per page; the filters narrow the rest.
PAGE = 100


def _page(template: str, title: str, status: int = 200, **context: Any) -> HTMLResponse:
    html = render("videoespresso.ui", template, title=title, **context)
    return HTMLResponse(html, status_code=status, headers={"Cache-Control": "no-store"})


def _message(title: str, *, error: str = "", hint: str = "", option: str = "") -> HTMLResponse:
    return _page("message.html", title, error=error, hint=hint, option=option)


# --------------------------------------------------------------------------- what the pages show


def evidence_parts(text: str) -> dict[str, Any]:
    """Evidence split for the template: tagged objects apart from the text around them; text
    whose tags will not parse is kept whole with the parser's reason."""
    from ..errors import FormatError
    from ..formats.evidence import EvidenceObject, parse_evidence

    try:
        parsed = parse_evidence(text or "")
    except FormatError as exc:
        return {"text": text, "error": str(exc), "parts": []}
    parts = []
    for part in parsed:
        if isinstance(part, EvidenceObject):
            note = f"{len(part.boxes)} box(es)" if part.boxes else "no box"
            parts.append({"object": True, "text": part.name, "note": note})
        else:
            parts.append({"object": False, "text": part})
    return {"text": text, "error": None, "parts": parts}


def verdict(record: DatasetRecord | dict[str, Any]) -> str:
    judgements = record.judgements if isinstance(record, DatasetRecord) else record.get("judgements") or []
    if not judgements:
        return "unjudged"
    keep = [j.keep if not isinstance(j, dict) else j.get("keep") for j in judgements]
    return "kept" if all(keep) else "rejected"


def _warnings(record: DatasetRecord) -> list[str]:
    return [w if isinstance(w, str) else w.reason for w in record.warnings]


@dataclass
class ItemView:
    """One dataset record as the item template draws it."""

    record: DatasetRecord
    verdict: str
    warnings: list[str]
    link: str
    frames: list[dict[str, Any]] = field(default_factory=list)
    options: list[dict[str, Any]] = field(default_factory=list)
    evidence: dict[str, Any] = field(default_factory=dict)


def item_view(record: DatasetRecord) -> ItemView:
    cot = record.cot
    core = cot.core_frames
    per_frame: dict[int, list[dict[str, Any]]] = {f.index: [] for f in core}
    for obj in cot.key_objects:
        frame = obj.frame or (core[0] if core else None)
        if frame is None:
            continue
        per_frame.setdefault(frame.index, []).extend(
            {"name": obj.name, "x": b.x0, "y": b.y0, "width": b.x1 - b.x0, "height": b.y1 - b.y0} for b in obj.boxes
        )
    frames = [
        {"index": f.index, "seconds": f.seconds, "src": f"/ui/dataset/file?{urlencode({'path': f.path or ''})}",
         "boxes": per_frame.get(f.index, [])}
        for f in core
    ]
    options = [{"letter": LETTERS[i], "text": o, "right": LETTERS[i] == record.correct_answer}
               for i, o in enumerate(record.options[: len(LETTERS)])]
    return ItemView(record=record, verdict=verdict(record), warnings=_warnings(record),
                    link=f"/ui/dataset/item?{urlencode({'id': record.qa.id})}", frames=frames, options=options,
                    evidence=evidence_parts(cot.evidence))


# --------------------------------------------------------------------------- dataset


def _stamp(path: Path | None) -> tuple[str, int, int] | None:
    """What identifies a file's current content cheaply: path, size, modification time."""
    if path is None or not path.is_file():
        return None
    st = path.stat()
    return (str(path), st.st_size, st.st_mtime_ns)


@lru_cache(maxsize=4)
def _read_dataset_cached(stamp: tuple[str, int, int] | None) -> tuple[list[DatasetRecord], list[BadRecord]]:
    """A big dataset is parsed once per version of the file, not once per page view."""
    if stamp is None:
        return [], []
    return read_dataset(stamp[0])


def _dataset(root: Path) -> tuple[list[DatasetRecord], list[BadRecord]]:
    return _read_dataset_cached(_stamp(root / "dataset.jsonl"))


def store_failures(root: Path) -> list[dict[str, Any]]:
    """Failed, dropped and errored items from the build's store (read-only)."""
    path = root / "store.sqlite"
    if not path.is_file():
        return []
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
        try:
            rows = conn.execute(
                "SELECT stage, item_id, status, reason, detail FROM results "
                "WHERE status IN ('failed', 'dropped', 'error') ORDER BY created, rowid"
            ).fetchall()
        finally:
            conn.close()
    except sqlite3.Error:
        return []
    return [{"stage": str(s), "id": str(i), "status": str(st), "reason": str(r or st), "detail": str(d or "")}
            for s, i, st, r, d in rows]


def _dataset_page(root: Path | None, query: dict[str, str]) -> HTMLResponse:
    if root is None:
        return _message("Dataset", hint="No dataset: start the server with", option="--dataset BUILD_FOLDER")
    records, bad = _dataset(root)
    failures = store_failures(root)
    chosen = {k: query.get(k, "") for k in ("task", "video", "verdict", "warning", "reason")}
    shown = [
        r for r in records
        if (not chosen["task"] or r.qa.task == chosen["task"])
        and (not chosen["video"] or r.qa.video == chosen["video"])
        and (not chosen["verdict"] or verdict(r) == chosen["verdict"])
        and (not chosen["warning"] or chosen["warning"] in _warnings(r))
    ]
    shown_failures = [f for f in failures if not chosen["reason"] or f["reason"] == chosen["reason"]]
    if chosen["reason"]:
        shown = []
    values = {
        "task": (r.qa.task for r in records),
        "video": (r.qa.video for r in records),
        "verdict": (verdict(r) for r in records),
        "warning": (w for r in records for w in _warnings(r)),
        "reason": (f["reason"] for f in failures),
    }
    filters = [{"name": k, "choices": sorted(set(v)), "chosen": chosen[k]} for k, v in values.items()]
    return _page("dataset.html", "Dataset", root=str(root), total=len(records), bad=bad, failures=failures,
                 filters=filters, summary=_summary(root), items=[item_view(r) for r in shown[:PAGE]],
                 n_shown=len(shown), shown_failures=shown_failures[:PAGE], n_failures=len(shown_failures))


def _item_page(root: Path | None, item_id: str) -> HTMLResponse:
    if root is None:
        return _message("Item", hint="No dataset: start the server with", option="--dataset BUILD_FOLDER")
    records, bad = _dataset(root)
    found = next((r for r in records if r.qa.id == item_id), None)
    if found is None:
        why = next((b.reason for b in bad if b.id == item_id), None)
        error = f"item {item_id!r}: {why}" if why else f"no item {item_id!r} in this dataset"
        return _page("message.html", "Item", status=404, error=error, hint="", option="")
    return _page("item.html", f"Item {item_id}", view=item_view(found))


def _last_stored_run(root: Path) -> dict[str, Any] | None:
    path = root / "store.sqlite"
    if not path.is_file():
        return None
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
        try:
            row = conn.execute("SELECT summary FROM runs WHERE summary IS NOT NULL ORDER BY id DESC LIMIT 1").fetchone()
        finally:
            conn.close()
        return json.loads(row[0]) if row else None
    except (sqlite3.Error, ValueError):
        return None


def _summary(root: Path) -> dict[str, Any] | None:
    """The CLI's ``summary.json``, else the last run the store recorded (a build run from Python);
    a field of the wrong type is shown as it is, never a reason to fail the page."""
    try:
        summary = json.loads((root / "summary.json").read_text("utf-8"))
    except (OSError, ValueError):
        summary = _last_stored_run(root)
    if not isinstance(summary, dict):
        return None
    stages = []
    for s in summary.get("stages") if isinstance(summary.get("stages"), list) else []:
        if not isinstance(s, dict):
            continue
        reasons: dict[str, Any] = {}
        for key in ("failure_reasons", "drop_reasons"):
            if isinstance(s.get(key), dict):
                reasons.update(s[key])
        cells = [s.get(k, "") for k in ("name", "inputs", "outputs", "cached", "failed", "dropped", "errors", "model_calls")]
        stages.append({"cells": cells, "seconds": s.get("seconds", ""),
                       "reasons": ", ".join(f"{k}: {v}" for k, v in reasons.items())})
    return {"final_items": summary.get("final_items", "?"), "seconds": summary.get("seconds", "?"), "stages": stages}


def safe_file(root: Path, relative: str) -> Path | None:
    """``relative`` under ``root`` (symlinks resolved), an image, existing; else None."""
    if not relative or "\x00" in relative or ".." in Path(relative).parts or Path(relative).is_absolute():
        return None
    real = Path(os.path.realpath(root / relative))
    if not real.is_relative_to(Path(os.path.realpath(root))) or real.suffix.lower() not in _IMAGES or not real.is_file():
        return None
    return real


# --------------------------------------------------------------------------- eval


@lru_cache(maxsize=4)
def _load_run(predictions: tuple[str, int, int], bench: tuple[str, int, int] | None) -> tuple[Any, ...]:
    """Predictions, the bench by id, the unreadable lines and items, and the score; once per
    version of the files. A bad bench item is named and left out; the others are scored."""
    from ..bench.score import read_predictions, run_protocols, score_records
    from ..formats.bench import read_bench_items

    records, problems = read_predictions(predictions[0])
    bench_items, bench_problems = read_bench_items(bench[0]) if bench is not None else (None, [])
    items = {b.id: b for b in bench_items or []}
    # The page shows the run it was started with, whatever its tasks: tasks outside the 14 are
    # scored as a custom benchmark and the averages' labels say so (score refuses them unless
    # --tasks-any, because there a misspelt task would pass for a benchmark task).
    report = score_records(records, bench_items, problems=list(problems), name=Path(predictions[0]).stem,
                           source=predictions[0], tasks_any=True)
    bad = [BadRecord(None, None, f"bench {p}") for p in bench_problems]
    bad += [BadRecord(p.line, p.id, p.message.removeprefix(f"line {p.line}: ")) for p in report.problems]
    return records, items, bad, report, run_protocols(predictions[0])


def _outcome(rec: Any, item: Any) -> dict[str, Any]:
    from ..bench.extract import extract_answer

    options = rec.options or (item.options if item else None)
    correct = rec.correct or (item.correct_answer if item else None)
    letter, rule = rec.letter, rec.rule
    if letter is None and rec.error is None:
        found = extract_answer(str(rec.output or ""), options)
        letter, rule = found.letter, found.rule
    if rec.error is not None:
        outcome = "failed"
    elif letter is None:
        outcome = "unparsed"
    else:
        outcome = "right" if letter == correct else "wrong"
    return {"id": rec.id, "task": rec.task or (item.task if item else ""), "question": item.question if item else "",
            "output": str(rec.output or rec.error or ""), "letter": letter, "rule": rule or "", "correct": correct,
            "outcome": outcome}


def _eval_page(predictions: Path | None, bench: Path | None, query: dict[str, str]) -> HTMLResponse:
    from ..bench.score import averages_labels, partial_note
    from ..errors import UserError

    if predictions is None:
        return _message("Eval", hint="No run: start the server with", option="--predictions FILE --bench FILE")
    if bench is not None and _stamp(bench) is None:
        return _message("Eval", error=f"bench file {bench} does not exist")
    try:
        records, items, bad, report, protocols = _load_run(_stamp(predictions) or (str(predictions), 0, 0), _stamp(bench))
    except UserError as exc:
        return _message("Eval", error=str(exc))
    show, task = query.get("show", ""), query.get("task", "")
    rows = []
    counts = {"right": 0, "wrong": 0, "unparsed": 0, "failed": 0}
    for rec in records:
        row = _outcome(rec, items.get(rec.id))
        counts[row["outcome"]] += 1
        if task and row["task"] != task:
            continue
        if show == "wrong" and row["outcome"] not in ("wrong", "unparsed"):
            continue
        if show == "unparsed" and row["outcome"] != "unparsed":
            continue
        rows.append(row)
    s = report.score
    weighted_label, unweighted_label = averages_labels(report)

    def ci(bounds: Any) -> str:
        return "-" if bounds is None else f"{bounds[0]:.1f} - {bounds[1]:.1f}"

    averages = [{"label": weighted_label, "value": s.overall_weighted, "ci": ci(s.ci95_weighted)},
                {"label": unweighted_label, "value": s.overall_unweighted, "ci": ci(s.ci95_unweighted)}]
    return _page("eval.html", "Eval", predictions=str(predictions), bench=str(bench or "(no bench file)"),
                 n_records=len(records), problems=report.problems, protocols=protocols, partial=partial_note(report),
                 averages=averages, counts=counts, per_task=s.per_task, bad=bad, show=show,
                 task_names=sorted({t.task for t in s.per_task}), task=task, rows=rows)


# --------------------------------------------------------------------------- routes


def mount_ui(app: FastAPI, config: "UIConfig") -> None:
    from ..serve.auth import COOKIE, key_matches
    from ..serve.media import list_videos

    def _keys() -> list[str]:
        return list(getattr(app.state, "api_keys", []))

    @app.get("/ui", include_in_schema=False)
    @app.get("/", include_in_schema=False)
    async def root() -> RedirectResponse:
        return RedirectResponse("/ui/ask", status_code=303)

    @app.get("/ui/login", include_in_schema=False)
    async def login_form(failed: int = 0) -> HTMLResponse:
        return _page("login.html", "Log in", failed=bool(failed))

    @app.post("/ui/login", include_in_schema=False)
    async def login(request: Request) -> Response:
        raw = await request.body()
        given = parse_qs(raw.decode("utf-8", "replace")).get("key", [""])[0]
        if not key_matches(given, _keys()):
            return RedirectResponse("/ui/login?failed=1", status_code=303)
        response = RedirectResponse("/ui/ask", status_code=303)
        response.set_cookie(COOKIE, given, httponly=True, samesite="strict")
        return response

    @app.get("/ui/static/{name}", include_in_schema=False)
    async def static(name: str) -> Response:
        if name not in _STATIC:
            return Response(status_code=404)
        data = resources.files("videoespresso.ui").joinpath("static", name).read_bytes()
        return Response(data, media_type=_STATIC[name])

    @app.get("/ui/ask", include_in_schema=False)
    async def ask_page() -> HTMLResponse:
        return _page("ask.html", "Ask a video", videos=list_videos(app.state.policy), model=app.state.served_name)

    @app.get("/ui/dataset", include_in_schema=False)
    async def dataset_page(request: Request) -> HTMLResponse:
        return _dataset_page(config.dataset, dict(request.query_params))

    @app.get("/ui/dataset/item", include_in_schema=False)
    async def item_page(id: str = "") -> HTMLResponse:
        return _item_page(config.dataset, id)

    @app.get("/ui/dataset/file", include_in_schema=False)
    async def dataset_file(path: str = "") -> Response:
        if config.dataset is None:
            return Response(status_code=404)
        found = safe_file(config.dataset, path)
        if found is None:
            return Response("not a frame image of this dataset", status_code=404)
        return FileResponse(found)

    @app.get("/ui/eval", include_in_schema=False)
    async def eval_page(request: Request) -> HTMLResponse:
        return _eval_page(config.predictions, config.bench, dict(request.query_params))
