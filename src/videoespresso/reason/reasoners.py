"""Answerers: ``direct`` (frames + question -> answer) and ``two-stage`` (VideoQA-SC: frames +
question -> evidence, then frames + question + evidence -> answer).

Both are close-ended when options are given (the answer should be an option letter; extracting
it is the benchmark's job) and open-ended otherwise. Every stage is one batched ``generate`` call
on a :class:`~videoespresso.models.VisionLanguageModel`; the frames are shown before the text in
the user turn. A result keeps the evidence, the answer, the frames used and, per stage, the
rendered prompt, the reply and its token counts (and, with ``count_flops=True``, the FLOPs the
call executed, counted with ``torch.utils.flop_counter``; a batched call's FLOPs are shared out
evenly over its requests).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Literal, Sequence

from pydantic import Field

from ..schema import FrameRef, GenerationSettings, Record, Selection

if TYPE_CHECKING:
    from PIL.Image import Image

Mode = Literal["close", "open"]
EVIDENCE_CUE = "Please provide evidence helpful to answer the question"
ANSWER_CUE = "Please answer the question based on the evidence"
_LETTERS = "ABCDEFGH"


class StageRecord(Record):
    """One model call of a reasoner for one question."""

    stage: Literal["evidence", "answer"]
    prompt_template: str
    prompt: str
    output: str
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    flops: int | None = None


class ReasonResult(Record):
    """What a reasoner produced for one question."""

    reasoner: str
    model: str
    question: str
    options: list[str] = Field(default_factory=list)
    mode: Mode
    frames: list[FrameRef]
    evidence: str | None = None
    answer: str
    stages: list[StageRecord]
    settings: GenerationSettings

    @property
    def prompt_tokens(self) -> int:
        return sum(s.prompt_tokens or 0 for s in self.stages)

    @property
    def completion_tokens(self) -> int:
        return sum(s.completion_tokens or 0 for s in self.stages)


@dataclass
class ReasonRequest:
    """One question over some frames. ``frames`` are objects with ``.image`` (PIL) and ``.ref``
    (:class:`FrameRef`), as :meth:`videoespresso.video.VideoReader.get_frames_at` returns."""

    frames: Sequence[Any]
    question: str
    options: Sequence[str] | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def format_options(options: Sequence[str]) -> str:
    return "\n".join(f"({_LETTERS[i]}) {text}" for i, text in enumerate(options))


def format_frame_times(refs: Sequence[FrameRef]) -> str:
    if not refs:
        return "No frames were given."
    times = ", ".join(f"{r.seconds:.1f} s" for r in refs)
    return f"The {len(refs)} frames shown were taken at {times} of the video."


def load_frames(
    video: "str | os.PathLike[str]", selection: Selection | Sequence[FrameRef], size: Any = None
) -> list[Any]:
    """Decode the frames of a selection (objects with ``.image`` and ``.ref``)."""
    from ..video import VideoReader

    refs = selection.frames if isinstance(selection, Selection) else list(selection)
    with VideoReader(video) as reader:
        return reader.get_frames_at([r.index for r in refs], size=size)


class _Reasoner:
    name = ""

    def __init__(
        self,
        model: Any,
        settings: GenerationSettings | None = None,
        *,
        count_flops: bool = False,
    ) -> None:
        self.model = model
        self.settings = settings or GenerationSettings()
        self.count_flops = count_flops

    def _call(
        self, stage: str, template: str, values: list[dict[str, Any]], images: list[list["Image"]],
        settings: GenerationSettings,
    ) -> list[StageRecord]:
        from ..models.protocols import user
        from ..prompts import load_prompt

        prompt = load_prompt(template)
        texts = [prompt.render(**v) for v in values]
        conversations = [[user(text, imgs)] for text, imgs in zip(texts, images)]
        flops: int | None = None
        if self.count_flops:
            from .flops import count_flops

            box: dict[str, Any] = {}
            flops = count_flops(
                lambda: box.setdefault("out", self.model.generate(conversations, settings=settings))
            )
            replies = box["out"]
        else:
            replies = self.model.generate(conversations, settings=settings)
        share = None if flops is None else flops // max(1, len(replies))
        return [
            StageRecord(
                stage=stage,  # type: ignore[arg-type]
                prompt_template=f"{prompt.name}@v{prompt.version}",
                prompt=text,
                output=reply.text,
                prompt_tokens=reply.prompt_tokens,
                completion_tokens=reply.completion_tokens,
                flops=share,
            )
            for text, reply in zip(texts, replies)
        ]

    def _call_by_mode(
        self, stage: str, template: str, requests: Sequence[ReasonRequest],
        values: Callable[[int], dict[str, Any]], settings: GenerationSettings,
    ) -> dict[int, StageRecord]:
        """``_call`` once per answer mode present, since close- and open-ended questions have
        their own prompts (``template`` with ``{mode}``); records keyed by request position."""
        records: dict[int, StageRecord] = {}
        for mode, idx in _split_by_mode(requests).items():
            if not idx:
                continue
            out = self._call(
                stage,
                template.format(mode=mode),
                [values(i) for i in idx],
                [[f.image for f in requests[i].frames] for i in idx],
                settings,
            )
            records.update(zip(idx, out))
        return records

    @staticmethod
    def _base_values(request: ReasonRequest) -> dict[str, Any]:
        refs = [f.ref for f in request.frames]
        values: dict[str, Any] = {
            "frame_times": format_frame_times(refs),
            "question": request.question.strip(),
        }
        if request.options:
            values["options"] = format_options(request.options)
        return values

    def answer(
        self, frames: Sequence[Any], question: str, options: Sequence[str] | None = None
    ) -> ReasonResult:
        """Answer one question over ``frames`` (close-ended when ``options`` are given)."""
        return self.answer_batch([ReasonRequest(frames, question, options)])[0]

    def answer_batch(self, requests: Sequence[ReasonRequest]) -> list[ReasonResult]:
        raise NotImplementedError

    def _result(
        self, request: ReasonRequest, stages: list[StageRecord], evidence: str | None
    ) -> ReasonResult:
        return ReasonResult(
            reasoner=self.name,
            model=getattr(self.model, "spec", type(self.model).__name__),
            question=request.question,
            options=list(request.options or []),
            mode="close" if request.options else "open",
            frames=[FrameRef(index=f.ref.index, seconds=f.ref.seconds) for f in request.frames],
            evidence=evidence,
            answer=stages[-1].output.strip(),
            stages=stages,
            settings=self.settings,
        )


def _split_by_mode(requests: Sequence[ReasonRequest]) -> dict[Mode, list[int]]:
    groups: dict[Mode, list[int]] = {"close": [], "open": []}
    for i, r in enumerate(requests):
        groups["close" if r.options else "open"].append(i)
    return groups


class DirectReasoner(_Reasoner):
    """Frames + question (+ options) -> answer, in one call."""

    name = "direct"

    def answer_batch(self, requests: Sequence[ReasonRequest]) -> list[ReasonResult]:
        records = self._call_by_mode(
            "answer", "reason/answer_{mode}", requests,
            lambda i: self._base_values(requests[i]), self.settings,
        )
        return [self._result(r, [records[i]], None) for i, r in enumerate(requests)]


class TwoStageReasoner(_Reasoner):
    """Stage 1 writes evidence (cue: "Please provide evidence helpful to answer the question");
    stage 2 sees the same frames, the question and that evidence (cue: "Please answer the
    question based on the evidence") and answers.

    The two stages' prompts start identically (frames, their times, the question and options)
    and differ only from the cue on, so a serving engine with prefix caching encodes the frames
    once per question.

    ``evidence_settings`` govern stage 1 (evidence is longer than a letter); the answer stage uses
    ``settings``.
    """

    name = "two-stage"

    def __init__(
        self,
        model: Any,
        settings: GenerationSettings | None = None,
        *,
        evidence_settings: GenerationSettings | None = None,
        count_flops: bool = False,
    ) -> None:
        super().__init__(model, settings, count_flops=count_flops)
        self.evidence_settings = evidence_settings or self.settings

    def answer_batch(self, requests: Sequence[ReasonRequest]) -> list[ReasonResult]:
        first = self._call_by_mode(
            "evidence", "reason/evidence_{mode}", requests,
            lambda i: self._base_values(requests[i]), self.evidence_settings,
        )
        evidence = {i: " ".join(s.output.split()) for i, s in first.items()}
        second = self._call_by_mode(
            "answer", "reason/evidence_answer_{mode}", requests,
            lambda i: dict(self._base_values(requests[i]), evidence=evidence[i]), self.settings,
        )
        return [
            self._result(r, [first[i], second[i]], evidence[i]) for i, r in enumerate(requests)
        ]


REASONERS = ("direct", "two-stage")


def make_reasoner(
    name: str,
    model: Any,
    settings: GenerationSettings | None = None,
    **kwargs: Any,
) -> DirectReasoner | TwoStageReasoner:
    """A reasoner by name around a VLM."""
    from ..errors import ConfigError

    if name == "direct":
        return DirectReasoner(model, settings, **kwargs)
    if name == "two-stage":
        return TwoStageReasoner(model, settings, **kwargs)
    raise ConfigError(f"unknown reasoner {name!r}; known: {', '.join(REASONERS)}")
