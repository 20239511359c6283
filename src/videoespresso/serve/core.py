"""The server core shared by ``serve`` (:mod:`.openai_server`) and ``ui`` (:mod:`.videoqa`).

Each server adds only its chat-completions handler (and ``ui`` its uploads and pages); what
guards a request is here, once, so every limit holds on every server:

* API keys (:mod:`.auth`), then a **body limit** (413): a declared ``Content-Length`` over it is
  refused before anything is read, and a chunked body is counted as it streams;
* **JSON** parsed with a **depth limit** (400) and no lone surrogates in any string (400);
* **requests in flight** (429), a **per-request generation time** (the reply so far comes back,
  cut), generation stopped when the **client disconnects**, and ``/health`` answering 503 when
  a generation has run far past that time (a stuck model);
* errors in OpenAI's shape ``{"error": {"message", "type", "param", "code"}}``: bad input 400,
  a model endpoint that is down or failing 502, anything else 500; no message shows a
  server-side temporary or upload path;
* the uvicorn runners: on a background thread (tests) or in the foreground, where SIGTERM stops
  the server as cleanly as Ctrl-C.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import signal
import socket
import tempfile
import threading
import time
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from ..errors import EndpointError, UserError

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------- errors


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

    def response(self, private: Sequence[str] = ()) -> JSONResponse:
        body = {"error": {"message": hide_paths(self.message, private), "type": self.type,
                          "param": self.param, "code": self.code}}
        return JSONResponse(body, status_code=self.status)


def as_request_error(exc: BaseException, doing: str) -> RequestError:
    """The answer to a failure while ``doing`` (e.g. "generation"): the client's fault is a 400,
    a model endpoint's a 502 (our server is fine, the one behind it is not), ours a 500."""
    if isinstance(exc, RequestError):
        return exc
    if isinstance(exc, EndpointError):
        return RequestError(f"{doing} failed: the model endpoint: {exc}", status=502, type="server_error",
                            code="upstream_error")
    if isinstance(exc, UserError):
        return RequestError(str(exc))
    log.error("%s failed", doing, exc_info=exc)
    return RequestError(f"{doing} failed: {type(exc).__name__}: {exc}", status=500, type="server_error")


def hide_paths(message: str, private: Sequence[str] = ()) -> str:
    """``message`` with every path under a private folder (the system temp folder, upload and
    temp folders) cut to its file name, so errors never show where the server keeps files."""
    for root in (*private, tempfile.gettempdir()):
        root = str(root).rstrip("/")
        if root and root in message:
            message = re.sub(re.escape(root) + r"/(?:[^\s'\"/]+/)*", "", message)
    return message


# --------------------------------------------------------------------------- limits


@dataclass
class ServerLimits:
    """What one request may cost, on every server."""

    max_body_bytes: int = 32 * 2**20
    #: Nesting of arrays and objects in a request body; a chat request needs about 6.
    max_json_depth: int = 64
    max_concurrent: int = 64
    max_tokens: int = 4096
    request_timeout_s: float = 300.0

    def __post_init__(self) -> None:
        if min(self.max_body_bytes, self.max_json_depth, self.max_concurrent, self.max_tokens) < 1 or \
                self.request_timeout_s <= 0:
            raise UserError("server limits must be positive (max_body_bytes, max_json_depth, max_concurrent, "
                            "max_tokens, request_timeout_s)")


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


class BodyLimitMiddleware:
    """413 for a request body over ``limit`` bytes, declared or streamed (``exempt`` paths, the
    uploads, enforce their own larger limit as they stream to disk)."""

    def __init__(self, app: Any, limit: int, exempt: tuple[str, ...] = ()) -> None:
        self.app, self.limit, self.exempt = app, limit, exempt

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope.get("path") in self.exempt:
            await self.app(scope, receive, send)
            return
        too_large = f"the request body is over this server's limit of {self.limit} bytes"
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            await drain_body(receive)
            await _send_error(send, 413, too_large, "body_too_large")
            return
        seen = 0

        async def bounded_receive() -> dict[str, Any]:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise RequestError(too_large, status=413, code="body_too_large")
            return message

        await self.app(scope, bounded_receive, send)


_SURROGATE = re.compile("[\ud800-\udfff]")


