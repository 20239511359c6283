"""The JSON replies the curate stages ask models for, as pydantic models.

Built by functions because the limits are run parameters (and frame numbers are an enum of the
group's frames): ``max_chars`` bounds free-text fields
(a small model under constrained decoding otherwise writes until the token limit and the JSON is
cut off), list lengths follow the config.
"""

from __future__ import annotations

from functools import lru_cache
import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, create_model, field_validator, model_validator

from ..schema import TASK_NAMES

TaskName = Literal[TASK_NAMES]  # type: ignore[valid-type]


_JUNK = re.compile("[\\x00-\\x08\\x0b\\x0c\\x0e-\\x1f\\x7f\\ufffd]")


def clean_text(value: Any) -> Any:
    """Strings with control characters and U+FFFD (bytes of a cut UTF-8 sequence) removed and
    whitespace collapsed, recursively; other values unchanged."""
    if isinstance(value, str):
        return " ".join(_JUNK.sub("", value).split())
    if isinstance(value, list):
        return [clean_text(v) for v in value]
    if isinstance(value, dict):
        return {k: clean_text(v) for k, v in value.items()}
    return value


class _Reply(BaseModel):
    """Base of every reply: unknown keys ignored, text cleaned before the length checks."""

    model_config = ConfigDict(extra="ignore")

    @model_validator(mode="before")
    @classmethod
    def _clean(cls, data: Any) -> Any:
        return clean_text(data)


def _text(max_chars: int | None, min_chars: int = 1) -> object:
    return Field(min_length=min_chars, max_length=max_chars)


def _frame_number(n_frames: int) -> object:
    """Frame numbers 1..n as an enum: a grammar then cannot write an unbounded integer."""
    return Literal[tuple(range(1, max(1, n_frames) + 1))]  # type: ignore[valid-type]


def _question(max_chars: int | None) -> object:
    """A question: one line that ends with a question mark (ASCII or full-width), at least six
    characters, no double quotes. As a pattern the grammar enforces it while decoding: a small
    model otherwise answers the "question" field with "1" or a copied caption."""
    body = f"{{4,{max(4, max_chars - 2)}}}" if max_chars else "{4,}"
    # No double quote or backslash: xgrammar matches a pattern against the raw JSON text of the
    # string, so an allowed '"' lets the model close the string early and write invalid JSON.
    # The pattern carries the length too: xgrammar ignores minLength/maxLength beside a pattern.
    return Field(pattern=f'^[^\\s"\\\\][^\\n"\\\\]{body}[?\uff1f]$')


@lru_cache(maxsize=None)
def qa_schema(n_pairs: int, max_chars: int | None, n_frames: int) -> type[BaseModel]:
    pair = create_model(
        "QAPairReply", __base__=_Reply,
        question=(str, _question(max_chars)), answer=(str, _text(max_chars)), task=(TaskName, ...),
        frames=(list[_frame_number(n_frames)], Field(min_length=1, max_length=min(8, n_frames))),
    )
    return create_model("QAReply", __base__=_Reply, pairs=(list[pair], Field(min_length=1, max_length=n_pairs)))


@lru_cache(maxsize=None)
def judge_schema(max_chars: int | None) -> type[BaseModel]:
    return create_model("JudgeReply", __base__=_Reply, keep=(bool, ...), reason=(str, _text(max_chars, 0)))


@lru_cache(maxsize=None)
def cot_schema(max_objects: int, max_frames: int, max_chars: int | None, n_frames: int) -> type[BaseModel]:
    return create_model(
        "CoTReply", __base__=_Reply,
        core_frames=(list[_frame_number(n_frames)], Field(min_length=1, max_length=min(max_frames, n_frames))),
        key_objects=(
            # key objects are noun phrases (and grounding prompts): a few words, whatever max_chars
            list[Annotated[str, StringConstraints(min_length=1, max_length=min(max_chars or 40, 40))]],
            Field(min_length=min(1, max_objects), max_length=max_objects),
        ),
        evidence=(str, _text(max_chars * 2 if max_chars else None)),
    )


@lru_cache(maxsize=None)
def distractor_schema(min_chars: int, max_chars: int) -> type[BaseModel]:
    """Three wrong options whose lengths stay near the reference answer's."""
    option = Annotated[str, StringConstraints(min_length=min_chars, max_length=max_chars)]
    return create_model(
        "DistractorReply", __base__=_Reply,
        distractors=(list[option], Field(min_length=3, max_length=3)),
        __validators__={"distinct": field_validator("distractors")(_distinct)},
    )


def _distinct(cls: type, options: list[str]) -> list[str]:
    keys = [" ".join(o.lower().split()) for o in options]
    if len(set(keys)) != len(keys):
        raise ValueError("the three distractors must all differ")
    return options
