"""Stage 9: temporal grounding by retrieval: which sampled frame each core caption, key object
and the evidence come from, by embedding similarity against every sampled frame's caption."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..engine import Item, Resources, derive
from ..formats.evidence import strip_evidence_tags
from ._common import ModelPool, ModelStage


class GroundInTime(ModelStage):
    name = "temporal"
    version = "1"

    def __init__(self, pool: ModelPool, embedder: str, evidence_top_k: int = 3, resources: Resources | None = None) -> None:
        super().__init__(pool, resources=resources or Resources(batch_size=16))
        self.embedder = embedder
        self.evidence_top_k = evidence_top_k

    def params(self) -> dict[str, Any]:
        return {"embedder": self.embedder, "evidence_top_k": self.evidence_top_k}

    def setup(self) -> None:
        self.model = self.pool.get(self.embedder, "embedder")

    def process(self, batch: list[Item]) -> list[Item]:
        texts: list[str] = []
        for item in batch:
            texts.extend(item["all_captions"])
            texts.extend(item["core_captions"])
            texts.extend(o["name"] for o in item["key_objects_grounded"])
            texts.append(strip_evidence_tags(item["evidence"]))
        with self.timed("model"):
            matrix = self.model.embed(texts)
        self.model_calls += 1
        out, offset = [], 0
        for item in batch:
            frames = item["all_frames"]
            n, c, k = len(frames), len(item["core_captions"]), len(item["key_objects_grounded"])
            pool_m = matrix[offset : offset + n]
            core_m = matrix[offset + n : offset + n + c]
            obj_m = matrix[offset + n + c : offset + n + c + k]
            ev_v = matrix[offset + n + c + k]
            offset += n + c + k + 1
            core = [_retrieve(v, pool_m, frames) for v in core_m]
            objects = []
            for obj, v in zip(item["key_objects_grounded"], obj_m):
                if obj["frame"] is not None:
                    objects.append({**obj, "frame_source": "grounding"})
                else:
                    hit = _retrieve(v, pool_m, frames)
                    objects.append({**obj, "frame": hit["frame"], "frame_source": "retrieval",
                                    "similarity": hit["similarity"]})
            sims = pool_m @ ev_v
            top = np.argsort(-sims, kind="stable")[: self.evidence_top_k]
            evidence_frames = [{"frame": frames[i], "similarity": round(float(sims[i]), 6)} for i in sorted(top)]
            unique = {h["frame"]["index"]: h["frame"] for h in core}
            out.append(derive(
                item,
                core_frames=[unique[i] for i in sorted(unique)],
                core_retrieval=core,
                key_objects_grounded=objects,
                evidence_frames=evidence_frames,
            ))
        return out


def _retrieve(vector: np.ndarray, matrix: np.ndarray, frames: list[dict[str, Any]]) -> dict[str, Any]:
    sims = matrix @ vector
    best = int(np.argmax(sims))
    return {"frame": frames[best], "similarity": round(float(sims[best]), 6)}
