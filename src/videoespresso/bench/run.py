"""Running a vision-language model over the benchmark, resumably.

Predictions stream to a JSONL file, one durable (flushed + fsynced) line per question, in
benchmark order. A rerun reads the file, drops a half-written last line left by a killed run,
and answers only the questions not yet there; with the model response cache (SQLite, next to
the predictions by default) even the question in flight when the run died costs nothing twice.

Frames come from one of four sources, so a frame-selection method plugs in without patching:
a sampler from :mod:`videoespresso.video` (``uniform:16`` by default, ``official`` for the
official per-video count), precomputed frame lists (a JSON file keyed by question id, read by
:func:`videoespresso.select.load_selections`), a selector by name
(:func:`videoespresso.select.load_selector`), or the items' released core-frame images
(``core_frames_paths`` under a root; :func:`core_frames_source`).

The frames reach the model as separate images (``input_form="images"``) or as one video
(``"video"``: :class:`~videoespresso.models.protocols.VideoClip`, the processor's video path),
as the official script passes them. :mod:`videoespresso.bench.protocol` names the two presets.

Two answering modes: ``generate`` (the prompt, a reply, the extractor reads a letter) and
``logprob`` (the model's log-probability of each option letter after the prompt; the best letter
is the answer, nothing is parsed).
"""

from __future__ import annotations

import os
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Literal, Sequence

from ..errors import ConfigError, EndpointDownError, UserError
from ..schema import LETTERS, BenchItem, FrameRef, GenerationSettings, Prediction, find_task
from .extract import extract_answer
from .prompts import OPEN_ENDED, render_prompt, template_id

if TYPE_CHECKING:
    from PIL.Image import Image

    from ..config import Config
    from ..engine.journal import Journal
    from ..schema import Selection

AnswerMode = Literal["generate", "logprob"]
#: (frames, images) for one benchmark item; raises a UserError (e.g. a VideoError) for a bad video.
FrameSource = Callable[[BenchItem, Path], "tuple[list[FrameRef], list[Image]]"]


@dataclass
class EvalOptions:
    template: str = "official"
    with_evidence: bool = False
    mode: AnswerMode = "generate"
    settings: GenerationSettings = field(default_factory=GenerationSettings)
    batch_size: int = 4
    #: Name of the frame source, recorded with every prediction ("uniform:16", "frames:sel.json").
    frames_label: str = "uniform:16"
    #: Longer side frames are resized to before the processor (None: native size).
    max_side: int | None = None
    #: Answer again the items whose earlier attempt failed (an unreadable video, a model error).
    retry_failed: bool = True
    #: The preset the run follows (:mod:`videoespresso.bench.protocol`): "ours" or "official".
    protocol: str = "ours"
    #: How frames reach the model: "images" (one image each) or "video" (one video input).
    input_form: str = "images"
    #: Where frames come from: "video" (decoded) or "core-frames" (the items' core-frame images).
    frames_from: str = "video"


#: Options that do not change what a prediction holds (so a resume may change them).
_NOT_RECORDED = ("batch_size", "retry_failed")
#: Options added after manifests existed: recorded only when not at their default, so a run
#: started before them still resumes (its manifest lacks them and they were at the default).
_RECORDED_IF_SET = {"protocol": "ours", "input_form": "images", "frames_from": "video"}


def run_settings(opts: EvalOptions, model_spec: str, model_options: dict[str, Any], bench_sha256: str) -> dict[str, Any]:
    """What decides a run's predictions: recorded in its manifest and compared on resume.

    Every field of :class:`EvalOptions` is recorded except those in ``_NOT_RECORDED``, so an
    option added later is compared without anyone remembering to add it here.
    """
    from dataclasses import fields

    recorded = {
        f.name: getattr(opts, f.name)
        for f in fields(opts)
        if f.name not in _NOT_RECORDED and not (f.name in _RECORDED_IF_SET and getattr(opts, f.name) == _RECORDED_IF_SET[f.name])
    }
    recorded["settings"] = opts.settings.model_dump(mode="json")
    recorded["prompt_template"] = template_id(opts.template)
    return {"model": model_spec, "model_options": model_options, **recorded, "bench_sha256": bench_sha256}


