"""VideoQA-SC behind the OpenAI chat-completions API (model name ``videoqa-sc`` by default).

A request carries its video the way vLLM and SGLang take it: one ``video_url`` content part
(``{"type": "video_url", "video_url": {"url": ...}}``; URLs as :mod:`.media` accepts them), or
several ``image_url`` parts as the frames of a clip. The question is the text of the last user
message; close-ended options go in the extra body field ``options`` (2-8 strings). The server runs
the configured selector, then the reasoner (two-stage: evidence, then answer) on the chosen
frames, and returns the answer as the message content. The extra response field
``videoespresso`` holds the chosen frames (index, seconds; JPEG thumbnails with
``"return_frames": true``), the evidence and its key objects with boxes, the option the answer
picks, per-stage token usage and the compute used against uniform 128-frame sampling.

``stream=true`` is answered as server-sent events; the backends generate a whole reply at a time,
so the answer arrives in one content chunk, followed by a final chunk carrying ``videoespresso``
and ``usage``.

Limits (each a clear 4xx): request body size (413), upload size (413), non-video uploads (415),
``image_url`` parts per request (400), ``max_tokens`` (400), requests in flight (429); paths
outside ``--video-root`` (403); remote URLs unless allowed (403). The models run on one worker
thread (they need not be thread-safe); requests wait their turn up to the in-flight limit.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import logging
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse

from ..errors import UserError
from .auth import ApiKeyMiddleware
from .media import (
    MediaLease,
    MediaPolicy,
    clean_stale_parts,
    images_to_clip,
    remove_upload_dir,
    resolve_video_url,
    save_upload,
)
from .openai_server import RequestError, decode_data_url

log = logging.getLogger(__name__)

DEFAULT_NAME = "videoqa-sc"
#: The official evaluation's frame budget, the baseline the compute figure is compared with.
UNIFORM_FRAMES = 128
_THUMB_SIDE = 320


# --------------------------------------------------------------------------- the pipeline


class _Metered:
    """A model whose ``generate`` calls add up their token counts (the selector's usage)."""

    def __init__(self, model: Any) -> None:
        self._model = model
        self.reset()

    def reset(self) -> None:
        self.calls = self.prompt_tokens = self.completion_tokens = 0

    def generate(self, *args: Any, **kwargs: Any) -> Any:
        replies = self._model.generate(*args, **kwargs)
        self.calls += len(replies)
        for reply in replies:
            self.prompt_tokens += getattr(reply, "prompt_tokens", None) or 0
            self.completion_tokens += getattr(reply, "completion_tokens", None) or 0
        return replies

    def __getattr__(self, name: str) -> Any:
        return getattr(self._model, name)


#: Captions a selector keeps per (video, frame) before the server clears them.
MAX_CACHED_CAPTIONS = 20_000


class VideoQA:
    """A frame selector and a reasoner, called one question at a time (not thread-safe)."""

    def __init__(self, selector: Any, reasoner: Any, *, max_side: int | None = None) -> None:
        self.selector = selector
        self.reasoner = reasoner
        self.max_side = max_side
        # The selector's own model calls (captioning candidates, choosing frames) are metered so
        # that the reply's usage covers every stage, not only the reasoner's.
        self._meters: dict[str, _Metered] = {}
        for stage, attr in (("select:caption", "captioner"), ("select:choose", "llm")):
            model = getattr(selector, attr, None)
            if model is not None:
                metered = _Metered(model)
                setattr(selector, attr, metered)
                self._meters[stage] = metered

    def forget(self, video: Path) -> None:
        """Drop the selector's cached captions of ``video`` (a temporary file that is going away),
        and all of them past :data:`MAX_CACHED_CAPTIONS`, so a long-running server stays bounded."""
        cache = self.selector.__dict__.get("_captions")
        if not cache:
            return
        name = str(video)
        for key in [k for k in cache if k[0] == name]:
            del cache[key]
        if len(cache) > MAX_CACHED_CAPTIONS:
            cache.clear()

    @classmethod
    def from_config(cls, config: Any, selector: str = "caption-llm", reasoner: str = "two-stage",
                    count_flops: bool = False) -> "VideoQA":
        from ..models import load_model
        from ..reason import make_reasoner
        from ..select import load_selector

        chooser = load_selector(selector, config)
        model = load_model(config.models.reasoner, kind="vlm", **config.model_options(config.models.reasoner))
        answerer = make_reasoner(reasoner, model, config.generation, count_flops=count_flops)
        return cls(chooser, answerer, max_side=config.sampling.max_side)

    def ask(self, video: Path, question: str, options: Sequence[str] | None = None,
            max_new_tokens: int | None = None, return_frames: bool = False) -> dict[str, Any]:
        """Select, then answer; a JSON-ready dict (see the module docstring)."""
        from ..reason import load_frames

        for meter in self._meters.values():
            meter.reset()
        started = time.perf_counter()
        selection = self.selector.select(video, question, options=list(options) if options else None)
        selected = time.perf_counter()
        frames = load_frames(video, selection, size=self.max_side)
        saved = self.reasoner.settings
        if max_new_tokens is not None:
            self.reasoner.settings = saved.model_copy(update={"max_new_tokens": max_new_tokens})
        try:
            result = self.reasoner.answer(frames, question, list(options) if options else None)
        finally:
            self.reasoner.settings = saved
        answered = time.perf_counter()
        frame_list = []
        for frame in frames:
            entry: dict[str, Any] = {"index": frame.ref.index, "seconds": frame.ref.seconds}
            if return_frames:
                entry["image"] = _thumbnail(frame.image)
            frame_list.append(entry)
        stages = [
            {"stage": stage, "prompt_tokens": m.prompt_tokens, "completion_tokens": m.completion_tokens,
             "calls": m.calls}
            for stage, m in self._meters.items() if m.calls
        ] + [
            {"stage": s.stage, "prompt_tokens": s.prompt_tokens or 0, "completion_tokens": s.completion_tokens or 0,
             **({"flops": s.flops} if s.flops is not None else {})}
            for s in result.stages
        ]
        counted = [s.flops for s in result.stages if s.flops is not None]
        k = len(frames)
        compute: dict[str, Any] = {
            "frames": k, "uniform_frames": UNIFORM_FRAMES, "frame_ratio": round(k / UNIFORM_FRAMES, 5),
            "note": "reasoner cost is linear in frames (paper, section 6); the selector's own cost is not included",
        }
        if counted:
            compute["reasoner_flops"] = int(sum(counted))
        return {
            "answer": result.answer,
            "evidence": result.evidence,
            "key_objects": _key_objects(result.evidence),
            "frames": frame_list,
            "selector": selection.selector,
            "selector_fallback": selection.fallback,
            "reasoner": result.reasoner,
            "model": result.model,
            "options": list(options or []),
            "chosen_option": _chosen_option(result.answer, list(options or [])),
            "stages": stages,
            "compute": compute,
            "timings_s": {"select": round(selected - started, 4), "reason": round(answered - selected, 4)},
        }


def _thumbnail(image: Any) -> str:
    copy = image.copy()
    copy.thumbnail((_THUMB_SIDE, _THUMB_SIDE))
    buffer = io.BytesIO()
    copy.convert("RGB").save(buffer, format="JPEG", quality=85)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode()


def _key_objects(evidence: str | None) -> list[dict[str, Any]]:
    """Tagged objects in the evidence with boxes as normalised corners; untagged text gives []."""
    from ..errors import FormatError
    from ..formats.boxes import box_from_cxcywh100
    from ..formats.evidence import EvidenceObject, parse_evidence

    if not evidence:
        return []
    try:
        parts = parse_evidence(evidence)
    except FormatError:
        return []
    objects = []
    for part in parts:
        if isinstance(part, EvidenceObject):
            boxes = [box_from_cxcywh100(b) for b in part.boxes]
            objects.append({"name": part.name, "boxes": [[b.x0, b.y0, b.x1, b.y1] for b in boxes]})
    return objects


def _chosen_option(answer: str, options: list[str]) -> dict[str, Any] | None:
    if not options or len(options) > 4:
        return None
    from ..bench.extract import extract_answer

    found = extract_answer(answer, options + [""] * (4 - len(options)))
    if found.letter is None or "ABCD".index(found.letter) >= len(options):
        return None
    return {"letter": found.letter, "text": options["ABCD".index(found.letter)], "rule": found.rule}


# --------------------------------------------------------------------------- limits


@dataclass
class Limits:
    max_body_bytes: int = 32 * 2**20
    max_tokens: int = 1024
    max_concurrent: int = 8


class BodyLimitMiddleware:
    """413 for a request body over ``limit`` bytes (declared or streamed), except uploads."""

    def __init__(self, app: Any, limit: int, exempt: tuple[str, ...] = ("/v1/uploads",)) -> None:
        self.app, self.limit, self.exempt = app, limit, exempt

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope.get("path") in self.exempt:
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            await drain_body(receive)
            await _send_error(send, 413, f"the request body is over this server's limit of {self.limit} bytes",
                              "body_too_large")
            return
        seen = 0

        async def bounded_receive() -> dict[str, Any]:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise RequestError(f"the request body is over this server's limit of {self.limit} bytes",
                                       status=413, code="body_too_large")
            return message

        await self.app(scope, bounded_receive, send)


#: A refused body is read and discarded up to this many bytes before the error is sent: a client
#: still sending when the server closes gets a connection reset instead of the 413 it should see.
DRAIN_LIMIT = 16 * 1024 * 1024


async def drain_body(receive: Any, limit: int = DRAIN_LIMIT) -> None:
    """Read and discard the rest of a request body (at most ``limit`` bytes)."""
    seen = 0
    while seen <= limit:
        message = await receive()
        if message["type"] != "http.request":
            return
        seen += len(message.get("body", b""))
        if not message.get("more_body", False):
            return


async def _send_error(send: Any, status: int, message: str, code: str) -> None:
    body = json.dumps({"error": {"message": message, "type": "invalid_request_error", "param": None,
                                 "code": code}}).encode()
    await send({"type": "http.response.start", "status": status, "headers": [
        (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


# --------------------------------------------------------------------------- request parsing


@dataclass
class _Parsed:
    question: str
    options: list[str]
    video_url: str | None
    images: list[Any]
    max_tokens: int | None
    stream: bool
    return_frames: bool


def _parse_request(body: Any, served: str, limits: Limits, policy: MediaPolicy) -> _Parsed:
    if not isinstance(body, dict):
        raise RequestError("the request body must be a JSON object")
    if body.get("model") != served:
        raise RequestError(f"model {body.get('model')!r} is not served here; this server serves {served!r}",
                           status=404, param="model", code="model_not_found")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise RequestError("messages: a non-empty list is required", param="messages")
    if body.get("n") not in (None, 1):
        raise RequestError("only n=1 is supported", param="n")
    question = ""
    video_url: str | None = None
    images: list[Any] = []
    for i, message in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(message, dict) or message.get("role") not in ("system", "developer", "user", "assistant"):
            raise RequestError(f"{where}: a message needs a role of system, user or assistant", param=where)
        content = message.get("content")
        texts: list[str] = []
        if isinstance(content, str):
            texts.append(content)
        elif isinstance(content, list):
            for j, part in enumerate(content):
                pw = f"{where}.content[{j}]"
                kind = part.get("type") if isinstance(part, dict) else None
                if kind == "text":
                    texts.append(str(part.get("text") or ""))
                elif kind == "video_url":
                    url = _url_of(part.get("video_url"), pw)
                    if video_url is not None:
                        raise RequestError(f"{pw}: one video per request", param=pw)
                    video_url = url
                elif kind == "image_url":
                    if len(images) >= policy.max_images:
                        raise RequestError(f"{pw}: at most {policy.max_images} image_url parts (frames) per request",
                                           param=pw, code="too_many_frames")
                    images.append(decode_data_url(_url_of(part.get("image_url"), pw), pw))
                else:
                    raise RequestError(f"{pw}: content part type {kind!r} is not supported "
                                       "(use text, video_url or image_url)", param=pw)
        elif content is not None:
            raise RequestError(f"{where}.content: a string or a list of parts is required", param=where)
        if message.get("role") == "user" and texts:
            question = "\n".join(t for t in texts if t).strip()
    if video_url is None and not images:
        raise RequestError("messages: give the video as a video_url part (or frames as image_url parts)",
                           param="messages", code="no_video")
    if video_url is not None and images:
        raise RequestError("messages: give either one video_url or image_url frames, not both", param="messages")
    if not question:
        raise RequestError("messages: the last user message has no question text", param="messages")
    options = body.get("options") or []
    if not isinstance(options, list) or not all(isinstance(o, str) and o.strip() for o in options) or (
        options and not 2 <= len(options) <= 8
    ):
        raise RequestError("options: give 2 to 8 non-empty strings (or none for an open question)", param="options")
    limit = body.get("max_completion_tokens", body.get("max_tokens"))
    if limit is not None:
        if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
            raise RequestError("max_tokens: a positive integer is required", param="max_tokens")
        if limit > limits.max_tokens:
            raise RequestError(f"max_tokens: at most {limits.max_tokens} on this server, got {limit}",
                               param="max_tokens")
    return _Parsed(question, [o.strip() for o in options], video_url, images, limit, bool(body.get("stream")),
                   bool(body.get("return_frames")))


def _url_of(value: Any, where: str) -> str:
    url = value.get("url") if isinstance(value, dict) else value
    if not isinstance(url, str) or not url:
        raise RequestError(f"{where}: a url is required", param=where)
    return url


# --------------------------------------------------------------------------- the app


def create_videoqa_app(
    videoqa: VideoQA,
    *,
    policy: MediaPolicy | None = None,
    name: str = DEFAULT_NAME,
    api_keys: Sequence[str] = (),
    limits: Limits | None = None,
    ui: Any = None,
) -> FastAPI:
    """The FastAPI app: ``/v1/chat/completions`` (VideoQA-SC), ``/v1/uploads``, ``/v1/models``,
    ``/health``, and the web UI when ``ui`` (a :class:`videoespresso.ui.UIConfig`) is given."""
    policy = policy or MediaPolicy()
    limits = limits or Limits()
    clean_stale_parts(policy)
    worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ve-videoqa")
    in_flight = {"n": 0}
    count_lock = threading.Lock()
    created = int(time.time())

    from contextlib import asynccontextmanager

    @asynccontextmanager
    async def lifespan(_app: FastAPI):  # noqa: ANN202
        try:
            yield
        finally:
            worker.shutdown(wait=True, cancel_futures=True)

    app = FastAPI(title="videoespresso VideoQA-SC server", lifespan=lifespan, docs_url=None, redoc_url=None,
                  openapi_url=None)
    app.state.videoqa = videoqa
    app.state.policy = policy
    app.state.served_name = name
    app.state.api_keys = list(api_keys)

    @app.exception_handler(RequestError)
    async def _request_error(_request: Request, exc: RequestError) -> JSONResponse:
        return exc.response()

    @app.get("/health")
    async def health() -> dict[str, Any]:
        return {"status": "ok", "model": name, "in_flight": in_flight["n"]}

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        return {"object": "list", "data": [{"id": name, "object": "model", "created": created,
                                            "owned_by": "videoespresso"}]}

    @app.post("/v1/uploads")
    async def upload(request: Request) -> JSONResponse:
        declared = request.headers.get("content-length")
        filename = request.headers.get("x-filename") or request.query_params.get("filename")
        if declared and declared.isdigit() and int(declared) > policy.max_upload_bytes:
            await drain_body(request.receive)  # so the client reads the 413, not a reset
        upload_id, path = await save_upload(
            policy, request.stream(), filename, int(declared) if declared and declared.isdigit() else None
        )
        return JSONResponse({"id": upload_id, "url": f"upload://{upload_id}", "bytes": path.stat().st_size},
                            status_code=201)

    async def run_ask(parsed: _Parsed) -> dict[str, Any]:
        lease = MediaLease()
        try:
            loop = asyncio.get_running_loop()
            if parsed.video_url is not None:
                video = await loop.run_in_executor(
                    None, resolve_video_url, policy, parsed.video_url, "video_url", lease)
            else:
                video = await loop.run_in_executor(None, images_to_clip, policy, parsed.images, lease)
            temporary = video in lease.paths

            def answer() -> dict[str, Any]:
                try:
                    return videoqa.ask(video, parsed.question, parsed.options, parsed.max_tokens,
                                       parsed.return_frames)
                finally:
                    if temporary:
                        videoqa.forget(video)

            return await loop.run_in_executor(worker, answer)
        finally:
            lease.release()

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request) -> Any:
        raw = await request.body()
        try:
            body = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise RequestError("the request body is not valid JSON", code="invalid_json") from None
        parsed = _parse_request(body, name, limits, policy)
        with count_lock:
            if in_flight["n"] >= limits.max_concurrent:
                raise RequestError(f"the server is busy ({limits.max_concurrent} requests in flight); retry shortly",
                                   status=429, code="too_many_requests", type="rate_limit_error")
            in_flight["n"] += 1
        try:
            try:
                result = await run_ask(parsed)
            except RequestError:
                raise
            except UserError as exc:
                raise RequestError(str(exc), status=422, code="unprocessable") from None
            except Exception as exc:  # noqa: BLE001 -- a pipeline failure is reported, not hidden
                log.exception("videoqa failed")
                raise RequestError(f"answering failed: {type(exc).__name__}: {exc}", status=500,
                                   type="server_error") from None
        finally:
            with count_lock:
                in_flight["n"] -= 1
        completion = _completion(result, name)
        if not parsed.stream:
            return JSONResponse(completion)
        return StreamingResponse(_sse(completion), media_type="text/event-stream")

    if ui is not None:
        from ..ui import mount_ui

        mount_ui(app, ui)

    app.add_middleware(BodyLimitMiddleware, limit=limits.max_body_bytes)
    if api_keys:
        app.add_middleware(ApiKeyMiddleware, keys=list(api_keys))
    return app


def _completion(result: dict[str, Any], name: str) -> dict[str, Any]:
    prompt = sum(s["prompt_tokens"] for s in result["stages"])
    completion = sum(s["completion_tokens"] for s in result["stages"])
    extra = {k: v for k, v in result.items() if k != "answer"}
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": name,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": result["answer"]},
                     "finish_reason": "stop", "logprobs": None}],
        "usage": {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion},
        "videoespresso": extra,
    }


