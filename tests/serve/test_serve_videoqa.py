"""VideoQA-SC behind the OpenAI API: the real ``openai`` SDK on loopback, real videos, real
uploads, real (tiny, random-weight) models. Assertions are about structure, never content."""

from __future__ import annotations

import base64
import io
import json
import os
import threading
import urllib.error
import urllib.request
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import openai
import pytest
from PIL import Image

from videoespresso.serve.media import MediaPolicy
from videoespresso.serve.videoqa import Limits, VideoQAServer, create_videoqa_app

KEY = "test-key-1234"


@pytest.fixture(scope="module")
def temp_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("media-temp")


@pytest.fixture(scope="module")
def server(light_videoqa, video_root, temp_dir, tmp_path_factory):
    policy = MediaPolicy(
        video_root=video_root, upload_dir=tmp_path_factory.mktemp("uploads"), temp_dir=temp_dir,
        max_upload_bytes=400_000, max_remote_bytes=400_000, max_images=6,
    )
    app = create_videoqa_app(light_videoqa, policy=policy, api_keys=[KEY],
                             limits=Limits(max_body_bytes=2_000_000, max_tokens=64, max_concurrent=8))
    with VideoQAServer(app) as handle:
        yield handle


@pytest.fixture(scope="module")
def client(server):
    return openai.OpenAI(base_url=server.base_url, api_key=KEY, max_retries=0, timeout=120)


def _video_message(url: str, question: str = "What moves in the video?") -> list[dict]:
    return [{"role": "user", "content": [{"type": "video_url", "video_url": {"url": url}},
                                         {"type": "text", "text": question}]}]


def _http(server, method: str, path: str, body: bytes | None = None, headers: dict | None = None,
          key: str | None = KEY) -> tuple[int, dict]:
    headers = dict(headers or {})
    if key is not None:
        headers["Authorization"] = f"Bearer {key}"
    request = urllib.request.Request(f"{server.url}{path}", data=body, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"{}")


def _check_answer(completion, num_frames: int | None = None) -> dict:
    assert completion.model == "videoqa-sc"
    assert isinstance(completion.choices[0].message.content, str)
    extra = completion.model_extra["videoespresso"]
    frames = extra["frames"]
    assert 1 <= len(frames) <= 3
    assert [f["index"] for f in frames] == sorted({f["index"] for f in frames})
    assert all(f["seconds"] >= 0 for f in frames)
    if num_frames is not None:
        assert all(0 <= f["index"] < num_frames for f in frames)
    stages = [s["stage"] for s in extra["stages"]]
    # the selector's calls are metered too (captions are cached per video, so may be absent)
    assert stages[-2:] == ["evidence", "answer"] and "select:choose" in stages
    assert set(stages[:-2]) <= {"select:caption", "select:choose"}
    assert completion.usage.prompt_tokens == sum(s["prompt_tokens"] for s in extra["stages"]) > 0
    assert all(s["prompt_tokens"] > 0 for s in extra["stages"])
    assert extra["compute"]["frames"] == len(frames) and extra["compute"]["uniform_frames"] == 128
    assert isinstance(extra["evidence"], str)
    return extra


def test_video_url_under_the_root_answers_with_frames(client, video_root):
    from videoespresso.video import probe

    completion = client.chat.completions.create(
        model="videoqa-sc", messages=_video_message("file://clip.mp4"), max_tokens=8,
        extra_body={"options": ["a ball", "a cup", "a dog", "a car"]},
    )
    extra = _check_answer(completion, probe(video_root / "clip.mp4").num_frames)
    assert completion.usage.completion_tokens == sum(s["completion_tokens"] for s in extra["stages"])
    assert extra["options"] == ["a ball", "a cup", "a dog", "a car"]
    assert extra["chosen_option"] is None or extra["chosen_option"]["letter"] in "ABCD"
    # a bare relative path and an absolute path inside the root work as well
    for url in ("sub/moving.mp4", f"file://{video_root / 'sub' / 'moving.mp4'}"):
        _check_answer(client.chat.completions.create(model="videoqa-sc", messages=_video_message(url)))
    assert client.models.list().data[0].id == "videoqa-sc"