def settings_from_lines(path: Path) -> dict[str, Any] | None:
    """The recorded settings of a predictions file written before manifests existed."""
    from ..formats.jsonl import read_jsonl

    if not path.is_file():
        return None
    for _, obj, error in read_jsonl(path):
        if error is None and isinstance(obj, dict) and isinstance(obj.get("id"), str):
            extra = obj.get("extra") if isinstance(obj.get("extra"), dict) else {}
            return {
                "model": obj.get("model", ""),
                "prompt_template": obj.get("prompt_template", ""),
                "with_evidence": bool(obj.get("with_evidence", False)),
                "frames_label": extra.get("frames_source", ""),
            }
    return None


@dataclass
class EvalSummary:
    total: int
    already_done: int
    #: Items whose earlier failed attempt was answered again in this run.
    retried: int = 0
    answered: int = 0
    failed: int = 0
    failure_reasons: dict[str, int] = field(default_factory=dict)
    #: The first few failures, "item <id>: <reason>".
    failure_examples: list[str] = field(default_factory=list)
    seconds: float = 0.0
    repaired_tail: bool = False
    out: str = ""


# --------------------------------------------------------------------------- item selection


def filter_items(items: Sequence[BenchItem], tasks: Sequence[str] | None = None, limit: int | None = None) -> list[BenchItem]:
    """Keep the items of the given tasks (paper or leaderboard names), then the first ``limit``."""
    chosen = list(items)
    if tasks:
        wanted = set()
        for name in tasks:
            info = find_task(name)
            wanted.add(info.paper_name if info else name)
        chosen = [i for i in chosen if ((find_task(i.task).paper_name if find_task(i.task) else i.task) in wanted)]
        if not chosen:
            raise ConfigError(f"no benchmark item has task {', '.join(tasks)}")
    if limit is not None:
        chosen = chosen[:limit]
    return chosen


# --------------------------------------------------------------------------- frame sources


def resolve_video(item: BenchItem, video_root: Path) -> Path:
    """The item's video under ``video_root``; a path that leaves it (``..``, absolute) is refused.

    A benchmark file is data, possibly from someone else: it must not make a run read any file
    the user can read.
    """
    path = Path(item.video_path)
    root = Path(os.path.abspath(video_root))
    full = Path(os.path.abspath(root / path))
    if not full.is_relative_to(root):
        raise UserError(f"video_path {item.video_path!r} is outside --video-root {video_root}; refused")
    return full


def sampler_source(spec: str, max_side: int | None) -> FrameSource:
    """Frames from a :mod:`videoespresso.video` sampler spec such as ``uniform:16``."""
    from ..video import parse_sampler, sample_frames

    sampler = parse_sampler(spec)

    def frames(item: BenchItem, video: Path) -> "tuple[list[FrameRef], list[Image]]":
        sampled, images = sample_frames(video, sampler, size=max_side)
        return list(sampled.frames), list(images)

    return frames


def _frames_of_selection(selection: "Selection", video: Path, max_side: int | None) -> "tuple[list[FrameRef], list[Image]]":
    from ..video import VideoReader

    indices = [f.index for f in selection.frames]
    if not indices:
        raise UserError(f"the selection for {selection.question_id or video} has no frames")
    with VideoReader(video) as reader:
        decoded = reader.get_frames_at(indices, size=max_side)
    return [d.ref for d in decoded], [d.image for d in decoded]


def selections_source(path: Path, max_side: int | None) -> FrameSource:
    """Precomputed frame lists: a JSON file of selections keyed by question id."""
    from ..select import load_selections

    selections = load_selections(path)

    def frames(item: BenchItem, video: Path) -> "tuple[list[FrameRef], list[Image]]":
        selection = selections.get(item.id)
        if selection is None:
            raise UserError(f"no frame list for this question in {path}")
        return _frames_of_selection(selection, video, max_side)

    return frames


