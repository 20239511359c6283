"""The fault matrix's shared helpers: a zoo of bad and odd videos, a scriptable OpenAI-compatible
endpoint on 127.0.0.1, and a way to run the CLI that records its exit code and stderr.

Every cell of the matrix is one parametrised test row (see docs/reliability.md): the faulty
item fails with a reason, the run completes, nothing already written is lost or doubled.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Callable

from _cli import CliResult, run_cli  # noqa: F401  (the fault cells import them from here)

import yaml

import videoespresso

SRC = str(Path(videoespresso.__file__).resolve().parents[1])
#: An API key that must never appear in anything a run writes.
SECRET = "sk-faultmatrix-5ecret-4242-do-not-store"

# Small, fast builds: every model call independent of its batch neighbours.
BUILD_SETTINGS = {
    "sampling": {"max_side": 96},
    "generation": {"max_new_tokens": 8},
    "curate": {"batch_size": 1, "group_size": 2, "qa_per_group": 1, "max_text_chars": 16, "max_new_tokens": 96},
}


def build_config(folder: Path, models: dict | None = None) -> Path:
    data = json.loads(json.dumps(BUILD_SETTINGS))
    if models:
        data["models"] = models
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def env() -> dict[str, str]:
    out = dict(os.environ)
    out["PYTHONPATH"] = SRC + os.pathsep + out.get("PYTHONPATH", "")
    return out


def assert_one_line_error(result: CliResult, *fragments: str) -> None:
    """A user-facing failure: exit 2, no traceback, the reason on one ``error:`` line."""
    assert result.code == 2, (result.code, result.err[-2000:])
    assert "Traceback" not in result.err
    # rich wraps a long message at the terminal width; it is still one message
    assert result.err.count("error:") == 1, result.err
    message = " ".join(result.err[result.err.index("error:"):].split())
    for fragment in fragments:
        assert fragment in message.replace(" ", "") or fragment in message, (fragment, message)


# --------------------------------------------------------------------------- the video zoo

#: kind -> whether it must decode (True) or fail with a reason (False)
VIDEO_KINDS: dict[str, bool] = {
    "zero_byte": False,
    "random_bytes": False,
    "truncated": False,
    "audio_only": False,
    "lying_count": False,
    "vfr": True,
    "one_frame": True,
    "tall_16x2000": True,
    "rotated": True,
    "huge_4000": True,
    "square": True,
    "dir_named_mp4": False,
    "symlink_loop": False,
    "dangling_link": False,
    "fifo": False,
    "socket": False,
}


def make_zoo(folder: Path, kinds: list[str] | None = None) -> dict[str, Path]:
    """One file (or directory, or link) per kind in ``folder``; returns kind -> path."""
    import av

    from videoespresso.video.synth import MovingShapes, StaticShot, make_bad_video, make_test_video, make_vfr_video, make_video

    folder.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    for kind in kinds or list(VIDEO_KINDS):
        path = folder / f"{kind}.mp4"
        paths[kind] = path
        if kind == "zero_byte":
            make_bad_video(path, "empty")
        elif kind == "random_bytes":
            path.write_bytes(os.urandom(4096))
        elif kind in ("truncated", "lying_count", "audio_only"):
            make_bad_video(path, kind)  # type: ignore[arg-type]
        elif kind == "vfr":
            make_vfr_video(path, seconds=1.0)
        elif kind == "one_frame":
            make_video(path, [StaticShot(0.04)])
        elif kind == "tall_16x2000":
            make_video(path, [MovingShapes(0.5)], size=(16, 2000), barcode=False)
        elif kind == "huge_4000":
            make_video(path, [StaticShot(0.2)], size=(4000, 4000), fps=10, barcode=False)
        elif kind == "square":
            make_test_video(path, "moving", seconds=1.0, size=(96, 96))
        elif kind == "rotated":
            plain = folder / "_plain.mp4"
            make_test_video(plain, "static", seconds=0.5)
            with av.open(str(plain)) as src, av.open(str(path), "w") as dst:
                s_in = src.streams.video[0]
                s_out = dst.add_stream_from_template(s_in)
                s_out.set_display_rotation(-90)
                for packet in src.demux(s_in):
                    if packet.dts is None:
                        continue
                    packet.stream = s_out
                    dst.mux(packet)
            plain.unlink()
        elif kind == "dir_named_mp4":
            path.mkdir()
        elif kind == "symlink_loop":
            os.symlink(path.name, path)
        elif kind == "dangling_link":
            os.symlink("gone.mp4", path)
        elif kind == "fifo":
            os.mkfifo(path)
        elif kind == "socket":
            # A bound Unix socket leaves its file behind once closed.
            sock = socket.socket(socket.AF_UNIX)
            sock.bind(str(path))
            sock.close()
        else:
            raise ValueError(kind)
    return paths


# --------------------------------------------------------------------------- a scriptable endpoint

Behaviour = Callable[[BaseHTTPRequestHandler, dict, int], None]


@dataclass
class FakeEndpoint:
    """An OpenAI-compatible /v1/chat/completions on 127.0.0.1 whose replies a test scripts."""

    behaviour: Behaviour
    requests: list[dict] = field(default_factory=list)
    auth_headers: list[str] = field(default_factory=list)
    server: ThreadingHTTPServer | None = None

    @property
    def base_url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def spec(self, name: str = "fake") -> str:
        return f"openai:{name}@{self.base_url}"


def completion(text: str, finish: str = "stop", completion_tokens: int = 3) -> dict:
    return {
        "id": "chatcmpl-fake", "object": "chat.completion", "created": 0, "model": "fake",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": finish}],
        "usage": {"prompt_tokens": 5, "completion_tokens": completion_tokens, "total_tokens": 5 + completion_tokens},
    }


def send_json(handler: BaseHTTPRequestHandler, body: object, status: int = 200, headers: dict | None = None) -> None:
    raw = json.dumps(body).encode()
    handler.send_response(status)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(raw)))
    for key, value in (headers or {}).items():
        handler.send_header(key, value)
    handler.end_headers()
    handler.wfile.write(raw)


def start_endpoint(behaviour: Behaviour) -> FakeEndpoint:
    """A running FakeEndpoint; ``stop_endpoint`` shuts it down."""
    endpoint = FakeEndpoint(behaviour)
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:  # noqa: N802
            length = int(self.headers.get("Content-Length", 0))
            body = json.loads(self.rfile.read(length) or b"{}")
            with lock:
                endpoint.requests.append(body)
                endpoint.auth_headers.append(self.headers.get("Authorization", ""))
                count = len(endpoint.requests)
            try:
                endpoint.behaviour(self, body, count)
            except (BrokenPipeError, ConnectionResetError):
                pass

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    endpoint.server = server
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return endpoint


def stop_endpoint(endpoint: FakeEndpoint) -> None:
    assert endpoint.server is not None
    endpoint.server.shutdown()
    endpoint.server.server_close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(predicate: Callable[[], bool], seconds: float = 60.0) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached")
        time.sleep(0.05)


def python() -> str:
    return sys.executable
