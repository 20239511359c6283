"""The UI's routes and server-rendered pages (every value passes through :func:`html.escape`)."""

from __future__ import annotations

import json
import os
import sqlite3
from html import escape
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable
from urllib.parse import parse_qs, urlencode

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response

if TYPE_CHECKING:
    from . import UIConfig

_STATIC = {"ui.css": "text/css", "ask.js": "text/javascript"}
_IMAGES = (".jpg", ".jpeg", ".png")
#: Items shown per page; the filters narrow the rest.
PAGE = 100


def _page(title: str, body: str, extra_head: str = "", model: str = "") -> HTMLResponse:
    html = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{escape(title)} - videoespresso</title>
<link rel="stylesheet" href="/ui/static/ui.css">{extra_head}</head>
<body data-model="{escape(model)}"><header><strong>videoespresso</strong> &nbsp;
<a href="/ui/ask">Ask</a><a href="/ui/dataset">Dataset</a><a href="/ui/eval">Eval</a></header>
<main><h1>{escape(title)}</h1>{body}</main></body></html>"""
    return HTMLResponse(html, headers={"Cache-Control": "no-store"})


def _options(values: Iterable[str], chosen: str, label_all: str = "all") -> str:
    out = [f'<option value="">{escape(label_all)}</option>']
    for value in values:
        sel = " selected" if value == chosen else ""
        out.append(f'<option value="{escape(value)}"{sel}>{escape(value)}</option>')
    return "".join(out)


def _select(name: str, values: Iterable[str], chosen: str) -> str:
    return f'<label>{escape(name)} <select name="{escape(name)}">{_options(sorted(set(values)), chosen)}</select></label>'


# --------------------------------------------------------------------------- drawing


def frame_figure(src: str, index: int, seconds: float, boxes: list[tuple[str, list[float]]]) -> str:
    """An image with an SVG overlay in normalised coordinates: one ``rect.box`` per box."""
    rects = "".join(
        f'<rect class="box" data-object="{escape(name)}" x="{b[0]:.4f}" y="{b[1]:.4f}" '
        f'width="{max(b[2] - b[0], 0):.4f}" height="{max(b[3] - b[1], 0):.4f}"><title>{escape(name)}</title></rect>'
        for name, b in boxes
    )
    return (
        f'<figure class="frame" data-index="{index}"><div class="framebox">'
        f'<img src="{escape(src)}" alt="frame {index}">'
        f'<svg viewBox="0 0 1 1" preserveAspectRatio="none">{rects}</svg></div>'
        f"<figcaption>#{index} at {seconds:.2f} s</figcaption></figure>"
    )


def evidence_html(text: str) -> str:
    """Evidence with tagged objects as ``<mark class="obj">``; text that will not parse is shown raw."""
    from ..errors import FormatError
    from ..formats.evidence import EvidenceObject, parse_evidence

    try:
        parts = parse_evidence(text or "")
    except FormatError as exc:
        return f'{escape(text)} <span class="muted">(tags do not parse: {escape(str(exc))})</span>'
    out = []
    for part in parts:
        if isinstance(part, EvidenceObject):
            boxes = f" {len(part.boxes)} box(es)" if part.boxes else " no box"
            out.append(f'<mark class="obj" title="{escape(boxes.strip())}">{escape(part.name)}</mark>')
        else:
            out.append(escape(part))
    return "".join(out)


# --------------------------------------------------------------------------- dataset


def _stamp(path: Path | None) -> tuple[str, int, int] | None:
    """What identifies a file's current content cheaply: path, size, modification time."""
    if path is None or not path.is_file():
        return None
    st = path.stat()
    return (str(path), st.st_size, st.st_mtime_ns)


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    return _read_jsonl_cached(_stamp(path))


@lru_cache(maxsize=4)
def _read_jsonl_cached(stamp: tuple[str, int, int] | None) -> list[dict[str, Any]]:
    """A big dataset is parsed once per version of the file, not once per page view."""
    if stamp is None:
        return []
    path = Path(stamp[0])
    records = []
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            line = line.strip()
            if not line:
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(obj, dict) and isinstance(obj.get("qa"), dict):
                records.append(obj)
    return records


