"""Stage 9: temporal grounding by retrieval: which sampled frame each core caption, key object
and the evidence come from, by embedding similarity against every sampled frame's caption.

The pool a video's items retrieve from (its :class:`~videoespresso.schema.VideoPool`) is
embedded once per video, alone, in one call: its matrix is then the same whichever items share
a batch, and it is kept for the next items of the video and, in a file next to the pool, for
the next run. Only each item's own texts (core captions, object names, evidence) are embedded
per batch.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import numpy as np
from pydantic import ValidationError

from ..engine import Item, Resources, derive, failed
from ..engine.storage import as_root
from ..formats.evidence import strip_evidence_tags
from ..schema import PoolRef, VideoPool
from ._common import ModelPool, ModelStage
from .pool import embedder_key, embeddings_path, read_embeddings, read_pool, write_embeddings

#: Videos whose pool and matrix a worker keeps in memory (items arrive grouped by video).
KEEP_VIDEOS = 4


class GroundInTime(ModelStage):
    name = "temporal"
    #: 2: retrieves from the video's pool file (``pool``), embedded once per video.
    version = "2"

    def __init__(
        self, root: Any, pool: ModelPool, embedder: str, evidence_top_k: int = 3,
        resources: Resources | None = None,
    ) -> None:
        super().__init__(pool, resources=resources or Resources(batch_size=16))
        self.root = as_root(root)
        self.embedder = embedder
        self.evidence_top_k = evidence_top_k
        self._pools: OrderedDict[str, tuple[VideoPool, np.ndarray]] = OrderedDict()

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_pools": OrderedDict()}

    def params(self) -> dict[str, Any]:
        return {"embedder": self.embedder, "evidence_top_k": self.evidence_top_k}

    def setup(self) -> None:
        self.model = self.pool.get(self.embedder, "embedder")

    def video_pool(self, ref: PoolRef) -> tuple[VideoPool, np.ndarray]:
        """The pool ``ref`` names and its embedding matrix: from memory, from the cache file
        next to the pool, or embedded now (and written to that file)."""
        if ref.sha in self._pools:
            self._pools.move_to_end(ref.sha)
            return self._pools[ref.sha]
        with self.timed("decode"):
            pool = read_pool(self.root, ref)
        cache = embeddings_path(ref, embedder_key(self.embedder, self.pool.options.get(self.embedder)))
        matrix = read_embeddings(self.root, cache, len(pool.captions))
        if matrix is None:
            with self.timed("model"):
                matrix = np.asarray(self.model.embed(pool.captions), dtype=np.float32)
            self.model_calls += 1
            write_embeddings(self.root, cache, matrix)
        self._pools[ref.sha] = (pool, matrix)
        while len(self._pools) > KEEP_VIDEOS:
            self._pools.popitem(last=False)
        return pool, matrix

    def process(self, batch: list[Item]) -> list[Item]:
        out: list[Item] = []
        ready: list[tuple[Item, VideoPool, np.ndarray]] = []
        for item in batch:
            try:
                ref = PoolRef.model_validate(item.get("pool"))
            except ValidationError:
                out.append(failed(item, "no_caption_pool",
                                  f"temporal for {item['id']}: the item names no caption pool (made by an older "
                                  "videoespresso?); rebuild from stage 4 (group)"))
                continue
            try:
                pool, matrix = self.video_pool(ref)
            except (OSError, ValueError) as exc:
                out.append(failed(item, "missing_caption_pool",
                                  f"temporal for {item['id']}: caption pool {ref.path} unusable ({exc}); "
                                  "rebuild from stage 4 (group)"))
                continue
            ready.append((item, pool, matrix))
        texts: list[str] = []
        for item, _, _ in ready:
            texts.extend(item["core_captions"])
            texts.extend(o["name"] for o in item["key_objects_grounded"])
            texts.append(strip_evidence_tags(item["evidence"]))
        if texts:
            with self.timed("model"):
                queries = self.model.embed(texts)
            self.model_calls += 1
        offset = 0
        for item, pool, pool_m in ready:
            frames = [f.model_dump(mode="json") for f in pool.frames]
            c, k = len(item["core_captions"]), len(item["key_objects_grounded"])
            core_m = queries[offset : offset + c]
            obj_m = queries[offset + c : offset + c + k]
            ev_v = queries[offset + c + k]
            offset += c + k + 1
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
