"""Rank candidate frames by how well their captions match the question."""

from __future__ import annotations

import os
from typing import Any, Sequence

import numpy as np

from ..schema import Caption, FrameRef, GenerationSettings, Selection
from .base import (
    CandidateMixin,
    FrameSelector,
    open_reader,
)


def pick_with_gap(
    refs: Sequence[FrameRef], scores: Sequence[float], k: int, min_gap_s: float
) -> list[int]:
    """Positions of the ``k`` best-scoring frames, greedily skipping any frame closer than
    ``min_gap_s`` seconds to one already picked (neighbouring frames repeat each other)."""
    picked: list[int] = []
    for i in np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable"):
        if len(picked) == k:
            break
        if all(abs(refs[i].seconds - refs[j].seconds) >= min_gap_s for j in picked):
            picked.append(int(i))
    return picked


class EmbeddingSelector(CandidateMixin, FrameSelector):
    """Caption the candidates (or take the given captions), embed captions and question with a
    :class:`~videoespresso.models.TextEmbedder`, keep the top ``k`` by cosine similarity with at
    least ``min_gap_s`` seconds between kept frames. Scores are the cosine similarities."""

    name = "embedding"

    def __init__(
        self,
        embedder: Any,
        captioner: Any = None,
        *,
        k: int = 4,
        candidates: int = 16,
        min_gap_s: float = 1.0,
        image_size: int | None = 448,
        settings: GenerationSettings | None = None,
    ) -> None:
        super().__init__(
            k=k,
            candidates=candidates,
            min_gap_s=min_gap_s,
            embedder=getattr(embedder, "spec", type(embedder).__name__),
            captioner=getattr(captioner, "spec", None),
        )
        self.embedder = embedder
        self.captioner = captioner
        self.k = k
        self.num_candidates = candidates
        self.min_gap_s = min_gap_s
        self.image_size = image_size
        self.settings = settings or GenerationSettings(max_new_tokens=48)

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
        with open_reader(video) as reader:
            refs, texts, extra = self.captioned_candidates(
                reader, video, candidates, captions, self.captioner, self.settings,
                "embedding selector: no captions given and no captioner set",
            )
        vectors = np.asarray(self.embedder.embed([question, *texts]), dtype=np.float32)
        similarity = vectors[1:] @ vectors[0]
        picked = pick_with_gap(refs, similarity.tolist(), self.k, self.min_gap_s)
        return self._selection(
            video,
            question,
            item_id,
            [refs[i] for i in picked],
            [float(similarity[i]) for i in picked],
            extra=extra,
        )
