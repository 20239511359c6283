"""Supervised fine-tuning examples for VideoQA-SC's three trained parts, as
:class:`~videoespresso.schema.SFTExample` records (what trainers and SFT exports consume).

* ``selector``: the small LLM reads the question and numbered captions of candidate frames and
  replies with the core frames, ``{"frames": [2, 5]}`` (the ``select/choose`` prompt the
  caption-LLM selector uses at inference, so training and use see the same text);
* ``stage1``: the reasoner sees the core frames and the question and writes the evidence (the
  ``reason/evidence_open`` prompt);
* ``stage2``: the reasoner sees the frames, the question and the evidence and answers (the
  ``reason/evidence_answer_open`` prompt).

From a build, candidates for the selector are the frames of the caption group a question was
written from (read from the build's store), so the target is a real choice among them. The
official train files hold only the core frames, so they give stage 1 and stage 2 examples only.
``media="video"`` gives the reasoner the whole video instead of the core frames.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable, Literal, Sequence

from ..schema import FrameRef, SFTExample, SFTMessage, SFTTarget, TrainItem

TARGETS: tuple[SFTTarget, ...] = ("selector", "stage1", "stage2")
Media = Literal["images", "video"]
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


def reasoner_examples(
    *, item_id: str, question: str, answer: str, evidence: str, frames: Sequence[FrameRef],
    images: Sequence[str], video: str | None, targets: Iterable[SFTTarget], media: Media, source: str,
    meta: dict[str, Any],
) -> list[SFTExample]:
    """Stage 1 and/or stage 2 examples of one question."""
    out: list[SFTExample] = []
    use_video = media == "video"
    times = "The video is shown." if use_video else _frame_times(frames, len(images))
    shown = {"images": [], "frames": []} if use_video else {"images": list(images), "frames": list(frames)}
    for target in targets:
        if target == "stage1":
            text = _prompt("reason/evidence_open").render(frame_times=times, question=question)
            reply = evidence
        elif target == "stage2":
            text = _prompt("reason/evidence_answer_open").render(frame_times=times, question=question, evidence=evidence)
            reply = answer
        else:
            continue
        out.append(SFTExample(
            id=f"{item_id}:{target}", target=target,
            messages=[SFTMessage(role="user", content=text), SFTMessage(role="assistant", content=reply)],
            video=video, source=source, meta={**meta, "media": media}, **shown,
        ))
    return out


# --------------------------------------------------------------------------- from a build


def _group_candidates(build: Path) -> dict[str, tuple[list[FrameRef], list[str]]]:
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


def examples_from_build(
    build: str | Path,
    targets: Sequence[SFTTarget] = TARGETS,
    *,
    split: str = "train",
    media: Media = "images",
    video_root: str | Path | None = None,
    max_frames: int = 4,
) -> tuple[list[SFTExample], list[str]]:
    """SFT examples from a build folder's ``dataset.jsonl`` (items of ``split``; ``all`` for all).

    Frame images are absolute paths into the build; videos are ``video_root / video path`` (the
    build's input folder, needed for ``media="video"`` only). Returns the examples and one line per
    item skipped, with the reason."""
    from ..formats.jsonl import read_jsonl

    build = Path(build).resolve()
    source_file = build / "dataset.jsonl"
    if not source_file.is_file():
        from ..errors import FormatError

        raise FormatError(f"{build}: no dataset.jsonl (not a build folder, or the build has not exported yet)")
    groups = _group_candidates(build) if "selector" in targets else {}
    problems: list[str] = []
    if "selector" in targets and not groups:
        problems.append(f"{build}: no caption groups in store.sqlite; selector examples skipped")
    examples: list[SFTExample] = []
    for line, record, error in read_jsonl(source_file):
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
            group_id = qa["id"].rsplit("/", 1)[0]
            candidates, captions = groups.get(group_id, ([], []))
            positions = {f.index: i + 1 for i, f in enumerate(candidates)}
            if not candidates:
                problems.append(f"item {qa['id']}: caption group {group_id!r} not in the store; selector example skipped")
            elif any(f.index not in positions for f in core):
                problems.append(f"item {qa['id']}: core frames are not among the group's frames; selector example skipped")
            else:
                chosen = sorted(positions[f.index] for f in core)
                prompt = selector_prompt(qa["question"], record.get("options"), candidates, captions, max(max_frames, len(chosen)))
                examples.append(SFTExample(
                    id=f"{qa['id']}:selector", target="selector",
                    messages=[SFTMessage(role="user", content=prompt),
                              SFTMessage(role="assistant", content=json.dumps({"frames": chosen}))],
                    video=video, source="build",
                    meta={**meta, "candidates": [f.index for f in candidates], "chosen_frames": [f.index for f in core]},
                ))
        missing = [f.path for f in core if not f.path or not (build / f.path).is_file()]
        if media == "images" and missing:
            problems.append(f"item {qa['id']}: core frame image {missing[0]!r} missing; stage examples skipped")
            continue
        examples.extend(reasoner_examples(
            item_id=qa["id"], question=qa["question"], answer=qa["answer"], evidence=cot["evidence"],
            frames=core, images=[str(build / f.path) for f in core if f.path], video=video,
            targets=targets, media=media, source="build", meta=meta,
        ))
    return examples, problems


# --------------------------------------------------------------------------- from official train files


def examples_from_train_items(
    items: Sequence[TrainItem],
    targets: Sequence[SFTTarget] = ("stage1", "stage2"),
    *,
    frames_root: str | Path | None = None,
    video_root: str | Path | None = None,
    media: Media = "images",
) -> tuple[list[SFTExample], list[str]]:
    """Stage 1 / stage 2 examples from an official train file (either keyframe spelling).

    Keyframe paths are resolved against ``frames_root`` and videos against ``video_root``. Frame
    times come from our own ``keyframes_seconds`` / ``keyframes_index`` fields when present."""
    problems: list[str] = []
    if "selector" in targets:
        problems.append("train files hold only the core frames (no candidates to choose among); selector examples skipped")
    examples: list[SFTExample] = []
    froot = Path(frames_root).resolve() if frames_root is not None else None
    for number, item in enumerate(items):
        item_id = str(item.extra.get("id", number))
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
        video = item.video_path
        if video and video_root is not None:
            video = str(Path(video_root).resolve() / video)
        examples.extend(reasoner_examples(
            item_id=item_id, question=item.question, answer=item.answer, evidence=item.evidence,
            frames=frames, images=images, video=video or None, targets=targets, media=media,
            source="official-video" if item.keyframes_key == "keyframes_path" else "official-images",
            meta={"question_id": item_id, "task": item.task},
        ))
    return examples, problems
