"""Stage 3: drop frames whose caption repeats the last kept one (the paper's LIFO rule)."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from ..engine import Item, Resources, derive
from ._common import ModelPool, ModelStage


def lifo_keep(embeddings: np.ndarray, tau: float) -> tuple[list[int], list[dict[str, Any]]]:
    """Positions to keep, and for each dropped position the kept one it repeated.

    Frame ``i`` is dropped when the cosine similarity of its caption to the caption on top of the
    stack of kept frames exceeds ``tau``; otherwise it is pushed. The first frame is always kept.
    Rows of ``embeddings`` must be L2-normalised.
    """
    kept: list[int] = []
    redundant: list[dict[str, Any]] = []
    for i in range(len(embeddings)):
        if kept:
            top = kept[-1]
            similarity = float(np.dot(embeddings[i], embeddings[top]))
            if similarity > tau:
                redundant.append({"position": i, "similar_to": top, "similarity": round(similarity, 6)})
                continue
        kept.append(i)
    return kept, redundant


class RemoveRedundant(ModelStage):
    name = "dedup"
    version = "1"

    def __init__(self, pool: ModelPool, embedder: str, tau: float = 0.9, resources: Resources | None = None) -> None:
        super().__init__(pool, resources=resources or Resources(batch_size=16))
        self.embedder = embedder
        self.tau = tau

    def params(self) -> dict[str, Any]:
        return {"embedder": self.embedder, "tau": self.tau}

    def setup(self) -> None:
        self.model = self.pool.get(self.embedder, "embedder")

    def process(self, batch: list[Item]) -> list[Item]:
        texts: list[str] = [c for item in batch for c in item["captions"]]
        with self.timed("model"):
            matrix = self.model.embed(texts) if texts else np.zeros((0, 1), dtype=np.float32)
        self.model_calls += 1
        out, offset = [], 0
        for item in batch:
            n = len(item["captions"])
            kept, redundant = lifo_keep(matrix[offset : offset + n], self.tau)
            offset += n
            out.append(derive(item, kept=kept, redundant=_with_indices(redundant, item["frames"])))
        return out


def _with_indices(redundant: Sequence[dict[str, Any]], frames: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {**r, "frame": frames[r["position"]]["index"], "similar_to_frame": frames[r["similar_to"]]["index"]}
        for r in redundant
    ]
