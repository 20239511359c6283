"""Stage 6: keep a QA pair only if the judges' vote says so; every rejection keeps its reasons."""

from __future__ import annotations

from typing import Any, Literal

from ..engine import Item, derive, dropped, failed
from ..models.protocols import user
from ._common import JsonStage, numbered_captions
from .schemas import judge_schema

PROMPT = "curate/judge"

Vote = Literal["all", "majority", "any", "none"]


def passes(votes: list[bool], rule: Vote) -> bool:
    """Whether the verdicts keep a pair; ``"none"`` keeps every pair that got a valid verdict."""
    if not votes:
        return False
    if rule == "none":
        return True
    if rule == "all":
        return all(votes)
    if rule == "any":
        return any(votes)
    return sum(votes) * 2 > len(votes)


class QualityFilter(JsonStage):
    """Each judge (a ChatModel spec) says keep or not, with a reason; ``vote`` combines them.

    A judge whose reply stays invalid after the retry abstains; when every judge abstains the
    item fails with the replies kept.
    """

    name = "filter"
    version = "1"
    prompt_name = PROMPT

    def __init__(self, *args: Any, judges: list[str], vote: Vote = "majority", **kwargs: Any) -> None:
        super().__init__(*args, llm=judges[0] if judges else "", **kwargs)
        if not judges:
            raise ValueError("the quality filter needs at least one judge")
        self.judges = list(judges)
        self.vote = vote

    def params(self) -> dict[str, Any]:
        return {**super().params(), "judges": self.judges, "vote": self.vote}

    def setup(self) -> None:
        self.models = [self.pool.get(spec, "chat") for spec in self.judges]

    def process(self, batch: list[Item]) -> list[Item]:
        prompt = self.prompt(PROMPT)
        conversations = [
            [user(prompt.render(
                captions=numbered_captions(item["frames"], item["captions"]),
                question=item["question"], answer=item["answer"],
            ))]
            for item in batch
        ]
        per_judge = [self.ask(conversations, judge_schema(self.max_chars), model) for model in self.models]
        out: list[Item] = []
        for n, item in enumerate(batch):
            verdicts, invalid = [], []
            for spec, replies in zip(self.judges, per_judge):
                reply = replies[n]
                if reply.value is None:
                    invalid.append(f"{spec}: {reply.error}\n{reply.raw}")
                else:
                    verdicts.append({"judge": spec, "keep": reply.value.keep, "reason": reply.value.reason})
            if not verdicts:
                out.append(failed(item, "invalid_json", f"no judge gave a valid verdict on {item['id']}",
                                  raw="\n=== next judge ===\n".join(invalid)))
            elif passes([v["keep"] for v in verdicts], self.vote):
                out.append(derive(item, judgements=verdicts))
            else:
                reasons = "; ".join(f"{v['judge']}: {v['reason']}" for v in verdicts if not v["keep"])
                out.append(dropped(item, "rejected_by_judges", reasons))
        return out
