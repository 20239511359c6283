"""Every server limit on every server: each cell runs against ``serve`` (the OpenAI-compatible
server) and ``ui`` (VideoQA-SC), real uvicorn servers on 127.0.0.1, with raw sockets or the
openai SDK. Both are built on :mod:`videoespresso.serve.core`, so a cell that holds on one and
not the other is a defect of the core."""

from __future__ import annotations

import http.client
import http.server
import json
import os
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import openai
import pytest

from videoespresso.serve.core import ServerHandle, ServerLimits, hide_paths
from videoespresso.serve.media import MediaPolicy
from videoespresso.serve.openai_server import start_server
from videoespresso.serve.videoqa import VideoQA, VideoQAServer, create_videoqa_app

BODY_LIMIT = 256 * 1024
SERVERS = ("serve", "ui")


@dataclass
class Target:
    kind: str
    handle: ServerHandle
    name: str

    def body(self, text: str = "What is shown?", **extra: Any) -> dict[str, Any]:
        parts: list[dict[str, Any]] = [{"type": "text", "text": text}]
        if self.kind == "ui":
            parts.insert(0, {"type": "video_url", "video_url": {"url": "clip.mp4"}})
        return {"model": self.name, "messages": [{"role": "user", "content": parts}], "max_tokens": 2, **extra}

    def post(self, body: bytes | dict, headers: dict[str, str] | None = None, timeout: float = 300) -> tuple[int, dict]:
        conn = http.client.HTTPConnection(self.handle.host, self.handle.port, timeout=timeout)
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        conn.request("POST", "/v1/chat/completions", raw, {"Content-Type": "application/json", **(headers or {})})
        response = conn.getresponse()
        status, data = response.status, response.read()
        conn.close()
        assert response.getheader("content-type", "").startswith("application/json"), data[:200]
        return status, json.loads(data)

    def health(self) -> dict:
        conn = http.client.HTTPConnection(self.handle.host, self.handle.port, timeout=30)
        conn.request("GET", "/health")
        data = json.loads(conn.getresponse().read())
        conn.close()
        return data


class Recording:
    """A model whose generate calls are recorded: the most tokens a call produced, and whether it
    was told to stop by the end."""

    def __init__(self, model: Any) -> None:
        self.model = model
        self.stopped: list[tuple[int, bool]] = []

    def generate(self, conversations, settings=None, schema=None, *, should_stop=None):
        out = self.model.generate(conversations, settings, schema, should_stop=should_stop)
        self.stopped.append((max(g.completion_tokens or 0 for g in out), bool(should_stop and should_stop())))
        return out

    def __getattr__(self, name: str) -> Any:
        return getattr(self.model, name)


def wait_for(predicate: Callable[[], bool], seconds: float = 60.0) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached")
        time.sleep(0.05)


def _videoqa(reasoner_model: Any) -> VideoQA:
    from videoespresso.reason import TwoStageReasoner
    from videoespresso.select.uniform import UniformSelector

    return VideoQA(UniformSelector(frames=2), TwoStageReasoner(reasoner_model), max_side=64)


def _start(kind: str, model: Any, video_root: Path, **limits: Any) -> Target:
    options = {"max_body_bytes": BODY_LIMIT, "max_tokens": 64, **limits}
    if kind == "serve":
        return Target(kind, start_server(model, name="m", limits=ServerLimits(**options)), "m")
    app = create_videoqa_app(_videoqa(model), policy=MediaPolicy(video_root=video_root), name="videoqa-sc",
                             limits=ServerLimits(**options))
    return Target(kind, VideoQAServer(app), "videoqa-sc")


@pytest.fixture(scope="module", params=SERVERS)
def target(request, tiny_vlm, video_root):
    server = _start(request.param, tiny_vlm, video_root)
    yield server
    server.handle.close()


def _error(status_body: tuple[int, dict], status: int, code: str | None = None) -> dict:
    got, body = status_body
    assert got == status, body
    error = body["error"]
    assert set(error) == {"message", "type", "param", "code"}, body
    if code is not None:
        assert error["code"] == code, body
    return error


