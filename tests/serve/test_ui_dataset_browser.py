"""The dataset browser on a real ``build`` output (a generated clip and a corrupt file through the
ten stages with the tiny profile's models), in headless Chromium. Slow: the build.
Screenshots are kept in ``$VE_TEST_ARTIFACTS`` (default ``test-artifacts/ui/``)."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("playwright.sync_api")

from serve_ui_helpers import ARTIFACTS, CHROMIUM, UI_KEY, open_browser_page, write_eval_run  # noqa: E402

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(CHROMIUM is None, reason="no system Chromium (apt-get install chromium)")]


@pytest.fixture(scope="module")
def built(tmp_path_factory, tiny_vlm, tiny_llm, minilm, tiny_grounder, tiny_clip):
    """A real ``build`` output folder, plus an eval run over its items."""
    import yaml

    from videoespresso.config import load_config
    from videoespresso.curate import run_build
    from videoespresso.schema import BenchItem
    from videoespresso.video.synth import make_test_video

    work = tmp_path_factory.mktemp("ui-build")
    make_test_video(work / "videos" / "a.mp4", "mixed", seconds=1.5)
    (work / "videos" / "broken.mp4").write_bytes(b"not a video at all")
    (work / "cfg.yaml").write_text(yaml.safe_dump({
        "sampling": {"max_side": 96}, "generation": {"max_new_tokens": 12},
        # keep every frame (tau near 1) so that one short clip gives several groups
        "curate": {"batch_size": 8, "group_size": 2, "qa_per_group": 2, "max_text_chars": 16, "max_new_tokens": 100,
                   "redundancy_tau": 0.999},
    }))
    models = {"tiny:qwen2-vl": tiny_vlm, "tiny:qwen2": tiny_llm, "minilm": minilm,
              "tiny:grounding-dino": tiny_grounder, "tiny:clip": tiny_clip}
    out = work / "build"
    run_build(work / "videos", out, load_config("tiny", work / "cfg.yaml"), preloaded=models, progress=False)
    records = [json.loads(line) for line in (out / "dataset.jsonl").read_text().splitlines()]
    assert len(records) >= 2, records
    bench = [BenchItem(id=r["qa"]["id"], video_path=r["qa"]["video"], question=r["qa"]["question"],
                       options=r["options"], correct_answer=r["correct_answer"], answer=r["qa"]["answer"],
                       evidence=r["cot"]["evidence"], task=r["qa"]["task"]) for r in records]
    bench_path, preds_path, wrong = write_eval_run(work, bench)
    return {"out": out, "bench": bench_path, "preds": preds_path, "records": records, "wrong": wrong,
            "videos": work / "videos"}


@pytest.fixture(scope="module")
def ui_server(light_videoqa, built):
    from videoespresso.serve.media import MediaPolicy
    from videoespresso.serve.videoqa import VideoQAServer, create_videoqa_app
    from videoespresso.ui import UIConfig

    app = create_videoqa_app(
        light_videoqa, policy=MediaPolicy(video_root=built["videos"]), api_keys=[UI_KEY],
        ui=UIConfig(dataset=built["out"], predictions=built["preds"], bench=built["bench"]),
    )
    with VideoQAServer(app) as handle:
        yield handle


@pytest.fixture(scope="module")
def page(ui_server):
    yield from open_browser_page(ui_server.url)


def test_dataset_browser_draws_boxes_on_frames_and_filters(page, ui_server, built):
    from videoespresso.ui.pages import verdict

    page.goto(f"{ui_server.url}/ui/dataset")
    records = built["records"]
    assert page.locator("section.item").count() == len(records)
    assert page.locator("#summary tr").count() == 1 + 10  # header + the ten stages
    with_boxes = [r for r in records if any(o["boxes"] for o in r["cot"]["key_objects"])]
    assert with_boxes, "the tiny grounder with thresholds at 0 boxes something"
    item = page.locator(f'section.item[data-id="{with_boxes[0]["qa"]["id"]}"]')
    rects = item.locator("rect.box")
    assert rects.count() == sum(len(o["boxes"]) for o in with_boxes[0]["cot"]["key_objects"])
    image = rects.first.locator("xpath=ancestor::div[@class='framebox']").locator("img")
    assert image.evaluate("img => img.complete && img.naturalWidth > 0")
    img_box, rect_box = image.bounding_box(), rects.first.bounding_box()
    assert rect_box["width"] > 0 and rect_box["height"] > 0
    assert img_box["x"] - 1 <= rect_box["x"] and rect_box["x"] + rect_box["width"] <= img_box["x"] + img_box["width"] + 1
    assert img_box["y"] - 1 <= rect_box["y"] and rect_box["y"] + rect_box["height"] <= img_box["y"] + img_box["height"] + 1
    assert item.locator(".evidence mark.obj").count() >= 1
    item.scroll_into_view_if_needed()
    item.screenshot(path=str(ARTIFACTS / "dataset-item.png"))
    page.screenshot(path=str(ARTIFACTS / "dataset.png"), full_page=True)

    wanted = verdict(records[0])
    page.select_option("select[name=verdict]", wanted)
    page.click("#apply")
    page.wait_for_url("**verdict=*")
    shown = page.locator("section.item")
    assert shown.count() == sum(1 for r in records if verdict(r) == wanted)
    assert {shown.nth(i).get_attribute("data-verdict") for i in range(shown.count())} == {wanted}

    # why items were dropped: the corrupt file, filterable by its reason
    page.goto(f"{ui_server.url}/ui/dataset")
    assert "unreadable_video" in page.locator("select[name=reason] option").all_inner_texts()
    page.select_option("select[name=reason]", "unreadable_video")
    page.click("#apply")
    page.wait_for_url("**reason=*")
    failures = page.locator("tr.failure")
    assert failures.count() == 1 and "broken.mp4" in failures.first.inner_text()
    assert page.locator("section.item").count() == 0
    # a path outside the dataset folder is not served
    assert page.request.get(f"{ui_server.url}/ui/dataset/file?path=../bench.json").status == 404


def test_eval_browser_on_the_built_items(page, ui_server, built):
    page.goto(f"{ui_server.url}/ui/eval?show=wrong")
    assert page.locator("#predictions tr.pred").count() == built["wrong"]
    assert page.locator("#per-task tr").count() >= 2
