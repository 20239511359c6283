"""The VideoEspresso benchmark: prompts, running, answer extraction, scoring, judging, reports.

>>> from videoespresso.bench import extract_answer
>>> extract_answer("Based on the video, the answer is (C).").letter
'C'
>>> from videoespresso.bench import legacy_extract   # the official score.py rule
>>> legacy_extract("Based on the video, the answer is (C).")
'B'
"""

from .extract import Extraction, extract, extract_answer, legacy_extract
from .judge import JudgeScores, JudgeSummary, Judgement, judge_answers, parse_judge_reply, summarize
from .leaderboard import LeaderboardRow, leaderboard_rows, published_test_counts
from .prompts import render_prompt, template_id, template_names
from .report import load_run, write_report
from .run import EvalOptions, EvalSummary, filter_items, run_eval, write_official
from .score import PredictionRecord, Problem, ScoreReport, compute_score, read_predictions, score_file, score_records

__all__ = [
    "EvalOptions",
    "EvalSummary",
    "Extraction",
    "JudgeScores",
    "JudgeSummary",
    "Judgement",
    "LeaderboardRow",
    "PredictionRecord",
    "Problem",
    "ScoreReport",
    "compute_score",
    "extract",
    "extract_answer",
    "filter_items",
    "judge_answers",
    "leaderboard_rows",
    "legacy_extract",
    "load_run",
    "parse_judge_reply",
    "published_test_counts",
    "read_predictions",
    "render_prompt",
    "run_eval",
    "score_file",
    "score_records",
    "summarize",
    "template_id",
    "template_names",
    "write_official",
    "write_report",
]
