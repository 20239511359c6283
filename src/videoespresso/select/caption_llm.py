"""VideoQA-SC's selector: a small VLM captions candidate frames, a small chat LLM picks the
core frames from the question and the numbered captions.

The LLM is asked for JSON ``{"frames": [numbers]}`` (numbers as shown, 1-based), under a schema
when the backend supports constrained output. Its reply is read leniently and repaired:

* JSON anywhere in the reply, else every integer in the prose;
* numbers outside ``1..count`` are dropped, repeats dropped, at most ``max_frames`` kept (in the
  order the model gave them);
* when nothing valid remains (an empty list, no numbers, all out of range) the **fallback rule**
  applies: ``fallback_frames`` candidates chosen by the official uniform rule over the candidates.

Every repair and every fallback is counted in :attr:`FrameSelector.stats` by reason, and a
fallback is named in :attr:`Selection.fallback`.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Literal, Sequence

from pydantic import BaseModel, Field, create_model

from ..errors import StructuredOutputError
from ..schema import Caption, FrameRef, GenerationSettings, Selection
from .base import (
    CandidateMixin,
    FrameSelector,
    open_reader,
    uniform_indices,
)

_INT_RE = re.compile(r"-?\d+")


class CoreFrames(BaseModel):
    """The reply the selector LLM is asked for."""

    frames: list[int]


@lru_cache(maxsize=256)
def core_frames_schema(count: int, max_frames: int) -> type[CoreFrames]:
    """:class:`CoreFrames` with the numbers an enum of ``1..count`` and at most ``max_frames`` of
    them: under constrained decoding a small model can then neither write an out-of-range number
    nor list frames until the token limit cuts the JSON (SmolLM2-135M did both with the open
    schema: 85 % of its replies needed a repair)."""
    number = Literal[tuple(range(1, max(1, count) + 1))]  # type: ignore[valid-type]
    return create_model(
        "CoreFrames", __base__=CoreFrames,
        frames=(list[number], Field(min_length=1, max_length=max(1, min(max_frames, count)))),
    )


def frames_reply(numbers: Sequence[int]) -> str:
    """The reply naming ``numbers`` exactly as the constrained decoder writes it: compact JSON
    (the grammar allows no whitespace). Training targets are rendered by this, not by
    ``json.dumps`` with its default ``", "`` separators: a spaced target is a string the grammar
    refuses from its fourth token on, so a model trained on it was steered off its training
    distribution after ``{"frames":`` at every step of inference."""
    return json.dumps({"frames": [int(n) for n in numbers]}, separators=(",", ":"))


@dataclass
class ParsedReply:
    """Frame positions (0-based, in the model's order) read from a reply, and what was repaired."""

    positions: list[int] = field(default_factory=list)
    #: Repairs applied: ``prose``, ``out_of_range``, ``duplicates``, ``too_many``.
    repairs: list[str] = field(default_factory=list)
    #: Why nothing usable was found (then the fallback rule applies), else None.
    failure: str | None = None


def _json_values(text: str) -> list[Any] | None:
    """The frame list of the first JSON object or array in ``text``, or None."""
    decoder = json.JSONDecoder()
    for match in re.finditer(r"[\[{]", text):
        try:
            value, _ = decoder.raw_decode(text, match.start())
        except ValueError:
            continue
        if isinstance(value, dict):
            for key in ("frames", "frame_numbers", "core_frames", "indices"):
                if isinstance(value.get(key), list):
                    return value[key]
            continue
        if isinstance(value, list):
            return value
    return None


def _as_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and _INT_RE.fullmatch(value.strip()):
        return int(value.strip())
    return None


def parse_frame_numbers(
    text: str, count: int, max_frames: int, parsed: Any = None
) -> ParsedReply:
    """Read 1-based frame numbers from a selector reply (see the module docstring)."""
    out = ParsedReply()
    if isinstance(parsed, BaseModel):
        parsed = parsed.model_dump()
    values: list[Any] | None = None
    if isinstance(parsed, dict) and isinstance(parsed.get("frames"), list):
        values = parsed["frames"]
    if values is None:
        values = _json_values(text)
    if values is None:
        values = [int(m) for m in _INT_RE.findall(text)]
        out.repairs.append("prose")
        if not values:
            out.failure = "no frame numbers in the reply"
            return out
    numbers = [n for n in (_as_int(v) for v in values) if n is not None]
    if not numbers:
        out.failure = "empty frame list"
        return out
    seen: set[int] = set()
    for number in numbers:
        if not 1 <= number <= count:
            if "out_of_range" not in out.repairs:
                out.repairs.append("out_of_range")
            continue
        if number - 1 in seen:
            if "duplicates" not in out.repairs:
                out.repairs.append("duplicates")
            continue
        seen.add(number - 1)
        out.positions.append(number - 1)
    if not out.positions:
        out.failure = f"all frame numbers out of range 1..{count}: {numbers[:8]}"
    elif len(out.positions) > max_frames:
        out.positions = out.positions[:max_frames]
        out.repairs.append("too_many")
    return out


def format_question(question: str, options: Sequence[str] | None) -> str:
    if not options:
        return question
    letters = "ABCDEFGH"
    lines = [f"({letters[i]}) {text}" for i, text in enumerate(options)]
    return question + "\n" + "\n".join(lines)


class CaptionLLMSelector(CandidateMixin, FrameSelector):
    """Captions (small VLM, or given) + question -> a small chat LLM -> core frame numbers."""

    name = "caption-llm"

    def __init__(
        self,
        llm: Any,
        captioner: Any = None,
        *,
        max_frames: int = 4,
        candidates: int = 16,
        fallback_frames: int = 3,
        image_size: int | None = 448,
        settings: GenerationSettings | None = None,
        caption_settings: GenerationSettings | None = None,
        use_schema: bool = True,
    ) -> None:
        from ..prompts import load_prompt

        self.prompt = load_prompt("select/choose")
        super().__init__(
            max_frames=max_frames,
            candidates=candidates,
            fallback_frames=min(fallback_frames, max_frames),
            llm=getattr(llm, "spec", type(llm).__name__),
            captioner=getattr(captioner, "spec", None),
            choose_prompt=f"{self.prompt.name}@v{self.prompt.version}",
        )
        self.llm = llm
        self.captioner = captioner
        self.max_frames = max_frames
        self.num_candidates = candidates
        self.fallback_frames = min(fallback_frames, max_frames)
        self.image_size = image_size
        self.settings = settings or GenerationSettings(max_new_tokens=32)
        self.caption_settings = caption_settings or GenerationSettings(max_new_tokens=48)
        self.use_schema = use_schema
        #: The last reply of the LLM (raw text), for inspection.
        self.last_reply: str = ""

    def render_prompt(
        self, question: str, options: Sequence[str] | None, refs: Sequence[FrameRef],
        captions: Sequence[str],
    ) -> str:
        lines = [
            f"Frame {i + 1} ({ref.seconds:.1f} s): {text}"
            for i, (ref, text) in enumerate(zip(refs, captions))
        ]
        return self.prompt.render(
            count=len(refs),
            captions="\n".join(lines),
            question=format_question(question, options),
            max_frames=self.max_frames,
        )

    def select(
        self,
        video: "str | os.PathLike[str]",
        question: str,
        *,
        item_id: str | None = None,
        options: Sequence[str] | None = None,
        candidates: Sequence[FrameRef] | None = None,
        captions: Sequence[str | Caption] | None = None,
    ) -> Selection:
        from ..models.protocols import user

        with open_reader(video) as reader:
            refs, texts, extra = self.captioned_candidates(
                reader, video, candidates, captions, self.captioner, self.caption_settings,
                "caption-llm selector: no captions given and no captioner set",
            )
        prompt = self.render_prompt(question, options, refs, texts)
        try:
            reply = self.llm.generate(
                [[user(prompt)]],
                settings=self.settings,
                schema=core_frames_schema(len(refs), self.max_frames) if self.use_schema else None,
            )[0]
            text, parsed = reply.text, reply.parsed
            if getattr(reply, "error", None):
                self._count("invalid_json")
        except StructuredOutputError as exc:
            text, parsed = exc.reply, None
            self._count("invalid_json")
        self.last_reply = text
        result = parse_frame_numbers(text, len(refs), self.max_frames, parsed)
        for repair in result.repairs:
            self._count(repair)
        if result.failure is not None:
            self._count("fallback")
            chosen = uniform_indices(len(refs), self.fallback_frames)
            return self._selection(
                video, question, item_id, [refs[i] for i in chosen], [0.0] * len(chosen),
                fallback=f"{result.failure}; used {len(chosen)} uniformly spaced candidates",
                extra=extra,
            )
        n = len(result.positions)
        scores = [1.0 - rank / n for rank in range(n)]
        return self._selection(
            video, question, item_id, [refs[i] for i in result.positions], scores, extra=extra
        )
