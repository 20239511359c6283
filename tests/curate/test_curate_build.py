"""End to end: the ten stages on generated videos with the tiny profile's models.

One reference build is shared by the module; the resume, prompt-change and bad-input tests
compare against it. Random-weight models write random text: the assertions are about structure,
counts, provenance and what was (not) recomputed, never about content.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

from videoespresso.cli import main as cli_main
from videoespresso.config import load_config
from videoespresso.curate import STAGE_NAMES, run_build
from videoespresso.engine import Store
from videoespresso.formats import parse_evidence, read_bench, read_train
from videoespresso.schema import TASK_NAMES, CoTAnnotation, QAPair
from _cli import run_cli

SRC = str(Path(__file__).resolve().parents[2] / "src")

SETTINGS = {
    "sampling": {"max_side": 96},
    "generation": {"max_new_tokens": 12},
    # batch size 1 keeps every model call independent of which other items share its batch, so a
    # resumed run must reproduce an uninterrupted one exactly
    "curate": {"batch_size": 1, "group_size": 2, "qa_per_group": 2, "max_text_chars": 16, "max_new_tokens": 120},
}


def _config_file(folder: Path, **curate) -> Path:
    from _split import seed_with_test_video

    data = json.loads(json.dumps(SETTINGS))
    videos = sorted((folder / "videos").rglob("*.mp4"))
    # c_moving (the longest) alone in test: both sides hold items
    data["curate"]["split_seed"] = seed_with_test_video(videos, folder / "videos" / "sub" / "c_moving.mp4")
    data["curate"].update(curate)
    path = folder / f"config-{len(list(folder.glob('config-*.yaml')))}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.fixture(scope="module")
def models(tiny_models):
    return tiny_models


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    from videoespresso.video.synth import make_test_video

    root = tmp_path_factory.mktemp("curate-build")
    videos = root / "videos"
    make_test_video(videos / "a_mixed.mp4", "mixed", seconds=1.5)
    make_test_video(videos / "b_static_moving.mp4", "static_moving", seconds=1.0)
    make_test_video(videos / "sub" / "c_moving.mp4", "moving", seconds=3.0)
    return root


@pytest.fixture(scope="module")
def reference(work, models):
    """An uninterrupted build, stage 1-5 first so the QA stage's model calls can be counted."""
    config_path = _config_file(work)
    cfg = load_config("tiny", config_path)
    out = work / "reference"
    llm = models["tiny:qwen2"]
    before = llm.calls
    run_build(work / "videos", out, cfg, stages="1-5", preloaded=models, progress=False)
    qa_calls = llm.calls - before
    result = run_build(work / "videos", out, cfg, preloaded=models, progress=False)
    return {"out": out, "config": config_path, "result": result, "qa_calls": qa_calls}


def _dataset(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "dataset.jsonl").read_text().splitlines()]


def test_all_stages_run_and_both_formats_export(reference, work):
    result, out = reference["result"], reference["out"]
    assert [s.name for s in result.run.stages] == list(STAGE_NAMES)
    counts = {s.name: s for s in result.run.stages}
    assert counts["sample"].inputs == 3 and counts["sample"].ok == 3
    for name in STAGE_NAMES[1:]:
        assert counts[name].inputs == counts[STAGE_NAMES[STAGE_NAMES.index(name) - 1]].outputs
    assert counts["qa"].inputs >= 3, "every video should give at least one group"
    assert counts["options"].outputs == result.exported.items > 0
    records = _dataset(out)
    train_video = read_train(out / "train_video.json")
    train_images = read_train(out / "train_images.json")
    bench = read_bench(out / "test.json")
    assert len(records) == result.exported.items
    # Split by video: train and test hold disjoint items, never the same video on both sides.
    train_ids = [t.extra["id"] for t in train_video]
    assert train_ids == [t.extra["id"] for t in train_images]
    test_ids = [b.id for b in bench]
    assert sorted(train_ids + test_ids) == sorted(r["qa"]["id"] for r in records) and train_ids and test_ids
    assert not {t.video_path for t in train_video} & {b.video_path for b in bench}
    split = {r["qa"]["id"]: r["split"] for r in records}
    assert {split[i] for i in train_ids} == {"train"} and {split[i] for i in test_ids} == {"test"}
    assert {t.keyframes_key for t in train_video} == {"keyframes_path"}
    assert {t.keyframes_key for t in train_images} == {"path"}
    sampled = {}
    for s in Store(out / "store.sqlite").results("sample", "ok"):
        for video in s.outputs:
            sampled[video["video_path"]] = {f["index"]: f for f in video["frames"]}
    by_id = {r["qa"]["id"]: r for r in records}
    train = {t.extra["id"]: (t, i) for t, i in zip(train_video, train_images)}
    tests = {b.id: b for b in bench}
    for item_id, rec in by_id.items():
        qa, cot = QAPair.model_validate(rec["qa"]), CoTAnnotation.model_validate(rec["cot"])
        assert qa.task in TASK_NAMES and qa.frames
        frames = sampled[qa.video]
        assert cot.core_frames and all(f.index in frames and frames[f.index]["seconds"] == f.seconds for f in cot.core_frames)
        assert len(cot.core_captions) >= 1
        parse_evidence(cot.evidence)  # tags well-formed
        for obj in cot.key_objects:
            assert len(obj.boxes) <= 4 and all(0 <= v <= 1 for box in obj.boxes for v in box.as_list())
        assert set(rec["provenance"]) == set(STAGE_NAMES)
        assert rec["options"][["A", "B", "C", "D"].index(rec["correct_answer"])] == qa.answer
        assert len(set(o.lower() for o in rec["options"])) == 4
        stems = [str(f.index) for f in cot.core_frames]
        if item_id in train:
            tv, ti = train[item_id]
            assert (tv.question, tv.answer, tv.task, tv.video_path) == (qa.question, qa.answer, qa.task, qa.video)
            assert all((out / p).is_file() for p in tv.keyframes + ti.keyframes)
            assert [Path(p).stem for p in ti.keyframes] == stems
            assert tv.extra["keyframes_seconds"] == [f.seconds for f in cot.core_frames]
        else:
            b = tests[item_id]
            assert b.options == rec["options"] and b.correct_answer == rec["correct_answer"]
            assert [Path(p).stem for p in b.core_frames_paths] == stems and b.evidence == cot.evidence
            assert all((out / p).is_file() for p in b.core_frames_paths)