def verdict(record: dict[str, Any]) -> str:
    judgements = record.get("judgements") or []
    if not judgements:
        return "unjudged"
    return "kept" if all(j.get("keep") for j in judgements) else "rejected"


def _warnings(record: dict[str, Any]) -> list[str]:
    out = []
    for w in record.get("warnings") or []:
        out.append(w.get("reason", str(w)) if isinstance(w, dict) else str(w))
    return out


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
    return [{"stage": s, "id": i, "status": st, "reason": r or st, "detail": d or ""} for s, i, st, r, d in rows]


def _dataset_page(root: Path | None, query: dict[str, str]) -> HTMLResponse:
    if root is None:
        return _page("Dataset", "<p>No dataset: start the server with <code>--dataset BUILD_FOLDER</code>.</p>")
    data = root / "dataset.jsonl"
    records = _read_jsonl(data) if data.is_file() else []
    failures = store_failures(root)
    chosen = {k: query.get(k, "") for k in ("task", "video", "verdict", "warning", "reason")}
    shown = [
        r for r in records
        if (not chosen["task"] or r["qa"].get("task") == chosen["task"])
        and (not chosen["video"] or r["qa"].get("video") == chosen["video"])
        and (not chosen["verdict"] or verdict(r) == chosen["verdict"])
        and (not chosen["warning"] or chosen["warning"] in _warnings(r))
    ]
    shown_failures = [f for f in failures if not chosen["reason"] or f["reason"] == chosen["reason"]]
    if chosen["reason"]:
        shown = []
    filters = (
        '<form class="filters" method="get" action="/ui/dataset">'
        + _select("task", (r["qa"].get("task", "") for r in records), chosen["task"])
        + _select("video", (r["qa"].get("video", "") for r in records), chosen["video"])
        + _select("verdict", (verdict(r) for r in records), chosen["verdict"])
        + _select("warning", (w for r in records for w in _warnings(r)), chosen["warning"])
        + _select("reason", (f["reason"] for f in failures), chosen["reason"])
        + '<button type="submit" id="apply">Filter</button></form>'
    )
    body = [f'<p class="muted">{escape(str(root))}: {len(records)} items, {len(failures)} failed or dropped</p>', filters]
    body.append(_summary_html(root))
    body.append(f'<h2>Items <span id="item-count">{len(shown)}</span></h2>')
    for record in shown[:PAGE]:
        body.append(_item_html(record))
    if len(shown) > PAGE:
        body.append(f'<p class="muted">{len(shown) - PAGE} more; narrow the filters to see them.</p>')
    body.append(f'<h2>Failed or dropped <span id="failure-count">{len(shown_failures)}</span></h2>')
    if shown_failures:
        rows = "".join(
            f'<tr class="failure"><td>{escape(f["stage"])}</td><td>{escape(f["id"])}</td><td>{escape(f["status"])}</td>'
            f'<td>{escape(f["reason"])}</td><td>{escape(f["detail"][:300])}</td></tr>'
            for f in shown_failures[:PAGE]
        )
        body.append(f"<table><tr><th>stage</th><th>item</th><th>status</th><th>reason</th><th>detail</th></tr>{rows}</table>")
    return _page("Dataset", "".join(body))


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


def _summary_html(root: Path) -> str:
    """The CLI's ``summary.json``, else the last run the store recorded (a build run from Python)."""
    try:
        summary = json.loads((root / "summary.json").read_text("utf-8"))
    except (OSError, ValueError):
        summary = _last_stored_run(root)
    if not isinstance(summary, dict):
        return '<p class="muted">No run summary in this folder.</p>'
    rows = []
    for s in summary.get("stages", []):
        reasons = {**s.get("failure_reasons", {}), **s.get("drop_reasons", {})}
        rows.append(
            "<tr>" + "".join(f"<td>{escape(str(s.get(k, '')))}</td>" for k in
                             ("name", "inputs", "outputs", "cached", "failed", "dropped", "errors", "model_calls", "seconds"))
            + f"<td>{escape(', '.join(f'{k}: {v}' for k, v in reasons.items()))}</td></tr>"
        )
    head = "".join(f"<th>{h}</th>" for h in ("stage", "in", "out", "cached", "failed", "dropped", "errors", "model calls", "s", "reasons"))
    return (f'<h2>Run summary</h2><p class="muted">{escape(str(summary.get("final_items", "?")))} final items in '
            f'{escape(str(summary.get("seconds", "?")))} s</p><table id="summary"><tr>{head}</tr>{"".join(rows)}</table>')


