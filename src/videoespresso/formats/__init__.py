"""Readers and writers of public formats: the benchmark file, both train-JSON spellings, the
inline evidence tags, box conversions and JSONL helpers. No model calls."""

from .bench import bench_item_to_official, read_bench, write_bench
from .boxes import box_from_cxcywh100, box_to_cxcywh100
from .evidence import (
    EvidenceObject,
    parse_evidence,
    render_evidence,
    render_object_tag,
    strip_evidence_tags,
)
from .train import read_train, train_item_to_json, write_train

__all__ = [
    "EvidenceObject",
    "bench_item_to_official",
    "box_from_cxcywh100",
    "box_to_cxcywh100",
    "parse_evidence",
    "read_bench",
    "read_train",
    "render_evidence",
    "render_object_tag",
    "strip_evidence_tags",
    "train_item_to_json",
    "write_bench",
    "write_train",
]