def test_a_plain_request_is_answered(target):
    status, reply = target.post(target.body())
    assert status == 200 and reply["choices"][0]["message"]["role"] == "assistant"


# --------------------------------------------------------------------------- body limit


def test_declared_body_over_the_limit_is_refused_before_reading(target):
    # The client announces 300 MB and keeps sending: the 413 comes long before the body has gone
    # (the server discards a bounded part, so that the client reads the answer, not a reset).
    declared = 300 * 2**20
    sock = socket.create_connection((target.handle.host, target.handle.port), timeout=60)
    sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 + f"Content-Length: {declared}\r\n\r\n".encode())
    sent = [0]

    def send() -> None:
        chunk = b"x" * 65536
        try:
            while sent[0] < declared:
                sock.sendall(chunk)
                sent[0] += len(chunk)
        except OSError:
            pass

    sender = threading.Thread(target=send, daemon=True)
    sender.start()
    reply = b""
    while b"}}" not in reply and (chunk := sock.recv(65536)):
        reply += chunk
    sock.close()
    sender.join(timeout=30)
    head, _, payload = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413"), reply[:300]
    assert json.loads(payload)["error"]["code"] == "body_too_large"
    assert sent[0] < declared // 4


def test_chunked_body_over_the_limit_is_counted_as_it_streams(target):
    conn = http.client.HTTPConnection(target.handle.host, target.handle.port, timeout=60)
    text = json.dumps(target.body("x" * (2 * BODY_LIMIT))).encode()
    chunks = (text[i:i + 8192] for i in range(0, len(text), 8192))
    conn.request("POST", "/v1/chat/completions", chunks, {"Content-Type": "application/json"}, encode_chunked=True)
    response = conn.getresponse()
    assert response.status == 413
    assert json.loads(response.read())["error"]["code"] == "body_too_large"
    conn.close()


# --------------------------------------------------------------------------- JSON shape


def test_deeply_nested_json_is_a_400_in_the_openai_shape(target):
    error = _error(target.post(b"[" * 100_000), 400, "json_too_deep")
    assert "nested" in error["message"]
    # Under the interpreter's recursion limit but past the server's depth limit, in a real request.
    deep: Any = "x"
    for _ in range(200):
        deep = [deep]
    _error(target.post(target.body(metadata=deep)), 400, "json_too_deep")
    assert target.health()["status"] == "ok"


@pytest.mark.parametrize("field", ["text", "video_url"])
def test_lone_surrogate_is_a_400_on_both_servers(target, field):
    body = target.body()
    part = {"text": {"type": "text", "text": "bad \ud800 text"},
            "video_url": {"type": "video_url", "video_url": {"url": "clip\udc00.mp4"}}}[field]
    body["messages"][0]["content"].append(part)
    raw = json.dumps(body).encode()  # json.dumps escapes the surrogate as \ud800
    error = _error(target.post(raw), 400, "invalid_text")
    assert "lone surrogate" in error["message"] and error["param"].startswith("messages[0].content[")


@pytest.mark.parametrize("field, value", [
    ("n", True), ("max_tokens", True), ("max_completion_tokens", False), ("seed", True), ("temperature", True),
    ("top_p", False), ("stream", "yes"), ("n", 1.5),
])
def test_booleans_are_not_numbers_nor_strings_flags(target, field, value):
    error = _error(target.post(target.body(**{field: value})), 400)
    assert error["param"] == field, error


# --------------------------------------------------------------------------- cost of one request


def test_prompt_longer_than_the_context_is_refused_on_its_length(target, tiny_vlm):
    bound = tiny_vlm.max_prompt_chars
    assert bound is not None and bound < BODY_LIMIT // 2
    error = _error(target.post(target.body("y" * (bound + 1))), 400, "context_length_exceeded")
    # The cheap bound answered (characters), not the tokenizer (tokens).
    assert "characters" in error["message"] and "tokens," not in error["message"]


