"""The OpenAI-compatible server: raw HTTP requests, the official SDK, and the CLI command."""

from __future__ import annotations

import base64
import io
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import openai
import pytest
from PIL import Image

import videoespresso
from videoespresso.serve.openai_server import start_server


@pytest.fixture(scope="module")
def chat_server(tiny_llm):
    with start_server(tiny_llm, name="chat") as handle:
        yield handle


@pytest.fixture(scope="module")
def vlm_server(tiny_vlm):
    with start_server(tiny_vlm) as handle:
        yield handle


def _post(url: str, body: object, raw: bytes | None = None) -> tuple[int, dict]:
    data = raw if raw is not None else json.dumps(body).encode()
    request = urllib.request.Request(
        f"{url}/chat/completions", data=data, headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def _data_url(image: Image.Image, fmt: str = "PNG") -> str:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return f"data:image/{fmt.lower()};base64,{base64.b64encode(buffer.getvalue()).decode()}"


def test_completion_response_has_the_standard_shape(chat_server):
    status, body = _post(
        chat_server.base_url,
        {"model": "chat", "messages": [{"role": "user", "content": "hello"}], "max_tokens": 5},
    )
    assert status == 200
    assert body["object"] == "chat.completion" and body["model"] == "chat"
    assert body["id"].startswith("chatcmpl-") and isinstance(body["created"], int)
    [choice] = body["choices"]
    assert choice["index"] == 0 and choice["message"]["role"] == "assistant"
    assert isinstance(choice["message"]["content"], str)
    assert choice["finish_reason"] in ("stop", "length")
    usage = body["usage"]
    assert usage["prompt_tokens"] > 0 and 1 <= usage["completion_tokens"] <= 5
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]


def test_sdk_client_content_parts_and_models_list(vlm_server):
    client = openai.OpenAI(api_key="unused", base_url=vlm_server.base_url, max_retries=0)
    assert [m.id for m in client.models.list().data] == ["tiny:qwen2-vl"]
    frame = Image.new("RGB", (48, 40), (10, 200, 90))
    response = client.chat.completions.create(
        model="tiny:qwen2-vl",
        messages=[
            {"role": "developer", "content": "Answer briefly."},
            {
                "role": "user",
                "content": [
                    {"type": "image_url", "image_url": {"url": _data_url(frame)}},
                    {"type": "image_url", "image_url": {"url": _data_url(frame, "JPEG"), "detail": "low"}},
                    {"type": "text", "text": "What moves?"},
                ],
            },
        ],
        max_completion_tokens=4,
        temperature=0,
        response_format={
            "type": "json_schema",
            "json_schema": {
                "name": "answer",
                "schema": {
                    "type": "object",
                    "properties": {"moves": {"type": "boolean"}},
                    "required": ["moves"],
                },
            },
        },
    )
    assert response.usage.completion_tokens <= 4
    assert response.choices[0].message.content is not None


def test_json_object_and_schema_replies_are_json(chat_server):
    schema = {
        "type": "object",
        "properties": {"frames": {"type": "array", "items": {"type": "integer", "minimum": 0, "maximum": 15}, "maxItems": 3}},
        "required": ["frames"],
    }
    status, body = _post(
        chat_server.base_url,
        {
            "model": "chat",
            "messages": [{"role": "user", "content": "Pick the core frames."}],
            "max_tokens": 40,
            "response_format": {"type": "json_schema", "json_schema": {"name": "pick", "schema": schema}},
        },
    )
    assert status == 200
    reply = json.loads(body["choices"][0]["message"]["content"])
    assert all(0 <= i <= 15 for i in reply["frames"]) and len(reply["frames"]) <= 3
    status, body = _post(
        chat_server.base_url,
        {
            "model": "chat",
            "messages": [{"role": "user", "content": "JSON please"}],
            "max_tokens": 40,
            "response_format": {"type": "json_object"},
        },
    )
    # Free-form keys and strings: a random model need not finish the object in 40 tokens, but the
    # constrained decoder must have started one.
    assert status == 200
    assert body["choices"][0]["message"]["content"].startswith("{")


