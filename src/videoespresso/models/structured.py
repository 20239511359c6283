"""Structured (JSON-schema) output: schema conversion, reply validation, constrained decoding.

Every ``generate`` call may carry a ``schema``: a pydantic model class or a JSON-schema dict.
All backends validate the reply with :func:`validate_reply`; on a mismatch the
:class:`~videoespresso.schema.Generation` keeps the raw text, ``parsed=None`` and the reason in
``error`` (one bad reply never fails a batch).

The ``hf`` backends go further and make the reply valid by construction: decoding is constrained
by a grammar compiled from the schema with `xgrammar <https://github.com/mlc-ai/xgrammar>`_, the
maintained grammar engine behind the structured-output support of vLLM, SGLang and transformers
integrations (fast, CPU-capable). The grammar emits compact JSON (no free whitespace) and honours
``enum``, ``const``, ``pattern``, ``format``, string/array length bounds, numeric ranges,
``required``, ``anyOf`` and ``$ref`` (not ``uniqueItems``: validation afterwards catches that), so
with bounded fields even a random-weight model reaches the end of the object.
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any

from ..errors import StructuredOutputError, UserError

if TYPE_CHECKING:
    import torch

_FENCE_RE = re.compile(r"```(?:json)?\s*(.*?)```", re.DOTALL)


def _is_pydantic_class(schema: Any) -> bool:
    from pydantic import BaseModel

    return isinstance(schema, type) and issubclass(schema, BaseModel)


def schema_to_json(schema: Any) -> dict[str, Any]:
    """The JSON-schema dict of a pydantic model class, a JSON-schema dict or a JSON string."""
    if _is_pydantic_class(schema):
        return schema.model_json_schema()
    if isinstance(schema, dict):
        return dict(schema)
    if isinstance(schema, str):
        try:
            loaded = json.loads(schema)
        except json.JSONDecodeError as exc:
            raise UserError(f"schema string is not valid JSON: {exc}") from None
        if isinstance(loaded, dict):
            return loaded
    raise UserError(
        f"unsupported schema {schema!r}: expected a pydantic model class or a JSON-schema dict"
    )


def schema_name(schema: Any) -> str:
    """A short name for a schema (the pydantic class name or the schema's ``title``)."""
    if _is_pydantic_class(schema):
        return schema.__name__
    return str(schema_to_json(schema).get("title") or "schema")


def _candidates(text: str) -> list[str]:
    """The reply itself, then the inside of a ```json fence, then the outermost JSON-looking span."""
    out = [text.strip()]
    fence = _FENCE_RE.search(text)
    if fence:
        out.append(fence.group(1).strip())
    starts = [i for i in (text.find("{"), text.find("[")) if i >= 0]
    if starts:
        start = min(starts)
        end = text.rfind("}" if text[start] == "{" else "]")
        if start < end:
            out.append(text[start : end + 1])
    return out


def validate_reply(text: str, schema: Any) -> Any:
    """Parse ``text`` as JSON and validate it against ``schema``.

    Returns the pydantic instance when ``schema`` is a pydantic class, else the JSON value.
    Chat models often wrap JSON in a Markdown fence or a sentence; those wrappers are tolerated.
    Raises :class:`StructuredOutputError` (carrying the reply) when nothing validates.
    """
    value: Any = None
    parsed_any = False
    for candidate in _candidates(text):
        try:
            # strict=False: grammar-constrained decoders may emit raw control characters in strings.
            value = json.loads(candidate, strict=False)
        except json.JSONDecodeError:
            continue
        parsed_any = True
        break
    if not parsed_any:
        snippet = text if len(text) <= 200 else text[:200] + "..."
        raise StructuredOutputError(f"reply is not JSON: {snippet!r}", reply=text)
    if _is_pydantic_class(schema):
        from pydantic import ValidationError

        try:
            return schema.model_validate(value)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or '<root>'}: {e['msg']}" for e in exc.errors()
            )
            raise StructuredOutputError(
                f"reply does not match {schema.__name__}: {problems}", reply=text
            ) from None
    import jsonschema

    try:
        jsonschema.validate(value, schema_to_json(schema))
    except jsonschema.ValidationError as exc:
        where = "/".join(str(p) for p in exc.absolute_path) or "<root>"
        raise StructuredOutputError(
            f"reply does not match {schema_name(schema)}: {where}: {exc.message}", reply=text
        ) from None
    return value


