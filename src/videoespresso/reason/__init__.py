"""Answerers over selected frames: direct and two-stage (evidence, then answer), plus compute
accounting (:mod:`videoespresso.reason.flops`)."""

from .reasoners import (
    ANSWER_CUE,
    EVIDENCE_CUE,
    REASONERS,
    DirectReasoner,
    ReasonRequest,
    ReasonResult,
    StageRecord,
    TwoStageReasoner,
    format_frame_times,
    format_options,
    load_frames,
    make_reasoner,
)

__all__ = [
    "ANSWER_CUE",
    "EVIDENCE_CUE",
    "REASONERS",
    "DirectReasoner",
    "ReasonRequest",
    "ReasonResult",
    "StageRecord",
    "TwoStageReasoner",
    "format_frame_times",
    "format_options",
    "load_frames",
    "make_reasoner",
]
