"""The chat-completions request both servers take, as pydantic models (one definition).

Numbers are typed strictly where JSON would otherwise coerce: a boolean is not an integer or a
number (``"n": true`` is refused, not read as 1), and a flag is a JSON boolean, not ``"yes"``.
Unknown fields are allowed, since clients send many optional OpenAI fields that are not used.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, Strict, ValidationError

from .core import RequestError


def _no_bool(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError("a number is required, not a boolean")
    return value


Integer = Annotated[int, Strict()]
#: An integer or a float, never a boolean.
Number = Annotated[float, BeforeValidator(_no_bool)]
Flag = Annotated[bool, Strict()]


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="allow")


class MediaURL(_Lenient):
    url: str
    detail: str | None = None


class ContentPart(_Lenient):
    type: str
    text: str | None = None
    image_url: MediaURL | str | None = None
    #: the ``ui`` server's video (vLLM and SGLang take it the same way)
    video_url: MediaURL | str | None = None


class Message(_Lenient):
    role: str
    content: str | list[ContentPart] | None = None


class ResponseFormat(_Lenient):
    type: Literal["text", "json_object", "json_schema"]
    json_schema: dict[str, Any] | None = None


class ChatCompletionRequest(_Lenient):
    model: str
    messages: list[Message] = Field(min_length=1)
    temperature: Number | None = None
    top_p: Number | None = None
    max_tokens: Integer | None = None
    max_completion_tokens: Integer | None = None
    seed: Integer | None = None
    stop: str | list[str] | None = None
    #: not an OpenAI parameter; vLLM and SGLang take it too (our clients send it in the body)
    repetition_penalty: Number | None = None
    n: Integer | None = None
    stream: Flag | None = None
    response_format: ResponseFormat | None = None
    #: ``ui`` only: the close-ended options (2-8 strings)
    options: list[str] | None = None
    #: ``ui`` only: JPEG thumbnails of the chosen frames in the reply
    return_frames: Flag | None = None

    @property
    def token_limit(self) -> int | None:
        return self.max_completion_tokens if self.max_completion_tokens is not None else self.max_tokens

    def text_chars(self) -> int:
        """Characters of text in all messages: what a prompt holds at least."""
        total = 0
        for message in self.messages:
            if isinstance(message.content, str):
                total += len(message.content)
            elif message.content:
                total += sum(len(part.text or "") for part in message.content)
        return total


def parse_request(body: Any) -> ChatCompletionRequest:
    """``body`` (parsed JSON) -> the request, or a 400 naming the first bad field."""
    if not isinstance(body, dict):
        raise RequestError("the request body must be a JSON object")
    try:
        return ChatCompletionRequest.model_validate(body)
    except ValidationError as exc:
        err = exc.errors()[0]
        param = ".".join(str(p) for p in err["loc"]) or None
        raise RequestError(f"{param}: {err['msg']}", param=param) from None


def check_common(request: ChatCompletionRequest, max_tokens: int) -> None:
    """What neither server supports, and the token cap, the same way on both."""
    if request.n not in (None, 1):
        raise RequestError("n: only n=1 is supported", param="n")
    limit = request.token_limit
    if limit is not None:
        if limit < 1:
            raise RequestError(f"max_tokens: a positive integer is required, got {limit}", param="max_tokens")
        if limit > max_tokens:
            raise RequestError(f"max_tokens: at most {max_tokens} on this server, got {limit}", param="max_tokens")
