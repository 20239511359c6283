"""Stored XSS, cell by cell: a payload in every string and number field of a build's
``dataset.jsonl`` (and its summary and store), a bench file, a predictions file and its run
manifest, a score file and a video name; every UI page opened in headless Chromium (ask, login,
dataset with each filter, every item's detail page, eval with each filter) and the HTML report.
No dialog may fire and no element may carry an event handler, a script or a ``javascript:`` link
that the page did not ship with. A record of the wrong type is named on the page, with its reason,
next to the good ones (never a 500).

Screenshots are kept in ``$VE_TEST_ARTIFACTS`` (default ``test-artifacts/ui/``).
"""

from __future__ import annotations

import copy
import json
from typing import Any, Iterator
from urllib.parse import urlencode

import pytest

pytest.importorskip("playwright.sync_api")

from serve_ui_helpers import ARTIFACTS, CHROMIUM, UI_KEY, open_browser_page  # noqa: E402

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no system Chromium (apt-get install chromium)")

PAYLOADS = [
    '"><img src=x onerror=alert(1)>',
    "</script><script>alert(2)</script>",
    "javascript:alert(3)",
    "' onmouseover='alert(4)' x='",
    '" autofocus onfocus="alert(5)" x="',
    "<svg onload=alert(6)>",
    "</textarea></title><iframe src=javascript:alert(7)></iframe>",
    "{{ 7*7 }}<details open ontoggle=alert(8)>",
]

#: What a page may carry after rendering: nothing a payload could have added.
_INJECTED = """() => {
  const bad = [];
  for (const el of document.querySelectorAll('*')) {
    for (const a of el.attributes) {
      if (a.name.startsWith('on')) bad.push(el.tagName + ' ' + a.name);
      if (/^\\s*javascript:/i.test(a.value) && ['href', 'src', 'action', 'formaction'].includes(a.name)) bad.push(el.tagName + ' ' + a.name);
    }
  }
  for (const s of document.querySelectorAll('script')) if (s.getAttribute('src') !== '/ui/static/ask.js') bad.push('script');
  for (const tag of ['iframe', 'object', 'embed']) if (document.querySelector(tag)) bad.push(tag);
  if (document.querySelector('img[src="x"]')) bad.push('img x');
  return bad;
}"""


def _leaves(obj: Any, path: tuple = ()) -> Iterator[tuple[tuple, Any]]:
    if isinstance(obj, dict):
        for key, value in obj.items():
            yield from _leaves(value, (*path, key))
    elif isinstance(obj, list):
        for i, value in enumerate(obj):
            yield from _leaves(value, (*path, i))
    elif isinstance(obj, (str, int, float)) and not isinstance(obj, bool):
        yield path, obj


def _replaced(obj: Any, path: tuple, value: Any) -> Any:
    out = copy.deepcopy(obj)
    target = out
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return out


def _variants(base: dict[str, Any], id_path: tuple, id_of) -> Iterator[tuple[dict[str, Any], tuple, Any]]:
    """One copy of ``base`` per leaf with a payload there: (copy, path, what the leaf held)."""
    for n, (path, value) in enumerate(_leaves(base)):
        rec = _replaced(base, id_path, id_of(n)) if path != id_path else copy.deepcopy(base)
        yield _replaced(rec, path, PAYLOADS[n % len(PAYLOADS)] + f" #{n}"), path, value


def _frame(index: int, seconds: float) -> dict[str, Any]:
    return {"index": index, "seconds": seconds, "path": f"frames/f{index}.jpg"}


BASE_RECORD = {
    "qa": {"id": "item", "video": "v.mp4", "question": "What moves?", "answer": "a square", "task": "Causal Inference",
           "frames": [_frame(0, 0.5)]},
    "cot": {"core_frames": [_frame(0, 0.5), _frame(3, 75.25)], "core_captions": ["a red square", "a blue circle"],
            "key_objects": [{"name": "square", "boxes": [{"x0": 0.1, "y0": 0.1, "x1": 0.5, "y1": 0.6, "score": 0.9}],
                             "frame": _frame(0, 0.5)}],
            "evidence": "The <obj_start>square<obj_end><box_start>[[0.3, 0.35, 0.4, 0.5]]<box_end> moves right."},
    "options": ["a square", "a circle", "nothing", "a car"], "correct_answer": "A",
    "judgements": [{"judge": "tiny:qwen2", "keep": True, "reason": "grounded"}],
    "warnings": [{"stage": "ground", "reason": "no_box", "detail": "one object unboxed"}],
    "provenance": {"video_sha256": "abc", "stage": "export"}, "split": "test",
}