def _resolve_under(root: Path, relative: str, what: str, option: str) -> Path:
    base = Path(os.path.abspath(root))
    full = Path(os.path.abspath(base / relative))
    if not full.is_relative_to(base):
        raise UserError(f"{what} {relative!r} is outside {option} {root}; refused")
    return full


def core_frames_source(root: Path, fps: float = 1.0, max_side: int | None = None) -> FrameSource:
    """The items' released core-frame images (``core_frames_paths``, resolved under ``root``).

    File names that are numbers (``480.jpg``) are frame indices at ``fps`` frames per second:
    the maintainers say frames were sampled at 1 fps and the core frames are those frames, so
    ``480.jpg`` is at 480 s. Other names keep their order, at ``i / fps`` seconds. Images are
    shrunk so the longer side is at most ``max_side`` (None: as they are).
    """
    from PIL import Image as PILImage
    from PIL import UnidentifiedImageError

    if not fps > 0:
        raise ConfigError(f"the core-frame fps must be positive, got {fps}")

    def frames(item: BenchItem, video: Path) -> "tuple[list[FrameRef], list[Image]]":
        if not item.core_frames_paths:
            raise UserError("the item has no core_frames_paths")
        found: list[tuple[FrameRef, Image]] = []
        for position, relative in enumerate(item.core_frames_paths):
            path = _resolve_under(root, relative, "core frame", "--core-root")
            try:
                with PILImage.open(path) as opened:
                    image = opened.convert("RGB")
            except FileNotFoundError:
                raise UserError(f"core frame {relative!r} not found under --core-root {root}") from None
            except (UnidentifiedImageError, OSError) as exc:
                raise UserError(f"core frame {relative!r} is not a readable image ({exc})") from None
            if max_side:
                image.thumbnail((max_side, max_side))
            stem = Path(relative).stem
            index = int(stem) if stem.isdigit() else position
            found.append((FrameRef(index=index, seconds=index / fps, path=relative), image))
        found.sort(key=lambda pair: pair[0].index)
        return [ref for ref, _ in found], [image for _, image in found]

    return frames


def video_clip(frames: Sequence[FrameRef], images: Sequence[Any]) -> Any:
    """Frames as one :class:`~videoespresso.models.protocols.VideoClip`, the source's frame
    rate read off the frames' indices and times (exact for a constant-rate video)."""
    from ..models.protocols import VideoClip

    if not frames:
        raise UserError("no frames to make a video of")
    first, last = frames[0], frames[-1]
    if last.seconds > first.seconds and last.index > first.index:
        fps = (last.index - first.index) / (last.seconds - first.seconds)
    elif last.seconds > 0:
        fps = last.index / last.seconds
    else:
        fps = 1.0
    return VideoClip(
        frames=list(images), indices=[f.index for f in frames], seconds=[f.seconds for f in frames],
        fps=fps, total_frames=last.index + 1,
    )


def selector_source(
    name: str, config: "Config", max_side: int | None, items: Sequence[BenchItem] = ()
) -> FrameSource:
    """Frames chosen per question by a selector from :mod:`videoespresso.select`.

    ``items`` go to selectors that read annotations (``oracle`` reads the core frames).
    """
    from ..select import load_selector

    selector = load_selector(name, config, items=list(items))

    def frames(item: BenchItem, video: Path) -> "tuple[list[FrameRef], list[Image]]":
        selection = selector.select(str(video), item.question, item_id=item.id, options=item.options)
        return _frames_of_selection(selection, video, max_side)

    # The caller reports the selector's repairs and fallbacks (``selector.stats``) after the run.
    frames.selector = selector  # type: ignore[attr-defined]
    return frames


# --------------------------------------------------------------------------- the run


def _failure(item: BenchItem, reason: str, opts: EvalOptions, model_spec: str) -> Prediction:
    return Prediction(
        id=item.id,
        task=item.task,
        video_path=item.video_path,
        output="",
        model=model_spec,
        settings=opts.settings,
        with_evidence=opts.with_evidence,
        prompt_template=template_id(opts.template),
        correct_answer=item.correct_answer,
        rule="none:error",
        error=reason,
        extra=_extra(item, opts),
    )