def test_upload_then_ask_and_image_frames(server, client, video_root):
    status, body = _http(server, "POST", "/v1/uploads", (video_root / "clip.mp4").read_bytes(),
                         {"X-Filename": "mine.mp4"})
    assert status == 201 and body["url"].startswith("upload://") and body["bytes"] > 0
    extra = _check_answer(client.chat.completions.create(
        model="videoqa-sc", messages=_video_message(body["url"]), extra_body={"return_frames": True}))
    assert all(f["image"].startswith("data:image/jpeg;base64,") for f in extra["frames"])

    parts = []
    for color in ("red", "green", "blue", "white"):
        buffer = io.BytesIO()
        Image.new("RGB", (48, 32), color).save(buffer, format="PNG")
        parts.append({"type": "image_url",
                      "image_url": {"url": "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()}})
    completion = client.chat.completions.create(
        model="videoqa-sc", messages=[{"role": "user", "content": [*parts, {"type": "text", "text": "Which colour?"}]}])
    extra = _check_answer(completion, num_frames=4)
    # the frames of an image clip are one per second
    assert all(f["seconds"] == pytest.approx(f["index"], abs=0.01) for f in extra["frames"])


def test_old_uploads_are_evicted_past_the_cap(server, video_root):
    policy = server.app.state.policy
    saved, policy.max_uploads = policy.max_uploads, 2
    try:
        urls = [_http(server, "POST", "/v1/uploads", (video_root / "clip.mp4").read_bytes())[1]["url"]
                for _ in range(3)]
        assert len(list(policy.upload_dir.iterdir())) == 2
        assert not (policy.upload_dir / urls[0].removeprefix("upload://")).exists()
        assert (policy.upload_dir / urls[2].removeprefix("upload://")).exists()
    finally:
        policy.max_uploads = saved


def test_streaming_gives_the_answer_and_the_extra_field(client):
    chunks = list(client.chat.completions.create(
        model="videoqa-sc", messages=_video_message("clip.mp4"), stream=True))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert isinstance(text, str)
    last = chunks[-1]
    assert last.choices[0].finish_reason == "stop"
    assert last.model_extra["videoespresso"]["frames"]


def test_api_key_is_required_everywhere(server, caplog):
    import logging

    caplog.set_level(logging.DEBUG)
    anonymous = openai.OpenAI(base_url=server.base_url, api_key="wrong-key", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as info:
        anonymous.chat.completions.create(model="videoqa-sc", messages=_video_message("clip.mp4"))
    assert info.value.status_code == 401 and KEY not in str(info.value)
    for method, path in (("GET", "/health"), ("GET", "/v1/models"), ("POST", "/v1/uploads")):
        status, body = _http(server, method, path, b"x" if method == "POST" else None, key=None)
        assert status == 401 and body["error"]["code"] == "invalid_api_key", path
    assert _http(server, "GET", "/health")[0] == 200
    assert "refused a request" in caplog.text
    assert KEY not in caplog.text and "wrong-key" not in caplog.text, "keys are never logged"


def test_bad_inputs_get_the_right_4xx_and_the_server_stays_alive(server, client, video_root, tmp_path):
    outside = tmp_path / "secret.mp4"
    outside.write_bytes((video_root / "clip.mp4").read_bytes())
    link = video_root / "escape.mp4"
    if not link.exists():
        link.symlink_to(outside)

    def status_of(url: str) -> tuple[int, str]:
        with pytest.raises(openai.APIStatusError) as info:
            client.chat.completions.create(model="videoqa-sc", messages=_video_message(url))
        return info.value.status_code, info.value.body["code"]

    assert status_of("file://../secret.mp4") == (403, "path_not_allowed")
    assert status_of("sub/../../secret.mp4") == (403, "path_not_allowed")
    assert status_of(f"file://{outside}") == (403, "path_not_allowed")
    assert status_of("escape.mp4") == (403, "path_not_allowed")  # a symlink out of the root
    assert status_of("missing.mp4") == (404, "video_not_found")
    assert status_of("upload://0123456789abcdef0123456789abcdef.mp4") == (404, "upload_not_found")
    assert status_of("http://127.0.0.1:9/x.mp4") == (403, "remote_not_allowed")
    assert status_of("ftp://host/x.mp4")[0] == 400

    big = _http(server, "POST", "/v1/uploads", b"\0" * 500_000)
    assert big[0] == 413 and big[1]["error"]["code"] == "upload_too_large"
    not_video = _http(server, "POST", "/v1/uploads", b"this is a text file, not a video\n" * 20,
                      {"X-Filename": "notes.mp4"})
    assert not_video[0] == 415 and not_video[1]["error"]["code"] == "unsupported_media"
    assert not any(p.name.endswith(".part") for p in server.app.state.policy.upload_dir.iterdir())
    malformed = _http(server, "POST", "/v1/chat/completions", b'{"model": "videoqa-sc", "messages": [',
                      {"Content-Type": "application/json"})
    assert malformed[0] == 400 and malformed[1]["error"]["code"] == "invalid_json"
    huge = _http(server, "POST", "/v1/chat/completions", b" " * 2_100_000, {"Content-Type": "application/json"})
    assert huge[0] == 413

    with pytest.raises(openai.BadRequestError, match="max_tokens"):
        client.chat.completions.create(model="videoqa-sc", messages=_video_message("clip.mp4"), max_tokens=65)
    pixel = "data:image/png;base64," + base64.b64encode(_png()).decode()
    with pytest.raises(openai.BadRequestError, match="at most 6"):
        client.chat.completions.create(model="videoqa-sc", messages=[{"role": "user", "content": [
            *[{"type": "image_url", "image_url": {"url": pixel}}] * 7, {"type": "text", "text": "q"}]}])
    with pytest.raises(openai.BadRequestError, match="video_url"):
        client.chat.completions.create(model="videoqa-sc", messages=[{"role": "user", "content": "no video"}])
    with pytest.raises(openai.BadRequestError, match="options"):
        client.chat.completions.create(model="videoqa-sc", messages=_video_message("clip.mp4"),
                                       extra_body={"options": ["only one"]})
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="gpt-4o", messages=_video_message("clip.mp4"))

    assert _http(server, "GET", "/health")[0] == 200
    _check_answer(client.chat.completions.create(model="videoqa-sc", messages=_video_message("clip.mp4")))


def _png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), "gray").save(buffer, format="PNG")
    return buffer.getvalue()


def test_remote_urls_when_allowed_are_fetched_within_limits(server, client, video_root, temp_dir, tmp_path):
    served = tmp_path / "www"
    served.mkdir()
    (served / "clip.mp4").write_bytes((video_root / "clip.mp4").read_bytes())
    (served / "big.mp4").write_bytes(b"\0" * 500_000)

    class Quiet(SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(served), **kwargs)

        def log_message(self, *args):  # noqa: ARG002
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    policy = server.app.state.policy
    policy.allow_remote = True
    try:
        base = f"http://127.0.0.1:{httpd.server_address[1]}"
        _check_answer(client.chat.completions.create(model="videoqa-sc", messages=_video_message(f"{base}/clip.mp4")))
        for name, code in (("big.mp4", 413), ("nothing.mp4", 422)):
            with pytest.raises(openai.APIStatusError) as info:
                client.chat.completions.create(model="videoqa-sc", messages=_video_message(f"{base}/{name}"))
            assert info.value.status_code == code
    finally:
        policy.allow_remote = False
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=10)
    assert list(temp_dir.iterdir()) == [], "every fetched or decoded temporary file is deleted"
    cached = server.app.state.videoqa.selector.__dict__.get("_captions", {})
    assert cached and not any(str(temp_dir) in video for video, _ in cached), "captions of temporary files are dropped"