@pytest.mark.parametrize(
    ("body", "status", "needle"),
    [
        ({"model": "chat", "messages": []}, 400, "messages"),
        ({"messages": [{"role": "user", "content": "x"}]}, 400, "model"),
        ({"model": "other", "messages": [{"role": "user", "content": "x"}]}, 404, "serves 'chat'"),
        ({"model": "chat", "messages": [{"role": "tool", "content": "x"}]}, 400, "role"),
        ({"model": "chat", "messages": [{"role": "user", "content": "x"}], "temperature": -1}, 400, "temperature"),
        ({"model": "chat", "messages": [{"role": "user", "content": "x"}], "top_p": 0}, 400, "top_p"),
        ({"model": "chat", "messages": [{"role": "user", "content": "x"}], "max_tokens": 0}, 400, "max_tokens"),
        ({"model": "chat", "messages": [{"role": "user", "content": "x"}], "stream": True}, 400, "stream"),
        ({"model": "chat", "messages": [{"role": "user", "content": "x"}], "n": 2}, 400, "n=1"),
        (
            {"model": "chat", "messages": [{"role": "user", "content": "x"}], "response_format": {"type": "json_schema"}},
            400,
            "json_schema.schema",
        ),
        (
            {"model": "chat", "messages": [{"role": "user", "content": [{"type": "input_audio", "input_audio": {}}]}]},
            400,
            "messages[0].content[0]",
        ),
        (
            {"model": "chat", "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}]}]},
            400,
            "does not fetch remote images",
        ),
        (
            {"model": "chat", "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:image/png;base64,@@@"}}]}]},
            400,
            "base64",
        ),
        (
            {"model": "chat", "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:image/png;base64,aGVsbG8="}}]}]},
            400,
            "not a readable image",
        ),
    ],
)
def test_bad_requests_get_clear_openai_style_errors(chat_server, body, status, needle):
    got, reply = _post(chat_server.base_url, body)
    assert got == status
    error = reply["error"]
    assert needle in error["message"]
    assert error["type"] == "invalid_request_error"
    assert set(error) == {"message", "type", "param", "code"}


def test_invalid_json_body_and_images_for_a_text_model(chat_server):
    status, reply = _post(chat_server.base_url, None, raw=b"{not json")
    assert status == 400 and "not valid JSON" in reply["error"]["message"]
    image = {"type": "image_url", "image_url": {"url": _data_url(Image.new("RGB", (8, 8)))}}
    status, reply = _post(
        chat_server.base_url,
        {"model": "chat", "messages": [{"role": "user", "content": [image, {"type": "text", "text": "x"}]}]},
    )
    assert status == 400 and "text-only" in reply["error"]["message"]


def test_concurrent_requests_are_batched(tiny_llm):
    calls: list[int] = []

    class Recording:
        spec = tiny_llm.spec

        def generate(self, conversations, settings=None, schema=None):
            calls.append(len(conversations))
            return tiny_llm.generate(conversations, settings, schema)

    with start_server(Recording(), name="rec", batch_wait_s=0.2) as handle:
        results: list[int] = []
        body = lambda i: {"model": "rec", "messages": [{"role": "user", "content": f"q{i}"}], "max_tokens": 3}  # noqa: E731
        threads = [
            threading.Thread(target=lambda i=i: results.append(_post(handle.base_url, body(i))[0]))
            for i in range(4)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
    assert results == [200] * 4
    assert sum(calls) == 4 and max(calls) > 1


def _env() -> dict[str, str]:
    src = str(Path(videoespresso.__file__).resolve().parents[1])
    return {**os.environ, "PYTHONPATH": os.pathsep.join([src, os.environ.get("PYTHONPATH", "")])}


def test_cli_serve_answers_and_stops_on_interrupt(tiny_llm, tmp_path):
    cache = tmp_path / "serve-cache.sqlite"
    proc = subprocess.Popen(
        [sys.executable, "-m", "videoespresso", "serve", "--model", "tiny:qwen2", "--port", "0",
         "--name", "cli-chat", "--cache", str(cache)],
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
        env=_env(),
    )
    try:
        base_url = None
        deadline = time.monotonic() + 120
        for line in proc.stderr:
            match = re.search(r"at (http://127\.0\.0\.1:\d+/v1)", line)
            if match:
                base_url = match.group(1)
                break
            assert time.monotonic() < deadline
        assert base_url, "the server never announced its address"
        from videoespresso.models import user
        from videoespresso.models.openai_backend import OpenAIModel
        from videoespresso.schema import GenerationSettings

        client = OpenAIModel("cli-chat", base_url=base_url, spec="openai:cli-chat", timeout=60)
        settings = GenerationSettings(max_new_tokens=4)
        first = client.generate([[user("hi")], [user("there")]], settings)
        again = client.generate([[user("hi")]], settings)
        assert again[0].text == first[0].text
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stderr.close()
    from videoespresso.models.cache import ResponseCache

    assert len(ResponseCache(cache)) == 2


def test_cli_serve_user_errors_exit_2_without_traceback(tmp_path):
    bad = subprocess.run(
        [sys.executable, "-m", "videoespresso", "serve", "--model", "nonsense:x"],
        capture_output=True, text=True, env=_env(), timeout=120,
    )
    assert bad.returncode == 2
    assert "unknown model spec" in bad.stderr and "Traceback" not in bad.stderr
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        busy = subprocess.run(
            [sys.executable, "-m", "videoespresso", "serve", "--model", "tiny:qwen2", "--port", str(port)],
            capture_output=True, text=True, env=_env(), timeout=120,
        )
    assert busy.returncode == 2
    assert f"127.0.0.1:{port}" in busy.stderr and "Traceback" not in busy.stderr
