"""Supervised fine-tuning examples for VideoQA-SC's three trained parts, as
:class:`~videoespresso.schema.SFTExample` records (what trainers and SFT exports consume).

* ``selector``: the small LLM reads the question and numbered captions of candidate frames and
  replies with the core frames, ``{"frames":[2,5]}`` (compact, as the constrained decoder writes
  it: :func:`~videoespresso.select.caption_llm.frames_reply`; the ``select/choose`` prompt the
  caption-LLM selector uses at inference, so training and use see the same text);
* ``stage1``: the reasoner sees the core frames and the question and writes the evidence (the
  ``reason/evidence_open`` prompt);
* ``stage2``: the reasoner sees the frames, the question and the evidence and answers (the
  ``reason/evidence_answer_open`` prompt).

From a build, candidates for the selector are the frames of the caption group a question was
written from (read from the build's store), so the target is a real choice among them. The
official train files hold only the core frames and their captions, so selector examples from them
are made as the selector works at inference (:func:`selector_examples_from_train_items`): uniform
candidates from the video, every one captioned by the selector VLM, and as targets the candidates
nearest the annotated keyframes, located as the oracle selector locates them.
``media="video"`` gives the reasoner the whole video instead of the core frames.

Stage examples take two options (the issue's "core frames, optionally plus uniform context" and
"evidence tags rendered or stripped"): ``context_frames=N`` adds N uniformly spaced frames of the
video to the core frames (:func:`with_context_frames`), and ``evidence_tags="strip"`` trains on the
evidence as plain prose (:func:`~videoespresso.formats.evidence.strip_evidence_tags`), in the stage
1 target and in the stage 2 prompt alike, since stage 2 reads what stage 1 writes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Iterable, Literal, Sequence

from ..schema import FrameRef, SFTExample, SFTMessage, SFTTarget, TrainItem
from ..select.base import CandidateMixin
from ..select.caption_llm import frames_reply

TARGETS: tuple[SFTTarget, ...] = ("selector", "stage1", "stage2")
Media = Literal["images", "video"]
EvidenceTags = Literal["keep", "strip"]
#: Said instead of the frame times when a train file does not record them.
UNTIMED = "The {n} frames shown are in video order."


def _prompt(name: str):
    from ..prompts import load_prompt

    return load_prompt(name)


def _frame_times(frames: Sequence[FrameRef], n: int) -> str:
    from ..reason.reasoners import format_frame_times

    return format_frame_times(frames) if frames else UNTIMED.format(n=n)


def selector_prompt(question: str, options: Sequence[str] | None, frames: Sequence[FrameRef],
                    captions: Sequence[str], max_frames: int) -> str:
    """The ``select/choose`` prompt exactly as :class:`CaptionLLMSelector` renders it."""
    from ..select.caption_llm import format_question

    lines = [f"Frame {i + 1} ({ref.seconds:.1f} s): {text}" for i, (ref, text) in enumerate(zip(frames, captions))]
    return _prompt("select/choose").render(
        count=len(frames), captions="\n".join(lines), question=format_question(question, options),
        max_frames=max_frames,
    )


def selector_example(example_id: str, question: str, options: Sequence[str] | None, frames: Sequence[FrameRef],
                     captions: Sequence[str], gold: Sequence[int], max_frames: int, *, source: str,
                     video: str | None = None, meta: dict[str, Any] | None = None) -> SFTExample:
    """One selector example: the prompt :class:`CaptionLLMSelector` renders, and as target the
    1-based ``gold`` numbers written as the constrained decoder writes them
    (:func:`~videoespresso.select.caption_llm.frames_reply`)."""
    return SFTExample(
        id=example_id, target="selector", source=source, video=video, meta=dict(meta or {}),
        messages=[SFTMessage(role="user", content=selector_prompt(question, options, frames, captions, max_frames)),
                  SFTMessage(role="assistant", content=frames_reply(gold))],
    )


def reasoner_examples(
    *, item_id: str, question: str, answer: str, evidence: str, frames: Sequence[FrameRef],
    images: Sequence[str], video: str | None, targets: Iterable[SFTTarget], media: Media, source: str,
    meta: dict[str, Any], evidence_tags: EvidenceTags = "keep",
) -> list[SFTExample]:
    """Stage 1 and/or stage 2 examples of one question, with the values the two-stage reasoner
    fills the same templates with at inference (the question stripped, the evidence in stage 2's
    prompt on one line, as the reasoner passes stage 1's reply on)."""
    out: list[SFTExample] = []
    use_video = media == "video"
    times = "The video is shown." if use_video else _frame_times(frames, len(images))
    shown = {"images": [], "frames": []} if use_video else {"images": list(images), "frames": list(frames)}
    if evidence_tags == "strip":
        from ..formats.evidence import strip_evidence_tags

        evidence = strip_evidence_tags(evidence)
    question = question.strip()
    for target in targets:
        if target == "stage1":
            text = _prompt("reason/evidence_open").render(frame_times=times, question=question)
            reply = evidence
        elif target == "stage2":
            text = _prompt("reason/evidence_answer_open").render(frame_times=times, question=question,
                                                                 evidence=" ".join(evidence.split()))
            reply = answer
        else:
            continue
        out.append(SFTExample(
            id=f"{item_id}:{target}", target=target,
            messages=[SFTMessage(role="user", content=text), SFTMessage(role="assistant", content=reply)],
            video=video, source=source, meta={**meta, "media": media, "evidence_tags": evidence_tags}, **shown,
        ))
    return out


def _check_stage_options(media: Media, context_frames: int, context_dir: str | Path | None,
                         evidence_tags: str) -> None:
    from ..errors import ConfigError

    if evidence_tags not in ("keep", "strip"):
        raise ConfigError(f"evidence tags must be keep or strip, not {evidence_tags!r}")
    if context_frames < 0:
        raise ConfigError(f"context frames must be 0 or more, not {context_frames}")
    if context_frames and media == "video":
        raise ConfigError("context frames add images to the core frames; with media video the whole video is shown")
    if context_frames and context_dir is None:
        raise ConfigError("context frames are decoded from the video and written as images: give a folder for them")


def context_image_path(context_dir: str | Path, video: str | Path, index: int) -> Path:
    """Where context frame ``index`` of ``video`` is written: one folder per video (its name and a
    hash of its absolute path, so two videos with one name never share frames), one JPEG per
    frame index. Written once and reused by every question on that video and by later runs."""
    import hashlib

    video = Path(video).resolve()
    tag = hashlib.sha1(str(video).encode("utf-8")).hexdigest()[:10]
    return Path(context_dir) / f"{video.stem}-{tag}" / f"{index:06d}.jpg"


def with_context_frames(
    reader: Any, core: Sequence[FrameRef], core_images: Sequence[str], count: int, context_dir: str | Path,
) -> tuple[list[FrameRef], list[str], list[int]]:
    """The core frames plus ``count`` uniformly spaced frames of the video (the official rule,
    as the uniform selector takes them), merged in time order; a context frame that is a core
    frame is not repeated. ``core`` must be refs on ``reader``'s frame table (their images are the
    core images, in the same order). Context frames are decoded at full size and written as JPEG
    under ``context_dir`` (:func:`context_image_path`; by temp file + rename, so a killed run
    leaves no half image). Returns the frames, their images and the indices added."""
    from ..select.base import uniform_indices

    core_indices = {ref.index for ref in core}
    added = [i for i in uniform_indices(reader.num_frames, count) if i not in core_indices]
    paths = {i: context_image_path(context_dir, reader.path, i) for i in added}
    missing = [i for i in added if not paths[i].is_file()]
    if missing:
        for frame in reader.get_frames_at(missing):
            target = paths[frame.index]
            target.parent.mkdir(parents=True, exist_ok=True)
            temp = target.with_name(target.name + ".tmp")
            frame.image.save(temp, format="JPEG", quality=95)
            temp.replace(target)
    merged = [(ref, str(image)) for ref, image in zip(core, core_images)]
    merged += [(ref, str(paths[ref.index])) for ref in reader.refs(added)]
    merged.sort(key=lambda pair: (pair[0].index, pair[0].seconds))
    return [ref for ref, _ in merged], [image for _, image in merged], added


def _stage_frames(
    *, item_id: str, video: str | None, core_times: Sequence[float] | None, core: Sequence[FrameRef],
    images: Sequence[str], context_frames: int, context_dir: str | Path | None,
) -> tuple[list[FrameRef], list[str], dict[str, Any]] | str:
    """The frames a stage example shows: the core frames, plus context frames when asked.
    ``core_times`` (when given) place the core frames on the video's frame table (official files:
    times from file names); else ``core`` already sits there (a build). Returns the frames, images
    and meta, or the reason the item is skipped."""
    from ..errors import UserError
    from ..select.base import open_reader
    from ..select.oracle import past_end

    if not context_frames:
        return list(core), list(images), {}
    if not video:
        return f"item {item_id}: context frames need the video and the item has none; stage examples skipped"
    if not Path(video).is_file():
        return f"item {item_id}: video {video!r} not found (context frames come from it; --video-root); stage examples skipped"
    try:
        with open_reader(video) as reader:
            if core_times is not None:
                if past_end(core_times, reader.duration_s):
                    return (f"item {item_id}: keyframe at {max(core_times):g} s is past the video's end "
                            f"({reader.duration_s:g} s; is --frame-fps right?); stage examples skipped")
                core = reader.refs([reader.index_nearest(t) for t in core_times])
            elif any(ref.index >= reader.num_frames for ref in core):
                return f"item {item_id}: core frame indices past the video's {reader.num_frames} frames; stage examples skipped"
            frames, shown, added = with_context_frames(reader, core, images, context_frames, context_dir)  # type: ignore[arg-type]
    except UserError as exc:
        return f"item {item_id}: video {video!r} cannot be read ({exc}); stage examples skipped"
    return frames, shown, {"core_frames": [ref.index for ref in core], "context_frames": added}


# --------------------------------------------------------------------------- from a build


def caption_groups(build: Path) -> dict[str, tuple[list[FrameRef], list[str]]]:
    """Caption groups of a build (id -> frames, captions), the latest stored result of each."""
    from ..engine import Store

    store_file = build / "store.sqlite"
    if not store_file.is_file():
        return {}
    groups: dict[str, tuple[list[FrameRef], list[str]]] = {}
    store = Store(store_file)
    try:
        for result in store.results("group", "ok"):
            for group in result.outputs:
                frames = [FrameRef.model_validate(f) for f in group.get("frames", [])]
                groups[str(group["id"])] = (frames, [str(c) for c in group.get("captions", [])])
    finally:
        store.close()
    return groups


def question_group(
    question_id: str, core: Sequence[FrameRef], groups: dict[str, tuple[list[FrameRef], list[str]]]
) -> tuple[list[FrameRef], list[str]] | str:
    """The caption group a build question was written from (its frames and captions, the
    candidates a selector chooses among), or why it cannot serve: the group is not in the
    store, or the question's core frames are not among its frames."""
    group_id = question_id.rsplit("/", 1)[0]
    candidates, captions = groups.get(group_id, ([], []))
    if not candidates:
        return f"caption group {group_id!r} not in the store"
    indices = {f.index for f in candidates}
    if any(f.index not in indices for f in core):
        return "core frames are not among the group's frames"
    return candidates, captions


def examples_from_build(
    build: str | Path,
    targets: Sequence[SFTTarget] = TARGETS,
    *,
    split: str = "train",
    media: Media = "images",
    video_root: str | Path | None = None,
    max_frames: int = 4,
    context_frames: int = 0,
    context_dir: str | Path | None = None,
    evidence_tags: EvidenceTags = "keep",
) -> tuple[list[SFTExample], list[str]]:
    """SFT examples from a build folder's ``dataset.jsonl`` (items of ``split``; ``all`` for all).

    Frame images are absolute paths into the build; videos are ``video_root / video path`` (the
    build's input folder, needed for ``media="video"`` and ``context_frames`` only; context frame
    images go under ``context_dir``). Returns the examples and one line per item skipped, with the
    reason."""
    from ..formats.dataset import iter_dataset

    _check_stage_options(media, context_frames, context_dir, evidence_tags)

    build = Path(build).resolve()
    source_file = build / "dataset.jsonl"
    if not source_file.is_file():
        from ..errors import FormatError

        raise FormatError(f"{build}: no dataset.jsonl (not a build folder, or the build has not exported yet)")
    groups = caption_groups(build) if "selector" in targets else {}
    problems: list[str] = []
    if "selector" in targets and not groups:
        problems.append(f"{build}: no caption groups in store.sqlite; selector examples skipped")
    examples: list[SFTExample] = []
    for line, record, error in iter_dataset(source_file):
        if error is not None:
            problems.append(f"{source_file}:{line}: {error}; skipped")
            continue
        if split != "all" and record.get("split", "train") != split:
            continue
        qa, cot = record["qa"], record["cot"]
        core = [FrameRef.model_validate(f) for f in cot["core_frames"]]
        video = str(Path(video_root).resolve() / qa["video"]) if video_root is not None else qa["video"]
        meta = {"question_id": qa["id"], "task": qa["task"], "split": record.get("split", "")}
        if "selector" in targets and groups:
            group = question_group(qa["id"], core, groups)
            if isinstance(group, str):
                problems.append(f"item {qa['id']}: {group}; selector example skipped")
            else:
                candidates, captions = group
                positions = {f.index: i + 1 for i, f in enumerate(candidates)}
                chosen = sorted(positions[f.index] for f in core)
                examples.append(selector_example(
                    f"{qa['id']}:selector", qa["question"], record.get("options"), candidates, captions, chosen,
                    max(max_frames, len(chosen)), video=video, source="build",
                    meta={**meta, "candidates": [f.index for f in candidates], "chosen_frames": [f.index for f in core]},
                ))
        if not any(t in ("stage1", "stage2") for t in targets):
            continue
        missing = [f.path for f in core if not f.path or not (build / f.path).is_file()]
        if media == "images" and missing:
            problems.append(f"item {qa['id']}: core frame image {missing[0]!r} missing; stage examples skipped")
            continue
        shown = _stage_frames(item_id=qa["id"], video=video, core_times=None, core=core,
                              images=[str(build / f.path) for f in core if f.path],
                              context_frames=context_frames, context_dir=context_dir)
        if isinstance(shown, str):
            problems.append(shown)
            continue
        frames, images, more = shown
        examples.extend(reasoner_examples(
            item_id=qa["id"], question=qa["question"], answer=qa["answer"], evidence=cot["evidence"],
            frames=frames, images=images, video=video, targets=targets, media=media, source="build",
            meta={**meta, **more}, evidence_tags=evidence_tags,
        ))
    return examples, problems


# --------------------------------------------------------------------------- from official train files


def _item_id(item: TrainItem, number: int) -> str:
    return str(item.extra.get("id", number))


def _item_video(item: TrainItem, video_root: str | Path | None) -> str:
    if item.video_path and video_root is not None:
        return str(Path(video_root).resolve() / item.video_path)
    return item.video_path


def _source(item: TrainItem) -> str:
    return "official-video" if item.keyframes_key == "keyframes_path" else "official-images"


def _recorded_seconds(item: TrainItem) -> list[float] | None:
    """Keyframe times our own train files record (``keyframes_seconds``), else None."""
    seconds = item.extra.get("keyframes_seconds")
    if isinstance(seconds, list) and len(seconds) == len(item.keyframes) and seconds:
        try:
            return [float(t) for t in seconds]
        except (TypeError, ValueError):
            return None
    return None


class _Candidates(CandidateMixin):
    """Uniform candidates and their selector-VLM captions, by the code the caption-reading
    selectors run at inference (one caption per frame of a video, kept across questions)."""

    def __init__(self, candidates: int, image_size: int | None) -> None:
        self.num_candidates = candidates
        self.image_size = image_size


def selector_examples_from_train_items(
    items: Sequence[TrainItem],
    *,
    vlm: Any,
    embedder: Any = None,
    video_root: str | Path | None = None,
    candidates: int = 16,
    frame_fps: float | None = 1.0,
    image_size: int | None = 448,
    settings: Any = None,
    max_frames: int = 4,
    on_item: Callable[[], None] | None = None,
) -> tuple[list[SFTExample], list[str]]:
    """Selector examples from an official train file, which records only the keyframes.

    Candidates are ``candidates`` uniformly spaced frames of the item's video (the rule the
    selectors use at inference) and *all* of them are captioned by the selector VLM ``vlm``, the
    keyframes too: the annotation's own captions come from another, larger model, and giving them
    to the target frames only would teach the picker their style instead of the question. Each
    keyframe is then located among the candidates as the oracle selector locates core frames:

    * ``time``: by its time (our ``keyframes_seconds`` field, else a file name that is a frame
      number at ``frame_fps``, :func:`~videoespresso.select.oracle.times_from_names`), taking the
      candidate nearest in time (the gap is recorded in ``meta["gaps_s"]``); names whose times run
      past the video's end are matched by caption instead;
    * ``caption``: its annotated caption against the candidates' captions with the text
      ``embedder`` (:func:`~videoespresso.select.oracle.match_captions`; the cosine similarities
      are recorded in ``meta["scores"]``).

    Targets are the candidate numbers found (1-based, repeats merged, sorted); the prompt is the
    caption-LLM selector's ``select/choose``. ``vlm`` should carry a response cache
    (``load_model(..., cache=...)``), so a rerun captions nothing again. Items without a video, with
    an unreadable one, or whose keyframes cannot be located are skipped with one line each."""
    from ..errors import UserError
    from ..prompts import load_prompt
    from ..select.base import CAPTION_PROMPT, open_reader
    from ..select.oracle import match_captions, past_end, times_from_names

    from ..schema import GenerationSettings

    problems: list[str] = []
    examples: list[SFTExample] = []
    settings = settings or GenerationSettings(max_new_tokens=48)
    pool = _Candidates(candidates, image_size)
    caption_prompt = load_prompt(CAPTION_PROMPT)
    for number, item in enumerate(items):
        if on_item is not None:
            on_item()
        item_id = _item_id(item, number)
        video = _item_video(item, video_root)
        if not video:
            problems.append(f"item {item_id}: no video_path (selector candidates come from the video); selector example skipped")
            continue
        if not Path(video).is_file():
            problems.append(f"item {item_id}: video {video!r} not found; selector example skipped")
            continue
        if not item.keyframes:
            problems.append(f"item {item_id}: no keyframes to locate; selector example skipped")
            continue
        recorded = _recorded_seconds(item)
        times = recorded if recorded is not None else times_from_names(item.keyframes, frame_fps)
        by_caption = len(item.captions) == len(item.keyframes) and all(c.strip() for c in item.captions)
        try:
            with open_reader(video) as reader:
                if times and recorded is None and past_end(times, reader.duration_s):
                    if not by_caption:
                        problems.append(
                            f"item {item_id}: keyframe at {max(times):g} s (file-name number at {frame_fps:g} fps) "
                            f"is past the video's end ({reader.duration_s:g} s) and no captions to match instead; "
                            "selector example skipped")
                        continue
                    times = []
                if not times and not by_caption:
                    problems.append(f"item {item_id}: keyframes have neither times (numeric file names) nor one "
                                    "caption each; selector example skipped")
                    continue
                if not times and embedder is None:
                    problems.append(f"item {item_id}: keyframes must be located by caption and no text embedder "
                                    "is set; selector example skipped")
                    continue
                refs = pool.candidate_refs(reader, None)
                texts, _ = pool.candidate_captions(reader, refs, vlm, settings)
        except UserError as exc:
            problems.append(f"item {item_id}: video {video!r} cannot be read ({exc}); selector example skipped")
            continue
        meta: dict[str, Any] = {"question_id": item_id, "task": item.task, "keyframes": list(item.keyframes)}
        if times:
            nearest = [min(range(len(refs)), key=lambda j: (abs(refs[j].seconds - t), j)) for t in times]
            meta |= {"located_by": "time", "keyframe_seconds": [round(t, 3) for t in times],
                     "gaps_s": [round(abs(refs[j].seconds - t), 3) for j, t in zip(nearest, times)]}
        else:
            nearest, scores = match_captions(embedder, list(item.captions), texts)
            meta |= {"located_by": "caption", "scores": [round(x, 4) for x in scores],
                     "embedder": getattr(embedder, "spec", type(embedder).__name__)}
        chosen = sorted({j + 1 for j in nearest})
        options = item.extra.get("options")
        options = [str(o) for o in options] if isinstance(options, list) and options else None
        examples.append(selector_example(
            f"{item_id}:selector", item.question, options, refs, texts, chosen, max(max_frames, len(chosen)),
            video=video, source=_source(item),
            meta={**meta, "candidates": [r.index for r in refs], "candidate_seconds": [r.seconds for r in refs],
                  "chosen_frames": [refs[j - 1].index for j in chosen],
                  "selector_vlm": getattr(vlm, "spec", type(vlm).__name__),
                  "caption_prompt": f"{caption_prompt.name}@v{caption_prompt.version}"},
        ))
    return examples, problems


def examples_from_train_items(
    items: Sequence[TrainItem],
    targets: Sequence[SFTTarget] = ("stage1", "stage2"),
    *,
    frames_root: str | Path | None = None,
    video_root: str | Path | None = None,
    media: Media = "images",
    selector_vlm: Any = None,
    embedder: Any = None,
    candidates: int = 16,
    frame_fps: float | None = 1.0,
    image_size: int | None = 448,
    caption_settings: Any = None,
    max_frames: int = 4,
    on_item: Callable[[], None] | None = None,
    context_frames: int = 0,
    context_dir: str | Path | None = None,
    evidence_tags: EvidenceTags = "keep",
) -> tuple[list[SFTExample], list[str]]:
    """Examples from an official train file (either keyframe spelling).

    Keyframe paths are resolved against ``frames_root`` and videos against ``video_root``. Frame
    times come from our own ``keyframes_seconds`` / ``keyframes_index`` fields when present.
    Selector examples need ``selector_vlm`` (and ``embedder`` for keyframes located by caption);
    see :func:`selector_examples_from_train_items`. With ``context_frames`` the keyframes must be
    placed on the video's clock to merge the context in time order: by ``keyframes_seconds``, else
    by file names that are frame numbers at ``frame_fps`` (the oracle's rule); items whose
    keyframes have no time are skipped with the reason (a caption match is no time)."""
    from ..select.oracle import times_from_names

    _check_stage_options(media, context_frames, context_dir, evidence_tags)
    problems: list[str] = []
    examples: list[SFTExample] = []
    if "selector" in targets:
        if selector_vlm is None:
            problems.append("train files hold only the keyframes: selector examples need a selector VLM to caption "
                            "the candidate frames (videoespresso train selector --selector-vlm SPEC --examples-only); "
                            "selector examples skipped")
        else:
            examples, problems = selector_examples_from_train_items(
                items, vlm=selector_vlm, embedder=embedder, video_root=video_root, candidates=candidates,
                frame_fps=frame_fps, image_size=image_size, settings=caption_settings, max_frames=max_frames,
                on_item=on_item)
    if not any(t in ("stage1", "stage2") for t in targets):
        return examples, problems
    froot = Path(frames_root).resolve() if frames_root is not None else None
    for number, item in enumerate(items):
        item_id = _item_id(item, number)
        images = [str(froot / p) if froot is not None and not Path(p).is_absolute() else p for p in item.keyframes]
        if media == "images":
            if not images:
                problems.append(f"item {item_id}: no keyframes; skipped")
                continue
            missing = [p for p in images if not Path(p).is_file()]
            if missing:
                problems.append(f"item {item_id}: keyframe {missing[0]!r} not found; skipped")
                continue
        seconds, indices = item.extra.get("keyframes_seconds"), item.extra.get("keyframes_index")
        frames: list[FrameRef] = []
        if isinstance(seconds, list) and isinstance(indices, list) and len(seconds) == len(indices) == len(images):
            frames = [FrameRef(index=int(i), seconds=float(s), path=p) for i, s, p in zip(indices, seconds, item.keyframes)]
        video = _item_video(item, video_root)
        meta: dict[str, Any] = {"question_id": item_id, "task": item.task}
        if context_frames:
            times = _recorded_seconds(item) or times_from_names(item.keyframes, frame_fps)
            if not times:
                problems.append(f"item {item_id}: keyframe times unknown (no keyframes_seconds, file names are not "
                                "frame numbers), so context frames cannot be placed in time order; stage examples skipped")
                continue
            shown = _stage_frames(item_id=item_id, video=video, core_times=times, core=[], images=images,
                                  context_frames=context_frames, context_dir=context_dir)
            if isinstance(shown, str):
                problems.append(shown)
                continue
            frames, images, more = shown
            meta |= more
        examples.extend(reasoner_examples(
            item_id=item_id, question=item.question, answer=item.answer, evidence=item.evidence,
            frames=frames, images=images, video=video or None, targets=targets, media=media,
            source=_source(item), meta=meta, evidence_tags=evidence_tags,
        ))
    return examples, problems