def parse_or_error(text: str, schema: Any) -> tuple[Any, str | None]:
    """``(parsed, None)`` when the reply validates, ``(None, reason)`` when it does not."""
    try:
        return validate_reply(text, schema), None
    except StructuredOutputError as exc:
        return None, str(exc)


# --------------------------------------------------------------------------- constrained decoding


class JsonGrammar:
    """Compiles schemas into xgrammar grammars for one tokenizer and builds logits processors.

    One instance per loaded model: the tokenizer analysis is done once, compiled grammars are
    cached by schema.
    """

    def __init__(self, tokenizer: Any, vocab_size: int, stop_token_ids: list[int]) -> None:
        import xgrammar as xgr

        info = xgr.TokenizerInfo.from_huggingface(
            tokenizer, vocab_size=vocab_size, stop_token_ids=stop_token_ids
        )
        self._compiler = xgr.GrammarCompiler(info)
        self._compiled: dict[str, Any] = {}
        # xgrammar sees added special tokens (<|endoftext|>, <|image_pad|> ...) as their literal
        # text, which a JSON string would accept; they are banned outright, except the stop tokens.
        decoder = getattr(tokenizer, "added_tokens_decoder", {}) or {}
        special = {i for i, t in decoder.items() if getattr(t, "special", False)}
        special |= set(getattr(tokenizer, "all_special_ids", []) or [])
        self._banned = sorted(i for i in special if i not in set(stop_token_ids) and 0 <= i < vocab_size)

    def compile(self, schema: Any) -> Any:
        # Not sort_keys: the grammar writes properties in the schema's order, and that order is
        # the order a model reasons in (the question before its answer, frames before evidence).
        key = json.dumps(schema_to_json(schema))
        if key not in self._compiled:
            try:
                self._compiled[key] = self._compiler.compile_json_schema(
                    key, any_whitespace=False, separators=(",", ":"), strict_mode=True
                )
            except Exception as exc:  # xgrammar raises RuntimeError/ValueError on unsupported schemas
                raise UserError(f"cannot compile schema {schema_name(schema)} into a grammar: {exc}") from None
        return self._compiled[key]

    def logits_processor(self, schema: Any) -> "JsonLogitsProcessor":
        """A fresh processor for one ``generate`` call (processors hold per-row matcher state)."""
        return JsonLogitsProcessor(self.compile(schema), banned_token_ids=self._banned)


class JsonLogitsProcessor:
    """A transformers logits processor that masks every token the grammar does not allow.

    Unlike xgrammar's own HF helper it tolerates rows that stop for another reason (a stop
    string) and are then padded: a token the matcher rejects releases that row.
    """

    def __init__(self, compiled: Any, banned_token_ids: list[int] | None = None) -> None:
        self._compiled = compiled
        self._banned = list(banned_token_ids or [])
        self._matchers: list[Any] = []
        self._active: list[bool] = []
        self._bitmask: Any = None
        self._started = False

    def __call__(self, input_ids: "torch.LongTensor", scores: "torch.FloatTensor") -> "torch.FloatTensor":
        import torch
        import xgrammar as xgr

        batch = input_ids.shape[0]
        if not self._matchers:
            self._matchers = [xgr.GrammarMatcher(self._compiled) for _ in range(batch)]
            self._active = [True] * batch
            self._bitmask = xgr.allocate_token_bitmask(batch, self._compiled.tokenizer_info.vocab_size)
        if self._started:
            for i, matcher in enumerate(self._matchers):
                if self._active[i] and not matcher.is_terminated():
                    if not matcher.accept_token(int(input_ids[i, -1])):
                        self._active[i] = False
        self._started = True
        rows = []
        for i, matcher in enumerate(self._matchers):
            if self._active[i] and not matcher.is_terminated():
                matcher.fill_next_token_bitmask(self._bitmask, i)
                rows.append(i)
        if not rows:
            return scores
        masked = scores.float() if scores.device.type == "cpu" else scores
        if masked.device.type not in ("cpu", "cuda"):
            masked = masked.cpu()
        xgr.apply_token_bitmask_inplace(
            masked, self._bitmask.to(masked.device), vocab_size=None, indices=rows
        )
        if self._banned:
            index = masked.new_tensor(rows, dtype=torch.long).unsqueeze(1)
            masked[index, masked.new_tensor(self._banned, dtype=torch.long)] = float("-inf")
        return masked.to(scores.device, scores.dtype)
