"""Stage 10: three distractors of similar length for the close-ended test format."""

from __future__ import annotations

from typing import Any

from ..engine import Item, derive, failed
from ..models.protocols import user
from ._common import JsonStage
from .schemas import distractor_schema

PROMPT = "curate/distractors"


def length_bounds(answer: str) -> tuple[int, int]:
    """Accepted distractor lengths: half to one and a half times the answer's, at least 1..8."""
    n = len(answer)
    return max(1, n // 2), max(8, (3 * n + 1) // 2)


class WriteDistractors(JsonStage):
    """Three wrong options per QA pair; a duplicate of the answer or of each other fails the item.

    ``temperature`` > 0 samples them (with ``seed``, so the call stays reproducible and cached):
    greedy decoding tends to repeat one distractor three times.
    """

    name = "options"
    version = "1"
    prompt_name = PROMPT

    def __init__(self, *args: Any, temperature: float = 0.0, seed: int = 0, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if temperature > 0:
            self.settings = self.settings.model_copy(update={"temperature": temperature, "seed": seed})

    def process(self, batch: list[Item]) -> list[Item]:
        prompt = self.prompt(PROMPT)
        by_schema: dict[tuple[int, int], list[int]] = {}
        for n, item in enumerate(batch):
            by_schema.setdefault(length_bounds(item["answer"]), []).append(n)
        replies: dict[int, Any] = {}
        for bounds, members in by_schema.items():
            conversations = [
                [user(prompt.render(question=batch[n]["question"], answer=batch[n]["answer"],
                                    length=len(batch[n]["answer"])))]
                for n in members
            ]
            for n, reply in zip(members, self.ask(conversations, distractor_schema(*bounds))):
                replies[n] = reply
        out: list[Item] = []
        for n, item in enumerate(batch):
            reply = replies[n]
            if reply.value is None:
                out.append(failed(item, "invalid_json", f"distractors for {item['id']}: {reply.error}", raw=reply.raw))
                continue
            options = [" ".join(d.split()) for d in reply.value.distractors]
            seen = {item["answer"].strip().lower()}
            unique = []
            for option in options:
                if option and option.lower() not in seen:
                    seen.add(option.lower())
                    unique.append(option)
            if len(unique) < 3:
                out.append(failed(item, "duplicate_distractors",
                                  f"{item['id']}: distractors repeat each other or the answer", raw=reply.raw))
                continue
            out.append(derive(item, distractors=unique))
        return out