BASE_BENCH = {"id": "b", "video_path": "v.mp4", "question": "What moves?", "task": "Causal Inference",
              "options": ["(A) a square", "(B) a circle", "(C) nothing", "(D) a car"], "correct_answer": "(A)",
              "answer": "a square", "evidence": "the square", "core_frames_paths": ["f0.jpg"],
              "core_frames_captions": ["a red square"], "source": "synthetic"}

BASE_PREDICTION = {"id": "b", "task": "Causal Inference", "video_path": "v.mp4", "output": "The answer is (A).",
                   "model": "tiny", "settings": {"max_new_tokens": 16, "temperature": 0.0, "top_p": 1.0, "seed": 0},
                   "frames": [_frame(0, 0.5)], "with_evidence": False, "prompt_template": "default",
                   "correct_answer": "A", "letter": "A", "rule": "start",
                   "extra": {"options": ["a square", "a circle", "nothing", "a car"]}}


@pytest.fixture(scope="module")
def poisoned(tmp_path_factory):
    """A build folder, a bench file, a predictions file (+ manifest) and a score file, each with a
    payload in every field in turn, and a video root whose file names are payloads."""
    from PIL import Image

    from videoespresso.engine.store import ResultKey, Store, StoredResult
    from videoespresso.video.synth import make_test_video

    work = tmp_path_factory.mktemp("ui-xss")
    build = work / "build"
    (build / "frames").mkdir(parents=True)
    for index in (0, 3):
        Image.new("RGB", (64, 48), (40 * index, 120, 200)).save(build / "frames" / f"f{index}.jpg")
    records, bad_ids = [], []
    for rec, path, value in _variants(BASE_RECORD, ("qa", "id"), lambda n: f"item{n}"):
        records.append(rec)
        # a payload where a number or a letter belongs: a bad record, named on the page
        if not isinstance(value, str) or path == ("correct_answer",):
            bad_ids.append(rec["qa"]["id"])
    everything = copy.deepcopy(BASE_RECORD)
    for n, (path, value) in enumerate(_leaves(BASE_RECORD)):
        if isinstance(value, str) and path not in {("correct_answer",), ("qa", "id")}:
            everything = _replaced(everything, path, PAYLOADS[n % len(PAYLOADS)])
    everything["qa"]["id"] = PAYLOADS[0] + " all"
    everything["cot"]["evidence"] = f"see <obj_start>{PAYLOADS[1]}<obj_end><box_start>[[0.5, 0.5, 0.2, 0.2]]<box_end> {PAYLOADS[5]}"
    records.append(everything)
    lines = [json.dumps(r).encode() for r in records] + [("{not json " + PAYLOADS[0]).encode(),
                                                         json.dumps(PAYLOADS[1]).encode(), b'{"\xff": 1}']
    (build / "dataset.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    stage = {"name": PAYLOADS[0], "inputs": PAYLOADS[1], "outputs": 3, "cached": 0, "failed": 1, "dropped": 1,
             "errors": 0, "model_calls": PAYLOADS[2], "seconds": 12.345678,
             "failure_reasons": {PAYLOADS[3]: PAYLOADS[4]}, "drop_reasons": PAYLOADS[5]}
    (build / "summary.json").write_text(json.dumps({"final_items": PAYLOADS[6], "seconds": 83.4567,
                                                    "stages": [stage, PAYLOADS[7]]}), encoding="utf-8")
    with Store(build / "store.sqlite") as store:
        store.put_many([(ResultKey(PAYLOADS[i], "1", "p", "q", f"in{i}"),
                         StoredResult(key="", stage=PAYLOADS[i], item_id=PAYLOADS[i + 1], status=status,
                                      outputs=[], reason=PAYLOADS[i + 2], detail=PAYLOADS[i + 3]))
                        for i, status in ((0, "failed"), (1, "dropped"), (2, "error"))])

    bench = [b for b, _, _ in _variants(BASE_BENCH, ("id",), lambda n: f"b{n}")]
    bench.append(dict(BASE_BENCH, id="b-bad-options", options=PAYLOADS[0]))
    (work / "bench.json").write_text(json.dumps(bench), encoding="utf-8")
    predictions = [rec for rec, _, _ in _variants(BASE_PREDICTION, ("id",), lambda n: f"b{n}")]
    predictions.append(dict(BASE_PREDICTION, id="b-error", output=None, error=PAYLOADS[0]))
    lines = [json.dumps(p).encode() for p in predictions] + [PAYLOADS[1].encode(), json.dumps({"id": PAYLOADS[2]}).encode(),
                                                             b'{"id": "\xff"}']
    (work / "preds.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    from videoespresso.formats.manifest import manifest_path

    settings = {"protocol": PAYLOADS[0], "frames_label": PAYLOADS[1], "frames_from": PAYLOADS[2],
                "input_form": PAYLOADS[3], "max_side": PAYLOADS[4], "template": PAYLOADS[5], "mode": PAYLOADS[6],
                "with_evidence": True,
                "settings": {"temperature": PAYLOADS[0], "top_p": PAYLOADS[1], "seed": PAYLOADS[2], "max_new_tokens": PAYLOADS[7]}}
    manifest_path(work / "preds.jsonl").write_text(json.dumps(
        {"format": "videoespresso.run-manifest", "version": 1, "kind": "eval", "settings": settings}), encoding="utf-8")

    videos = work / "videos"
    make_test_video(videos / "clip.mp4", "mixed", seconds=0.5)
    for payload in (PAYLOADS[0], PAYLOADS[3], PAYLOADS[5]):
        (videos / f"{payload}.mp4").write_bytes((videos / "clip.mp4").read_bytes())
    return {"build": build, "bench": work / "bench.json", "preds": work / "preds.jsonl", "videos": videos,
            "records": records, "bad_ids": bad_ids, "work": work}


@pytest.fixture(scope="module")
def ui_server(light_videoqa, poisoned):
    from videoespresso.serve.media import MediaPolicy
    from videoespresso.serve.videoqa import VideoQAServer, create_videoqa_app
    from videoespresso.ui import UIConfig

    app = create_videoqa_app(light_videoqa, policy=MediaPolicy(video_root=poisoned["videos"]), api_keys=[UI_KEY],
                             ui=UIConfig(dataset=poisoned["build"], predictions=poisoned["preds"], bench=poisoned["bench"]))
    with VideoQAServer(app) as handle:
        yield handle


@pytest.fixture(scope="module")
def page(ui_server):
    for p in open_browser_page(ui_server.url):
        dialogs: list[str] = []
        p.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
        p.dialogs = dialogs
        yield p


def _visit(page, url: str, status: int = 200, shot: str | None = None) -> None:
    response = page.goto(url)
    assert response is not None and response.status == status, (url, response and response.status)
    page.wait_for_load_state("load")
    # hover and focus everything once, so that handlers bound to those events would have fired
    page.evaluate("() => { for (const el of document.querySelectorAll('*')) { "
                  "el.dispatchEvent(new MouseEvent('mouseover', {bubbles: true})); if (el.focus) el.focus(); } }")
    assert page.evaluate(_INJECTED) == [], url
    assert page.dialogs == [], (url, page.dialogs)
    if shot:
        page.screenshot(path=str(ARTIFACTS / shot), full_page=True)


def test_no_payload_runs_on_any_ui_page(page, ui_server, poisoned):
    base = ui_server.url
    _visit(page, f"{base}/ui/login?failed=1")
    _visit(page, f"{base}/ui/dataset", shot="xss-dataset.png")
    # every filter, set to each value it offers (payloads among them)
    for name in ("task", "video", "verdict", "warning", "reason"):
        values = page.locator(f"select[name={name}] option").evaluate_all("os => os.map(o => o.value)")
        assert len(values) >= 2, name
        for value in values[1:4]:
            _visit(page, f"{base}/ui/dataset?{urlencode({name: value})}")
    # the item page draws the dataset page's item template: the record with a payload in every
    # string field, one whose id is a payload, and a bad one (its reason, with the payload, on a 404)
    _visit(page, f"{base}/ui/dataset/item?{urlencode({'id': PAYLOADS[0] + ' all'})}", shot="xss-item.png")
    _visit(page, f"{base}/ui/dataset/item?{urlencode({'id': poisoned['records'][0]['qa']['id']})}")
    _visit(page, f"{base}/ui/dataset/item?{urlencode({'id': poisoned['bad_ids'][0]})}", status=404)
    assert "Input should be" in page.inner_text("main")
    _visit(page, f"{base}/ui/dataset/item?{urlencode({'id': PAYLOADS[1]})}", status=404)
    _visit(page, f"{base}/ui/eval", shot="xss-eval.png")
    for query in ({"show": "wrong"}, {"show": "unparsed"}, {"task": PAYLOADS[0] + " #4"}, {"show": PAYLOADS[1]}):
        _visit(page, f"{base}/ui/eval?{urlencode(query)}")
    _visit(page, f"{base}/ui/ask")
    names = page.locator("#video option").all_inner_texts()
    assert f"{PAYLOADS[0]}.mp4" in names and f"{PAYLOADS[5]}.mp4" in names
    page.select_option("#video", f"{PAYLOADS[0]}.mp4")
    page.fill("#question", PAYLOADS[1])
    for i in range(4):
        page.fill(f"input[name=option{i}]", PAYLOADS[i + 2])
    page.click("#ask")
    page.wait_for_selector("#answer", timeout=120_000)
    assert page.evaluate(_INJECTED) == [] and page.dialogs == []
    page.screenshot(path=str(ARTIFACTS / "xss-ask.png"), full_page=True)


def test_a_wrong_typed_record_is_named_and_the_others_shown(page, ui_server, poisoned):
    """A string where a number belongs (a frame's seconds, a box corner, a frame index) used to
    answer 500 for the whole dataset page."""
    page.goto(f"{ui_server.url}/ui/dataset")
    bad = page.locator("#bad-records tr.bad")
    good = [r for r in poisoned["records"] if r["qa"]["id"] not in poisoned["bad_ids"]]
    assert page.locator("section.item").count() == len(good)
    assert bad.count() == len(poisoned["bad_ids"]) + 3  # + the lines that are not JSON, not an object, not UTF-8
    text = page.inner_text("#bad-records")
    for item_id in poisoned["bad_ids"]:
        assert item_id in text
    assert "cot.core_frames.1.seconds" in text and "valid number" in text
    assert "not valid JSON" in text and "not a JSON object" in text and "not UTF-8 text" in text


def test_a_bad_bench_item_and_bad_prediction_lines_are_named_on_the_eval_page(page, ui_server, poisoned):
    page.goto(f"{ui_server.url}/ui/eval")
    text = page.inner_text("#bad-records")
    assert "bench item" in text and "correct_answer" in text  # the bench item whose answer is a payload
    assert "not valid JSON" in text and "not UTF-8 text" in text
    assert page.locator("#predictions tr.pred").count() >= len(BASE_PREDICTION)
    assert "Run protocol:" in page.inner_text("main")


def test_no_payload_runs_in_the_html_report(page, poisoned, tmp_path):
    from videoespresso.bench.report import load_run, write_report

    run = load_run(poisoned["preds"], tasks_any=True)  # its task names are payloads too
    data = json.loads(run.model_dump_json())
    poisoned_json = data
    for n, (path, value) in enumerate(_leaves(data)):
        if isinstance(value, str):
            poisoned_json = _replaced(poisoned_json, path, PAYLOADS[n % len(PAYLOADS)])
    poisoned_json["protocols"] = PAYLOADS[:3]
    poisoned_json["failures"] = [{"id": p, "task": p, "reason": p} for p in PAYLOADS]
    score_file = tmp_path / "poisoned.json"
    score_file.write_text(json.dumps(poisoned_json), encoding="utf-8")
    files = write_report([run, load_run(score_file, tasks_any=True)], tmp_path / "report", title=PAYLOADS[6])
    report = page.context.new_page()  # a file:// page, apart from the UI page's request log
    dialogs: list[str] = []
    report.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    report.goto(files.html.as_uri())
    assert "per-task accuracy" in report.inner_html("body")
    assert report.evaluate(_INJECTED) == [] and dialogs == []
    report.screenshot(path=str(ARTIFACTS / "xss-report.png"), full_page=True)
    report.close()


def test_times_options_protocol_and_partial_label(page, ui_server, poisoned):
    """Times as s or m:ss.s (never 4 decimals), options lettered once (never "1. (A) ..."), and the
    eval page says how the run was made and that it is partial, in score's own words."""
    from videoespresso.bench.score import averages_labels, partial_note, read_predictions, run_protocols, score_records
    from videoespresso.formats.bench import read_bench_items

    page.goto(f"{ui_server.url}/ui/dataset/item?id=item1")
    captions = page.locator("figcaption").all_inner_texts()
    assert captions == ["#0 at 0.50 s", "#3 at 1:15.2"]
    options = page.locator("section.item .options li")
    assert options.all_inner_texts()[0] == "(A) a square"
    assert options.first.evaluate("li => getComputedStyle(li).listStyleType") == "none"
    assert options.first.evaluate("li => li.parentElement.tagName") == "UL"
    page.goto(f"{ui_server.url}/ui/dataset")
    assert "final items in 1:23.5" in page.inner_text("main")
    assert page.locator("#summary td.time").all_inner_texts() == ["12.35 s"]

    page.goto(f"{ui_server.url}/ui/eval")
    records, problems = read_predictions(poisoned["preds"])
    report = score_records(records, read_bench_items(poisoned["bench"])[0], problems=problems, tasks_any=True)  # as the page scores
    assert page.inner_text("#partial") == partial_note(report)
    assert [p.inner_text() for p in page.locator("p.protocol").all()] == [f"Run protocol: {line}" for line in run_protocols(poisoned["preds"])]
    assert [row.split("\t")[0] for row in page.locator("#overall tr").all_inner_texts()[1:]] == list(averages_labels(report))
