"""Model capabilities, backends and the spec-string registry."""

from .protocols import (
    ChatMessage,
    ChatModel,
    Conversation,
    ImageTextScorer,
    PhraseGrounder,
    TextEmbedder,
    VideoClip,
    VisionLanguageModel,
    assistant,
    system,
    user,
    user_video,
)
from .registry import ModelSpec, load_model, parse_spec

__all__ = [
    "ChatMessage",
    "ChatModel",
    "Conversation",
    "ImageTextScorer",
    "ModelSpec",
    "PhraseGrounder",
    "TextEmbedder",
    "VideoClip",
    "VisionLanguageModel",
    "assistant",
    "load_model",
    "parse_spec",
    "system",
    "user",
    "user_video",
]
