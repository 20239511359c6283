"""Asking a chat model for JSON: constrained when the backend can, repaired when trivially
broken, retried once with the error shown to the model, then given up with the replies kept."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Sequence

from pydantic import BaseModel, ValidationError

from ..models.protocols import ChatModel, Conversation, assistant, user
from ..prompts import Prompt, load_prompt
from ..schema import GenerationSettings

RETRY_PROMPT = "curate/json_retry"

_FENCE_RE = re.compile(r"```(?:json)?\s*(.*?)```", re.DOTALL | re.IGNORECASE)
_TRAILING_COMMA_RE = re.compile(r",\s*([}\]])")


@dataclass
class JsonReply:
    """The outcome of one request: the validated object, or why there is none, plus every reply."""

    value: BaseModel | None
    replies: list[str]
    error: str | None = None

    @property
    def raw(self) -> str:
        return "\n--- retry ---\n".join(self.replies)


def repair_json(text: str) -> Any:
    """Parse ``text`` as JSON, fixing only trivial damage; raise ValueError when that fails.

    Trivial: code fences, prose around one JSON object, trailing commas, unclosed brackets at the
    end (a reply cut off by the token limit right after a complete value), raw control characters
    inside strings (which grammars for JSON strings often let through).
    """
    candidates = [text.strip()]
    fenced = _FENCE_RE.search(text)
    if fenced:
        candidates.append(fenced.group(1).strip())
    start = text.find("{")
    if start >= 0:
        end = text.rfind("}")
        if end > start:
            candidates.append(text[start : end + 1])
        candidates.append(_close_brackets(text[start:]))
    last_error = "no JSON object found"
    for candidate in candidates:
        for variant in (candidate, _TRAILING_COMMA_RE.sub(r"\1", candidate)):
            if not variant:
                continue
            try:
                return json.loads(variant, strict=False)
            except json.JSONDecodeError as exc:
                last_error = f"{exc.msg} at position {exc.pos}"
    raise ValueError(f"not valid JSON: {last_error}")


def _close_brackets(text: str) -> str:
    stack: list[str] = []
    in_string = escaped = False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "{[":
            stack.append("}" if ch == "{" else "]")
        elif ch in "}]" and stack:
            stack.pop()
    if in_string:
        return ""
    return text.rstrip().rstrip(",") + "".join(reversed(stack))


def interpret(text: str, parsed: Any, schema: type[BaseModel]) -> tuple[BaseModel | None, str | None]:
    """Validate a reply against ``schema``: the backend's parsed object first, else the text."""
    if parsed is not None:
        try:
            return schema.model_validate(parsed), None
        except ValidationError as exc:
            return None, _short(exc)
    try:
        data = repair_json(text)
    except ValueError as exc:
        return None, str(exc)
    try:
        return schema.model_validate(data), None
    except ValidationError as exc:
        return None, _short(exc)


def _short(exc: ValidationError) -> str:
    problems = [
        f"{'.'.join(str(p) for p in err['loc']) or 'reply'}: {err['msg']}" for err in exc.errors()[:5]
    ]
    return "does not match the schema: " + "; ".join(problems)


def ask_json(
    model: ChatModel,
    conversations: Sequence[Conversation],
    schema: type[BaseModel],
    settings: GenerationSettings,
    *,
    constrained: bool = True,
    retry_prompt: Prompt | None = None,
) -> tuple[list[JsonReply], int]:
    """One reply per conversation, and how many replies the model computed (cache hits excluded).

    With ``constrained`` the schema goes to the backend (grammar-constrained decoding on ``hf``,
    JSON mode on OpenAI-compatible endpoints); either way the reply is validated here.
    """
    if not conversations:
        return [], 0
    want = schema if constrained else None
    gens = model.generate(list(conversations), settings, schema=want)
    replies: list[JsonReply] = []
    for gen in gens:
        value, error = interpret(gen.text, getattr(gen, "parsed", None) if constrained else None, schema)
        replies.append(JsonReply(value, [gen.text], error))
    sent = sum(not g.cached for g in gens)
    again = [i for i, r in enumerate(replies) if r.value is None]
    if again:
        retry = retry_prompt or load_prompt(RETRY_PROMPT)
        followups = [
            list(conversations[i])
            + [assistant(replies[i].replies[0]), user(retry.render(error=replies[i].error))]
            for i in again
        ]
        second = model.generate(followups, settings, schema=want)
        sent += sum(not g.cached for g in second)
        for i, gen in zip(again, second):
            value, error = interpret(gen.text, getattr(gen, "parsed", None) if constrained else None, schema)
            replies[i] = JsonReply(value, replies[i].replies + [gen.text], error)
    return replies, sent
