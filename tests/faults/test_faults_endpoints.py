"""Endpoints (real loopback servers of our own) x the openai backend and `eval`.

Each fault gets bounded retries, then that request fails with the reason and the run goes on;
a run whose endpoint is unreachable stops after a few requests with one message (the circuit
breaker) instead of paying a timeout per remaining item.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from pathlib import Path

import pytest

from _faults import completion, free_port, send_json
from videoespresso.errors import EndpointDownError, EndpointError
from videoespresso.models.openai_backend import OpenAIModel
from videoespresso.models.protocols import user


def _client(url: str, **options) -> OpenAIModel:
    options.setdefault("timeout", 2.0)
    options.setdefault("max_retries", 2)
    return OpenAIModel("fake", base_url=url, spec=f"openai:fake@{url}", **options)


def _ok(handler, body, count):
    send_json(handler, completion("(B) because"))


def _rate_limited_twice(handler, body, count):
    if count <= 2:
        send_json(handler, {"error": {"message": "slow down"}}, status=429, headers={"Retry-After": "0.05"})
    else:
        _ok(handler, body, count)


def _server_error(handler, body, count):
    send_json(handler, {"error": {"message": "boom"}}, status=500)


def _not_json(handler, body, count):
    raw = b"<html>gateway says hi</html>"
    handler.send_response(200)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(raw)))
    handler.end_headers()
    handler.wfile.write(raw)


def _slow_body(handler, body, count):
    # Headers at once, then the body a byte at a time: a stalled stream.
    raw = json.dumps(completion("late")).encode()
    handler.send_response(200)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(raw)))
    handler.end_headers()
    for byte in raw:
        handler.wfile.write(bytes([byte]))
        handler.wfile.flush()
        time.sleep(0.2)


CELLS = {
    # cell: (behaviour, expected error fragment or None for success, max requests the server may see)
    "429_retry_after": (_rate_limited_twice, None, 3),
    "http_500": (_server_error, "HTTP 500", 3),
    "not_json": (_not_json, "not a JSON chat completion", 1),
    "slow_stream": (_slow_body, "deadline", 3),
}


@pytest.mark.parametrize("cell", list(CELLS))
def test_endpoint_fault(fake_endpoint, cell):
    behaviour, fragment, most = CELLS[cell]
    endpoint = fake_endpoint(behaviour)
    client = _client(endpoint.base_url, timeout=0.5, max_retries=2)
    if fragment is None:
        [reply] = client.generate([[user("q")]])
        assert reply.text == "(B) because"
    else:
        with pytest.raises(EndpointError) as info:
            client.generate([[user("q")]])
        assert endpoint.base_url in str(info.value) and fragment in str(info.value)
    assert 1 <= len(endpoint.requests) <= most  # bounded retries


def test_connection_refused_is_bounded_and_named():
    url = f"http://127.0.0.1:{free_port()}/v1"
    client = _client(url, max_retries=1)
    with pytest.raises(EndpointError) as info:
        client.generate([[user("q")]])
    assert "Connection refused" in str(info.value) and url in str(info.value)
    assert "after 2 attempts" in str(info.value)


def test_hang_is_bounded_by_the_per_item_deadline():
    """A listener that accepts and never answers: the deadline ends the item, not retries x timeout."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        url = f"http://127.0.0.1:{listener.getsockname()[1]}/v1"
        client = _client(url, timeout=0.3, max_retries=10, deadline=0.5)
        with pytest.raises(EndpointError) as info:
            client.generate([[user("q")]])
    message = str(info.value)
    assert "timed out" in message and "0.5 s deadline" in message


def test_circuit_breaker_stops_the_run_with_one_message():
    url = f"http://127.0.0.1:{free_port()}/v1"
    client = _client(url, max_retries=0, breaker_after=3)
    for _ in range(3):
        with pytest.raises(EndpointError) as info:
            client.generate([[user("q")]])
        assert not isinstance(info.value, EndpointDownError)
    with pytest.raises(EndpointDownError, match="3 consecutive requests could not reach"):
        client.generate([[user("q")]])


def _bench(root: Path, n: int) -> tuple[Path, Path]:
    from videoespresso.formats.bench import write_bench
    from videoespresso.schema import TASKS, BenchItem
    from videoespresso.video.synth import make_test_video

    videos = root / "videos"
    make_test_video(videos / "clip.mp4", "static", seconds=0.4)
    items = [
        BenchItem(id=str(i), video_path="clip.mp4", question=f"q{i}", options=["a", "b", "c", "d"],
                  raw_options=["(A): a", "(B): b", "(C): c", "(D): d"], correct_answer="B", answer="b",
                  evidence="", task=TASKS[0].paper_name)
        for i in range(n)
    ]
    write_bench(items, root / "bench.json")
    return root / "bench.json", videos


def test_eval_against_a_dead_endpoint_stops_and_resumes(tmp_path, fake_endpoint):
    """Circuit breaker in a run: one message, nothing half-written, a rerun finishes the rest."""
    from videoespresso.bench.run import EvalOptions, run_eval, sampler_source
    from videoespresso.formats.bench import read_bench

    bench, videos = _bench(tmp_path, 8)
    items = read_bench(bench)
    out = tmp_path / "pred.jsonl"
    opts = EvalOptions(batch_size=2, frames_label="uniform:1")
    alive = fake_endpoint(_ok)
    good = _client(alive.base_url)
    run_eval(items[:3], good, out, sampler_source("uniform:1", 64), videos, opts)
    dead = _client(f"http://127.0.0.1:{free_port()}/v1", max_retries=0, breaker_after=2)
    with pytest.raises(EndpointDownError):
        run_eval(items, dead, out, sampler_source("uniform:1", 64), videos, opts)
    ids = [json.loads(line)["id"] for line in out.read_text().splitlines()]
    assert ids == ["0", "1", "2"]  # nothing written for the items the dead endpoint saw
    summary = run_eval(items, good, out, sampler_source("uniform:1", 64), videos, opts)
    ids = [json.loads(line)["id"] for line in out.read_text().splitlines()]
    assert ids == [str(i) for i in range(8)] and summary.failed == 0


def test_eval_cli_dead_endpoint_is_one_line(tmp_path, capsys):
    from _faults import run_cli

    bench, videos = _bench(tmp_path, 4)
    url = f"http://127.0.0.1:{free_port()}/v1"
    config = tmp_path / "c.yaml"
    config.write_text(f"models:\n  options:\n    'openai:fake@{url}': {{max_retries: 0, breaker_after: 2}}\n")
    result = run_cli(capsys, ["eval", "--bench", str(bench), "--video-root", str(videos), "--model",
                              f"openai:fake@{url}", "--out", str(tmp_path / "p.jsonl"), "--frames", "1",
                              "--no-cache", "--profile", "tiny", "--config", str(config)])
    assert result.code == 2 and "Traceback" not in result.err
    assert "consecutive requests could not reach the endpoint" in " ".join(result.err.split())


def test_batch_costs_one_budget_not_one_per_item(fake_endpoint):
    """A batch against a hanging endpoint: the breaker opens from the batch itself."""
    release = threading.Event()

    def hang(handler, body, count):
        release.wait(10)

    endpoint = fake_endpoint(hang)
    client = _client(endpoint.base_url, timeout=0.3, max_retries=0, breaker_after=3, max_concurrency=4)
    try:
        with pytest.raises(EndpointError):
            client.generate([[user(str(i))] for i in range(4)])
        with pytest.raises(EndpointDownError):
            client.generate([[user("next")]])
    finally:
        release.set()
    assert len(endpoint.requests) <= 4  # each item tried once: no per-item retry storm
