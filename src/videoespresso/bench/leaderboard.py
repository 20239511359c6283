"""The published VideoEspresso leaderboard, shipped as package data (``data/leaderboard.json``)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any

from ..schema import TASKS


@dataclass(frozen=True)
class LeaderboardRow:
    model: str
    params: str | None
    frames: int
    #: Sample-weighted letter accuracy over the test set, percent, as published.
    overall: float
    #: Leaderboard column name -> accuracy in percent.
    per_task: dict[str, float]


@lru_cache(maxsize=1)
def _data() -> dict[str, Any]:
    text = resources.files("videoespresso").joinpath("data/leaderboard.json").read_text("utf-8")
    return json.loads(text)


def leaderboard_rows() -> list[LeaderboardRow]:
    """The 15 published rows, best first, with per-task accuracies keyed by leaderboard column."""
    return [LeaderboardRow(**row) for row in _data()["rows"]]


def leaderboard_source() -> str:
    return str(_data()["source"])


def published_test_counts() -> dict[str, int]:
    """Questions per task in the released ``bench_hard.json`` (leaderboard column -> count).

    Only for reproducing published figures; scoring counts tasks from the files it reads.
    """
    return dict(_data()["test_counts"])


def leaderboard_columns() -> list[str]:
    return [t.leaderboard_name for t in TASKS]
