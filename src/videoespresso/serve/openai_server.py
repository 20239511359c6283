"""An OpenAI-compatible HTTP server for any videoespresso ChatModel or VisionLanguageModel.

``POST /v1/chat/completions`` accepts the standard request: messages whose content is a string
or a list of parts (``text`` and ``image_url`` parts whose URL is a ``data:image/...;base64``
URL; the server fetches nothing from the network), ``temperature``, ``top_p``, ``max_tokens`` /
``max_completion_tokens``, ``seed``, ``stop``, ``repetition_penalty`` (as vLLM takes it) and
``response_format`` (``json_schema`` is passed
to the model as its schema, ``json_object`` as "any JSON object"). ``GET /v1/models`` lists the
one model served. Bad requests get a 4xx with OpenAI's error body
``{"error": {"message", "type", "param", "code"}}``.

Unlike OpenAI, an omitted ``temperature`` means greedy decoding (videoespresso's default), so
an unadorned request is deterministic. Within a message, images are shown before its text (the
``ChatMessage`` contract); text parts are joined with newlines.

Concurrent requests that share their settings and schema are batched into one ``generate`` call
(up to ``max_batch``), which is what a batched backend is fast at; a single worker thread owns
the model, so backends need not be thread-safe. A batch that fails is retried one request at a
time, so one bad request fails alone whatever the error.

Limits, the same on both servers (:mod:`.core`): body size, JSON depth, requests in flight, a
prompt that cannot fit the model's context (refused on its length before any tokenising),
``max_tokens`` above the limit (400); generation stops after ``request_timeout_s`` (the reply so
far is returned with ``finish_reason: "length"``, as for a token limit) and as soon as every
client of the batch has disconnected (backends whose ``generate`` takes ``should_stop``, as the
hf ones do).
"""

from __future__ import annotations

import base64
import binascii
import inspect
import io
import json
import logging
import queue
import threading
import time
import uuid
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import ValidationError

from ..errors import UserError
from ..models.protocols import ChatMessage, Conversation, check_text
from ..schema import Generation, GenerationSettings
from .core import (
    BusyClock,
    ClientGone,
    InFlight,
    RequestError,
    ServerHandle,
    ServerLimits,
    StopSignal,
    as_request_error,
    bind_socket,
    check_model_name,
    check_prompt_chars,
    create_core_app,
    disconnected_response,
    read_json,
    run_foreground,
    wait_or_abandon,
)
from .requests import ChatCompletionRequest, check_common, parse_request

__all__ = ["RequestError", "ServerHandle", "bind_socket", "create_app", "run_server", "start_server"]

log = logging.getLogger(__name__)

_ROLES = {"system": "system", "developer": "system", "user": "user", "assistant": "assistant"}


# --------------------------------------------------------------------------- request -> call


def decode_data_url(url: str, where: str) -> Any:
    """A ``data:image/...;base64,...`` URL -> an RGB PIL image (``where`` names it in errors)."""
    from PIL import Image, UnidentifiedImageError

    if not url.startswith("data:"):
        raise RequestError(
            f"{where}: only data URLs (data:image/...;base64,...) are accepted; this server "
            "does not fetch remote images",
            param=where,
        )
    header, sep, payload = url.partition(",")
    if not sep or ";base64" not in header or not header[5:].startswith("image/"):
        raise RequestError(f"{where}: expected data:image/<type>;base64,<data>", param=where)
    try:
        raw = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise RequestError(f"{where}: the base64 payload is invalid", param=where) from None
    try:
        image = Image.open(io.BytesIO(raw))
        image.load()
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as exc:
        raise RequestError(f"{where}: not a readable image ({exc})", param=where) from None
    return image if image.mode == "RGB" else image.convert("RGB")


def to_conversation(request: ChatCompletionRequest) -> Conversation:
    conversation: Conversation = []
    for i, message in enumerate(request.messages):

        where = f"messages[{i}]"
        role = _ROLES.get(message.role)
        if role is None:
            raise RequestError(
                f"{where}.role: {message.role!r} is not supported; use system, user or assistant",
                param=f"{where}.role",
            )
        if message.content is None or isinstance(message.content, str):
            conversation.append(ChatMessage(role=role, text=message.content or ""))  # type: ignore[arg-type]
            continue
        texts: list[str] = []
        images = []
        for j, part in enumerate(message.content):
            part_where = f"{where}.content[{j}]"
            if part.type == "text":
                texts.append(part.text or "")
            elif part.type == "image_url":
                if part.image_url is None:
                    raise RequestError(f"{part_where}: image_url part without an image_url", param=part_where)
                url = part.image_url if isinstance(part.image_url, str) else part.image_url.url
                images.append(decode_data_url(url, part_where))
            else:
                raise RequestError(
                    f"{part_where}: content part type {part.type!r} is not supported "
                    "(use text or image_url)",
                    param=part_where,
                )
        conversation.append(ChatMessage(role=role, text="\n".join(texts), images=images))  # type: ignore[arg-type]
    try:
        check_text([conversation])
    except UserError as exc:
        raise RequestError(f"messages: {str(exc).split(': ', 1)[-1]}", param="messages") from None
    return conversation