def test_backend_refuses_an_overlong_prompt_before_tokenising(tiny_llm, monkeypatch):
    """The bound is in the backend's generate, so eval and build get it as the servers do."""
    from videoespresso.errors import UserError
    from videoespresso.models.protocols import user

    calls = []
    monkeypatch.setattr(type(tiny_llm.tokenizer), "__call__",
                        lambda self, *a, **k: calls.append(1) or pytest.fail("tokenised"))
    with pytest.raises(UserError, match="characters"):
        tiny_llm.generate([[user("z" * (tiny_llm.max_prompt_chars + 1))]])
    assert calls == []


@pytest.mark.parametrize("kind", SERVERS)
def test_generation_time_is_capped(kind, tiny_vlm, video_root):
    recording = Recording(tiny_vlm)
    server = _start(kind, recording, video_root, request_timeout_s=0.5, max_tokens=100_000)
    try:
        status, reply = server.post(server.body(max_tokens=50_000))
        assert status == 200 and reply["choices"][0]["finish_reason"] == "length", reply
        assert reply["usage"]["completion_tokens"] < 50_000
        assert recording.stopped and all(stopped for _, stopped in recording.stopped)
        status, _ = server.post(server.body())  # the model is free again
        assert status == 200
    finally:
        server.handle.close()


@pytest.mark.parametrize("kind", SERVERS)
def test_client_disconnect_stops_generation(kind, tiny_vlm, video_root):
    recording = Recording(tiny_vlm)
    server = _start(kind, recording, video_root, request_timeout_s=600, max_tokens=100_000)
    try:
        body = json.dumps(server.body(max_tokens=50_000))
        sock = socket.create_connection((server.handle.host, server.handle.port))
        sock.sendall(f"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     f"Content-Length: {len(body)}\r\n\r\n{body}".encode())
        wait_for(lambda: server.health()["busy_s"] > 0)
        sock.close()
        wait_for(lambda: len(recording.stopped) >= 1 and server.health()["busy_s"] == 0, seconds=300)
        tokens, stopped = recording.stopped[0]
        assert stopped and tokens < 50_000
        status, _ = server.post(server.body())
        assert status == 200
        # The two-stage reasoner's second stage never ran for the client that went.
        assert len(recording.stopped) == (2 if kind == "ui" else 1) + 1
    finally:
        server.handle.close()


@pytest.mark.parametrize("kind", SERVERS)
def test_requests_over_the_in_flight_limit_get_429(kind, tiny_vlm, video_root):
    server = _start(kind, tiny_vlm, video_root, max_concurrent=1, max_tokens=100_000, request_timeout_s=5)
    try:
        slow = threading.Thread(target=server.post, args=(server.body(max_tokens=50_000),))
        slow.start()
        wait_for(lambda: server.health()["in_flight"] == 1)
        _error(server.post(server.body()), 429, "too_many_requests")
        slow.join(timeout=300)
    finally:
        server.handle.close()


class Unstoppable:
    """The tiny model behind a generate that takes no ``should_stop`` (as some backends do)."""

    def __init__(self, model: Any) -> None:
        self.model = model

    def generate(self, conversations, settings=None, schema=None):
        return self.model.generate(conversations, settings, schema)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.model, name)


@pytest.mark.parametrize("kind", SERVERS)
def test_health_reports_a_generation_stuck_past_the_time_limit(kind, tiny_vlm, video_root):
    server = _start(kind, Unstoppable(tiny_vlm), video_root, request_timeout_s=0.05, max_tokens=100_000)
    try:
        assert server.health()["status"] == "ok"
        reply: list = []
        slow = threading.Thread(target=lambda: reply.append(server.post(server.body(max_tokens=400))))
        slow.start()

        def stuck() -> bool:
            conn = http.client.HTTPConnection(server.handle.host, server.handle.port, timeout=30)
            conn.request("GET", "/health")
            response = conn.getresponse()
            body = json.loads(response.read())
            conn.close()
            return response.status == 503 and body["status"] == "stuck"

        wait_for(lambda: stuck() or bool(reply), seconds=120)
        assert not reply, "the generation ended before /health saw it run past twice the limit"
        slow.join(timeout=300)
        assert server.health()["status"] == "ok"
    finally:
        server.handle.close()