async def read_json(request: Request, limits: ServerLimits) -> Any:
    """The request body as JSON, nested at most ``limits.max_json_depth`` deep and free of lone
    surrogates (which no model, file system or tokenizer takes); else a 400 naming the field."""
    # One growing buffer (not Starlette's chunk list, joined and kept), decoded and dropped before
    # parsing: a body of megabytes is held twice at most, never three times.
    raw = bytearray()
    async for chunk in request.stream():
        raw += chunk
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise RequestError("the request body is not valid JSON (not UTF-8)", code="invalid_json") from None
    del raw
    try:
        body = json.loads(text)
    except RecursionError:
        # The C decoder stops at the interpreter's recursion limit, long before memory runs out.
        raise RequestError(f"the request body is nested more than {limits.max_json_depth} levels deep",
                           code="json_too_deep") from None
    except json.JSONDecodeError:
        raise RequestError("the request body is not valid JSON", code="invalid_json") from None
    del text
    check_json(body, limits.max_json_depth)
    return body


def check_json(body: Any, max_depth: int) -> None:
    """Walk ``body`` without recursion: refuse nesting past ``max_depth`` and lone surrogates."""
    stack: list[tuple[Any, str, int]] = [(body, "", 1)]
    while stack:
        value, where, depth = stack.pop()
        if isinstance(value, str):
            # isascii is a flag lookup: a megabyte prompt costs nothing unless it has non-ASCII text.
            if not value.isascii() and _SURROGATE.search(value):
                name = where or "body"
                raise RequestError(f"{name}: the text holds a lone surrogate (invalid Unicode)", param=where or None,
                                   code="invalid_text")
            continue
        if not isinstance(value, (dict, list)):
            continue
        if depth > max_depth:
            raise RequestError(f"the request body is nested more than {max_depth} levels deep",
                               code="json_too_deep")
        if isinstance(value, dict):
            for key, item in value.items():
                name = f"{where}.{key}" if where else str(key)
                if not key.isascii() and _SURROGATE.search(key):
                    raise RequestError("a key holds a lone surrogate (invalid Unicode)", code="invalid_text")
                stack.append((item, name, depth + 1))
        else:
            stack.extend((item, f"{where}[{i}]", depth + 1) for i, item in enumerate(value))


def check_prompt_chars(chars: int, models: Sequence[Any]) -> None:
    """Refuse, before any tokenising, a prompt of ``chars`` characters that cannot fit the context
    of one of ``models`` (the bound each backend knows from its vocabulary: ``max_prompt_chars``)."""
    for model in models:
        bound = getattr(model, "max_prompt_chars", None)
        if bound is not None and chars > bound:
            raise RequestError(
                f"messages: the text is {chars} characters, longer than the {model.context_length}-token context "
                f"of {model.spec} can hold (at most {bound} characters)",
                param="messages", code="context_length_exceeded")


class InFlight:
    """Counts the requests being answered; past ``limit`` a request gets 429 at once."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.count = 0
        self._lock = threading.Lock()

    @contextmanager
    def slot(self) -> Iterator[None]:
        with self._lock:
            if self.count >= self.limit:
                raise RequestError(f"the server is busy ({self.limit} requests in flight); retry shortly",
                                   status=429, code="too_many_requests", type="rate_limit_error")
            self.count += 1
        try:
            yield
        finally:
            with self._lock:
                self.count -= 1


class BusyClock:
    """When the model thread's running call began (None when idle), for stuck-model detection."""

    def __init__(self) -> None:
        self.since: float | None = None

    @contextmanager
    def running(self) -> Iterator[None]:
        self.since = time.monotonic()
        try:
            yield
        finally:
            self.since = None

    def busy_s(self) -> float:
        since = self.since
        return 0.0 if since is None else time.monotonic() - since


class StopSignal:
    """What a generation polls to end early: the client went (``abandoned``) or time ran out."""

    def __init__(self, timeout_s: float | None) -> None:
        self.abandoned = threading.Event()
        self.deadline = float("inf") if timeout_s is None else time.monotonic() + timeout_s

    def timed_out(self) -> bool:
        return time.monotonic() >= self.deadline

    def __call__(self) -> bool:
        return self.abandoned.is_set() or self.timed_out()


class ClientGone(Exception):
    """The client disconnected; nothing is left to answer."""


async def wait_or_abandon(request: Request, future: Future, stop: StopSignal) -> Any:
    """The result of ``future`` (work on the model thread), unless the client disconnects first:
    then ``stop.abandoned`` is set, so the generation stops, and :class:`ClientGone` is raised."""
    waiting = asyncio.wrap_future(future)
    while True:
        done, _ = await asyncio.wait({waiting}, timeout=0.2)
        if done:
            return waiting.result()
        if await request.is_disconnected():
            stop.abandoned.set()
            future.cancel()
            waiting.cancel()
            raise ClientGone