#: torch seeds are 64-bit; larger or negative JSON integers would fail inside the model thread.
_SEED_MAX = 2**63 - 1


def to_settings(request: ChatCompletionRequest, default: GenerationSettings) -> GenerationSettings:
    values = default.model_dump()
    if request.temperature is not None:
        values["temperature"] = request.temperature
    if request.top_p is not None:
        values["top_p"] = request.top_p
    if request.token_limit is not None:
        values["max_new_tokens"] = request.token_limit
    if request.seed is not None:
        if not 0 <= request.seed <= _SEED_MAX:
            raise RequestError(f"seed: must be between 0 and {_SEED_MAX}, got {request.seed}", param="seed")
        values["seed"] = request.seed
    if request.stop is not None:
        values["stop"] = [request.stop] if isinstance(request.stop, str) else list(request.stop)
    if request.repetition_penalty is not None:
        values["repetition_penalty"] = request.repetition_penalty
    try:
        return GenerationSettings.model_validate(values)
    except ValidationError as exc:
        err = exc.errors()[0]
        name = {"max_new_tokens": "max_tokens"}.get(str(err["loc"][0]), str(err["loc"][0]))
        raise RequestError(f"{name}: {err['msg']}", param=name) from None


def to_schema(request: ChatCompletionRequest) -> dict[str, Any] | None:
    fmt = request.response_format
    if fmt is None or fmt.type == "text":
        return None
    if fmt.type == "json_object":
        return {"type": "object"}
    spec = fmt.json_schema or {}
    schema = spec.get("schema")
    if not isinstance(schema, dict):
        raise RequestError(
            "response_format.json_schema.schema: a JSON schema object is required",
            param="response_format",
        )
    return schema


# --------------------------------------------------------------------------- batching


@dataclass
class _Job:
    conversation: Conversation
    settings: GenerationSettings
    schema: dict[str, Any] | None
    group: str
    #: The client went or the per-request time ran out: its generation need not go on.
    stop: StopSignal
    #: Set when the time limit cut the reply short.
    timed_out: bool = False
    future: Future = field(default_factory=Future)


class _Batcher:
    """One worker thread that owns the model and batches jobs with equal settings and schema."""

    def __init__(self, model: Any, max_batch: int, wait_s: float, timeout_s: float | None, busy: BusyClock) -> None:
        self.model = model
        self.max_batch = max_batch
        self.wait_s = wait_s
        self.timeout_s = timeout_s
        self.busy = busy
        self._stoppable = "should_stop" in inspect.signature(model.generate).parameters
        self._queue: queue.Queue[_Job | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="ve-serve-model", daemon=True)
        self._thread.start()

    def submit(self, conversation: Conversation, settings: GenerationSettings, schema: dict | None) -> _Job:
        group = json.dumps([settings.model_dump(mode="json"), schema], sort_keys=True)
        job = _Job(conversation, settings, schema, group, StopSignal(self.timeout_s))
        self._queue.put(job)
        return job

    def _call(self, jobs: list[_Job]) -> list[Generation]:
        def should_stop() -> bool:
            return all(job.stop() for job in jobs)

        extra: dict[str, Any] = {"should_stop": should_stop} if self._stoppable else {}
        with self.busy.running():
            results = self.model.generate(
                [job.conversation for job in jobs], jobs[0].settings, jobs[0].schema, **extra
            )
        for job in jobs:
            job.timed_out = job.stop.timed_out()
        return results

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=30)

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            jobs = [first]
            deadline = time.monotonic() + self.wait_s
            stop = False
            while len(jobs) < self.max_batch:
                try:
                    job = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
                except queue.Empty:
                    break
                if job is None:
                    stop = True
                    break
                jobs.append(job)
            groups: dict[str, list[_Job]] = {}
            for job in jobs:
                groups.setdefault(job.group, []).append(job)
            for group in groups.values():
                self._generate(group)
            if stop:
                return

    def _generate(self, jobs: list[_Job]) -> None:
        live = [job for job in jobs if job.future.set_running_or_notify_cancel()]
        if not live:
            return
        try:
            results = self._call(live)
        except Exception as exc:  # noqa: BLE001 -- handed to the request, or isolated below
            if len(live) == 1:
                live[0].future.set_exception(exc)
                return
            # One bad request must not fail the others batched with it, whatever it raised
            # (a processor's ValueError, a tokenizer's TypeError): retry them one by one.
            for job in live:
                self._generate_one(job)
            return
        if len(results) != len(live):
            error = RuntimeError(f"the model returned {len(results)} replies for {len(live)} requests")
            for job in live:
                job.future.set_exception(error)
            return
        for job, result in zip(live, results):
            job.future.set_result(result)

    def _generate_one(self, job: _Job) -> None:
        if job.stop.abandoned.is_set():
            job.future.set_exception(ClientGone())
            return
        try:
            result = self._call([job])[0]
        except Exception as exc:  # noqa: BLE001 -- handed to the waiting request
            job.future.set_exception(exc)
        else:
            job.future.set_result(result)