def _extra(item: BenchItem, opts: EvalOptions) -> dict[str, Any]:
    extra: dict[str, Any] = {"options": list(item.options), "frames_source": opts.frames_label}
    if opts.protocol != "ours" or opts.input_form != "images":
        extra.update(protocol=opts.protocol, input_form=opts.input_form)
    return extra


def _reason_family(reason: str) -> str:
    return reason.split(":", 1)[0]


def run_eval(
    items: Sequence[BenchItem],
    model: Any,
    out: Path,
    frame_source: FrameSource,
    video_root: Path,
    opts: EvalOptions,
    *,
    on_item: Callable[[Prediction], None] | None = None,
    journal: "Journal | None" = None,
) -> EvalSummary:
    """Answer every item not yet in ``out``, appending one prediction line per item.

    With ``opts.retry_failed`` the failed attempts already in ``out`` are removed first and
    those items answered again. ``model`` may be None when nothing is left to answer.

    ``journal`` is ``out`` already opened (locked, manifest checked) by the caller; without it
    ``out`` is opened here, with no manifest. Either way ``out`` is locked for the run
    (``<out>.lock``): a second run on the same file is refused.
    """
    from ..engine.journal import Journal

    if journal is not None:
        return _run_eval(items, model, journal, frame_source, video_root, opts, on_item=on_item)
    with Journal(out, "predictions file") as opened:
        return _run_eval(items, model, opened, frame_source, video_root, opts, on_item=on_item)


def _run_eval(
    items: Sequence[BenchItem],
    model: Any,
    journal: "Journal",
    frame_source: FrameSource,
    video_root: Path,
    opts: EvalOptions,
    *,
    on_item: Callable[[Prediction], None] | None = None,
) -> EvalSummary:
    from ..failpoints import failpoint
    from ..models.protocols import user, user_video

    out = journal.out
    wanted = {i.id for i in items}
    retrying = journal.drop_failed(wanted) if opts.retry_failed else set()
    done = journal.ids()
    todo = [i for i in items if i.id not in done]
    if todo and opts.mode == "logprob" and not hasattr(model, "option_logprobs"):
        raise ConfigError(f"{getattr(model, 'spec', model)} cannot score options by log-probability; use --mode generate")
    summary = EvalSummary(
        total=len(items), already_done=len(items) - len(todo), retried=len(retrying),
        repaired_tail=journal.repaired_tail, out=str(out),
    )
    reasons: Counter[str] = Counter()
    spec = getattr(model, "spec", str(model))
    tmpl = template_id(opts.template)
    started = time.perf_counter()

    def emit(pred: Prediction) -> None:
        journal.append(pred.model_dump(mode="json", exclude_none=True))
        failpoint("eval:mid")
        if pred.error:
            summary.failed += 1
            reasons[_reason_family(pred.error)] += 1
            if len(summary.failure_examples) < 10:
                summary.failure_examples.append(f"item {pred.id}: {pred.error}")
        else:
            summary.answered += 1
        if on_item is not None:
            on_item(pred)

    for start in range(0, len(todo), opts.batch_size):
        batch = todo[start : start + opts.batch_size]
        ready: list[tuple[BenchItem, list[FrameRef], list[Any]]] = []
        results: dict[str, Prediction] = {}
        for item in batch:
            try:
                frames, images = frame_source(item, resolve_video(item, video_root))
                if not images:
                    raise UserError("the frame source gave no frames")
            except EndpointDownError:
                raise
            except UserError as exc:
                results[item.id] = _failure(item, f"frames: {exc}", opts, spec)
                continue
            ready.append((item, frames, images))
        convs = [
            [user_video(render_prompt(it, opts.template, opts.with_evidence), video_clip(frames, images))]
            if opts.input_form == "video"
            else [user(render_prompt(it, opts.template, opts.with_evidence), images)]
            for it, frames, images in ready
        ]
        answers = _answer(model, convs, opts, ready)
        for (item, frames, _), answer in zip(ready, answers):
            if isinstance(answer, str):
                results[item.id] = _failure(item, answer, opts, spec)
                continue
            results[item.id] = _prediction(item, frames, answer, opts, spec, tmpl)
        # Written in benchmark order, so a resumed file reads like an uninterrupted one.
        for item in batch:
            emit(results[item.id])

    if retrying:
        # Retried items were appended at the end; put every line back in benchmark order so a
        # rerun's file reads like an uninterrupted run's.
        journal.reorder([i.id for i in items])
    summary.seconds = time.perf_counter() - started
    summary.failure_reasons = dict(reasons)
    return summary