def test_inspect_summarises_the_build(reference, capsys):
    cli_main(["inspect", str(reference["out"])])
    text = capsys.readouterr().out
    for name in STAGE_NAMES:
        assert name in text
    assert "test.json" in text and "train_images.json" in text


def test_rerun_is_fully_cached_and_identical(reference, work, models):
    out = reference["out"]
    before = _dataset(out)
    calls = {spec: getattr(m, "calls", 0) for spec, m in models.items()}
    cfg = load_config("tiny", reference["config"])
    again = run_build(work / "videos", out, cfg, preloaded=models, progress=False)
    assert all(s.computed == 0 and s.model_calls == 0 for s in again.run.stages)
    assert {spec: getattr(m, "calls", 0) for spec, m in models.items()} == calls
    assert _dataset(out) == before


def _poll_done(db: Path, stage: str) -> int:
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as conn:
            return conn.execute("SELECT COUNT(*) FROM results WHERE stage = ? AND status != 'error'", (stage,)).fetchone()[0]
    except sqlite3.OperationalError:
        return 0


def test_sigkill_during_qa_then_rerun_is_identical_and_repeats_no_call(reference, work, models):
    out = work / "killed"
    env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}
    cmd = [sys.executable, "-m", "videoespresso", "build", str(work / "videos"), "--out", str(out),
           "--profile", "tiny", "--config", str(reference["config"]), "--no-progress"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    db = out / "store.sqlite"
    try:
        deadline = time.time() + 240
        while time.time() < deadline and proc.poll() is None and _poll_done(db, "qa") < 1:
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read().decode()[-2000:]
    total_groups = reference["result"].run.stage("qa").inputs
    done = _poll_done(db, "qa")
    assert 1 <= done < total_groups, "the kill should land inside stage 5"
    with sqlite3.connect(out / "responses.sqlite") as conn:
        cached_llm = conn.execute("SELECT COUNT(*) FROM responses WHERE spec = 'tiny:qwen2'").fetchone()[0]

    cfg = load_config("tiny", reference["config"])
    llm = models["tiny:qwen2"]
    before = llm.calls
    partial = run_build(work / "videos", out, cfg, stages="1-5", preloaded=models, progress=False)
    rerun_calls = llm.calls - before
    qa = partial.run.stage("qa")
    assert qa.cached == done and qa.computed == total_groups - done
    assert qa.model_calls == rerun_calls  # the summary counts real model calls, not cache hits
    assert all(partial.run.stage(n).computed == 0 for n in STAGE_NAMES[:4])
    # every QA call of the uninterrupted run was made exactly once across the two processes
    assert rerun_calls + cached_llm == reference["qa_calls"]
    assert rerun_calls < reference["qa_calls"]
    run_build(work / "videos", out, cfg, preloaded=models, progress=False)
    assert _dataset(out) == _dataset(reference["out"])
    assert json.loads((out / "test.json").read_text()) == json.loads((reference["out"] / "test.json").read_text())


def test_changing_the_qa_prompt_reruns_stage_5_onward_only(reference, work, models):
    out = work / "prompt-change"
    shutil.copytree(reference["out"], out)
    from videoespresso.prompts import load_prompt

    packaged = load_prompt("curate/qa")
    custom = work / "my_qa.txt"
    custom.write_text("# version: 2\n" + packaged.text.replace("Write {n_pairs}", "Please write {n_pairs}"))
    cfg = load_config("tiny", _config_file(work, prompt_files={"curate/qa": str(custom)}))
    result = run_build(work / "videos", out, cfg, preloaded=models, progress=False)
    stats = {s.name: s for s in result.run.stages}
    for name in STAGE_NAMES[:4]:
        assert stats[name].computed == 0 and stats[name].cached == stats[name].inputs
    assert stats["qa"].computed == stats["qa"].inputs and stats["qa"].cached == 0
    for name in STAGE_NAMES[5:]:
        assert stats[name].cached == 0, f"{name} reused outputs made from the old prompt"


#: What the loopback endpoint answers, by the model name in the request.
_REPLIES = {
    "prose": "Sure! The man walks to the car and then he drives away.",
    "keep": '{"keep": true, "reason": "consistent with frames 1 and 2"}',
    "reject": '{"keep": false, "reason": "the answer contradicts frame 2"}',
}


class _ProseHandler(BaseHTTPRequestHandler):
    """A minimal OpenAI-compatible chat endpoint (real HTTP on 127.0.0.1) with canned replies."""

    requests: list[dict] = []

    def do_POST(self):  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).requests.append(body)
        reply = {
            "id": "x", "object": "chat.completion", "created": 0, "model": body["model"],
            "choices": [{"index": 0, "finish_reason": "stop", "message": {
                "role": "assistant", "content": _REPLIES[body["model"]]}}],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
        }
        data = json.dumps(reply).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture()
