"""Model capabilities, backends and the spec-string registry."""

from .protocols import (
    ChatMessage,
    ChatModel,
    Conversation,
    ImageTextScorer,
    PhraseGrounder,
    TextEmbedder,
    VisionLanguageModel,
    assistant,
    system,
    user,
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
    "VisionLanguageModel",
    "assistant",
    "load_model",
    "parse_spec",
    "system",
    "user",
]
