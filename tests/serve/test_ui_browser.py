"""The web UI in a real headless Chromium (Playwright for Python driving the system browser):
ask a generated clip a question, and browse an eval run filtered to its wrong items.

The dataset browser on a real ``build`` is in ``test_ui_dataset_browser.py`` (slow: the build).
Screenshots are kept in ``$VE_TEST_ARTIFACTS`` (default ``test-artifacts/ui/``).
"""

from __future__ import annotations

import pytest

pytest.importorskip("playwright.sync_api")

from serve_ui_helpers import ARTIFACTS, CHROMIUM, UI_KEY, open_browser_page, write_eval_run  # noqa: E402

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no system Chromium (apt-get install chromium)")


@pytest.fixture(scope="module")
def eval_run(tmp_path_factory):
    from videoespresso.schema import BenchItem

    folder = tmp_path_factory.mktemp("ui-eval")
    tasks = ["Causal Inference", "Traffic Analysis"]
    bench = [
        BenchItem(id=f"item{i}", video_path=f"v{i % 2}.mp4", question=f"Question {i}?",
                  options=[f"option {c} of {i}" for c in "ABCD"], correct_answer="ABCD"[i % 4],
                  answer=f"option {'ABCD'[i % 4]} of {i}", evidence="", task=tasks[i % 2])
        for i in range(7)
    ]
    bench_path, preds_path, wrong = write_eval_run(folder, bench)
    return {"bench": bench_path, "preds": preds_path, "wrong": wrong, "n": len(bench)}


@pytest.fixture(scope="module")
def ui_server(light_videoqa, video_root, eval_run):
    from videoespresso.serve.media import MediaPolicy
    from videoespresso.serve.videoqa import VideoQAServer, create_videoqa_app
    from videoespresso.ui import UIConfig

    app = create_videoqa_app(light_videoqa, policy=MediaPolicy(video_root=video_root), api_keys=[UI_KEY],
                             ui=UIConfig(predictions=eval_run["preds"], bench=eval_run["bench"]))
    with VideoQAServer(app) as handle:
        yield handle


@pytest.fixture(scope="module")
def page(ui_server):
    yield from open_browser_page(ui_server.url)


def test_ask_a_generated_clip_shows_frames_and_an_answer(page, ui_server):
    page.goto(f"{ui_server.url}/ui/ask")
    assert page.locator("#video option").all_inner_texts() == ["clip.mp4", "sub/moving.mp4"]
    page.select_option("#video", "clip.mp4")
    page.fill("#question", "What moves in the video?")
    for i, text in enumerate(["a square", "a circle", "nothing", "a car"]):
        page.fill(f"input[name=option{i}]", text)
    page.click("#ask")
    page.wait_for_selector("#answer", timeout=120_000)
    assert page.inner_text("#status") == "done"
    figures = page.locator("#frames figure.frame")
    assert 1 <= figures.count() <= 3
    for i in range(figures.count()):
        assert " s" in figures.nth(i).locator("figcaption").inner_text()
        assert figures.nth(i).locator("img").evaluate("img => img.complete && img.naturalWidth > 0")
    assert "128 uniform" in page.inner_text("#compute")
    assert page.locator("#chosen").count() == 1
    page.screenshot(path=str(ARTIFACTS / "ask.png"), full_page=True)


def test_ask_an_uploaded_video_and_report_a_bad_upload(page, ui_server, video_root, tmp_path):
    page.goto(f"{ui_server.url}/ui/ask")
    page.set_input_files("#upload", str(video_root / "sub" / "moving.mp4"))
    page.fill("#question", "Anything moving?")
    page.click("#ask")
    page.wait_for_selector("#answer", timeout=120_000)
    assert page.locator("#frames figure.frame").count() >= 1
    page.goto(f"{ui_server.url}/ui/ask")
    bad = tmp_path / "notes.mp4"
    bad.write_text("not a video")
    page.set_input_files("#upload", str(bad))
    page.fill("#question", "Anything?")
    page.click("#ask")
    page.wait_for_selector("#status.error")
    assert "not a readable video" in page.inner_text("#status")


def test_eval_browser_filters_to_wrong_items(page, ui_server, eval_run):
    page.goto(f"{ui_server.url}/ui/eval")
    assert page.locator("#predictions tr.pred").count() == eval_run["n"]
    assert page.locator("#per-task tr").count() == 1 + 2
    # item i is right, wrong, unparsed as i % 3; task as i % 2: Causal Inference holds 0, 2, 4, 6
    causal = page.locator("#per-task tr", has_text="Causal Inference").locator("td").all_inner_texts()
    assert causal == ["Causal Inference", "4", "2", "1", "50.0"]
    page.select_option("select[name=show]", "wrong")
    page.click("#apply")
    page.wait_for_url("**show=wrong*")
    rows = page.locator("#predictions tr.pred")
    assert rows.count() == eval_run["wrong"]
    classes = {rows.nth(i).get_attribute("class") for i in range(rows.count())}
    assert classes == {"pred wrong", "pred unparsed"}
    for i in range(rows.count()):
        assert rows.nth(i).locator("td").nth(5).inner_text(), "the rule that fired (or why none did) is shown"
    page.screenshot(path=str(ARTIFACTS / "eval-wrong.png"), full_page=True)
    page.select_option("select[name=show]", "unparsed")
    page.select_option("select[name=task]", "Traffic Analysis")
    page.click("#apply")
    page.wait_for_url("**show=unparsed*")
    shown = page.locator("#predictions tr.pred")
    assert all(shown.nth(i).locator("td").nth(1).inner_text() == "Traffic Analysis" for i in range(shown.count()))
    assert {shown.nth(i).get_attribute("class") for i in range(shown.count())} <= {"pred unparsed"}
