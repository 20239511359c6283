"""What one refused oversized prompt costs each server: wall time and the server's peak RSS growth.

Starts ``videoespresso serve`` (tiny:qwen2) and ``videoespresso ui`` (tiny profile, uniform
selector) as real processes on 127.0.0.1, sends one prompt far longer than the model's context,
and reads the server's peak RSS (``VmHWM``, reset through ``/proc/<pid>/clear_refs`` just before
the request). As a reference measured in the same run, the same server answers a short prompt
first. Linux only (``/proc``).

    PYTHONPATH=src python benchmarks/bench_refused_prompt.py --mb 20
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"


def _kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} for {pid}")


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds of the process so far: unlike wall time, not inflated by load."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _start(args: list[str], env: dict[str, str]) -> tuple[subprocess.Popen, int]:
    proc = subprocess.Popen([sys.executable, "-m", "videoespresso", *args], stderr=subprocess.PIPE,
                            stdout=subprocess.DEVNULL, text=True, env=env)
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line and proc.poll() is not None:
            raise RuntimeError("the server exited early")
        found = re.search(r"http://127\.0\.0\.1:(\d+)/v1", line)
        if found:
            return proc, int(found.group(1))
    raise RuntimeError("the server did not start")


def _post(port: int, body: bytes) -> tuple[int, str, float]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=900)
    started = time.perf_counter()
    conn.request("POST", "/v1/chat/completions", body, {"Content-Type": "application/json"})
    response = conn.getresponse()
    data = response.read()
    elapsed = time.perf_counter() - started
    conn.close()
    try:
        message = json.loads(data)["error"]["message"][:100]
    except (ValueError, KeyError, TypeError):
        message = data[:100].decode(errors="replace")
    return response.status, message, elapsed


def measure(label: str, args: list[str], body_of, mb: float, env: dict[str, str]) -> None:
    proc, port = _start(args, env)
    try:
        status, _, short_s = _post(port, body_of("What is shown?"))
        print(f"{label}: short prompt -> {status} in {short_s:.2f} s (reference)")
        text = "word " * int(mb * 2**20 / 5)
        body = body_of(text)
        Path(f"/proc/{proc.pid}/clear_refs").write_text("5")
        before, cpu = _kib(proc.pid, "VmRSS"), _cpu_s(proc.pid)
        status, message, elapsed = _post(port, body)
        peak, cpu = _kib(proc.pid, "VmHWM"), _cpu_s(proc.pid) - cpu
        print(f"{label}: {len(body) / 2**20:.1f} MB prompt -> {status} in {elapsed:.2f} s wall, {cpu:.2f} s server CPU "
              f"({elapsed / max(short_s, 1e-9):.1f}x the short request), peak RSS +{(peak - before) / 1024:.0f} MB"
              f"; {message!r}")
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=float, default=20.0, help="prompt size in MB")
    parser.add_argument("--only", choices=("serve", "ui"), default=None)
    options = parser.parse_args()
    env = {**os.environ, "PYTHONPATH": str(SRC), "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    print(f"load: {os.getloadavg()}")
    with tempfile.TemporaryDirectory() as tmp:
        if options.only in (None, "serve"):
            def chat(text: str) -> bytes:
                return json.dumps({"model": "m", "max_tokens": 2,
                                   "messages": [{"role": "user", "content": text}]}).encode()

            measure("serve", ["serve", "--model", "tiny:qwen2", "--name", "m", "--port", "0"], chat, options.mb, env)
        if options.only in (None, "ui"):
            from videoespresso.video.synth import make_test_video

            make_test_video(Path(tmp) / "clip.mp4", "mixed", seconds=0.5)

            def ask(text: str) -> bytes:
                return json.dumps({"model": "videoqa-sc", "max_tokens": 2, "messages": [{"role": "user", "content": [
                    {"type": "video_url", "video_url": {"url": "clip.mp4"}}, {"type": "text", "text": text}]}]}).encode()

            # Under ui's default 32 MB body limit, as in the 30 MB case.
            measure("ui", ["ui", "--profile", "tiny", "--selector", "uniform", "--video-root", tmp, "--no-ui",
                           "--port", "0"], ask, min(options.mb, 30.0), env)
    print(f"load: {os.getloadavg()}")


if __name__ == "__main__":
    main()
