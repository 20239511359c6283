"""Open-ended scoring by an LLM judge: Logic, Factuality, Description Accuracy, Conciseness, overall.

The judge sees the question, the reference answer and evidence, and the answer to grade, and must
reply with one JSON object of five integers from 1 to 10. Parsing is strict: the reply is that
object (optionally inside one Markdown code fence) and nothing else; a reply that is not gets one
retry, in which the judge is told what was wrong. A second failure is recorded with its reason and
counted; it is never filled in with a default. Means are reported x10 (0-100), as in the paper.
"""

from __future__ import annotations

import json
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..errors import FormatError, StructuredOutputError
from ..schema import BenchItem, GenerationSettings
from .score import PredictionRecord, task_key

if TYPE_CHECKING:
    from ..engine.journal import Journal
    from ..models.protocols import ChatModel

CRITERIA = ("logic", "factuality", "accuracy", "conciseness", "overall")
#: The paper's column names for the criteria.
CRITERIA_LABELS = {
    "logic": "Logic",
    "factuality": "Factuality",
    "accuracy": "Description Accuracy",
    "conciseness": "Conciseness",
    "overall": "Overall",
}


class JudgeScores(BaseModel):
    """The judge's reply: five integer scores from 1 to 10, nothing else."""

    model_config = ConfigDict(extra="forbid", strict=True)

    logic: int = Field(ge=1, le=10)
    factuality: int = Field(ge=1, le=10)
    accuracy: int = Field(ge=1, le=10)
    conciseness: int = Field(ge=1, le=10)
    overall: int = Field(ge=1, le=10)


class Judgement(BaseModel):
    """One graded answer, or the reason it could not be graded."""

    id: str
    task: str
    scores: JudgeScores | None = None
    error: str | None = None
    attempts: int = 0
    replies: list[str] = Field(default_factory=list)
    judge: str = ""


class JudgeSummary(BaseModel):
    """Means x10 (0-100) over the graded answers; failures counted by reason, never filled in."""

    judge: str
    n: int
    judged: int
    failed: int
    failure_reasons: dict[str, int] = Field(default_factory=dict)
    retried: int = 0
    means: dict[str, float] = Field(default_factory=dict)
    per_task: dict[str, dict[str, float]] = Field(default_factory=dict)


_FENCE_RE = re.compile(r"^```(?:json)?\s*\n?(?P<body>.*?)\n?```$", re.S | re.I)


def parse_judge_reply(text: str) -> JudgeScores:
    """The reply as :class:`JudgeScores`; :class:`StructuredOutputError` says what is wrong."""
    body = text.strip()
    fenced = _FENCE_RE.match(body)
    if fenced:
        body = fenced.group("body").strip()
    if not body:
        raise StructuredOutputError("empty reply", reply=text)
    try:
        obj = json.loads(body)
    except ValueError as exc:
        raise StructuredOutputError(f"not a JSON object ({exc.msg})", reply=text) from None
    if not isinstance(obj, dict):
        raise StructuredOutputError("the JSON is not an object", reply=text)
    try:
        return JudgeScores.model_validate(obj)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'reply'}: {e['msg']}" for e in exc.errors())
        raise StructuredOutputError(f"invalid scores ({problems})", reply=text) from None


def _reason_family(message: str) -> str:
    return message.split(" (", 1)[0]


@dataclass
class JudgeRequest:
    id: str
    task: str
    question: str
    reference: str
    evidence: str
    answer: str
    replies: list[str] = field(default_factory=list)


def build_requests(records: Sequence[PredictionRecord], bench: Sequence[BenchItem] | None) -> tuple[list[JudgeRequest], list[str]]:
    """Pair each prediction with its question and reference; the second list names the skipped."""
    by_id = {b.id: b for b in bench} if bench is not None else {}
    out: list[JudgeRequest] = []
    skipped: list[str] = []
    seen: set[str] = set()
    for rec in records:
        if rec.id in seen:
            skipped.append(f"item {rec.id}: duplicate prediction (the first was kept)")
            continue
        seen.add(rec.id)
        item = by_id.get(rec.id)
        question = item.question if item else rec.extra.get("question")
        reference = item.answer if item else rec.extra.get("answer")
        evidence = item.evidence if item else rec.extra.get("evidence", "")
        task = item.task if item else rec.task
        if not isinstance(question, str) or not isinstance(reference, str) or not task:
            skipped.append(f"item {rec.id}: no question/reference answer (pass the benchmark file)")
            continue
        answer = rec.output if isinstance(rec.output, str) else ""
        out.append(JudgeRequest(rec.id, task, question, reference, evidence or "", answer))
    return out, skipped