def test_requests_over_the_concurrency_limit_get_429(light_videoqa, video_root):
    import concurrent.futures

    app = create_videoqa_app(light_videoqa, policy=MediaPolicy(video_root=video_root),
                             limits=Limits(max_concurrent=1))
    body = json.dumps({"model": "videoqa-sc", "messages": _video_message("clip.mp4")}).encode()
    with VideoQAServer(app) as handle:
        def post(_: int) -> int:
            return _http(handle, "POST", "/v1/chat/completions", body, {"Content-Type": "application/json"},
                         key=None)[0]

        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            statuses = list(pool.map(post, range(4)))
    assert 200 in statuses and 429 in statuses and set(statuses) <= {200, 429}


def test_plain_serve_takes_an_api_key(tiny_llm, monkeypatch):
    from videoespresso.serve.auth import api_keys
    from videoespresso.serve.openai_server import start_server

    monkeypatch.setenv("VIDEOESPRESSO_API_KEY", "a, b")
    assert api_keys(None) == ["a", "b"] and api_keys("c") == ["c"]
    with start_server(tiny_llm, name="chat", api_keys=["k"]) as handle:
        messages = [{"role": "user", "content": "hi"}]
        good = openai.OpenAI(base_url=handle.base_url, api_key="k", max_retries=0)
        assert good.chat.completions.create(model="chat", messages=messages, max_tokens=2).choices
        bad = openai.OpenAI(base_url=handle.base_url, api_key="nope", max_retries=0)
        with pytest.raises(openai.AuthenticationError):
            bad.chat.completions.create(model="chat", messages=messages, max_tokens=2)


