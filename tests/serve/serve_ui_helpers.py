"""Helpers of the browser tests: the system Chromium, a logged-in page, an eval run to browse."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

CHROMIUM = os.environ.get("VE_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
UI_KEY = "ui-test-key"
#: Screenshots the browser tests keep (look at them).
ARTIFACTS = Path(os.environ.get("VE_TEST_ARTIFACTS") or Path(__file__).resolve().parents[2] / "test-artifacts") / "ui"


def open_browser_page(server_url: str):
    """A generator: a logged-in Playwright page on the system Chromium; checks on exit that the
    UI loaded nothing from beyond the server (no CDN, no analytics)."""
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        page = context.new_page()
        requests: list[str] = []
        page.on("request", lambda r: requests.append(r.url))
        page.goto(f"{server_url}/ui/ask")
        assert page.url.endswith("/ui/login"), "without the key the UI asks for it"
        page.fill("#key", UI_KEY)
        page.click("button[type=submit]")
        page.wait_for_url("**/ui/ask")
        yield page
        assert all(u.startswith(server_url) or u.startswith("data:") for u in requests), requests
        context.close()
        browser.close()


def write_eval_run(folder: Path, bench: list) -> tuple[Path, Path, int]:
    """A bench file and a predictions file over it: right, wrong and unparsed replies in turn.
    Returns (bench path, predictions path, number of wrong or unparsed items)."""
    import json

    from videoespresso.formats.bench import write_bench

    write_bench(bench, folder / "bench.json")
    wrong = 0
    with (folder / "preds.jsonl").open("w") as handle:
        for i, item in enumerate(bench):
            other = next(letter for letter in "ABCD" if letter != item.correct_answer)
            output = [f"The answer is ({item.correct_answer}).", f"({other})", "I cannot tell from these frames."][i % 3]
            wrong += i % 3 != 0
            handle.write(json.dumps({"id": item.id, "task": item.task, "output": output,
                                     "correct_answer": item.correct_answer}) + "\n")
    return folder / "bench.json", folder / "preds.jsonl", wrong
