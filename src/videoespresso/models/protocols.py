"""The five model capabilities the rest of videoespresso asks for.

Code depends on these protocols, never on a vendor. Backends are built from spec strings by
:func:`videoespresso.models.registry.load_model`.

All calls are batched: one call takes a list of requests and returns one result per request, in
order. Generation calls take explicit :class:`~videoespresso.schema.GenerationSettings` (greedy
when omitted) and an optional JSON schema (a pydantic model class or a JSON-schema dict); when a
schema is given the reply is validated and :attr:`Generation.parsed` holds the object.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol, Sequence, runtime_checkable

from ..errors import UserError
from ..schema import Detection, Generation, GenerationSettings

if TYPE_CHECKING:
    import numpy as np
    from PIL.Image import Image

Role = Literal["system", "user", "assistant"]

#: A JSON schema for structured output: a pydantic model class or a JSON-schema dict.
JsonSchema = Any


@dataclass
class VideoClip:
    """Frames of one video, to be shown to a model as a video (not as separate images).

    ``indices`` and ``seconds`` say where each frame sits in the source video (``fps`` frames
    per second, ``total_frames`` long): processors that place frames in time read them.
    """

    frames: list["Image"]
    indices: list[int]
    seconds: list[float]
    fps: float
    total_frames: int

    def __post_init__(self) -> None:
        if not self.frames:
            raise UserError("a video clip needs at least one frame")
        if not (len(self.frames) == len(self.indices) == len(self.seconds)):
            raise UserError(
                f"a video clip has {len(self.frames)} frames but {len(self.indices)} indices and {len(self.seconds)} times"
            )
        if not self.fps > 0:
            raise UserError(f"a video clip needs a positive fps, got {self.fps}")

    @property
    def duration_s(self) -> float:
        return self.total_frames / self.fps


@dataclass
class ChatMessage:
    """One chat turn. ``images`` (or the ``video``) are shown to the model before ``text``."""

    role: Role
    text: str
    images: list["Image"] = field(default_factory=list)
    video: VideoClip | None = None

    @property
    def visuals(self) -> list["Image"]:
        """Every picture of the turn: its images, then its video's frames."""
        return [*self.images, *(self.video.frames if self.video is not None else [])]


#: One generation request: a conversation.
Conversation = list[ChatMessage]


def user(text: str, images: Sequence["Image"] = ()) -> ChatMessage:
    """A user turn, optionally with images placed before the text."""
    return ChatMessage(role="user", text=text, images=list(images))


def user_video(text: str, video: VideoClip) -> ChatMessage:
    """A user turn showing a video (frames with their times) before the text."""
    return ChatMessage(role="user", text=text, video=video)


def system(text: str) -> ChatMessage:
    return ChatMessage(role="system", text=text)


def assistant(text: str) -> ChatMessage:
    return ChatMessage(role="assistant", text=text)


def check_text(conversations: Sequence[Conversation]) -> None:
    """Raise a UserError naming the conversation whose text cannot be encoded as UTF-8.

    A lone UTF-16 surrogate (valid in JSON as ``"\\ud800"``, so it reaches us from benchmark
    files and HTTP requests) makes tokenizers, hashes and HTTP clients raise deep inside a batch;
    refusing it here fails that one request with a reason instead.
    """
    for index, conversation in enumerate(conversations):
        for turn in conversation:
            try:
                turn.text.encode("utf-8")
            except UnicodeEncodeError as exc:
                raise UserError(
                    f"conversation {index}: the {turn.role} text is not valid Unicode "
                    f"(lone surrogate U+{ord(turn.text[exc.start]):04X} at character {exc.start})"
                ) from None


@runtime_checkable
class ChatModel(Protocol):
    """Text in, text out, batched."""

    spec: str

    def generate(
        self,
        conversations: Sequence[Conversation],
        settings: GenerationSettings | None = None,
        schema: JsonSchema | None = None,
    ) -> list[Generation]: ...


@runtime_checkable
class VisionLanguageModel(ChatModel, Protocol):
    """Images (or video frames) + chat messages in, text out, batched.

    Same call as :class:`ChatModel`; the messages may carry images.
    """


@runtime_checkable
class TextEmbedder(Protocol):
    spec: str

    def embed(self, texts: Sequence[str]) -> "np.ndarray":
        """Return an ``(n, dim)`` float32 matrix whose rows have unit L2 norm."""
        ...


@runtime_checkable
class PhraseGrounder(Protocol):
    spec: str

    def ground(
        self,
        images: Sequence["Image"],
        phrases: Sequence[Sequence[str]],
        box_threshold: float = 0.35,
        text_threshold: float = 0.25,
    ) -> list[list[Detection]]:
        """For each image, the boxes found for its phrases (normalised corner boxes)."""
        ...


@runtime_checkable
class ImageTextScorer(Protocol):
    spec: str

    def score(self, images: Sequence["Image"], texts: Sequence[str]) -> "np.ndarray":
        """Return an ``(n_images, n_texts)`` matrix of cosine similarities."""
        ...