def endpoint():
    _ProseHandler.requests = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _ProseHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()
    server.server_close()
    thread.join(timeout=10)


@pytest.mark.parametrize("vote,kept", [("all", False), ("majority", False), ("any", True), ("none", True)])
def test_judge_votes_and_rejection_reasons(reference, endpoint, tmp_path, vote, kept):
    from videoespresso.curate import ModelPool, QualityFilter
    from videoespresso.engine import LocalExecutor

    pairs = [o for r in Store(reference["out"] / "store.sqlite").results("qa", "ok") for o in r.outputs]
    judges = [f"openai:keep@{endpoint}", f"openai:reject@{endpoint}"]
    stage = QualityFilter(ModelPool(), judges=judges, vote=vote)
    result = LocalExecutor(Store(tmp_path / "s.sqlite"), progress=False).run([stage], pairs)
    st = result.stage("filter")
    assert len(_ProseHandler.requests) == 2 * len(pairs)
    if kept:
        assert st.ok == len(pairs)
        assert all([j["keep"] for j in item["judgements"]] == [True, False] for item in result.items)
    else:
        assert st.dropped == len(pairs) and st.drop_reasons == {"rejected_by_judges": len(pairs)}
        details = [r.detail for r in Store(tmp_path / "s.sqlite").results("filter", "dropped")]
        assert all(d == f"openai:reject@{endpoint}: the answer contradicts frame 2" for d in details)


def test_bad_inputs_fail_or_degrade_with_reasons(work, models, endpoint):
    from videoespresso.video.synth import make_bad_video, make_test_video

    videos = work / "bad-videos"
    make_test_video(videos / "good.mp4", "mixed", seconds=1.0)
    make_bad_video(videos / "broken.mp4", "truncated")
    make_bad_video(videos / "text.mp4", "text")
    make_test_video(videos / "one_frame.mp4", "static", seconds=0.04)
    out = work / "bad-build"
    # a grounder that finds nothing: no box can reach a score above 1
    cfg = load_config("tiny", _config_file(work, box_threshold=1.01))
    result = run_build(videos, out, cfg, preloaded=models, progress=False).run
    sample, group = result.stage("sample"), result.stage("group")
    assert sample.failed == 2 and set(sample.failure_reasons) == {"unreadable_video"}
    assert group.drop_reasons == {"too_few_frames": 1}
    spatial = result.stage("spatial")
    if spatial.inputs:
        assert spatial.warning_reasons["no_box"] >= 1
        for item in result.items:
            assert all(o["boxes"] == [] for o in item["key_objects_grounded"])
    store = Store(out / "store.sqlite")
    reasons = {(r.item_id, r.reason) for r in store.results("sample", "failed")}
    assert {("broken.mp4", "unreadable_video"), ("text.mp4", "unreadable_video")} == reasons
    assert all("mp4" in r.detail for r in store.results("sample", "failed"))
    assert [r.item_id for r in store.results("group", "dropped")] == ["one_frame.mp4"]

    # a real tiny model, unconstrained, answers prose: repaired if possible, retried once, failed
    prose_cfg = load_config("tiny", _config_file(work, constrained_json=False))
    prose = run_build(videos, out, prose_cfg, stages="1-5", preloaded=models, progress=False).run
    qa = prose.stage("qa")
    assert qa.computed == qa.inputs > 0 and qa.failed + qa.ok == qa.inputs
    for res in store.results("qa", "failed"):
        assert res.reason == "invalid_json" and "--- retry ---" in res.raw

    # an OpenAI-compatible endpoint on loopback that only ever answers prose
    endpoint_cfg = load_config("tiny", _config_file(work))
    endpoint_cfg.models.llm = f"openai:prose@{endpoint}"
    qa = run_build(videos, out, endpoint_cfg, stages="1-5", preloaded=models, progress=False).run.stage("qa")
    assert qa.failed == qa.inputs > 0 and qa.failure_reasons == {"invalid_json": qa.inputs}
    assert len(_ProseHandler.requests) == 2 * qa.inputs  # the first ask and one retry each
    assert "could not be used" in _ProseHandler.requests[1]["messages"][-1]["content"]
    raws = [r.raw for r in Store(out / "store.sqlite").results("qa", "failed") if "drives away" in (r.raw or "")]
    assert len(raws) == qa.inputs and all(raw.count("drives away") == 2 for raw in raws)


