"""lmms-eval: the real `lmms-eval` CLI, offline, on a generated 4-item benchmark with our task and
our model adapter over a tiny checkpoint; the adapter with the uniform and caption-llm selectors;
our extraction and aggregations inside the task."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from videoespresso.bench.extract import extract_answer
from videoespresso.formats.bench import read_bench

lmms_eval = pytest.importorskip("lmms_eval")

from videoespresso.integrations.lmms_eval import task as ve_task  # noqa: E402


@pytest.fixture(scope="module")
def task_folder(built_dataset, tmp_path_factory) -> Path:
    items = read_bench(built_dataset / "test.json")
    assert len(items) == 4, "the shared build has a 4-item test split"
    folder, problems, left_out = ve_task.write_task(
        items, built_dataset.parent / "videos", tmp_path_factory.mktemp("lmms-task"), max_new_tokens=6
    )
    assert problems == [] and left_out == 0
    return folder


def _env(tmp: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", TRANSFORMERS_OFFLINE="1", HF_HOME=str(tmp / "hf"),
               WANDB_MODE="disabled")
    return env


def _ours(samples: list[dict], docs: dict[int, dict]) -> dict[str, float]:
    """Our own scoring of the replies lmms-eval logged, to compare with its aggregated metrics."""
    correct, by_task = [], {}
    for s in samples:
        doc = docs[s["doc_id"]]
        reply = s["resps"][0][0] if isinstance(s["resps"][0], list) else s["resps"][0]
        ok = extract_answer(reply, doc["options"]).letter == doc["correct_answer"]
        correct.append(ok)
        by_task.setdefault(doc["task"], []).append(ok)
    return {
        "overall": 100.0 * sum(correct) / len(correct),
        "task_mean": sum(100.0 * sum(v) / len(v) for v in by_task.values()) / len(by_task),
        **{ve_task.task_metric(t): 100.0 * sum(v) / len(v) for t, v in by_task.items()},
    }


@pytest.mark.slow
def test_the_lmms_eval_cli_runs_our_task_with_our_adapter_offline(task_folder, tmp_path):
    from importlib.metadata import entry_points

    exe = shutil.which("lmms-eval", path=str(Path(sys.executable).parent))
    assert exe, "lmms-eval is installed by scripts/install.sh"
    assert any(ep.name == "videoespresso" for ep in entry_points(group="lmms_eval.models")), (
        "the lmms_eval.models entry point is missing: reinstall videoespresso (pip install -e .)"
    )
    out = tmp_path / "out"
    proc = subprocess.run(
        [exe, "eval", "--model", "videoespresso",
         "--model_args", "spec=tiny:qwen2-vl,selector=uniform,frames=2,profile=tiny",
         "--tasks", "videoespresso", "--include_path", str(task_folder), "--output_path", str(out),
         "--log_samples", "--batch_size", "1"],
        env=_env(tmp_path), capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads(next(out.rglob("*_results.json")).read_text())["results"]["videoespresso"]
    samples = [json.loads(line) for line in next(out.rglob("*_samples_videoespresso.jsonl")).read_text().splitlines()]
    docs = dict(enumerate(json.loads(line) for line in (task_folder / "videoespresso.jsonl").read_text().splitlines()))
    assert len(samples) == 4
    for name, value in _ours(samples, docs).items():
        assert results[f"{name},none"] == pytest.approx(value), name
    assert 0.0 <= results["unparsed,none"] <= 100.0
    assert "overall_stderr_clustered,none" in results


# caption-llm captions 4 candidates per item with the tiny VLM: about 20 s on 2 busy cores
@pytest.mark.parametrize("selector", ["uniform", pytest.param("caption-llm", marks=pytest.mark.slow)])
def test_our_adapter_with_a_selector_runs_in_lmms_eval(task_folder, tiny_vlm, selector, tmp_path, monkeypatch):
    from lmms_eval.evaluator import simple_evaluate
    from lmms_eval.tasks import TaskManager

    from videoespresso.integrations.lmms_eval.model import VideoEspressoLMM

    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    model = VideoEspressoLMM(spec="tiny:qwen2-vl", selector=selector, frames="2", candidates="4", max_frames="3",
                             profile="tiny")
    out = simple_evaluate(
        model=model, tasks=["videoespresso"], task_manager=TaskManager("ERROR", include_path=str(task_folder)),
        log_samples=True, bootstrap_iters=0,
    )
    metrics = out["results"]["videoespresso"]
    assert {"overall,none", "task_mean,none", "unparsed,none"} <= set(metrics)
    assert len(model.last_frames) == 4 and all("error" not in f for f in model.last_frames)
    counts = [len(v["frames"]) for f in model.last_frames for v in f["videos"]]
    if selector == "uniform":
        assert counts == [2, 2, 2, 2]
    else:
        assert all(1 <= c <= 3 for c in counts)
    docs = [json.loads(line) for line in (task_folder / "videoespresso.jsonl").read_text().splitlines()]
    samples = out["samples"]["videoespresso"]
    ours = _ours([{"doc_id": s["doc_id"], "resps": s["resps"]} for s in samples], dict(enumerate(docs)))
    assert metrics["overall,none"] == pytest.approx(ours["overall"])


def test_process_results_uses_our_extraction_not_the_first_capital():
    doc = {"id": "1", "video_path": "/v.mp4", "task": "Causal Inference", "correct_answer": "C",
           "options": ["a cup", "a dog", "a red car", "a tree"]}
    cases = {"Answer: C": 1, "The answer is (C).": 1, "a red car": 1, "C": 1, "B": 0, "I cannot tell": 0}
    items = {k: ve_task.process_results(doc, [reply]) for k, reply in ((r, r) for r in cases)}
    for reply, expected in cases.items():
        assert items[reply]["overall"]["score"] == expected, reply
        assert items[reply][ve_task.task_metric("Causal Analysis")]["score"] == expected
        assert items[reply]["overall"]["video_path"] == "/v.mp4"
    assert items["I cannot tell"]["unparsed"]["score"] == 1 and items["B"]["unparsed"]["score"] == 0
    # the official rule reads "Answer: C" as A (its first capital A-D); ours reads C
    assert items["Answer: C"]["overall"]["letter"] == "C"
    other = {**doc, "task": "Traffic Analysis", "correct_answer": "A"}
    pooled = [items["C"]["task_mean"], items["B"]["task_mean"], ve_task.process_results(other, ["A"])["task_mean"]]
    assert ve_task.aggregate_accuracy(pooled) == pytest.approx(200 / 3)
    assert ve_task.aggregate_task_mean(pooled) == pytest.approx((50.0 + 100.0) / 2)


def test_task_cli_writes_a_folder_lmms_eval_loads(built_dataset, tmp_path):
    from lmms_eval.tasks import TaskManager

    from videoespresso.cli import main as cli_main

    try:
        cli_main(["lmms-eval", "task", str(tmp_path / "t"), "--bench", str(built_dataset / "test.json"),
                  "--video-root", str(built_dataset.parent / "videos")])
    except SystemExit as exc:
        assert exc.code in (0, None)
    manager = TaskManager("ERROR", include_path=str(tmp_path / "t"))
    assert "videoespresso" in manager.all_tasks
    text = (tmp_path / "t" / "videoespresso.yaml").read_text()
    tasks = {i.task for i in read_bench(built_dataset / "test.json")}
    assert all(f"metric: {ve_task.task_metric(t)}" in text for t in tasks)
    doc = json.loads((tmp_path / "t" / "videoespresso.jsonl").read_text().splitlines()[0])
    assert Path(doc["video_path"]).is_absolute() and Path(doc["video_path"]).is_file()
    assert ve_task.doc_to_text(doc).startswith("Please finish the ")


def test_adapter_two_stage_images_and_a_missing_video(task_folder, tiny_vlm):
    """Image visuals pass through, the two-stage reasoner answers, a missing video fails only
    its own request with an empty reply."""
    from lmms_eval.api.instance import Instance
    from PIL import Image as PILImage

    from videoespresso.integrations.lmms_eval.model import VideoEspressoLMM

    model = VideoEspressoLMM(spec="tiny:qwen2-vl", selector="uniform", frames="3", reasoner="two-stage", profile="tiny")
    doc = json.loads((task_folder / "videoespresso.jsonl").read_text().splitlines()[0])
    model.task_dict = {"t": {"test": [doc, {"image": PILImage.new("RGB", (64, 48), "red")}, {"video_path": "/no/such.mp4"}]}}

    class Hook:
        calls = 0

        def add_partial(self, *args):
            Hook.calls += 1

    model.set_cache_hook(Hook())
    visual = {0: lambda d: [d["video_path"]], 1: lambda d: [d["image"]], 2: lambda d: [d["video_path"]]}
    requests = [
        Instance(request_type="generate_until", arguments=("What happens?", {"max_new_tokens": 4, "until": ["\n"]}, visual[i], i, "t", "test"),
                 idx=0, metadata={"task": "t", "doc_id": i, "repeats": 1})
        for i in range(3)
    ]
    replies = model.generate_until(requests)
    assert len(replies) == 3 and all(isinstance(r, str) for r in replies) and replies[2] == ""
    assert [len(v["frames"]) for v in model.last_frames[0]["videos"]] == [3]
    assert model.last_frames[1]["videos"] == [] and "no such file" in model.last_frames[2]["error"]
    assert Hook.calls == 3


def test_task_confines_video_paths_to_the_video_root_as_eval_does(built_dataset, tmp_path, capsys):
    """A video_path that leaves --video-root (``..``, absolute) is refused item by item, as eval
    refuses it: named, left out of the task, exit code 3; the others are written."""
    from videoespresso.cli import main as cli_main
    from videoespresso.formats.bench import write_bench

    items = read_bench(built_dataset / "test.json")
    outside = tmp_path / "outside.mp4"
    outside.write_bytes(b"x")
    escaping = [items[0].model_copy(update={"video_path": "../outside.mp4"}),
                items[1].model_copy(update={"video_path": str(outside)})]
    bench = tmp_path / "bench.json"
    write_bench([*escaping, *items[2:]], bench)
    root = tmp_path / "videos"
    shutil.copytree(built_dataset.parent / "videos", root)
    capsys.readouterr()
    with pytest.raises(SystemExit) as info:
        cli_main(["lmms-eval", "task", str(tmp_path / "t"), "--bench", str(bench), "--video-root", str(root)])
    captured = capsys.readouterr()
    assert info.value.code == 3
    err = " ".join(captured.err.split())
    assert f"item {items[0].id}: video_path '../outside.mp4' is outside --video-root" in err
    assert f"item {items[1].id}: video_path {str(outside)!r} is outside --video-root" in err
    assert f"({len(items) - 2} of {len(items)} items)" in captured.out
    docs = [json.loads(line) for line in (tmp_path / "t" / "videoespresso.jsonl").read_text().splitlines()]
    assert [d["id"] for d in docs] == [i.id for i in items[2:]]
    assert all(Path(d["video_path"]).is_relative_to(root) for d in docs)
