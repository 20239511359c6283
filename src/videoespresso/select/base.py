"""The frame-selector interface and what every selector shares.

A selector answers one question about one video with a :class:`~videoespresso.schema.Selection`:
frames sorted by index, each with its index and presentation time, a score per frame, the
selector's name and parameters. Selectors that read captions work on *candidates*: frames of the
video given by the caller or, by default, ``candidates`` uniformly spaced frames (the official
rule, :func:`uniform_indices`).
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any, Sequence

from ..errors import UserError
from ..schema import Caption, FrameRef, Selection

if TYPE_CHECKING:
    from PIL.Image import Image

    from ..video.reader import VideoReader

class SelectionError(UserError):
    """A selector cannot work on this input (mismatched candidates and captions, unknown item)."""


def uniform_indices(num_frames: int, k: int) -> list[int]:
    """The official rule (``numpy.linspace(0, n - 1, k)`` rounded down), repeats dropped."""
    from ..video.samplers import uniform_indices as video_uniform

    if num_frames <= 0 or k <= 0:
        return []
    return sorted(set(video_uniform(num_frames, k, "official")))


def open_reader(video: "str | os.PathLike[str]") -> "VideoReader":
    from ..video import VideoReader

    return VideoReader(video)


def caption_texts(captions: Sequence[str | Caption] | None) -> list[str] | None:
    if captions is None:
        return None
    return [c.text if isinstance(c, Caption) else str(c) for c in captions]


class FrameSelector(ABC):
    """Picks the frames of a video that a question needs.

    Subclasses set :attr:`name`, fill :attr:`params` (recorded with every selection) and
    implement :meth:`select`. ``stats`` counts noteworthy events across calls (fallbacks, repaired
    replies) by reason.
    """

    name: str = ""

    def __init__(self, **params: Any) -> None:
        self.params: dict[str, Any] = dict(params)
        self.stats: dict[str, int] = {}

    def _count(self, reason: str) -> None:
        self.stats[reason] = self.stats.get(reason, 0) + 1

    @abstractmethod
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
        """The frames of ``video`` that ``question`` needs."""

    def _selection(
        self,
        video: "str | os.PathLike[str]",
        question: str,
        item_id: str | None,
        frames: Sequence[FrameRef],
        scores: Sequence[float],
        *,
        fallback: str | None = None,
        extra: dict[str, Any] | None = None,
    ) -> Selection:
        """A Selection with frames sorted by index, repeats merged (keeping the best score)."""
        best: dict[int, tuple[FrameRef, float]] = {}
        for ref, score in zip(frames, scores, strict=True):
            kept = best.get(ref.index)
            if kept is None or score > kept[1]:
                best[ref.index] = (ref, float(score))
        ordered = [best[i] for i in sorted(best)]
        return Selection(
            video=str(video),
            question=question,
            question_id=item_id,
            frames=[FrameRef(index=r.index, seconds=r.seconds) for r, _ in ordered],
            scores=[s for _, s in ordered],
            selector=self.name,
            params={**self.params, **(extra or {})},
            fallback=fallback,
        )


class CandidateMixin:
    """Candidate frames and their images/captions, for selectors that read captions."""

    num_candidates: int
    image_size: int | None

    def candidate_refs(
        self, reader: "VideoReader", candidates: Sequence[FrameRef] | None
    ) -> list[FrameRef]:
        if candidates is None:
            return reader.refs(uniform_indices(reader.num_frames, self.num_candidates))
        # Times come from the video's own frame table, whatever the caller's refs say.
        return reader.refs(sorted({r.index for r in candidates}))

    def candidate_images(self, reader: "VideoReader", refs: Sequence[FrameRef]) -> list["Image"]:
        frames = reader.get_frames_at([r.index for r in refs], size=self.image_size)
        return [f.image for f in frames]

    def candidate_captions(
        self, reader: "VideoReader", refs: Sequence[FrameRef], captioner: Any, settings: Any
    ) -> tuple[list[str], dict[str, Any]]:
        """Captions of the candidates and the caption prompt's id. Each frame of a video is
        captioned once per selector: the benchmark asks several questions about one video."""
        from ..prompts import load_prompt

        cache: dict[tuple[str, int], str] = self.__dict__.setdefault("_captions", {})
        video = str(reader.path)
        missing = [r for r in refs if (video, r.index) not in cache]
        if missing:
            texts = caption_frames(captioner, self.candidate_images(reader, missing), settings)
            cache.update(((video, r.index), t) for r, t in zip(missing, texts))
        prompt = load_prompt(CAPTION_PROMPT)
        info = {"caption_prompt": f"{prompt.name}@v{prompt.version}"}
        return [cache[(video, r.index)] for r in refs], info

    def captioned_candidates(
        self,
        reader: "VideoReader",
        video: "str | os.PathLike[str]",
        candidates: Sequence[FrameRef] | None,
        captions: Sequence[str | Caption] | None,
        captioner: Any,
        settings: Any,
        no_captioner: str,
    ) -> tuple[list[FrameRef], list[str], dict[str, Any]]:
        """The candidates with one caption each: the caller's (checked against the candidates)
        or, failing those, the captioner's (with the caption prompt's id). ``no_captioner`` is
        the error message when neither is there."""
        refs = self.candidate_refs(reader, candidates)
        texts = caption_texts(captions)
        check_captions(video, refs, texts)
        if texts is not None:
            return refs, texts, {}
        if captioner is None:
            raise SelectionError(no_captioner)
        texts, info = self.candidate_captions(reader, refs, captioner, settings)
        return refs, texts, info


def check_captions(
    video: "str | os.PathLike[str]", refs: Sequence[FrameRef], captions: list[str] | None
) -> None:
    if captions is not None and len(captions) != len(refs):
        raise SelectionError(
            f"video {video}: {len(captions)} captions given for {len(refs)} candidate frames; "
            "pass one caption per candidate (and the candidates themselves)"
        )


CAPTION_PROMPT = "select/caption"


def caption_frames(vlm: Any, images: Sequence["Image"], settings: Any = None) -> list[str]:
    """One short caption per image with a small VLM (one batched call)."""
    from ..models.protocols import user
    from ..prompts import load_prompt

    text = load_prompt(CAPTION_PROMPT).render()
    replies = vlm.generate([[user(text, [image])] for image in images], settings=settings)
    return [" ".join(r.text.split()) for r in replies]