def _item_html(record: dict[str, Any]) -> str:
    qa, cot = record["qa"], record.get("cot") or {}
    core = cot.get("core_frames") or []
    per_frame: dict[int, list[tuple[str, list[float]]]] = {f["index"]: [] for f in core}
    for obj in cot.get("key_objects") or []:
        frame = obj.get("frame") or (core[0] if core else None)
        if frame is None:
            continue
        boxes = [[b["x0"], b["y0"], b["x1"], b["y1"]] for b in obj.get("boxes") or []]
        per_frame.setdefault(frame["index"], []).extend((obj.get("name", ""), b) for b in boxes)
    figures = "".join(
        frame_figure(f"/ui/dataset/file?{urlencode({'path': f.get('path') or ''})}", f["index"], f["seconds"],
                     per_frame.get(f["index"], []))
        for f in core
    )
    letters = "ABCDEFGH"
    correct = record.get("correct_answer")
    options = "".join(
        f'<li{" class=right" if letters[i] == correct else ""}>({letters[i]}) {escape(o)}</li>'
        for i, o in enumerate(record.get("options") or [])
    )
    judgements = "".join(
        f'<li>{escape(str(j.get("judge", "")))}: {"keep" if j.get("keep") else "reject"}: {escape(str(j.get("reason", "")))}</li>'
        for j in record.get("judgements") or []
    )
    warnings = ", ".join(escape(w) for w in _warnings(record)) or "none"
    captions = "".join(f"<li>{escape(c)}</li>" for c in cot.get("core_captions") or [])
    return (
        f'<section class="item" data-id="{escape(qa["id"])}" data-verdict="{verdict(record)}">'
        f'<h3>{escape(qa["id"])}</h3><p class="muted">{escape(qa.get("task", ""))} &middot; {escape(qa.get("video", ""))}'
        f' &middot; split {escape(str(record.get("split", "")))} &middot; verdict {verdict(record)} &middot; warnings {warnings}</p>'
        f'<div class="frames">{figures}</div>'
        f"<p><strong>Q:</strong> {escape(qa.get('question', ''))}</p><p><strong>A:</strong> {escape(qa.get('answer', ''))}</p>"
        f"<ol class=options>{options}</ol>"
        f'<p><strong>Evidence:</strong> <span class="evidence">{evidence_html(cot.get("evidence", ""))}</span></p>'
        f"<details><summary>core captions, judges</summary><ul>{captions}</ul><ul class=judgements>{judgements}</ul></details>"
        "</section>"
    )


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
def _load_run(predictions: tuple[str, int, int], bench: tuple[str, int, int] | None) -> tuple[Any, Any, Any, Any]:
    """Predictions, their problems, the bench by id and the score; once per version of the files."""
    from ..bench.score import read_predictions, score_file
    from ..formats.bench import read_bench

    records, problems = read_predictions(predictions[0])
    items = {b.id: b for b in read_bench(bench[0])} if bench is not None else {}
    return records, problems, items, score_file(predictions[0], bench[0] if bench else None)


