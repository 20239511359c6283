"""Stage 5: write question-answer pairs for each group of captions (1 group -> M pairs)."""

from __future__ import annotations

from typing import Any

from ..engine import Item, derive, failed, warn
from ..models.protocols import user
from ..schema import TASK_NAMES
from ._common import JsonStage, numbered_captions, pick_numbered
from .schemas import qa_schema

PROMPT = "curate/qa"


class GenerateQA(JsonStage):
    """Group -> QA items, each with the frames its answer relies on (validated indices)."""

    name = "qa"
    version = "1"
    prompt_name = PROMPT

    def __init__(self, *args: Any, pairs_per_group: int = 3, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.pairs_per_group = pairs_per_group

    def params(self) -> dict[str, Any]:
        return {**super().params(), "pairs_per_group": self.pairs_per_group}

    def process(self, batch: list[Item]) -> list[Item]:
        prompt = self.prompt(PROMPT)
        conversations = [
            [user(prompt.render(
                captions=numbered_captions(item["frames"], item["captions"]),
                n_pairs=self.pairs_per_group,
                tasks=", ".join(TASK_NAMES),
            ))]
            for item in batch
        ]
        replies = self.ask_by_frame_count(
            batch, conversations, lambda n_frames: qa_schema(self.pairs_per_group, self.max_chars, n_frames)
        )
        out: list[Item] = []
        for item, reply in zip(batch, replies):
            if reply.value is None:
                out.append(failed(item, "invalid_json", f"qa for {item['id']}: {reply.error}", raw=reply.raw))
                continue
            for k, pair in enumerate(reply.value.pairs):
                positions, invalid = pick_numbered(pair.frames, len(item["frames"]))
                qa_item = derive(
                    item, f"{item['id']}/q{k}",
                    question=pair.question.strip(), answer=pair.answer.strip(), task=pair.task,
                    qa_frames=[item["frames"][p] for p in positions] or list(item["frames"]),
                    qa_model=self.llm,
                )
                if invalid:
                    warn(qa_item, self.name, "frame_numbers_out_of_range", f"{invalid} not in 1..{len(item['frames'])}")
                if not positions:
                    warn(qa_item, self.name, "no_valid_frames", "used every frame of the group")
                out.append(qa_item)
        return out
