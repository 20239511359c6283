"""``describe``: a classical captioner, a :class:`~videoespresso.models.protocols.VisionLanguageModel`
that writes one true sentence per frame from the pixels alone.

It says only what :mod:`~videoespresso.models.classical.vision` measures: the dominant colours
and brightness; on a plain background each object's colour, rough shape, size and position and
how many there are; with the frame's neighbours in the same request (a video, or several images
in one turn), what moves and which way, what appears, leaves or changes colour, brightness
changes and cuts. A single image gets no motion words: nothing in it shows motion. A prompt
that is not a request to describe (a question, a JSON task) is answered ``unknown``: this model
sees, it does not reason.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Sequence

from ...schema import Generation, GenerationSettings
from ..protocols import Conversation, JsonSchema
from . import vision
from .vision import Blob, Change, FrameView

#: Bumped whenever a caption for the same pixels can change: reply caches key on it.
VERSION = "classical-describe-v1"
UNKNOWN = "unknown"

_CAPTION_RE = re.compile(r"\b(describe|description|caption|depict)", re.IGNORECASE)
_DEPICTS = "The image depicts"


@dataclass(frozen=True)
class FrameFacts:
    """What the captioner found in one frame, with its neighbours' changes."""

    view: FrameView
    #: Towards the next frame of the request, when there is one.
    ahead: Change | None
    #: From the previous frame of the request, when there is one.
    behind: Change | None

    def moving(self, blob: Blob) -> tuple[str, str | None] | None:
        """``("ahead", direction)`` when this object moves towards the next frame, else
        ``("behind", direction)`` from the previous one when this is the last frame."""
        for tense, change in (("ahead", self.ahead), ("behind", self.behind if self.ahead is None else None)):
            if change is None:
                continue
            for p, q, direction in change.moved:
                if (p if tense == "ahead" else q) == blob:
                    return tense, direction
        return None


def describe_frames(images: Sequence[Any]) -> list[FrameFacts]:
    """Facts of each image, given in time order (neighbours are compared)."""
    arrays = [vision.as_array(im) for im in images]
    views = [vision.view(a) for a in arrays]
    changes = [vision.change(arrays[i], arrays[i + 1], views[i], views[i + 1]) for i in range(len(arrays) - 1)]
    return [
        FrameFacts(views[i], changes[i] if i < len(changes) else None, changes[i - 1] if i > 0 else None)
        for i in range(len(views))
    ]


def _article(words: str) -> str:
    return ("an " if words[0] in "aeiou" else "a ") + words


def _scene_words(v: FrameView) -> str:
    light = "dark " if v.brightness < 70 else "bright " if v.brightness > 170 else ""
    colours = [name for name, _ in v.dominant[:2]]
    mostly = f", mostly {' and '.join(colours)}" if colours else ""
    return f"{_article(light + 'scene')}{mostly}"


def _object_words(facts: FrameFacts, blob: Blob) -> str:
    words = f"{_article(blob.size + ' ' + blob.name)} {vision.position_phrase(blob.position)}"
    motion = facts.moving(blob)
    if motion is not None and motion[1] is not None:
        words += f" moving {motion[1]}" if motion[0] == "ahead" else f" that has moved {motion[1]}"
    elif motion is not None and motion[0] == "ahead":
        words += " standing still"
    return words


def caption(facts: FrameFacts) -> str:
    """One English sentence for a frame (capitalised, ending with a full stop)."""
    v = facts.view
    parts = [_scene_words(v)]
    behind, ahead = facts.behind, facts.ahead
    if behind is not None and behind.cut:
        parts[0] = "after a cut, " + parts[0]
    if v.plain:
        n = len(v.objects)
        if n == 0:
            parts[0] += ", with no objects"
        else:
            listed = [_object_words(facts, b) for b in v.objects]
            joined = listed[0] if n == 1 else ", ".join(listed[:-1]) + " and " + listed[-1]
            parts[0] += f", with {'one object' if n == 1 else f'{n} objects'}: {joined}"
        if behind is not None and not behind.cut:
            parts += [f"{_article(b.name)} has appeared" for b in behind.new]
            parts += [f"{_article(b.name)} has left" for b in behind.gone]
            parts += [f"the {p.name} has turned {q.colour}" for p, q, _ in behind.moved if p.colour != q.colour]
    elif ahead is not None and not ahead.cut:
        if ahead.shift is not None:
            parts.append(f"the picture shifts {ahead.shift}")
        elif ahead.region is not None:
            colour, size, direction = ahead.region
            parts.append(f"{_article(size + ' ' + colour + ' region')} " + (f"moves {direction}" if direction else "changes"))
    for change, when in ((behind, "has got"), (ahead, "is getting")):
        if change is not None and not change.cut and abs(change.brightness_delta) >= 12:
            parts.append(f"the scene {when} {'brighter' if change.brightness_delta > 0 else 'darker'}")
    if ahead is not None and ahead.cut:
        parts.append("a cut follows")
    sentence = "; ".join(parts)
    return sentence[0].upper() + sentence[1:] + "."


def is_caption_request(text: str) -> bool:
    return bool(_CAPTION_RE.search(text))


class ClassicalCaptioner:
    """The ``describe`` spec. Deterministic: the same pixels and prompt give the same reply."""

    weights_stamp = VERSION

    def __init__(self, spec: str = "describe") -> None:
        self.spec = spec

    def reply(self, conversation: Conversation) -> str:
        turn = next((t for t in reversed(conversation) if t.role == "user"), None)
        if turn is None or not turn.visuals or not is_caption_request(turn.text):
            return UNKNOWN
        frames = turn.visuals
        seconds = turn.video.seconds if turn.video is not None and not turn.images else None
        sentences = [caption(f) for f in describe_frames(frames)]
        if _DEPICTS.lower() in turn.text.lower():
            sentences = [f"{_DEPICTS} {s[0].lower()}{s[1:]}" for s in sentences]
        if len(sentences) == 1:
            return sentences[0]
        return "\n".join(
            f"Frame {i + 1}" + (f" ({seconds[i]:.1f} s)" if seconds else "") + f": {s}"
            for i, s in enumerate(sentences)
        )

    def generate(
        self,
        conversations: Sequence[Conversation],
        settings: GenerationSettings | None = None,
        schema: JsonSchema | None = None,
    ) -> list[Generation]:
        settings = settings or GenerationSettings()
        out = []
        for conversation in conversations:
            text = self.reply(conversation)
            out.append(Generation(
                text=text, model=self.spec, settings=settings, completion_tokens=len(text.split()),
                error=None if schema is None else f"{self.spec} writes captions in prose; it cannot fill a JSON schema",
            ))
        return out


__all__ = ["ClassicalCaptioner", "FrameFacts", "UNKNOWN", "caption", "describe_frames", "is_caption_request"]
