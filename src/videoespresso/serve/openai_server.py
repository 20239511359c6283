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

Limits, so that one request cannot hold the model: ``max_tokens`` above ``max_tokens_limit`` is
refused (400); generation stops after ``request_timeout_s`` (the reply so far is returned with
``finish_reason: "length"``, as for a token limit) and as soon as every client of the batch has
disconnected (backends whose ``generate`` takes ``should_stop``, as the hf ones do).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import inspect
import io
import json
import logging
import queue
import socket
import threading
import time
import uuid
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Literal

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..errors import UserError
from ..models.protocols import ChatMessage, Conversation, check_text
from ..schema import Generation, GenerationSettings

log = logging.getLogger(__name__)

_ROLES = {"system": "system", "developer": "system", "user": "user", "assistant": "assistant"}


# --------------------------------------------------------------------------- request models


class _Lenient(BaseModel):
    # Clients send many optional OpenAI fields we do not use (user, metadata, logprobs=False...).
    model_config = ConfigDict(extra="allow")


class _ImageURL(_Lenient):
    url: str
    detail: str | None = None


class _ContentPart(_Lenient):
    type: str
    text: str | None = None
    image_url: _ImageURL | str | None = None


class _Message(_Lenient):
    role: str
    content: str | list[_ContentPart] | None = None


class _ResponseFormat(_Lenient):
    type: Literal["text", "json_object", "json_schema"]
    json_schema: dict[str, Any] | None = None


class ChatCompletionRequest(_Lenient):
    model: str
    messages: list[_Message] = Field(min_length=1)
    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = None
    max_completion_tokens: int | None = None
    seed: int | None = None
    stop: str | list[str] | None = None
    #: not an OpenAI parameter; vLLM and SGLang take it too (our clients send it in the body)
    repetition_penalty: float | None = None
    n: int | None = None
    stream: bool | None = None
    response_format: _ResponseFormat | None = None


