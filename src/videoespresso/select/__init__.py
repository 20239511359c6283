"""Frame selectors: which frames of a video a question needs.

One selector per file behind :class:`FrameSelector`: ``uniform`` (the official baseline),
``embedding`` (captions ranked by similarity to the question), ``caption-llm`` (VideoQA-SC: a
small VLM captions, a small LLM picks) and ``oracle`` (the annotated core frames). Build one by
name with :func:`load_selector`; keep selections with :func:`save_selections` /
:func:`load_selections`.
"""

from .base import FrameSelector, SelectionError, uniform_indices
from .caption_llm import CaptionLLMSelector, CoreFrames, ParsedReply, core_frames_schema, parse_frame_numbers
from .embedding import EmbeddingSelector, pick_with_gap
from .factory import SELECTORS, LazyModel, load_selector
from .oracle import OracleSelector
from .sheet import contact_sheet
from .store import load_selections, save_selections
from .uniform import UniformSelector

__all__ = [
    "SELECTORS",
    "CaptionLLMSelector",
    "CoreFrames",
    "core_frames_schema",
    "EmbeddingSelector",
    "FrameSelector",
    "LazyModel",
    "OracleSelector",
    "ParsedReply",
    "SelectionError",
    "UniformSelector",
    "contact_sheet",
    "load_selections",
    "load_selector",
    "parse_frame_numbers",
    "pick_with_gap",
    "save_selections",
    "uniform_indices",
]