def _answer(model: Any, convs: list[Any], opts: EvalOptions, ready: list[Any]) -> list[Any]:
    """One result per conversation: a Generation, a logprob row, or a failure reason string."""
    if not convs:
        return []
    try:
        return _call(model, convs, opts)
    except EndpointDownError:
        # The endpoint is gone: stop (a rerun resumes) instead of a timeout per remaining item.
        raise
    except UserError as exc:
        if len(convs) == 1:
            return [f"model: {exc}"]
    # A failed batch is retried item by item so that one bad request fails alone.
    out: list[Any] = []
    for conv in convs:
        try:
            out.extend(_call(model, [conv], opts))
        except EndpointDownError:
            raise
        except UserError as exc:
            out.append(f"model: {exc}")
    return out


def _call(model: Any, convs: list[Any], opts: EvalOptions) -> list[Any]:
    if opts.mode == "logprob":
        return model.option_logprobs(convs, [list(LETTERS)] * len(convs))
    return model.generate(convs, settings=opts.settings)


def _prediction(
    item: BenchItem, frames: list[FrameRef], answer: Any, opts: EvalOptions, spec: str, tmpl: str
) -> Prediction:
    extra = _extra(item, opts)
    if opts.mode == "logprob":
        scores = [float(x) for x in answer]
        best = max(range(len(scores)), key=scores.__getitem__)
        output, letter, rule = LETTERS[best], LETTERS[best], "logprob"
        extra["logprobs"] = dict(zip(LETTERS, scores))
    else:
        output = answer.text
        if opts.template in OPEN_ENDED:
            letter, rule = None, "open"
        else:
            found = extract_answer(output, item.options)
            letter, rule = found.letter, found.rule
        extra["cached"] = bool(getattr(answer, "cached", False))
        if answer.completion_tokens is not None:
            extra["completion_tokens"] = answer.completion_tokens
    return Prediction(
        id=item.id,
        task=item.task,
        video_path=item.video_path,
        output=output,
        model=spec,
        settings=opts.settings if opts.mode == "generate" else None,
        frames=frames,
        with_evidence=opts.with_evidence,
        prompt_template=tmpl,
        correct_answer=item.correct_answer,
        letter=letter,
        rule=rule,
        extra=extra,
    )


def write_official(items: Sequence[BenchItem], predictions_path: Path, out: Path) -> int:
    """The official format: each benchmark item with ``model_output`` added (score.py runs on it).

    Every item is written, so score.py divides by the same count as on a complete run: an item
    that failed, or that has no prediction yet, gets an empty ``model_output``, which score.py
    counts as wrong (the failure itself is in our JSONL). Returns the number of items written.
    """
    from ..formats.bench import bench_item_to_official
    from ..formats.jsonl import read_jsonl, write_json_atomic

    outputs: dict[str, str] = {}
    for _, obj, error in read_jsonl(predictions_path):
        if error is None and isinstance(obj, dict) and isinstance(obj.get("id"), str):
            outputs.setdefault(obj["id"], obj.get("output") or "")
    rows = []
    for item in items:
        row = bench_item_to_official(item)
        # Filtered runs do not keep the file's indices, so the id travels with the item.
        row.setdefault("id", item.id)
        row["model_output"] = outputs.get(item.id, "")
        rows.append(row)
    write_json_atomic(out, rows, indent=2)
    return len(rows)