class RequestError(Exception):
    """A request the server rejects, with the HTTP status and OpenAI's error fields."""

    def __init__(
        self,
        message: str,
        *,
        status: int = 400,
        param: str | None = None,
        code: str | None = None,
        type: str = "invalid_request_error",
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.param = param
        self.code = code
        self.type = type

    def response(self) -> JSONResponse:
        body = {
            "error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}
        }
        return JSONResponse(body, status_code=self.status)


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


def to_settings(
    request: ChatCompletionRequest, default: GenerationSettings, max_tokens_limit: int | None = None
) -> GenerationSettings:
    values = default.model_dump()
    if request.temperature is not None:
        values["temperature"] = request.temperature
    if request.top_p is not None:
        values["top_p"] = request.top_p
    limit = request.max_completion_tokens if request.max_completion_tokens is not None else request.max_tokens
    if limit is not None:
        values["max_new_tokens"] = limit
    if limit is not None and max_tokens_limit is not None and limit > max_tokens_limit:
        raise RequestError(f"max_tokens: at most {max_tokens_limit} on this server, got {limit}", param="max_tokens")
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
    #: time.monotonic() after which generation for this request stops.
    deadline: float = float("inf")
    #: Set when the client has gone: its generation need not go on.
    abandoned: threading.Event = field(default_factory=threading.Event)
    #: Set when the time limit cut the reply short.
    timed_out: bool = False
    future: Future = field(default_factory=Future)


class _Batcher:
    """One worker thread that owns the model and batches jobs with equal settings and schema."""

    def __init__(self, model: Any, max_batch: int, wait_s: float, timeout_s: float | None = None) -> None:
        self.model = model
        self.max_batch = max_batch
        self.wait_s = wait_s
        self.timeout_s = timeout_s
        self._stoppable = "should_stop" in inspect.signature(model.generate).parameters
        #: time.monotonic() when the running generate call began; None when idle.
        self.busy_since: float | None = None
        self._queue: queue.Queue[_Job | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="ve-serve-model", daemon=True)
        self._thread.start()

    def submit(self, conversation: Conversation, settings: GenerationSettings, schema: dict | None) -> _Job:
        group = json.dumps([settings.model_dump(mode="json"), schema], sort_keys=True)
        job = _Job(conversation, settings, schema, group)
        if self.timeout_s is not None:
            job.deadline = time.monotonic() + self.timeout_s
        self._queue.put(job)
        return job

    def _call(self, jobs: list[_Job]) -> list[Generation]:
        def should_stop() -> bool:
            now = time.monotonic()
            return all(job.abandoned.is_set() or now >= job.deadline for job in jobs)

        extra: dict[str, Any] = {"should_stop": should_stop} if self._stoppable else {}
        self.busy_since = time.monotonic()
        try:
            results = self.model.generate(
                [job.conversation for job in jobs], jobs[0].settings, jobs[0].schema, **extra
            )
        finally:
            self.busy_since = None
        now = time.monotonic()
        for job in jobs:
            job.timed_out = now >= job.deadline
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
        if job.abandoned.is_set():
            job.future.set_exception(RequestError("the client disconnected", status=499))
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
) -> FastAPI:
    """The FastAPI app serving ``model`` (a ChatModel or VisionLanguageModel) as ``name``.

    With ``api_keys``, every endpoint wants ``Authorization: Bearer <key>`` (401 otherwise).

    ``name`` defaults to the model's spec; requests must name it in their ``model`` field.
    ``max_tokens_limit`` and ``request_timeout_s`` bound what one request may cost.
    """
    if max_tokens_limit < 1 or request_timeout_s <= 0:
        raise UserError("max_tokens_limit must be at least 1 and request_timeout_s positive")
    served_name = name or str(getattr(model, "spec", "model"))
    defaults = default_settings or GenerationSettings()
    created = int(time.time())
    state: dict[str, _Batcher] = {}

    from contextlib import asynccontextmanager

    @asynccontextmanager
    async def lifespan(_app: FastAPI):  # noqa: ANN202
        state["batcher"] = _Batcher(model, max_batch=max_batch, wait_s=batch_wait_s, timeout_s=request_timeout_s)
        try:
            yield
        finally:
            state.pop("batcher").close()

    app = FastAPI(title="videoespresso OpenAI-compatible server", lifespan=lifespan)

    @app.exception_handler(RequestError)
    async def _request_error(_request: Request, exc: RequestError) -> JSONResponse:
        return exc.response()

    @app.get("/v1/models")
    async def list_models() -> dict[str, Any]:
        return {
            "object": "list",
            "data": [{"id": served_name, "object": "model", "created": created, "owned_by": "videoespresso"}],
        }

    @app.get("/health")
    async def health() -> JSONResponse:
        since = state["batcher"].busy_since
        busy = 0.0 if since is None else time.monotonic() - since
        # A generation running well past the per-request limit means the model thread is stuck.
        stuck = busy > 2 * request_timeout_s
        body = {"status": "stuck" if stuck else "ok", "model": served_name, "busy_s": round(busy, 1)}
        return JSONResponse(body, status_code=503 if stuck else 200)

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request) -> JSONResponse:
        try:
            body = await request.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise RequestError("the request body is not valid JSON") from None
        try:
            req = ChatCompletionRequest.model_validate(body)
        except ValidationError as exc:
            err = exc.errors()[0]
            param = ".".join(str(p) for p in err["loc"]) or None
            raise RequestError(f"{param}: {err['msg']}", param=param) from None
        if req.model != served_name:
            raise RequestError(
                f"model {req.model!r} is not served here; this server serves {served_name!r}",
                status=404,
                param="model",
                code="model_not_found",
            )
        if req.stream:
            raise RequestError("stream=true is not supported by this server", param="stream")
        if req.n not in (None, 1):
            raise RequestError("only n=1 is supported", param="n")
        conversation = to_conversation(req)
        settings = to_settings(req, defaults, max_tokens_limit)
        schema = to_schema(req)
        if any(m.images for m in conversation) and getattr(model, "kind", None) == "chat":
            raise RequestError(
                f"model {served_name!r} is a text-only chat model and does not accept images",
                param="messages",
            )
        job = state["batcher"].submit(conversation, settings, schema)
        waiting = asyncio.wrap_future(job.future)
        try:
            while True:
                done, _ = await asyncio.wait({waiting}, timeout=0.2)
                if done:
                    break
                if await request.is_disconnected():
                    job.abandoned.set()
                    job.future.cancel()
                    waiting.cancel()
                    return JSONResponse({"error": {"message": "client disconnected"}}, status_code=499)
            generation: Generation = waiting.result()
        except RequestError:
            raise
        except UserError as exc:
            raise RequestError(str(exc)) from None
        except Exception as exc:  # noqa: BLE001 -- a backend failure is reported, not hidden
            log.exception("generation failed")
            raise RequestError(
                f"generation failed: {type(exc).__name__}: {exc}", status=500, type="server_error"
            ) from None
        return JSONResponse(_completion(generation, served_name, settings, cut=job.timed_out))

    if api_keys:
        from .auth import ApiKeyMiddleware

        app.add_middleware(ApiKeyMiddleware, keys=list(api_keys))
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


def bind_socket(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` (port 0 = any free port), or a clear UserError."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise UserError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    sock.listen(128)
    return sock


class ServerHandle:
    """A server running in a background thread; ``close()`` (or ``with``) shuts it down."""

    def __init__(self, server: Any, thread: threading.Thread, sock: socket.socket, name: str) -> None:
        self._server = server
        self._thread = thread
        self._sock = sock
        self.name = name
        host, port = sock.getsockname()[:2]
        self.host, self.port = host, int(port)
        shown = f"[{host}]" if ":" in host else host
        self.url = f"http://{shown}:{self.port}"
        self.base_url = f"{self.url}/v1"

    def close(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=30)
        self._sock.close()

    def __enter__(self) -> "ServerHandle":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


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
    import uvicorn

    app = create_app(model, name=name, **app_options)
    sock = bind_socket(host, port)
    config = uvicorn.Config(app, log_level=log_level, lifespan="on", access_log=False)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True, name="ve-serve")
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            sock.close()
            raise RuntimeError("the server thread did not start")
        time.sleep(0.01)
    return ServerHandle(server, thread, sock, name or str(getattr(model, "spec", "model")))


def run_server(
    model: Any,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    name: str | None = None,
    sock: socket.socket | None = None,
    log_level: str = "info",
    **app_options: Any,
) -> None:
    """Serve ``model`` in the foreground until interrupted (the CLI's ``serve``).

    ``sock`` is an already listening socket (from :func:`bind_socket`); otherwise one is bound
    on ``host:port``.
    """
    import uvicorn

    sock = sock or bind_socket(host, port)
    app = create_app(model, name=name, **app_options)
    try:
        uvicorn.Server(uvicorn.Config(app, log_level=log_level, lifespan="on")).run(sockets=[sock])
    finally:
        sock.close()
