"""Executors and the store: how a stage list runs, knowing nothing about any stage."""

from .local import LocalExecutor, RunResult, StageStats, print_summary, reasons_table, summary_table
from .stage import (
    Item,
    Resources,
    Stage,
    canonical_json,
    content_hash,
    derive,
    dropped,
    failed,
    warn,
)
from .store import ResultKey, Store, StoredResult

__all__ = [
    "Item",
    "LocalExecutor",
    "Resources",
    "ResultKey",
    "RunResult",
    "Stage",
    "StageStats",
    "Store",
    "StoredResult",
    "canonical_json",
    "content_hash",
    "derive",
    "dropped",
    "failed",
    "print_summary",
    "reasons_table",
    "summary_table",
    "warn",
]
