"""Any OpenAI-compatible chat endpoint as a ``ChatModel`` / ``VisionLanguageModel``.

Works with OpenAI itself and with the servers that speak its chat-completions API (vLLM, SGLang,
Ollama, LM Studio, and ``videoespresso serve``). It uses the official ``openai`` SDK, which owns
timeouts and retries with exponential backoff; this module adds batching over a bounded thread
pool, image encoding, structured output and errors that name the endpoint.

Retries are this module's, not the SDK's, so that they obey two budgets: a per-request
``deadline`` (all attempts and waits together, Retry-After included) and a run-level circuit
breaker (``breaker_after`` consecutive requests that could not reach the endpoint open it; every
later call raises :class:`~videoespresso.errors.EndpointDownError` at once instead of paying a
timeout per item).

The API key is read from the environment (``OPENAI_API_KEY`` unless ``api_key_env`` says
otherwise) and handed to the SDK only: it is never logged, kept on this object, written into a
:class:`~videoespresso.schema.Generation` or used in a cache key.
"""

from __future__ import annotations

import base64
import io
import os
import re
import threading
import time
from concurrent.futures import CancelledError, Future, ThreadPoolExecutor, wait
from typing import TYPE_CHECKING, Any, Literal, Sequence

from ..errors import ConfigError, EndpointDownError, EndpointError, StructuredOutputError
from ..schema import Generation, GenerationSettings
from .protocols import Conversation, JsonSchema, check_text

if TYPE_CHECKING:
    from PIL.Image import Image

#: Sent when a custom endpoint is used with no key set: vLLM, SGLang, Ollama and LM Studio
#: accept any value, and the SDK refuses to build a client without one.
PLACEHOLDER_API_KEY = "videoespresso-no-key"

ImageFormat = Literal["jpeg", "png"]
#: Statuses worth another attempt (as the openai SDK retries them); others fail at once.
_RETRY_STATUSES = frozenset({408, 409, 429})
_BACKOFF_S = 0.5
_BACKOFF_MAX_S = 8.0


class BatchEndpointError(EndpointError):
    """An :class:`EndpointError` raised by a batched call, keeping the replies that did arrive.

    ``completed[i]`` is the :class:`Generation` of conversation ``i``, or ``None`` when that
    request failed or was cancelled; a response cache stores the finished ones before re-raising.
    """

    def __init__(self, message: str, completed: list[Generation | None]) -> None:
        super().__init__(message)
        self.completed = completed