def _eval_page(predictions: Path | None, bench: Path | None, query: dict[str, str]) -> HTMLResponse:
    from ..bench.extract import extract_answer
    from ..errors import UserError

    if predictions is None:
        return _page("Eval", "<p>No run: start the server with <code>--predictions FILE --bench FILE</code>.</p>")
    if bench is not None and _stamp(bench) is None:
        return _page("Eval", f'<p class="error">bench file {escape(str(bench))} does not exist</p>')
    try:
        records, problems, items, report = _load_run(_stamp(predictions) or (str(predictions), 0, 0), _stamp(bench))
    except UserError as exc:
        return _page("Eval", f'<p class="error">{escape(str(exc))}</p>')
    show, task = query.get("show", ""), query.get("task", "")
    rows = []
    counts = {"right": 0, "wrong": 0, "unparsed": 0, "failed": 0}
    for rec in records:
        item = items.get(rec.id)
        options = rec.options or (item.options if item else None)
        correct = rec.correct or (item.correct_answer if item else None)
        task_name = rec.task or (item.task if item else "")
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
        counts[outcome] += 1
        if task and task_name != task:
            continue
        if show == "wrong" and outcome not in ("wrong", "unparsed"):
            continue
        if show == "unparsed" and outcome != "unparsed":
            continue
        question = escape(item.question) if item else ""
        rows.append(
            f'<tr class="pred {outcome}" data-id="{escape(rec.id)}"><td>{escape(rec.id)}</td><td>{escape(task_name)}</td>'
            f"<td>{question}</td><td><pre>{escape(str(rec.output or rec.error or ''))[:1000]}</pre></td>"
            f"<td>{escape(letter or '-')}</td><td>{escape(rule or '')}</td><td>{escape(correct or '?')}</td>"
            f'<td class="{outcome}">{outcome}</td></tr>'
        )
    tasks = "".join(
        f"<tr><td>{escape(t.task)}</td><td>{t.n}</td><td>{t.correct}</td><td>{t.unparsed}</td><td>{t.accuracy:.1f}</td></tr>"
        for t in report.score.per_task
    )
    filters = (
        '<form class="filters" method="get" action="/ui/eval"><label>show <select name="show">'
        + "".join(f'<option value="{v}"{" selected" if v == show else ""}>{label}</option>'
                  for v, label in (("", "all"), ("wrong", "wrong or unparsed"), ("unparsed", "unparsed")))
        + "</select></label>"
        + _select("task", (t.task for t in report.score.per_task), task)
        + '<button type="submit" id="apply">Filter</button></form>'
    )
    s = report.score
    body = (
        f'<p class="muted">{escape(str(predictions))} against {escape(str(bench or "(no bench file)"))}: '
        f"{len(records)} predictions, {len(problems)} problems</p>"
        f'<p id="overall">Overall (sample-weighted) {s.overall_weighted:.1f} %, mean of tasks '
        f"{s.overall_unweighted:.1f} %; right {counts['right']}, wrong {counts['wrong']}, "
        f"unparsed {counts['unparsed']}, failed {counts['failed']}</p>"
        f'<h2>Per task</h2><table id="per-task"><tr><th>task</th><th>n</th><th>correct</th><th>unparsed</th><th>accuracy %</th></tr>{tasks}</table>'
        f'{filters}<h2>Items <span id="row-count">{len(rows)}</span></h2>'
        '<table id="predictions"><tr><th>id</th><th>task</th><th>question</th><th>output</th><th>letter</th>'
        f'<th>rule</th><th>correct</th><th>outcome</th></tr>{"".join(rows[:1000])}</table>'
    )
    return _page("Eval", body)


# --------------------------------------------------------------------------- ask


def _ask_page(videos: list[str], model: str) -> HTMLResponse:
    picker = "".join(f'<option value="{escape(v)}">{escape(v)}</option>' for v in videos)
    options = "".join(f'<input class="option" name="option{i}" placeholder="option {"ABCD"[i]}"> ' for i in range(4))
    body = f"""<form id="ask-form">
<p><label>Video under the video root <select id="video">{picker}</select></label>
 or upload <input type="file" id="upload" accept="video/*"></p>
<p><label>Question <input id="question" size="80" required></label></p>
<p>Options (optional, close-ended): {options}</p>
<p><button type="submit" id="ask">Ask</button> <span id="status"></span></p></form>
<div id="result"></div>"""
    return _page("Ask a video", body, extra_head='<script src="/ui/static/ask.js" defer></script>', model=model)


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
        note = '<p class="error">That key is not valid.</p>' if failed else ""
        return _page("Log in", f'{note}<form method="post" action="/ui/login"><label>API key '
                     '<input type="password" name="key" id="key"></label> <button type="submit">Log in</button></form>')

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
        return _ask_page(list_videos(app.state.policy), app.state.served_name)

    @app.get("/ui/dataset", include_in_schema=False)
    async def dataset_page(request: Request) -> HTMLResponse:
        return _dataset_page(config.dataset, dict(request.query_params))

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
