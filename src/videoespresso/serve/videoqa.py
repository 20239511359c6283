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

Limits (each a clear 4xx): the shared ones of :mod:`.core` (request body size 413, JSON depth
400, requests in flight 429, ``max_tokens`` 400, a question longer than the models' context 400,
the per-request generation time, client disconnects), and upload size (413), non-video uploads
(415), ``image_url`` parts per request (400), paths outside ``--video-root`` (403), remote URLs
unless allowed (403). The models run on one worker
thread (they need not be thread-safe); requests wait their turn up to the in-flight limit.
"""

from __future__ import annotations

import asyncio
import base64
import inspect
import io
import json
import logging
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse

from .core import (
    BusyClock,
    ClientGone,
    InFlight,
    RequestError,
    ServerHandle,
    ServerLimits,
    StopSignal,
    as_request_error,
    check_model_name,
    check_prompt_chars,
    create_core_app,
    disconnected_response,
    drain_body,
    private_folders,
    read_json,
    wait_or_abandon,
)
from .media import (
    MediaLease,
    MediaPolicy,
    clean_stale_parts,
    images_to_clip,
    remove_upload_dir,
    resolve_video_url,
    save_upload,
)
from .openai_server import decode_data_url
from .requests import ChatCompletionRequest, check_common, parse_request

log = logging.getLogger(__name__)

DEFAULT_NAME = "videoqa-sc"
#: The official evaluation's frame budget, the baseline the compute figure is compared with.
UNIFORM_FRAMES = 128
_THUMB_SIDE = 320


# --------------------------------------------------------------------------- the pipeline


class _Stage:
    """A pipeline model, metered (``generate`` calls add up their token counts, for the selector's
    usage) and stoppable: each call gets the request's :class:`~.core.StopSignal` as
    ``should_stop`` (backends that take it end early), and no call starts once the client went."""

    def __init__(self, model: Any) -> None:
        # A selector shared by two VideoQA objects is wrapped once.
        self._model = model._model if isinstance(model, _Stage) else model
        #: Whether the model's generate takes should_stop; looked up on the first call, so a lazily
        #: loaded model stays unloaded until it is used.
        self._stoppable: bool | None = None
        self.stop: StopSignal | None = None
        self.reset()

    def reset(self) -> None:
        self.calls = self.prompt_tokens = self.completion_tokens = 0

    def generate(self, *args: Any, **kwargs: Any) -> Any:
        if self._stoppable is None:
            self._stoppable = "should_stop" in inspect.signature(self._model.generate).parameters
        if self.stop is not None:
            if self.stop.abandoned.is_set():
                raise ClientGone
            if self._stoppable:
                kwargs["should_stop"] = self.stop
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
        # that the reply's usage covers every stage, not only the reasoner's; the reasoner counts
        # its own, and its model is wrapped only to be stoppable.
        self._meters: dict[str, _Stage] = {}
        for stage, attr in (("select:caption", "captioner"), ("select:choose", "llm")):
            model = getattr(selector, attr, None)
            if model is not None:
                metered = _Stage(model)
                setattr(selector, attr, metered)
                self._meters[stage] = metered
        self._stages = list(self._meters.values())
        if getattr(reasoner, "model", None) is not None:
            reasoner.model = _Stage(reasoner.model)
            self._stages.append(reasoner.model)

    @property
    def models(self) -> list[Any]:
        """The models a question reaches (each knows the longest prompt it can take)."""
        return self._stages

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
            max_new_tokens: int | None = None, return_frames: bool = False,
            stop: StopSignal | None = None) -> dict[str, Any]:
        """Select, then answer; a JSON-ready dict (see the module docstring).

        With ``stop``, every model call polls it (time limit: the stages end early and the answer
        is what they produced; client gone: :class:`~.core.ClientGone` before the next call)."""
        for stage in self._stages:
            stage.reset()
            stage.stop = stop
        try:
            return self._ask(video, question, options, max_new_tokens, return_frames)
        finally:
            for stage in self._stages:
                stage.stop = None

    def _ask(self, video: Path, question: str, options: Sequence[str] | None, max_new_tokens: int | None,
             return_frames: bool) -> dict[str, Any]:
        from ..reason import load_frames

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


#: The ``ui`` server's limits are the shared ones (:class:`~.core.ServerLimits`).
Limits = ServerLimits


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


def _parse_request(req: ChatCompletionRequest, limits: ServerLimits, policy: MediaPolicy) -> _Parsed:
    check_common(req, limits.max_tokens)
    question = ""
    video_url: str | None = None
    images: list[Any] = []
    for i, message in enumerate(req.messages):
        where = f"messages[{i}]"
        if message.role not in ("system", "developer", "user", "assistant"):
            raise RequestError(f"{where}.role: a message needs a role of system, user or assistant", param=where)
        texts: list[str] = []
        if isinstance(message.content, str):
            texts.append(message.content)
        else:
            for j, part in enumerate(message.content or []):
                pw = f"{where}.content[{j}]"
                if part.type == "text":
                    texts.append(part.text or "")
                elif part.type == "video_url":
                    url = _url_of(part.video_url, pw)
                    if video_url is not None:
                        raise RequestError(f"{pw}: one video per request", param=pw)
                    video_url = url
                elif part.type == "image_url":
                    if len(images) >= policy.max_images:
                        raise RequestError(f"{pw}: at most {policy.max_images} image_url parts (frames) per request",
                                           param=pw, code="too_many_frames")
                    images.append(decode_data_url(_url_of(part.image_url, pw), pw))
                else:
                    raise RequestError(f"{pw}: content part type {part.type!r} is not supported "
                                       "(use text, video_url or image_url)", param=pw)
        if message.role == "user" and texts:
            question = "\n".join(t for t in texts if t).strip()
    if video_url is None and not images:
        raise RequestError("messages: give the video as a video_url part (or frames as image_url parts)",
                           param="messages", code="no_video")
    if video_url is not None and images:
        raise RequestError("messages: give either one video_url or image_url frames, not both", param="messages")
    if not question:
        raise RequestError("messages: the last user message has no question text", param="messages")
    options = req.options or []
    if not all(o.strip() for o in options) or (options and not 2 <= len(options) <= 8):
        raise RequestError("options: give 2 to 8 non-empty strings (or none for an open question)", param="options")
    return _Parsed(question, [o.strip() for o in options], video_url, images, req.token_limit, bool(req.stream),
                   bool(req.return_frames))


def _url_of(value: Any, where: str) -> str:
    url = value.url if hasattr(value, "url") else value
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
    limits: ServerLimits | None = None,
    ui: Any = None,
) -> FastAPI:
    """The FastAPI app: ``/v1/chat/completions`` (VideoQA-SC), ``/v1/uploads``, ``/v1/models``,
    ``/health``, and the web UI when ``ui`` (a :class:`videoespresso.ui.UIConfig`) is given."""
    policy = policy or MediaPolicy()
    limits = limits or ServerLimits(max_tokens=1024, max_concurrent=8)
    clean_stale_parts(policy)
    worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ve-videoqa")
    busy = BusyClock()
    in_flight = InFlight(limits.max_concurrent)

    from contextlib import asynccontextmanager

    @asynccontextmanager
    async def lifespan(_app: FastAPI):  # noqa: ANN202
        try:
            yield
        finally:
            worker.shutdown(wait=True, cancel_futures=True)

    def private() -> list[str]:
        return private_folders(policy.upload_dir, policy.temp_dir, policy.video_root)

    app = create_core_app(title="videoespresso VideoQA-SC server", name=name, limits=limits, busy=busy,
                          in_flight=in_flight, api_keys=api_keys, lifespan=lifespan, private_dirs=private,
                          body_limit_exempt=("/v1/uploads",))
    app.state.videoqa = videoqa
    app.state.policy = policy
    app.state.api_keys = list(api_keys)

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

    async def run_ask(request: Request, parsed: _Parsed, stop: StopSignal) -> dict[str, Any]:
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
                    with busy.running():
                        return videoqa.ask(video, parsed.question, parsed.options, parsed.max_tokens,
                                           parsed.return_frames, stop=stop)
                finally:
                    # Captions cut short by the time limit or a disconnect must not serve later requests.
                    if temporary or stop():
                        videoqa.forget(video)

            return await wait_or_abandon(request, worker.submit(answer), stop)
        finally:
            lease.release()

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request) -> Any:
        req = parse_request(await read_json(request, limits))
        check_model_name(req.model, name)
        # Before the video is fetched or a frame decoded: a question no model can take costs nothing.
        check_prompt_chars(req.text_chars(), videoqa.models)
        with in_flight.slot():
            parsed = _parse_request(req, limits, policy)
            stop = StopSignal(limits.request_timeout_s)
            try:
                result = await run_ask(request, parsed, stop)
            except ClientGone:
                return disconnected_response()
            except Exception as exc:  # noqa: BLE001 -- mapped to the status it deserves
                raise as_request_error(exc, "answering") from None
        completion = _completion(result, name, cut=stop.timed_out())
        if not parsed.stream:
            return JSONResponse(completion)
        return StreamingResponse(_sse(completion), media_type="text/event-stream")

    if ui is not None:
        from ..ui import mount_ui

        mount_ui(app, ui)
    return app


def _completion(result: dict[str, Any], name: str, cut: bool = False) -> dict[str, Any]:
    prompt = sum(s["prompt_tokens"] for s in result["stages"])
    completion = sum(s["completion_tokens"] for s in result["stages"])
    extra = {k: v for k, v in result.items() if k != "answer"}
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": name,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": result["answer"]},
                     "finish_reason": "length" if cut else "stop", "logprobs": None}],
        "usage": {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion},
        "videoespresso": extra,
    }


def _sse(completion: dict[str, Any]):  # noqa: ANN202
    base = {"id": completion["id"], "object": "chat.completion.chunk", "created": completion["created"],
            "model": completion["model"]}
    content = completion["choices"][0]["message"]["content"]
    first = {**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": content},
                                  "finish_reason": None}]}
    finish = completion["choices"][0]["finish_reason"]
    last = {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": finish}],
            "usage": completion["usage"], "videoespresso": completion["videoespresso"]}
    yield f"data: {json.dumps(first)}\n\n"
    yield f"data: {json.dumps(last)}\n\n"
    yield "data: [DONE]\n\n"


# --------------------------------------------------------------------------- running


class VideoQAServer(ServerHandle):
    """The app on a background thread (tests, benchmarks); ``close()`` or ``with`` stops it and
    removes a temporary upload folder."""

    def __init__(self, app: FastAPI, host: str = "127.0.0.1", port: int = 0, log_level: str = "warning") -> None:
        super().__init__(app, host=host, port=port, name=app.state.served_name, log_level=log_level,
                         on_close=lambda: remove_upload_dir(app.state.policy))