# --------------------------------------------------------------------------- the app


def create_app(
    model: Any,
    *,
    name: str | None = None,
    max_batch: int = 8,
    batch_wait_s: float = 0.005,
    default_settings: GenerationSettings | None = None,
    max_tokens_limit: int = 4096,
    request_timeout_s: float = 300.0,
    api_keys: list[str] | tuple[str, ...] = (),
    limits: ServerLimits | None = None,
) -> FastAPI:
    """The FastAPI app serving ``model`` (a ChatModel or VisionLanguageModel) as ``name``.

    With ``api_keys``, every endpoint wants ``Authorization: Bearer <key>`` (401 otherwise).

    ``name`` defaults to the model's spec; requests must name it in their ``model`` field.
    ``limits`` bound what one request may cost (:class:`~.core.ServerLimits`); without it,
    ``max_tokens_limit`` and ``request_timeout_s`` set those two and the rest keep their defaults.
    """
    limits = limits or ServerLimits(max_tokens=max_tokens_limit, request_timeout_s=request_timeout_s)
    served_name = name or str(getattr(model, "spec", "model"))
    defaults = default_settings or GenerationSettings()
    busy = BusyClock()
    in_flight = InFlight(limits.max_concurrent)
    state: dict[str, _Batcher] = {}

    from contextlib import asynccontextmanager

    @asynccontextmanager
    async def lifespan(_app: FastAPI):  # noqa: ANN202
        state["batcher"] = _Batcher(model, max_batch=max_batch, wait_s=batch_wait_s,
                                    timeout_s=limits.request_timeout_s, busy=busy)
        try:
            yield
        finally:
            state.pop("batcher").close()

    app = create_core_app(title="videoespresso OpenAI-compatible server", name=served_name, limits=limits,
                          busy=busy, in_flight=in_flight, api_keys=api_keys, lifespan=lifespan)

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request) -> JSONResponse:
        req = parse_request(await read_json(request, limits))
        check_model_name(req.model, served_name)
        if req.stream:
            raise RequestError("stream: stream=true is not supported by this server", param="stream")
        check_common(req, limits.max_tokens)
        check_prompt_chars(req.text_chars(), [model])
        with in_flight.slot():
            conversation = to_conversation(req)
            settings = to_settings(req, defaults)
            schema = to_schema(req)
            if any(m.images for m in conversation) and getattr(model, "kind", None) == "chat":
                raise RequestError(
                    f"model {served_name!r} is a text-only chat model and does not accept images",
                    param="messages",
                )
            job = state["batcher"].submit(conversation, settings, schema)
            try:
                generation: Generation = await wait_or_abandon(request, job.future, job.stop)
            except ClientGone:
                return disconnected_response()
            except Exception as exc:  # noqa: BLE001 -- mapped to the status it deserves
                raise as_request_error(exc, "generation") from None
        return JSONResponse(_completion(generation, served_name, settings, cut=job.timed_out))

    return app


def _completion(generation: Generation, name: str, settings: GenerationSettings, cut: bool = False) -> dict[str, Any]:
    prompt = generation.prompt_tokens or 0
    completion = generation.completion_tokens or 0
    finish = "length" if cut or completion >= settings.max_new_tokens else "stop"
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": name,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": generation.text},
                "finish_reason": finish,
                "logprobs": None,
            }
        ],
        "usage": {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
        },
    }


# --------------------------------------------------------------------------- running


def start_server(
    model: Any,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    name: str | None = None,
    log_level: str = "warning",
    **app_options: Any,
) -> ServerHandle:
    """Serve ``model`` from a background thread; returns once the server accepts requests."""
    app = create_app(model, name=name, **app_options)
    return ServerHandle(app, host=host, port=port, name=name or str(getattr(model, "spec", "model")),
                        log_level=log_level)


def run_server(
    model: Any,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    name: str | None = None,
    sock: Any = None,
    log_level: str = "info",
    **app_options: Any,
) -> None:
    """Serve ``model`` in the foreground until Ctrl-C or SIGTERM (the CLI's ``serve``).

    ``sock`` is an already listening socket (from :func:`bind_socket`); otherwise one is bound
    on ``host:port``.
    """
    sock = sock or bind_socket(host, port)
    run_foreground(create_app(model, name=name, **app_options), sock, log_level)