def _sse(completion: dict[str, Any]):  # noqa: ANN202
    base = {"id": completion["id"], "object": "chat.completion.chunk", "created": completion["created"],
            "model": completion["model"]}
    content = completion["choices"][0]["message"]["content"]
    first = {**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": content},
                                  "finish_reason": None}]}
    last = {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
            "usage": completion["usage"], "videoespresso": completion["videoespresso"]}
    yield f"data: {json.dumps(first)}\n\n"
    yield f"data: {json.dumps(last)}\n\n"
    yield "data: [DONE]\n\n"


# --------------------------------------------------------------------------- running


class VideoQAServer:
    """The app on a background thread (tests, benchmarks); ``close()`` or ``with`` stops it."""

    def __init__(self, app: FastAPI, host: str = "127.0.0.1", port: int = 0, log_level: str = "warning") -> None:
        import uvicorn

        from .openai_server import bind_socket

        self._sock = bind_socket(host, port)
        self._server = uvicorn.Server(uvicorn.Config(app, log_level=log_level, lifespan="on", access_log=False))
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self._sock]}, daemon=True,
                                        name="ve-videoqa-http")
        self._thread.start()
        deadline = time.monotonic() + 60
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self._server.should_exit = True
                self._sock.close()
                raise RuntimeError("the server thread did not start")
            time.sleep(0.01)
        self.port = int(self._sock.getsockname()[1])
        self.url = f"http://{host}:{self.port}"
        self.base_url = f"{self.url}/v1"
        self.app = app

    def close(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=30)
        self._sock.close()
        remove_upload_dir(self.app.state.policy)

    def __enter__(self) -> "VideoQAServer":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