class OpenAIModel:
    """A chat/vision model behind an OpenAI-compatible ``/chat/completions`` endpoint.

    ``options``: ``image_format`` ("jpeg", the default, or "png" for lossless frames),
    ``jpeg_quality`` (default 90), ``token_limit_param`` ("max_tokens", the default, or
    "max_completion_tokens" which OpenAI's reasoning models require), ``strict_schema``
    (send ``strict: true`` with a JSON schema; OpenAI then demands its strict subset of JSON
    schema) and ``extra_body`` (a dict merged into every request, for server-specific options).

    ``timeout`` bounds one attempt, ``deadline`` one request with all its retries (default: twice
    ``timeout``), ``breaker_after`` the consecutive unreachable requests before the breaker opens.
    """

    def __init__(
        self,
        model: str,
        *,
        base_url: str | None = None,
        spec: str,
        timeout: float = 60.0,
        max_retries: int = 3,
        max_concurrency: int = 8,
        api_key_env: str = "OPENAI_API_KEY",
        deadline: float | None = None,
        breaker_after: int = 5,
        **options: Any,
    ) -> None:
        try:
            import openai
        except ImportError:
            raise ConfigError(
                f"{spec}: the openai package is not installed (pip install 'videoespresso[api]')"
            ) from None

        self.spec = spec
        self.model = model
        self.timeout = float(timeout)
        self.max_retries = int(max_retries)
        self.max_concurrency = int(max_concurrency)
        if self.timeout <= 0:
            raise ConfigError(f"{spec}: timeout must be positive, got {timeout}")
        if self.max_retries < 0:
            raise ConfigError(f"{spec}: max_retries must be 0 or more, got {max_retries}")
        if self.max_concurrency < 1:
            raise ConfigError(f"{spec}: max_concurrency must be at least 1, got {max_concurrency}")
        self.deadline = float(deadline) if deadline is not None else 2 * self.timeout
        if self.deadline <= 0:
            raise ConfigError(f"{spec}: deadline must be positive, got {deadline}")
        if int(breaker_after) < 1:
            raise ConfigError(f"{spec}: breaker_after must be at least 1, got {breaker_after}")
        self._breaker = _CircuitBreaker(int(breaker_after))
        self.image_format: ImageFormat = options.pop("image_format", "jpeg")
        self.jpeg_quality = int(options.pop("jpeg_quality", 90))
        self.token_limit_param: str = options.pop("token_limit_param", "max_tokens")
        self.strict_schema = bool(options.pop("strict_schema", False))
        self.extra_body: dict[str, Any] = dict(options.pop("extra_body", None) or {})
        if self.image_format not in ("jpeg", "png"):
            raise ConfigError(f"{spec}: image_format must be 'jpeg' or 'png', got {self.image_format!r}")
        if self.token_limit_param not in ("max_tokens", "max_completion_tokens"):
            raise ConfigError(
                f"{spec}: token_limit_param must be 'max_tokens' or 'max_completion_tokens'"
            )
        if options:
            raise ConfigError(
                f"{spec}: unknown option(s) for an openai endpoint: {', '.join(sorted(options))}"
            )

        api_key = os.environ.get(api_key_env) or None
        if api_key is None:
            if base_url is None:
                raise EndpointError(
                    f"{spec}: no API key; set the environment variable {api_key_env} "
                    "(or name a local endpoint, e.g. openai:my-model@http://localhost:8000/v1)"
                )
            api_key = PLACEHOLDER_API_KEY
        self._client = openai.OpenAI(api_key=api_key, base_url=base_url, timeout=self.timeout, max_retries=0)
        self.endpoint = str(self._client.base_url).rstrip("/")

    # ------------------------------------------------------------------ generation

    def generate(
        self,
        conversations: Sequence[Conversation],
        settings: GenerationSettings | None = None,
        schema: JsonSchema | None = None,
    ) -> list[Generation]:
        """One chat completion per conversation, at most ``max_concurrency`` in flight."""
        settings = settings or GenerationSettings()
        conversations = list(conversations)
        if not conversations:
            return []
        check_text(conversations)
        self._breaker.check(self._where())
        params = self._request_params(settings, schema)
        requests = [self._messages(conv) for conv in conversations]
        if len(requests) == 1:
            try:
                return [self._complete(requests[0], params, settings, schema)]
            except Exception as exc:  # noqa: BLE001 -- turned into EndpointError or re-raised
                raise self._error(exc, 0, 1) from None

        results: list[Generation | None] = [None] * len(requests)
        errors: dict[int, BaseException] = {}
        workers = min(self.max_concurrency, len(requests))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="openai") as pool:
            futures: dict[Future[Generation], int] = {
                pool.submit(self._complete, messages, params, settings, schema): index
                for index, messages in enumerate(requests)
            }
            pending = set(futures)
            while pending:
                done, pending = wait(pending, return_when="FIRST_EXCEPTION")
                for fut in done:
                    index = futures[fut]
                    try:
                        results[index] = fut.result()
                    except CancelledError:
                        pass
                    except Exception as exc:  # noqa: BLE001 -- collected, raised below
                        errors[index] = exc
                if errors:
                    # The endpoint is down or rejects us: do not queue the rest behind retries.
                    for fut in pending:
                        fut.cancel()
        if errors:
            first = min(errors)
            down = next((e for e in errors.values() if isinstance(e, EndpointDownError)), None)
            if down is not None:
                raise EndpointDownError(str(down), results) from None
            err = self._error(errors[first], first, len(requests), failed=len(errors))
            raise BatchEndpointError(str(err), results) from None
        return [r for r in results if r is not None]

    def _request_params(self, settings: GenerationSettings, schema: JsonSchema | None) -> dict[str, Any]:
        params: dict[str, Any] = {
            "model": self.model,
            "temperature": settings.temperature,
            "top_p": settings.top_p,
            self.token_limit_param: settings.max_new_tokens,
        }
        if settings.seed is not None:
            params["seed"] = settings.seed
        if settings.stop:
            params["stop"] = list(settings.stop)
        if schema is not None:
            from .structured import schema_name, schema_to_json

            json_schema = schema_to_json(schema)
            params["response_format"] = {
                "type": "json_schema",
                "json_schema": {
                    "name": _api_schema_name(schema_name(schema)),
                    "schema": json_schema,
                    "strict": self.strict_schema,
                },
            }
        extra = dict(self.extra_body or {})
        if settings.repetition_penalty is not None:
            # not an OpenAI parameter: vLLM and SGLang read it from the body's extra fields
            extra.setdefault("repetition_penalty", settings.repetition_penalty)
        if extra:
            params["extra_body"] = extra
        return params

    def _messages(self, conversation: Conversation) -> list[dict[str, Any]]:
        messages: list[dict[str, Any]] = []
        for turn in conversation:
            # A video goes as its frames, one image part each: every OpenAI-compatible server
            # (vLLM, SGLang, OpenAI) accepts several images, few accept inline video.
            pictures = turn.visuals
            if not pictures:
                messages.append({"role": turn.role, "content": turn.text})
                continue
            parts: list[dict[str, Any]] = [
                {"type": "image_url", "image_url": {"url": self.image_data_url(img)}}
                for img in pictures
            ]
            if turn.text:
                parts.append({"type": "text", "text": turn.text})
            messages.append({"role": turn.role, "content": parts})
        return messages

    def image_data_url(self, image: "Image") -> str:
        """``data:image/...;base64,...`` for one PIL image in this backend's format."""
        buffer = io.BytesIO()
        if self.image_format == "png":
            image.save(buffer, format="PNG")
            mime = "image/png"
        else:
            rgb = image if image.mode in ("RGB", "L") else image.convert("RGB")
            rgb.save(buffer, format="JPEG", quality=self.jpeg_quality)
            mime = "image/jpeg"
        return f"data:{mime};base64,{base64.b64encode(buffer.getvalue()).decode('ascii')}"

    def _complete(
        self,
        messages: list[dict[str, Any]],
        params: dict[str, Any],
        settings: GenerationSettings,
        schema: JsonSchema | None,
    ) -> Generation:
        response = self._create_with_retries(messages, params)
        if not response.choices:
            raise EndpointError(f"openai endpoint {self.endpoint}: the reply has no choices")
        text = response.choices[0].message.content or ""
        usage = response.usage
        parsed: Any = None
        error: str | None = None
        if schema is not None:
            from .structured import validate_reply

            try:
                parsed = validate_reply(text, schema)
            except StructuredOutputError as exc:
                error = str(exc)
        return Generation(
            text=text,
            model=self.spec,
            settings=settings,
            prompt_tokens=usage.prompt_tokens if usage else None,
            completion_tokens=usage.completion_tokens if usage else None,
            parsed=parsed,
            error=error,
        )

    def _create_with_retries(self, messages: list[dict[str, Any]], params: dict[str, Any]) -> Any:
        import openai

        start = time.monotonic()
        attempt = 0
        while True:
            self._breaker.check(self._where())
            left = self.deadline - (time.monotonic() - start)
            try:
                response = _call_within(
                    left,
                    lambda: self._client.chat.completions.create(
                        messages=messages, timeout=max(0.001, min(self.timeout, left)), **params
                    ),
                )
            except ValueError as exc:
                # The SDK parses the body itself; a proxy's HTML page arrives as a JSONDecodeError.
                self._breaker.success()
                raise EndpointError(f"the reply is not a JSON chat completion ({exc})") from None
            except (openai.APIConnectionError, _DeadlineExpired) as exc:  # also APITimeoutError
                error: Exception = exc
                unreachable = True
            except openai.APIStatusError as exc:
                error, unreachable = exc, False
                if exc.status_code not in _RETRY_STATUSES and exc.status_code < 500:
                    self._breaker.success()
                    raise
            else:
                self._breaker.success()
                return response
            wait = _retry_after(error)
            if wait is None:
                wait = min(_BACKOFF_MAX_S, _BACKOFF_S * 2**attempt)
            elapsed = time.monotonic() - start
            if attempt >= self.max_retries or elapsed + wait >= self.deadline:
                if unreachable:
                    self._breaker.failure()
                else:
                    self._breaker.success()
                out_of_time = attempt < self.max_retries
                raise _GaveUp(error, attempt + 1, out_of_time, elapsed) from None
            time.sleep(wait)
            attempt += 1

    # ------------------------------------------------------------------ errors

    def _where(self) -> str:
        return f"openai endpoint {self.endpoint} (model {self.model!r})"

    def _error(self, exc: BaseException, index: int, total: int, failed: int = 1) -> EndpointError:
        import openai

        tries = ""
        if isinstance(exc, _GaveUp):
            if exc.out_of_time:
                tries = f" (gave up after {exc.attempts} attempt(s): the {self.deadline:g} s deadline)"
            elif exc.attempts > 1:
                tries = f" (after {exc.attempts} attempts)"
            exc = exc.error
        if isinstance(exc, EndpointError):
            reason = str(exc)
        elif isinstance(exc, openai.APITimeoutError):
            reason = f"no reply within {self.timeout:g} s (timed out)"
        elif isinstance(exc, _DeadlineExpired):
            reason = f"{exc} (timed out)"
        elif isinstance(exc, openai.APIConnectionError):
            reason = f"cannot connect: {_root_cause(exc)}"
        elif isinstance(exc, openai.APIStatusError):
            reason = f"HTTP {exc.status_code}: {_status_message(exc)}"
        elif isinstance(exc, openai.OpenAIError):
            reason = _root_cause(exc)
        else:
            raise exc
        if isinstance(exc, EndpointDownError):
            return exc
        where = f"conversation {index} of {total}" if total > 1 else "request"
        more = f"; {failed} of {total} requests failed" if failed > 1 else ""
        return EndpointError(f"{self._where()}, {where}: {reason}{tries}{more}")

    # ------------------------------------------------------------------ lifecycle

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> "OpenAIModel":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"OpenAIModel(spec={self.spec!r}, endpoint={self.endpoint!r})"


