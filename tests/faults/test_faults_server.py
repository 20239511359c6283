"""The OpenAI-compatible server under bad requests: each fails alone with a 4xx, the requests
batched with it are answered, and no request can hold the model (token cap, time cap, client
disconnect)."""

from __future__ import annotations

import base64
import http.client
import io
import json
import socket
import threading
import time
from urllib.parse import urlparse

import pytest
from PIL import Image

from _faults import wait_for
from videoespresso.serve.openai_server import start_server


def _post(url: str, body: bytes | dict, timeout: float = 120) -> tuple[int, dict]:
    parsed = urlparse(url)
    conn = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=timeout)
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    conn.request("POST", "/v1/chat/completions", raw, {"Content-Type": "application/json"})
    response = conn.getresponse()
    data = json.loads(response.read() or b"{}")
    conn.close()
    return response.status, data


def _get(url: str, path: str) -> tuple[int, dict]:
    parsed = urlparse(url)
    conn = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=30)
    conn.request("GET", path)
    response = conn.getresponse()
    data = json.loads(response.read())
    conn.close()
    return response.status, data


def _data_url(size: tuple[int, int]) -> str:
    buffer = io.BytesIO()
    Image.new("RGB", size, (90, 30, 200)).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def _message(text: str, image: str | None = None) -> dict:
    parts = [{"type": "image_url", "image_url": {"url": image}}] if image else []
    return {"role": "user", "content": [*parts, {"type": "text", "text": text}]}


class Recording:
    """The tiny model, recording what each generate call produced and whether it was told to stop."""

    def __init__(self, model) -> None:
        self.model = model
        self.spec = model.spec
        self.kind = model.kind
        self.stopped: list[tuple[int, bool]] = []

    def generate(self, conversations, settings=None, schema=None, *, should_stop=None):
        out = self.model.generate(conversations, settings, schema, should_stop=should_stop)
        self.stopped.append((max(g.completion_tokens or 0 for g in out), bool(should_stop and should_stop())))
        return out


@pytest.fixture(scope="module")
def vlm_server(tiny_vlm):
    with start_server(tiny_vlm, name="vlm", batch_wait_s=0.3, max_tokens_limit=64) as handle:
        yield handle


def _concurrent(url: str, bodies: list[bytes | dict]) -> list[tuple[int, dict]]:
    results: list[tuple[int, dict] | None] = [None] * len(bodies)

    def send(i: int) -> None:
        results[i] = _post(url, bodies[i])

    threads = [threading.Thread(target=send, args=(i,)) for i in range(len(bodies))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    return [r for r in results if r is not None]


def _good(i: int) -> dict:
    return {"model": "vlm", "messages": [_message(f"question {i}", _data_url((56, 56)))], "max_tokens": 2}


BAD_REQUESTS = {
    # cell: (body, status, fragment of the error message)
    "degenerate_image_1x5000": (
        {"model": "vlm", "messages": [_message("x", _data_url((1, 5000)))], "max_tokens": 2}, 400, "aspect ratio"),
    "lone_surrogate": (
        b'{"model": "vlm", "max_tokens": 2, "messages": [{"role": "user", "content": "bad \\ud800 text"}]}',
        400, "lone surrogate"),
    "seed_out_of_range": (
        {"model": "vlm", "messages": [_message("x")], "max_tokens": 2, "seed": 2**70}, 400, "seed"),
    "max_tokens_over_limit": (
        {"model": "vlm", "messages": [_message("x")], "max_tokens": 10**9}, 400, "at most 64"),
}


@pytest.mark.parametrize("cell", list(BAD_REQUESTS))
def test_bad_request_fails_alone(vlm_server, cell):
    body, status, fragment = BAD_REQUESTS[cell]
    results = _concurrent(vlm_server.base_url, [_good(0), body, _good(1), _good(2)])
    statuses = [s for s, _ in results]
    assert statuses == [200, status, 200, 200], results
    assert fragment in results[1][1]["error"]["message"]
    assert _get(vlm_server.url, "/health")[1]["status"] == "ok"


def test_generation_time_is_capped(tiny_llm):
    recording = Recording(tiny_llm)
    with start_server(recording, name="chat", request_timeout_s=0.5, max_tokens_limit=100000) as handle:
        status, reply = _post(handle.base_url, {"model": "chat", "messages": [{"role": "user", "content": "go"}],
                                                "max_tokens": 50000})
        assert status == 200 and reply["choices"][0]["finish_reason"] == "length"
        assert reply["usage"]["completion_tokens"] < 50000
        status, _ = _post(handle.base_url, {"model": "chat", "messages": [{"role": "user", "content": "next"}],
                                            "max_tokens": 2})
        assert status == 200  # the model is free again
    assert recording.stopped[0][1] is True


def test_client_disconnect_stops_generation(tiny_llm):
    recording = Recording(tiny_llm)
    with start_server(recording, name="chat", request_timeout_s=600, max_tokens_limit=100000) as handle:
        body = json.dumps({"model": "chat", "messages": [{"role": "user", "content": "go"}], "max_tokens": 50000})
        sock = socket.create_connection((handle.host, handle.port))
        sock.sendall(
            f"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n{body}".encode()
        )
        wait_for(lambda: _get(handle.url, "/health")[1]["busy_s"] > 0)
        sock.close()
        wait_for(lambda: len(recording.stopped) == 1, seconds=300)
        status, _ = _post(handle.base_url, {"model": "chat", "messages": [{"role": "user", "content": "next"}],
                                            "max_tokens": 2})
        assert status == 200
    tokens, stopped = recording.stopped[0]
    assert stopped and tokens < 50000
