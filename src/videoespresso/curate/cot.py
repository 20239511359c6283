"""Stage 7: chain-of-thought annotation: core frames, key objects, an evidence sentence."""

from __future__ import annotations

from typing import Any

from ..engine import Item, derive, failed, warn
from ..models.protocols import user
from ._common import JsonStage, numbered_captions, pick_numbered
from .schemas import cot_schema

PROMPT = "curate/cot"


class AnnotateCoT(JsonStage):
    name = "cot"
    version = "1"
    prompt_name = PROMPT

    def __init__(self, *args: Any, max_objects: int = 4, max_core_frames: int = 4, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.max_objects = max_objects
        self.max_core_frames = max_core_frames

    def params(self) -> dict[str, Any]:
        return {**super().params(), "max_objects": self.max_objects, "max_core_frames": self.max_core_frames}

    def process(self, batch: list[Item]) -> list[Item]:
        prompt = self.prompt(PROMPT)
        conversations = [
            [user(prompt.render(
                captions=numbered_captions(item["frames"], item["captions"]),
                question=item["question"], answer=item["answer"], max_objects=self.max_objects,
            ))]
            for item in batch
        ]
        replies = self.ask_by_frame_count(
            batch, conversations,
            lambda n_frames: cot_schema(self.max_objects, self.max_core_frames, self.max_chars, n_frames),
        )
        out: list[Item] = []
        for item, reply in zip(batch, replies):
            if reply.value is None:
                out.append(failed(item, "invalid_json", f"cot for {item['id']}: {reply.error}", raw=reply.raw))
                continue
            positions, invalid = pick_numbered(reply.value.core_frames, len(item["frames"]))
            objects: list[str] = []
            for name in reply.value.key_objects:
                name = " ".join(name.split())
                if name and name.lower() not in {o.lower() for o in objects}:
                    objects.append(name)
            core = [item["frames"][p] for p in positions]
            captions = [item["captions"][p] for p in positions]
            if not core:
                core = list(item["qa_frames"])
                by_index = {f["index"]: c for f, c in zip(item["frames"], item["captions"])}
                captions = [by_index.get(f["index"], "") for f in core]
            annotated = derive(
                item, core_frames=core, core_captions=captions, key_objects=objects,
                evidence_text=" ".join(reply.value.evidence.split()),
            )
            if invalid:
                warn(annotated, self.name, "frame_numbers_out_of_range", f"{invalid} not in 1..{len(item['frames'])}")
            if not positions:
                warn(annotated, self.name, "no_valid_core_frames", "fell back to the QA pair's frames")
            if not objects:
                warn(annotated, self.name, "no_key_objects")
            out.append(annotated)
        return out
