"""A bounded load on loopback: 24 VideoQA-SC requests, 8 at a time, through the real ``openai``
SDK, mixing the ways a video arrives (a path under the root, a data URL, image frames). No
request fails, and nothing leaks: open file descriptors and temporary files are back to where
they were. (``benchmarks/bench_serve_videoqa.py`` runs 200 and reports latency percentiles.)"""

from __future__ import annotations

import base64
import concurrent.futures
import io
import os
import time

import openai
import pytest
from PIL import Image

from videoespresso.serve.media import MediaPolicy
from videoespresso.serve.videoqa import Limits, VideoQAServer, create_videoqa_app


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def _messages(kind: str, video_root) -> list[dict]:
    if kind == "path":
        parts = [{"type": "video_url", "video_url": {"url": "clip.mp4"}}]
    elif kind == "data":
        data = base64.b64encode((video_root / "clip.mp4").read_bytes()).decode()
        parts = [{"type": "video_url", "video_url": {"url": f"data:video/mp4;base64,{data}"}}]
    else:
        parts = []
        for color in ("red", "blue", "green"):
            buffer = io.BytesIO()
            Image.new("RGB", (32, 32), color).save(buffer, format="JPEG")
            parts.append({"type": "image_url", "image_url": {
                "url": "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode()}})
    return [{"role": "user", "content": [*parts, {"type": "text", "text": "What is shown?"}]}]


@pytest.mark.slow  # about 30-90 s on 2 shared cores: the models answer one request at a time
def test_24_requests_8_concurrent_no_errors_no_leaks(light_videoqa, video_root, tmp_path):
    temp = tmp_path / "temp"
    temp.mkdir()
    policy = MediaPolicy(video_root=video_root, upload_dir=tmp_path / "uploads", temp_dir=temp)
    app = create_videoqa_app(light_videoqa, policy=policy, limits=Limits(max_concurrent=8))
    kinds = ["path", "data", "frames"] * 8
    with VideoQAServer(app) as server:
        client = openai.OpenAI(base_url=server.base_url, api_key="none", max_retries=0, timeout=300)
        client.chat.completions.create(model="videoqa-sc", messages=_messages("path", video_root))  # warm-up
        before = _open_fds()

        def one(kind: str) -> int:
            completion = client.chat.completions.create(model="videoqa-sc", messages=_messages(kind, video_root))
            return len(completion.model_extra["videoespresso"]["frames"])

        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            frames = list(pool.map(one, kinds))
        client.close()
        assert len(frames) == 24 and all(n >= 1 for n in frames)
        deadline = time.monotonic() + 10
        while _open_fds() > before and time.monotonic() < deadline:
            time.sleep(0.1)  # sockets of finished connections close asynchronously
        assert _open_fds() <= before
    assert list(temp.iterdir()) == []
    assert list((tmp_path / "uploads").iterdir()) == []