# --------------------------------------------------------------------------- upstream and paths


@pytest.mark.parametrize("kind", SERVERS)
def test_model_endpoint_that_is_down_is_a_502(kind, video_root):
    from videoespresso.models.openai_backend import OpenAIModel

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        dead = probe.getsockname()[1]  # closed again below: nothing listens there
    model = OpenAIModel("m", base_url=f"http://127.0.0.1:{dead}/v1", spec=f"openai:m@127.0.0.1:{dead}",
                        timeout=5, max_retries=0)
    server = _start(kind, model, video_root)
    try:
        error = _error(server.post(server.body()), 502, "upstream_error")
        assert error["type"] == "server_error"
        # What an SDK client sees: a server error it may retry, not a 4xx blaming its request.
        client = openai.OpenAI(base_url=server.handle.base_url, api_key="none", max_retries=0, timeout=60)
        body = server.body()
        with pytest.raises(openai.InternalServerError) as raised:
            client.chat.completions.create(model=body["model"], messages=body["messages"], max_tokens=2)
        assert raised.value.status_code == 502
    finally:
        server.handle.close()


def test_error_messages_never_show_server_side_paths(tmp_path):
    upload_dir = tmp_path / "uploads"
    message = f"upload x: not a readable video (video {upload_dir}/ab12.mp4.part: moov atom not found)"
    shown = hide_paths(message, [str(upload_dir)])
    assert str(tmp_path) not in shown and "ab12.mp4.part" in shown
    import tempfile

    assert tempfile.gettempdir() + "/" not in hide_paths(f"probe {tempfile.gettempdir()}/ve-media-1.mp4 failed")


def test_ui_errors_about_temporary_files_hide_their_folder(tiny_vlm, video_root):
    import base64

    server = _start("ui", tiny_vlm, video_root)
    try:
        body = server.body()
        body["messages"][0]["content"][0] = {
            "type": "video_url", "video_url": {"url": "data:video/mp4;base64," + base64.b64encode(b"not a video").decode()}}
        error = _error(server.post(body), 415, "unsupported_media")
        import tempfile

        assert tempfile.gettempdir() + "/" not in error["message"] and "ve-media-" in error["message"], error
    finally:
        server.handle.close()


# --------------------------------------------------------------------------- remote fetch deadline


class _Drip(http.server.BaseHTTPRequestHandler):
    """Sends a 200 with a long body one byte every ``interval`` s, for at most ``bytes`` bytes;
    records whether the client hung up before the end."""

    interval = 0.2
    bytes = 40
    hung_up: list[bool] = []

    def do_GET(self) -> None:  # noqa: N802 -- http.server's name
        self.send_response(200)
        self.send_header("Content-Type", "video/mp4")
        self.send_header("Content-Length", str(self.bytes))
        self.end_headers()
        try:
            for _ in range(self.bytes):
                self.wfile.write(b"\0")
                self.wfile.flush()
                time.sleep(self.interval)
        except (BrokenPipeError, ConnectionResetError):
            self.hung_up.append(True)
            return
        self.hung_up.append(False)

    def log_message(self, *args: Any) -> None:
        pass