def _call_within(seconds: float, call: Any) -> Any:
    """``call()``, or :class:`_DeadlineExpired` once ``seconds`` have passed.

    httpx's timeouts bound each read, so a body dripping one byte at a time never times out;
    the deadline has to be kept from outside. The abandoned call finishes in a daemon thread.
    """
    outcome: dict[str, Any] = {}
    done = threading.Event()

    def run() -> None:
        try:
            outcome["value"] = call()
        except BaseException as exc:  # noqa: BLE001 -- re-raised in the caller's thread
            outcome["error"] = exc
        done.set()

    threading.Thread(target=run, name="openai-request", daemon=True).start()
    if not done.wait(max(0.0, seconds)):
        raise _DeadlineExpired(f"no complete reply within the {seconds:.3g} s left of the deadline")
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


class _DeadlineExpired(Exception):
    """A request still unanswered when its deadline ran out (counts as unreachable)."""


class _GaveUp(Exception):
    """The last error of a request whose retries or deadline ran out."""

    def __init__(self, error: Exception, attempts: int, out_of_time: bool, elapsed: float) -> None:
        super().__init__(str(error))
        self.error = error
        self.attempts = attempts
        self.out_of_time = out_of_time
        self.elapsed = elapsed


class _CircuitBreaker:
    """Opens after ``threshold`` consecutive requests that could not reach the endpoint.

    Shared by every thread of one model object; it stays open, because a run that cannot reach
    its endpoint should stop and be resumed, not spend a timeout on each remaining item.
    """

    def __init__(self, threshold: int) -> None:
        self.threshold = threshold
        self._failures = 0
        self._lock = threading.Lock()

    def check(self, where: str) -> None:
        with self._lock:
            failures = self._failures
        if failures >= self.threshold:
            raise EndpointDownError(
                f"{where}: {failures} consecutive requests could not reach the endpoint; "
                "stopping (rerun to resume once it is back)"
            )

    def failure(self) -> None:
        with self._lock:
            self._failures += 1

    def success(self) -> None:
        with self._lock:
            if self._failures < self.threshold:
                self._failures = 0


def _retry_after(exc: Exception) -> float | None:
    """Seconds asked for by a Retry-After header (seconds or an HTTP date), if any."""
    from email.utils import parsedate_to_datetime

    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None)
    value = headers.get("retry-after") if headers is not None else None
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


def _api_schema_name(name: str) -> str:
    # OpenAI requires ^[a-zA-Z0-9_-]{1,64}$ for the schema name.
    return re.sub(r"[^a-zA-Z0-9_-]+", "_", name).strip("_")[:64] or "reply"


def _root_cause(exc: BaseException) -> str:
    seen: set[int] = set()
    inner: BaseException = exc
    while (nxt := inner.__cause__ or inner.__context__) is not None and id(nxt) not in seen:
        seen.add(id(nxt))
        inner = nxt
    text = str(inner).strip() or type(inner).__name__
    return re.sub(r"^\[Errno -?\d+\]\s*", "", text)


def _status_message(exc: Any) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and inner.get("message"):
            return str(inner["message"])
        if isinstance(body.get("detail"), str):
            return body["detail"]
    return str(getattr(exc, "message", "") or exc)