def disconnected_response() -> JSONResponse:
    # Nobody reads it; it closes the exchange in the access log.
    return JSONResponse({"error": {"message": "client disconnected", "type": "invalid_request_error",
                                   "param": None, "code": "client_disconnected"}}, status_code=499)


# --------------------------------------------------------------------------- the app


def create_core_app(
    *,
    title: str,
    name: str,
    limits: ServerLimits,
    busy: BusyClock,
    in_flight: InFlight,
    api_keys: Sequence[str] = (),
    lifespan: Any = None,
    private_dirs: Callable[[], Sequence[str]] = lambda: (),
    body_limit_exempt: tuple[str, ...] = (),
) -> FastAPI:
    """A FastAPI app with ``/health``, ``/v1/models``, the error handlers and the guards; the
    server adds its routes. Middleware order (outermost first): API key, body limit, routes."""
    created = int(time.time())
    app = FastAPI(title=title, lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.state.served_name = name
    app.state.limits = limits

    @app.exception_handler(RequestError)
    async def _request_error(_request: Request, exc: RequestError) -> JSONResponse:
        return exc.response(private_dirs())

    @app.exception_handler(Exception)
    async def _unexpected(_request: Request, exc: Exception) -> JSONResponse:
        return as_request_error(exc, "the request").response(private_dirs())

    @app.get("/health")
    async def health() -> JSONResponse:
        busy_s = busy.busy_s()
        # A generation running well past the per-request limit means the model thread is stuck.
        stuck = busy_s > 2 * limits.request_timeout_s
        body = {"status": "stuck" if stuck else "ok", "model": name, "busy_s": round(busy_s, 1),
                "in_flight": in_flight.count}
        return JSONResponse(body, status_code=503 if stuck else 200)

    @app.get("/v1/models")
    async def list_models() -> dict[str, Any]:
        return {"object": "list",
                "data": [{"id": name, "object": "model", "created": created, "owned_by": "videoespresso"}]}

    app.add_middleware(BodyLimitMiddleware, limit=limits.max_body_bytes, exempt=body_limit_exempt)
    if api_keys:
        from .auth import ApiKeyMiddleware

        app.add_middleware(ApiKeyMiddleware, keys=list(api_keys))
    return app


def check_model_name(requested: Any, served: str) -> None:
    if requested != served:
        raise RequestError(f"model {requested!r} is not served here; this server serves {served!r}",
                           status=404, param="model", code="model_not_found")


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
    """An app served from a background thread; ``close()`` (or ``with``) shuts it down and then
    calls ``on_close``."""

    def __init__(self, app: Any, *, host: str = "127.0.0.1", port: int = 0, name: str = "",
                 log_level: str = "warning", on_close: Callable[[], None] | None = None) -> None:
        import uvicorn

        self.app = app
        self.name = name
        self._on_close = on_close
        self._sock = bind_socket(host, port)
        self._server = uvicorn.Server(uvicorn.Config(app, log_level=log_level, lifespan="on", access_log=False))
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self._sock]}, daemon=True,
                                        name="ve-http")
        self._thread.start()
        deadline = time.monotonic() + 60
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self._server.should_exit = True
                self._sock.close()
                raise RuntimeError("the server thread did not start")
            time.sleep(0.01)
        bound_host, bound_port = self._sock.getsockname()[:2]
        self.host, self.port = bound_host, int(bound_port)
        shown = f"[{bound_host}]" if ":" in bound_host else bound_host
        self.url = f"http://{shown}:{self.port}"
        self.base_url = f"{self.url}/v1"

    def close(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=30)
        self._sock.close()
        if self._on_close is not None:
            self._on_close()

    def __enter__(self) -> "ServerHandle":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def run_foreground(app: Any, sock: socket.socket, log_level: str = "info") -> None:
    """Serve ``app`` on ``sock`` until Ctrl-C or SIGTERM; both end in a graceful shutdown and then
    KeyboardInterrupt, so the caller's ``finally`` (removing temporary folders) runs either way."""
    import uvicorn

    def _terminate(_signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt

    # uvicorn re-raises the signal that stopped it once it has shut down; by default SIGTERM would
    # then kill the process before any cleanup.
    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        uvicorn.Server(uvicorn.Config(app, log_level=log_level, lifespan="on")).run(sockets=[sock])
    finally:
        signal.signal(signal.SIGTERM, previous)
        sock.close()


def private_folders(*folders: Path | str | None) -> list[str]:
    return [str(f) for f in folders if f is not None]
