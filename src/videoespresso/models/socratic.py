"""``socratic:<llm>``: a vision-language model made of a captioner and a text LLM.

Each request's frames are captioned together by the captioner (the classical ``describe`` by
default; any :class:`VisionLanguageModel` fits), and the LLM then reads those captions in place
of the pictures, followed by the request's own text. Given to the two-stage reasoner, the LLM
thus writes the evidence from the captions and then the answer: the "Socratic models" baseline,
worth having with real models too (a strong VLM captioner, a strong LLM).
"""

from __future__ import annotations

from typing import Any, Sequence

from ..schema import Generation, GenerationSettings
from .protocols import ChatMessage, Conversation, JsonSchema, user, user_video

CAPTION_PROMPT = "Describe each video frame in one sentence."
#: Caption replies longer than this many characters are cut (a captioner looping in a long reply
#: would otherwise crowd the question out of a small LLM's context).
MAX_CAPTION_CHARS = 2000


class SocraticModel:
    def __init__(self, captioner: Any, llm: Any, *, spec: str | None = None,
                 caption_settings: GenerationSettings | None = None) -> None:
        self.captioner = captioner
        self.llm = llm
        self.spec = spec or f"socratic:{getattr(llm, 'spec', type(llm).__name__)}"
        self.caption_settings = caption_settings or GenerationSettings(max_new_tokens=256)
        stamps = [getattr(m, "weights_stamp", None) or getattr(m, "spec", "") for m in (captioner, llm)]
        self.weights_stamp = "+".join(str(s) for s in stamps)

    def _caption_requests(self, conversations: Sequence[Conversation]) -> list[tuple[int, int, Conversation]]:
        jobs = []
        for c, conversation in enumerate(conversations):
            for t, turn in enumerate(conversation):
                if not turn.visuals:
                    continue
                if turn.video is not None and not turn.images:
                    request = [user_video(CAPTION_PROMPT, turn.video)]
                else:
                    request = [user(CAPTION_PROMPT, turn.visuals)]
                jobs.append((c, t, request))
        return jobs

    def to_text(self, conversations: Sequence[Conversation]) -> list[Conversation]:
        """The conversations with every turn's pictures replaced by their captions."""
        jobs = self._caption_requests(conversations)
        replies = self.captioner.generate([j[2] for j in jobs], self.caption_settings) if jobs else []
        captions = {(c, t): reply.text[:MAX_CAPTION_CHARS] for (c, t, _), reply in zip(jobs, replies)}
        out: list[Conversation] = []
        for c, conversation in enumerate(conversations):
            turns = []
            for t, turn in enumerate(conversation):
                if (c, t) in captions:
                    text = f"Captions of the frames, in order:\n{captions[(c, t)]}\n\n{turn.text}"
                    turns.append(ChatMessage(role=turn.role, text=text))
                else:
                    turns.append(turn)
            out.append(turns)
        return out

    def generate(
        self,
        conversations: Sequence[Conversation],
        settings: GenerationSettings | None = None,
        schema: JsonSchema | None = None,
    ) -> list[Generation]:
        replies = self.llm.generate(self.to_text(conversations), settings, schema)
        return [r.model_copy(update={"model": self.spec}) for r in replies]


__all__ = ["CAPTION_PROMPT", "SocraticModel"]