def test_inputs_are_video_files_folders_and_list_files_mixed(work):
    from videoespresso.curate import discover_videos

    videos = work / "videos"
    listing = work / "some.txt"
    listing.write_text("# one video\nvideos/b_static_moving.mp4\n")
    single = discover_videos(videos / "a_mixed.mp4")
    assert [i["id"] for i in single] == [(videos / "a_mixed.mp4").as_posix()]
    mixed = discover_videos([videos / "a_mixed.mp4", listing, videos / "sub"])
    assert [i["id"] for i in mixed] == [(videos / "a_mixed.mp4").as_posix(), "videos/b_static_moving.mp4",
                                        f"{(videos / 'sub').as_posix()}/c_moving.mp4"]
    assert all(i["size"] > 0 for i in mixed)
    # one folder alone keeps ids relative to it (earlier builds resume)
    assert [i["id"] for i in discover_videos(videos)] == ["a_mixed.mp4", "b_static_moving.mp4", "sub/c_moving.mp4"]


def test_one_video_file_builds(work, capsys, models):
    """`build clip.mp4`: the first thing a new user tries (it was read as a list file)."""
    out = work / "one-file"
    code, _, err = run_cli(capsys, ["build", str(work / "videos" / "a_mixed.mp4"), "--out", str(out), "--stages", "1-1",
                                 "--profile", "tiny", "--no-progress", "--config", str(_config_file(work))])
    assert code == 0, err
    assert "Traceback" not in err
    with Store(out / "store.sqlite") as store:
        assert [r.item_id for r in store.results("sample", "ok")] == [(work / "videos" / "a_mixed.mp4").as_posix()]


@pytest.mark.parametrize("name", ["clip.ts", "notes.txt"])
def test_a_list_file_that_is_not_text_is_one_line(work, capsys, name):
    """A video with an extension we do not know (or any binary file) given where a list belongs."""
    path = work / name
    path.write_bytes((work / "videos" / "a_mixed.mp4").read_bytes())
    code, _, err = run_cli(capsys, ["build", str(path), "--out", str(work / "never"), "--profile", "tiny"])
    assert code == 2 and "Traceback" not in err
    assert err.count("error:") == 1 and len(err.strip().splitlines()) == 2, err  # the note on tiny weights + it
    assert f"{path}: not a list file" in err and ".mp4" in err


def test_an_input_given_twice_is_refused(work):
    from videoespresso.curate import discover_videos
    from videoespresso.errors import UserError

    clip = work / "videos" / "a_mixed.mp4"
    with pytest.raises(UserError, match="given twice"):
        discover_videos([clip, clip])


def test_a_newline_in_a_name_stays_on_its_failure_line(work, capsys):
    from videoespresso.video.synth import make_bad_video

    folder = work / "odd-names"
    make_bad_video(folder / "two\nlines.mp4", "truncated")
    code, _, err = run_cli(capsys, ["build", str(folder), "--out", str(work / "odd-out"), "--stages", "1-1",
                                 "--profile", "tiny", "--no-progress"])
    assert code == 0, err
    lines = [line for line in err.splitlines() if "failed in sample" in line]
    assert len(lines) == 1 and "two\\nlines.mp4: unreadable_video" in lines[0], err
    assert "lines.mp4" not in err.replace(lines[0], "")
    # the same for an error line: one line, the newline shown escaped
    code, _, err = run_cli(capsys, ["ask", str(folder / "gone\nhere.mp4"), "What?", "--profile", "tiny"])
    assert code == 2 and err.strip().splitlines()[-1].endswith("gone\\nhere.mp4: no such file"), err