def test_remote_fetch_deadline_holds_for_the_whole_fetch(tiny_vlm, video_root, tmp_path):
    drip = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Drip)
    thread = threading.Thread(target=drip.serve_forever, daemon=True)
    thread.start()
    policy = MediaPolicy(video_root=video_root, allow_remote=True, remote_timeout_s=1.0, temp_dir=tmp_path)
    app = create_videoqa_app(_videoqa(tiny_vlm), policy=policy, limits=ServerLimits(max_tokens=64))
    try:
        with VideoQAServer(app) as server:
            target = Target("ui", server, "videoqa-sc")
            body = target.body()
            body["messages"][0]["content"][0]["video_url"]["url"] = f"http://127.0.0.1:{drip.server_port}/v.mp4"
            error = _error(target.post(body), 408, "remote_timeout")
            assert "1 s" in error["message"]
            # Each byte came well within the per-read timeout; still the fetch ended at the deadline,
            # long before the server had sent everything (40 bytes at 0.2 s each).
            wait_for(lambda: _Drip.hung_up, seconds=30)
            assert _Drip.hung_up == [True]
            wait_for(lambda: not list(tmp_path.glob("ve-media-*")), seconds=10)
    finally:
        drip.shutdown()
        drip.server_close()


# --------------------------------------------------------------------------- stopping and starting


def _env(tmp_path: Path) -> dict[str, str]:
    src = str(Path(__file__).resolve().parents[2] / "src")
    return {**os.environ, "PYTHONPATH": src, "TMPDIR": str(tmp_path)}


def test_sigterm_stops_the_foreground_server_as_cleanly_as_ctrl_c(tmp_path):
    import signal
    import subprocess
    import sys

    script = (
        "import sys\n"
        "from fastapi import FastAPI\n"
        "from videoespresso.serve.core import bind_socket, run_foreground\n"
        "sock = bind_socket('127.0.0.1', 0)\n"
        "print(sock.getsockname()[1], flush=True)\n"
        "try:\n"
        "    run_foreground(FastAPI(), sock, log_level='warning')\n"
        "except KeyboardInterrupt:\n"
        "    print('interrupted', flush=True)\n"
        "finally:\n"
        "    print('cleaned up', flush=True)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, env=_env(tmp_path))
    port = int(proc.stdout.readline())

    def serving() -> bool:  # uvicorn answers (the socket alone accepts before it runs)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        conn.request("GET", "/")
        status = conn.getresponse().status
        conn.close()
        return status == 404

    wait_for(serving)
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0 and "interrupted" in out and "cleaned up" in out


def test_ui_on_a_taken_port_fails_in_one_line_and_leaves_no_upload_folder(tmp_path):
    import subprocess
    import sys

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run([sys.executable, "-m", "videoespresso", "ui", "--profile", "tiny", "--port", str(port)],
                              capture_output=True, text=True, env=_env(tmp_path), timeout=120)
    assert done.returncode == 2 and "cannot listen" in done.stderr and "Traceback" not in done.stderr
    assert list(tmp_path.glob("ve-uploads-*")) == []


@pytest.mark.slow  # loads the tiny profile's reasoner in a fresh process
def test_ui_stopped_with_sigterm_removes_its_upload_folder(tmp_path, video_root):
    import re
    import signal
    import subprocess
    import sys
    import urllib.request

    proc = subprocess.Popen(
        [sys.executable, "-m", "videoespresso", "ui", "--profile", "tiny", "--selector", "uniform", "--no-ui",
         "--port", "0"], stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=_env(tmp_path))
    try:
        port = None
        while port is None:
            line = proc.stderr.readline()
            assert line or proc.poll() is None, "the server exited early"
            found = re.search(r"http://127\.0\.0\.1:(\d+)/v1", line)
            port = int(found.group(1)) if found else None
        request = urllib.request.Request(f"http://127.0.0.1:{port}/v1/uploads", data=(video_root / "clip.mp4").read_bytes(),
                                         headers={"X-Filename": "clip.mp4"}, method="POST")
        with urllib.request.urlopen(request, timeout=60) as response:
            assert response.status == 201
        folders = list(tmp_path.glob("ve-uploads-*"))
        assert len(folders) == 1 and any(folders[0].iterdir())
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    assert proc.returncode == 0
    assert list(tmp_path.glob("ve-uploads-*")) == []
