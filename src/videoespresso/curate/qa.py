"""Stage 5: write question-answer pairs for each group of captions (1 group -> M pairs)."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import ValidationError

from ..engine import Item, failed, warn
from ..models.protocols import user
from ..schema import TASK_NAMES, GroupItem, QAItem
from ._common import JsonStage, numbered_captions, pick_numbered
from ._json import _short
from .schemas import qa_schema

PROMPT = "curate/qa"


class GenerateQA(JsonStage):
    """Group -> QA items, each with the frames its answer relies on (validated indices)."""

    name = "qa"
    #: 2: reads and writes typed records; the pool travels by reference (see GroupCaptions).
    version = "2"
    prompt_name = PROMPT
    input_record: ClassVar[type[GroupItem]] = GroupItem
    output_record: ClassVar[type[QAItem]] = QAItem

    def __init__(self, *args: Any, pairs_per_group: int = 3, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.pairs_per_group = pairs_per_group

    def params(self) -> dict[str, Any]:
        return {**super().params(), "pairs_per_group": self.pairs_per_group}

    def process(self, batch: list[Item]) -> list[Item]:
        out: list[Item] = []
        groups: list[GroupItem] = []
        for item in batch:
            try:
                groups.append(self.input_record.model_validate(item))
            except ValidationError as exc:
                out.append(failed(item, "bad_item", f"qa for {item.get('id')}: not a caption group, it {_short(exc)}"))
        prompt = self.prompt(PROMPT)
        conversations = [
            [user(prompt.render(
                captions=numbered_captions([f.model_dump() for f in group.frames], group.captions),
                n_pairs=self.pairs_per_group,
                tasks=", ".join(TASK_NAMES),
            ))]
            for group in groups
        ]
        replies = self.ask_by_frame_count(
            [group.model_dump() for group in groups], conversations,
            lambda n_frames: qa_schema(self.pairs_per_group, self.max_chars, n_frames),
        ) if groups else []
        for group, reply in zip(groups, replies):
            item = group.item()
            if reply.value is None:
                out.append(failed(item, "invalid_json", f"qa for {group.id}: {reply.error}", raw=reply.raw))
                continue
            for k, pair in enumerate(reply.value.pairs):
                positions, invalid = pick_numbered(pair.frames, len(group.frames))
                qa_item = self.output_record(
                    **{**group.model_dump(), "id": f"{group.id}/q{k}", "source": group.id},
                    question=pair.question.strip(), answer=pair.answer.strip(), task=pair.task,
                    qa_frames=[group.frames[p] for p in positions] or list(group.frames),
                    qa_model=self.llm,
                ).item()
                if invalid:
                    warn(qa_item, self.name, "frame_numbers_out_of_range", f"{invalid} not in 1..{len(group.frames)}")
                if not positions:
                    warn(qa_item, self.name, "no_valid_frames", "used every frame of the group")
                out.append(qa_item)
        return out