def test_ui_command_refuses_bad_paths_in_one_line(tmp_path):
    import subprocess
    import sys

    src = str(Path(__file__).resolve().parents[2] / "src")
    env = {**os.environ, "PYTHONPATH": src}
    done = subprocess.run([sys.executable, "-m", "videoespresso", "ui", "--dataset", str(tmp_path / "nope"),
                           "--profile", "tiny"], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 2 and "--dataset" in done.stderr and "Traceback" not in done.stderr


@pytest.mark.slow  # loads the tiny profile's models in a fresh process (about 20-40 s)
def test_ui_command_serves_the_api_and_the_ui(video_root, tmp_path):
    import re
    import signal
    import subprocess
    import sys
    import time

    src = str(Path(__file__).resolve().parents[2] / "src")
    env = {**os.environ, "PYTHONPATH": src, "VIDEOESPRESSO_API_KEY": "cli-key"}
    (tmp_path / "cfg.yaml").write_text("sampling: {max_side: 64}\ngeneration: {max_new_tokens: 8}\nselect: {candidates: 4, max_frames: 3}\n")
    proc = subprocess.Popen(
        [sys.executable, "-m", "videoespresso", "ui", "--profile", "tiny", "--config", str(tmp_path / "cfg.yaml"),
         "--video-root", str(video_root), "--port", "0"],
        stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=env,
    )
    try:
        port = None
        deadline = time.monotonic() + 240
        while port is None and time.monotonic() < deadline:
            line = proc.stderr.readline()
            assert line or proc.poll() is None, "the server exited early"
            found = re.search(r"http://127\.0\.0\.1:(\d+)/v1", line)
            port = int(found.group(1)) if found else None
        assert port is not None
        client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="cli-key", max_retries=0, timeout=240)
        _check_answer(client.chat.completions.create(model="videoqa-sc", messages=_video_message("clip.mp4")))
        request = urllib.request.Request(f"http://127.0.0.1:{port}/ui/ask", headers={"Authorization": "Bearer cli-key"})
        with urllib.request.urlopen(request, timeout=30) as response:
            assert b"clip.mp4" in response.read()
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0


def test_key_objects_from_evidence_tags_become_corner_boxes():
    from videoespresso.serve.videoqa import _key_objects

    evidence = ("The <obj_start>man<obj_end><box_start>[[50, 50, 20, 40]]<box_end> lifts a "
                "<obj_start>cup<obj_end><box_start>[]<box_end>.")
    objects = _key_objects(evidence)
    assert [o["name"] for o in objects] == ["man", "cup"]
    assert objects[0]["boxes"] == [pytest.approx([0.4, 0.3, 0.6, 0.7])] and objects[1]["boxes"] == []
    assert _key_objects("no tags at all") == [] and _key_objects(None) == []
    assert _key_objects("<obj_start>x<obj_end><box_start>[[1, 2]]<box_end>") == []  # malformed: no boxes, no error


def test_ui_pages_report_bad_files_in_the_page(light_videoqa, tmp_path):
    from videoespresso.ui import UIConfig

    preds = tmp_path / "preds.jsonl"
    preds.write_text("this is not json\n")
    dataset = tmp_path / "build"
    dataset.mkdir()
    (dataset / "dataset.jsonl").write_text(
        '{"qa": {"id": "x1", "video": "v.mp4", "question": "<b>q</b>", "answer": "a", "task": "Causal Inference"}, "cot": {}}\n'
        '{"qa": {"id": "x2", "question": "q", "task": "Causal Inference"}}\nnot json\n')
    (tmp_path / "secret.jpg").write_bytes(b"\xff\xd8\xff")
    app = create_videoqa_app(light_videoqa, ui=UIConfig(dataset=dataset, predictions=preds, bench=tmp_path / "nope.json"))

    def get(handle, path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(f"{handle.url}{path}", timeout=30) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as err:
            return err.code, err.read().decode()

    with VideoQAServer(app) as handle:
        status, page = get(handle, "/ui/eval")
        assert status == 200 and 'class="error"' in page and "nope.json" in page
        app_state = handle.app.state
        status, page = get(handle, "/ui/dataset")
        assert status == 200 and 'data-id="x1"' in page and "&lt;b&gt;q&lt;/b&gt;" in page and "<b>q</b>" not in page
        assert "qa.video: Field required" in page and "not valid JSON" in page  # the incomplete line, the broken one
        assert get(handle, "/ui/dataset/file?path=../secret.jpg")[0] == 404
        assert get(handle, f"/ui/dataset/file?path={tmp_path / 'secret.jpg'}")[0] == 404
        assert get(handle, "/ui/static/../pages.py")[0] == 404
        assert get(handle, "/health")[0] == 200 and app_state.served_name == "videoqa-sc"