def judge_answers(
    requests: Sequence[JudgeRequest],
    judge: "ChatModel",
    *,
    settings: GenerationSettings | None = None,
    batch_size: int = 8,
    constrained: bool = True,
    on_done: Callable[[Judgement], None] | None = None,
) -> list[Judgement]:
    """Grade answers in batches; one corrective retry per unparsable reply.

    ``constrained`` passes :class:`JudgeScores` as the JSON schema (backends that support it then
    decode valid JSON); the reply is parsed strictly either way. ``on_done`` is called with each
    finished :class:`Judgement` (the CLI appends it to a JSONL file and advances a progress bar).
    """
    from ..models.protocols import assistant, user
    from ..prompts import load_prompt

    prompt = load_prompt("bench/judge")
    settings = settings or GenerationSettings(max_new_tokens=96)
    schema = JudgeScores if constrained else None
    results: list[Judgement] = []
    for start in range(0, len(requests), batch_size):
        batch = list(requests[start : start + batch_size])
        convs = [
            [user(prompt.render(question=r.question, reference=r.reference, evidence=r.evidence, answer=r.answer))]
            for r in batch
        ]
        pending = list(range(len(batch)))
        errors: dict[int, str] = {}
        done: dict[int, JudgeScores] = {}
        for attempt in (1, 2):
            if not pending:
                break
            gens = judge.generate([convs[i] for i in pending], settings=settings, schema=schema)
            still: list[int] = []
            for i, gen in zip(pending, gens):
                batch[i].replies.append(gen.text)
                try:
                    done[i] = parse_judge_reply(gen.text)
                except StructuredOutputError as exc:
                    errors[i] = str(exc)
                    still.append(i)
                    convs[i] = convs[i] + [
                        assistant(gen.text),
                        user(
                            f"Your reply could not be used: {exc}. Reply with only the JSON object with the "
                            "five integer scores from 1 to 10, and nothing else."
                        ),
                    ]
            pending = still
        for i, req in enumerate(batch):
            result = Judgement(
                id=req.id,
                task=req.task,
                scores=done.get(i),
                error=None if i in done else errors.get(i),
                attempts=len(req.replies),
                replies=req.replies,
                judge=getattr(judge, "spec", ""),
            )
            results.append(result)
            if on_done is not None:
                on_done(result)
    return results


def summarize(judgements: Sequence[Judgement], judge: str = "") -> JudgeSummary:
    graded = [j for j in judgements if j.scores is not None]
    failed = [j for j in judgements if j.scores is None]
    means = {c: 10.0 * sum(getattr(j.scores, c) for j in graded) / len(graded) for c in CRITERIA} if graded else {}
    by_task: dict[str, list[Judgement]] = defaultdict(list)
    for j in graded:
        by_task[task_key(j.task)].append(j)
    per_task = {
        task: {c: 10.0 * sum(getattr(j.scores, c) for j in items) / len(items) for c in CRITERIA}
        for task, items in by_task.items()
    }
    return JudgeSummary(
        judge=judge,
        n=len(judgements),
        judged=len(graded),
        failed=len(failed),
        failure_reasons=dict(Counter(_reason_family(j.error or "unknown") for j in failed)),
        retried=sum(1 for j in judgements if j.attempts > 1),
        means=means,
        per_task=per_task,
    )


def read_judgements(path: str | Path) -> list[Judgement]:
    """Judgements already written (for resuming); malformed lines are ignored and re-judged."""
    from ..engine.journal import read_records

    out: list[Judgement] = []
    for obj in read_records(Path(path)):
        try:
            out.append(Judgement.model_validate(obj))
        except ValidationError:
            continue
    return out


def open_judgements(out: Path, **manifest: Any) -> "Journal":
    """The :class:`~videoespresso.engine.journal.Journal` of a judgements file (one line per
    graded answer); ``manifest`` holds its ``kind``/``settings``/``overwrite``."""
    from ..engine.journal import Journal

    return Journal(out, "judgements file", legacy_settings=settings_from_lines, **manifest)


def settings_from_lines(path: Path) -> dict[str, Any] | None:
    """The judge recorded in a judgements file written before manifests existed."""
    for judgement in read_judgements(path):
        if judgement.judge:
            return {"judge": judgement.judge}
    return None


def load_judge_inputs(pred_path: str | Path, bench_path: str | Path | None) -> tuple[list[JudgeRequest], list[str]]:
    from .score import read_predictions

    records, problems = read_predictions(pred_path)
    bench = None
    if bench_path is not None:
        from ..formats.bench import read_bench

        bench = read_bench(bench_path)
    requests, skipped = build_requests(records, bench)
    if not requests and not skipped and not problems:
        raise FormatError(f"predictions file {pred_path} has no predictions")
    return requests, [p.message for p in problems] + skipped


__all__ = [
    "CRITERIA",
    "CRITERIA_LABELS",
    "JudgeScores",
    "Judgement",
    "JudgeSummary",
    "JudgeRequest",
    "parse_judge_reply",
    "build_requests",
    "judge_answers",
    "summarize",
    "read_judgements",
    "open_judgements",
    "load_judge_inputs",
]
