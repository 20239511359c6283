"""The open-ended judge: strict parsing, one retry, failures counted (real tiny judge model)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from videoespresso.bench.judge import (
    CRITERIA,
    JudgeRequest,
    Judgement,
    JudgeScores,
    build_requests,
    judge_answers,
    parse_judge_reply,
    summarize,
)
from videoespresso.bench.score import read_predictions
from videoespresso.errors import StructuredOutputError
from videoespresso.schema import GenerationSettings

GOOD = '{"logic": 7, "factuality": 6, "accuracy": 5, "conciseness": 8, "overall": 7}'


def test_strict_parsing_accepts_only_the_object() -> None:
    assert parse_judge_reply(GOOD).logic == 7
    assert parse_judge_reply(f"```json\n{GOOD}\n```").overall == 7
    bad = {
        "": "empty reply",
        f"Sure! {GOOD}": "not a JSON object",
        "[1, 2]": "the JSON is not an object",
        GOOD.replace("7, \"fact", "11, \"fact"): "invalid scores",
        GOOD.replace("7, \"fact", "\"7\", \"fact"): "invalid scores",  # a string is not an int
        GOOD.replace("}", ', "note": "x"}'): "invalid scores",
        '{"logic": 7}': "invalid scores",
    }
    for reply, reason in bad.items():
        with pytest.raises(StructuredOutputError, match=reason):
            parse_judge_reply(reply)


def test_summary_is_x10_and_counts_failures() -> None:
    scores = JudgeScores(logic=7, factuality=6, accuracy=5, conciseness=8, overall=7)
    judgements = [
        Judgement(id="1", task="Causal Analysis", scores=scores, attempts=1),
        Judgement(id="2", task="Causal Inference", scores=scores.model_copy(update={"logic": 9}), attempts=2),
        Judgement(id="3", task="Causal Inference", error="not a JSON object (Expecting value)", attempts=2),
    ]
    summary = summarize(judgements, "x")
    assert (summary.n, summary.judged, summary.failed, summary.retried) == (3, 2, 1, 2)
    assert summary.means["logic"] == pytest.approx(80.0)
    assert summary.means["conciseness"] == pytest.approx(80.0)
    assert summary.failure_reasons == {"not a JSON object": 1}
    assert list(summary.per_task) == ["Causal Inference"]


def _requests(n: int) -> list[JudgeRequest]:
    return [
        JudgeRequest(str(i), "Traffic Analysis", f"Why does car {i} stop?", "The light turns red.", "", "It stops at a red light.")
        for i in range(n)
    ]


def test_tiny_judge_unconstrained_retries_once_and_counts_failures(tiny_llm) -> None:
    # Random weights almost never write the JSON object: every item gets its one retry.
    results = judge_answers(_requests(3), tiny_llm, settings=GenerationSettings(max_new_tokens=12), constrained=False, batch_size=2)
    assert [r.id for r in results] == ["0", "1", "2"]
    for r in results:
        assert 1 <= r.attempts <= 2 and len(r.replies) == r.attempts
        assert (r.scores is None) == (r.error is not None)
        if r.scores is None:
            assert r.attempts == 2
    summary = summarize(results, tiny_llm.spec)
    assert summary.judged + summary.failed == 3
    assert sum(summary.failure_reasons.values()) == summary.failed


def test_tiny_judge_constrained_gives_valid_scores_or_counted_failures(tiny_llm) -> None:
    results = judge_answers(_requests(2), tiny_llm, settings=GenerationSettings(max_new_tokens=80), constrained=True)
    for r in results:
        if r.scores is not None:
            assert all(1 <= getattr(r.scores, c) <= 10 for c in CRITERIA)
        else:
            assert r.error and r.attempts == 2


def test_requests_come_from_official_format_items(tmp_path: Path) -> None:
    item = {
        "video_path": "v.mp4", "question": "q?", "options": ["(A): a", "(B): b", "(C): c", "(D): d"],
        "correct_answer": "(A)", "answer": "ref", "evidence": "ev", "task": "Traffic Analysis", "model_output": "out",
    }
    path = tmp_path / "o.json"
    path.write_text(json.dumps([item, {**item, "answer": 3}]), encoding="utf-8")
    records, _ = read_predictions(path)
    requests, skipped = build_requests(records, None)
    assert [(r.question, r.reference, r.evidence, r.answer) for r in requests] == [("q?", "ref", "ev", "out")]
    assert skipped and "item 1" in skipped[0]


def test_judge_fallback_of_the_extractor_answers_a_letter_or_none(tiny_llm) -> None:
    from videoespresso.bench.extract import extract_answer

    options = ["The man opens the door", "The woman leaves", "A dog barks", "Nothing happens"]
    result = extract_answer("Somebody probably went outside, I think.", options, judge=tiny_llm, question="What happens?")
    # Random weights under the JSON grammar pick any allowed value, "none" included.
    assert (result.letter, result.rule) in {(x, "judge") for x in "ABCD"} | {(None, "none:judge_declined")}
    # Rules that can decide never reach the judge.
    assert extract_answer("Answer: C", options, judge=tiny_llm).rule == "answer_is"


def test_judge_cli_resumes_only_with_the_same_judge_and_a_done_rerun_loads_nothing(tmp_path: Path, capsys) -> None:
    from videoespresso.cli import main

    def run(*argv: str) -> int:
        with pytest.raises(SystemExit) as exc:
            main(list(argv))
            raise SystemExit(0)
        return exc.value.code or 0

    item = {
        "video_path": "v.mp4", "question": "q?", "options": ["(A): a", "(B): b", "(C): c", "(D): d"],
        "correct_answer": "(A)", "answer": "ref", "evidence": "ev", "task": "Traffic Analysis", "model_output": "out",
    }
    preds = tmp_path / "o.json"
    preds.write_text(json.dumps([item, {**item, "question": "other?"}]), encoding="utf-8")
    out = tmp_path / "o.judge.jsonl"
    base = ["judge", str(preds), "--out", str(out), "--profile", "tiny", "--max-new-tokens", "8", "--no-constrained"]
    assert run(*base, "--judge", "tiny:qwen2") in (0, 3)
    assert len(out.read_text().splitlines()) == 2
    capsys.readouterr()
    assert run(*base, "--judge", "tiny:smolvlm") == 2
    assert "other settings" in capsys.readouterr().err
    import videoespresso.models.registry as registry

    loads = []
    original = registry.load_model
    registry.load_model = lambda *a, **k: loads.append(a) or original(*a, **k)
    try:
        assert run(*base, "--judge", "tiny:qwen2") in (0, 3)
    finally:
        registry.load_model = original
    assert loads == [] and len(out.read_text().splitlines()) == 2
