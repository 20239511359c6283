"""VideoQA-SC through the HTTP server: overhead against the same call in-process, and a load test.

1. Overhead: the same question about the same clip, answered ``--repeats`` times in-process
   (``VideoQA.ask``) and ``--repeats`` times through the server with the ``openai`` SDK,
   interleaved so that both see the same machine load; prints the ratio of the medians.
2. Load: ``--requests`` requests, ``--concurrency`` at a time (a path under the root, a data URL
   and image frames in turn); prints errors, p50/p95 latency, and the open file descriptors and
   temporary files before and after (leaks).

The models are the offline profile's tiny random-weight ones (the server's cost around a model,
not a model's speed). Example: python benchmarks/bench_serve_videoqa.py --requests 200 --concurrency 8
"""

from __future__ import annotations

import argparse
import base64
import concurrent.futures
import io
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def _fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def _messages(kind: str, clip: Path) -> list[dict]:
    from PIL import Image

    if kind == "path":
        parts = [{"type": "video_url", "video_url": {"url": clip.name}}]
    elif kind == "data":
        parts = [{"type": "video_url", "video_url": {
            "url": "data:video/mp4;base64," + base64.b64encode(clip.read_bytes()).decode()}}]
    else:
        parts = []
        for color in ("red", "blue", "green"):
            buffer = io.BytesIO()
            Image.new("RGB", (32, 32), color).save(buffer, format="JPEG")
            parts.append({"type": "image_url", "image_url": {
                "url": "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode()}})
    return [{"role": "user", "content": [*parts, {"type": "text", "text": "What moves in the video?"}]}]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=10, help="overhead: calls of each kind")
    parser.add_argument("--candidates", type=int, default=4, help="frames the selector captions")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    import openai

    from videoespresso import load_model
    from videoespresso.reason import TwoStageReasoner
    from videoespresso.schema import GenerationSettings
    from videoespresso.select import CaptionLLMSelector
    from videoespresso.serve.media import MediaPolicy
    from videoespresso.serve.videoqa import Limits, VideoQA, VideoQAServer, create_videoqa_app
    from videoespresso.video.synth import make_test_video

    work = Path(tempfile.mkdtemp(prefix="ve-bench-serve-"))
    os.environ.setdefault("VIDEOESPRESSO_HOME", str(work / "home"))
    clip = work / "videos" / "clip.mp4"
    make_test_video(clip, "mixed", seconds=0.5)
    vlm, llm = load_model("tiny:qwen2-vl"), load_model("tiny:qwen2")
    videoqa = VideoQA(
        CaptionLLMSelector(llm, vlm, max_frames=3, candidates=args.candidates, image_size=64,
                           settings=GenerationSettings(max_new_tokens=12),
                           caption_settings=GenerationSettings(max_new_tokens=6)),
        TwoStageReasoner(vlm, GenerationSettings(max_new_tokens=8)), max_side=64,
    )
    temp = work / "temp"
    temp.mkdir()
    policy = MediaPolicy(video_root=clip.parent, upload_dir=work / "uploads", temp_dir=temp)
    app = create_videoqa_app(videoqa, policy=policy, limits=Limits(max_concurrent=max(8, args.concurrency)))
    out: dict = {"requests": args.requests, "concurrency": args.concurrency, "candidates": args.candidates}
    with VideoQAServer(app) as server:
        client = openai.OpenAI(base_url=server.base_url, api_key="none", max_retries=0, timeout=600)
        question = _messages("path", clip)
        client.chat.completions.create(model="videoqa-sc", messages=question)
        videoqa.ask(clip, "What moves in the video?")
        direct, http = [], []
        for _ in range(args.repeats):
            t = time.perf_counter()
            videoqa.ask(clip, "What moves in the video?")
            direct.append(time.perf_counter() - t)
            t = time.perf_counter()
            client.chat.completions.create(model="videoqa-sc", messages=question)
            http.append(time.perf_counter() - t)
        out["in_process_median_ms"] = round(1000 * statistics.median(direct), 1)
        out["http_median_ms"] = round(1000 * statistics.median(http), 1)
        out["overhead_ratio"] = round(statistics.median(http) / statistics.median(direct), 3)
        print(f"overhead: in-process {out['in_process_median_ms']} ms, HTTP {out['http_median_ms']} ms, "
              f"ratio {out['overhead_ratio']} (median of {args.repeats} each)", flush=True)

        fds_before, temp_before = _fds(), len(list(temp.iterdir()))
        kinds = [("path", "data", "frames")[i % 3] for i in range(args.requests)]
        errors: list[str] = []

        def one(kind: str) -> float:
            t = time.perf_counter()
            try:
                client.chat.completions.create(model="videoqa-sc", messages=_messages(kind, clip))
            except Exception as exc:  # noqa: BLE001 -- counted and reported
                errors.append(f"{type(exc).__name__}: {exc}")
            return time.perf_counter() - t

        started = time.perf_counter()
        with concurrent.futures.ThreadPoolExecutor(args.concurrency) as pool:
            latencies = sorted(pool.map(one, kinds))
        wall = time.perf_counter() - started
        client.close()
        deadline = time.monotonic() + 10
        while _fds() > fds_before and time.monotonic() < deadline:
            time.sleep(0.1)
        out.update({
            "errors": len(errors), "error_examples": errors[:3], "wall_s": round(wall, 1),
            "throughput_rps": round(args.requests / wall, 2),
            "p50_ms": round(1000 * latencies[len(latencies) // 2], 1),
            "p95_ms": round(1000 * latencies[min(len(latencies) - 1, int(0.95 * len(latencies)))], 1),
            "fds_before": fds_before, "fds_after": _fds(),
            "temp_files_before": temp_before, "temp_files_after": len(list(temp.iterdir())),
            "uploads_left": len(list((work / "uploads").iterdir())),
        })
    print(f"load: {args.requests} requests, {args.concurrency} concurrent: {out['errors']} errors, "
          f"p50 {out['p50_ms']} ms, p95 {out['p95_ms']} ms, {out['throughput_rps']} req/s; "
          f"fds {out['fds_before']} -> {out['fds_after']}, temp files {out['temp_files_before']} -> "
          f"{out['temp_files_after']}", flush=True)
    print(json.dumps(out))
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
