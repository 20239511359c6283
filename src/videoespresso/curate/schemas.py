"""The JSON replies the curate stages ask models for, as pydantic models.

Built by functions because the limits are run parameters: ``max_chars`` bounds free-text fields
(a small model under constrained decoding otherwise writes until the token limit and the JSON is
cut off), list lengths follow the config.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, create_model

from ..schema import TASK_NAMES

TaskName = Literal[TASK_NAMES]  # type: ignore[valid-type]


class _Reply(BaseModel):
    model_config = ConfigDict(extra="ignore")


def _text(max_chars: int | None, min_chars: int = 1) -> object:
    return Field(min_length=min_chars, max_length=max_chars)


@lru_cache(maxsize=None)
def qa_schema(n_pairs: int, max_chars: int | None) -> type[BaseModel]:
    pair = create_model(
        "QAPairReply", __base__=_Reply,
        question=(str, _text(max_chars)), answer=(str, _text(max_chars)), task=(TaskName, ...),
        frames=(list[int], Field(min_length=1, max_length=8)),
    )
    return create_model("QAReply", __base__=_Reply, pairs=(list[pair], Field(min_length=1, max_length=n_pairs)))


@lru_cache(maxsize=None)
def judge_schema(max_chars: int | None) -> type[BaseModel]:
    return create_model("JudgeReply", __base__=_Reply, keep=(bool, ...), reason=(str, _text(max_chars, 0)))


@lru_cache(maxsize=None)
def cot_schema(max_objects: int, max_frames: int, max_chars: int | None) -> type[BaseModel]:
    return create_model(
        "CoTReply", __base__=_Reply,
        core_frames=(list[int], Field(min_length=1, max_length=max_frames)),
        key_objects=(list[str], Field(min_length=0, max_length=max_objects)),
        evidence=(str, _text(max_chars * 2 if max_chars else None)),
    )


@lru_cache(maxsize=None)
def distractor_schema(min_chars: int, max_chars: int) -> type[BaseModel]:
    """Three wrong options whose lengths stay near the reference answer's."""
    option = Annotated[str, StringConstraints(min_length=min_chars, max_length=max_chars)]
    return create_model(
        "DistractorReply", __base__=_Reply, distractors=(list[option], Field(min_length=3, max_length=3))
    )
