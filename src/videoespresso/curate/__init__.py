"""Dataset construction: the VideoEspresso stages, one per file, and the build that orders them.

>>> from videoespresso.config import load_config
>>> from videoespresso.curate import run_build
>>> result = run_build("videos/", "build/", load_config("offline"))  # doctest: +SKIP
"""

from ._common import ModelPool
from .caption import CaptionFrames
from .cot import AnnotateCoT
from .dedup import RemoveRedundant, lifo_keep
from .export import ExportResult, export, shuffled_options
from .group import GroupCaptions, group_spans
from .judge import QualityFilter
from .options import WriteDistractors
from .pipeline import (
    STAGE_NAMES,
    BuildResult,
    build_stages,
    discover_videos,
    parse_stage_range,
    run_build,
)
from .qa import GenerateQA
from .sample import SampleFrames
from .spatial import GroundObjects, tag_evidence
from .temporal import GroundInTime

__all__ = [
    "AnnotateCoT",
    "BuildResult",
    "CaptionFrames",
    "ExportResult",
    "GenerateQA",
    "GroundInTime",
    "GroundObjects",
    "GroupCaptions",
    "ModelPool",
    "QualityFilter",
    "RemoveRedundant",
    "STAGE_NAMES",
    "SampleFrames",
    "WriteDistractors",
    "build_stages",
    "discover_videos",
    "export",
    "group_spans",
    "lifo_keep",
    "parse_stage_range",
    "run_build",
    "shuffled_options",
    "tag_evidence",
]
