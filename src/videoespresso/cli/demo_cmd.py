"""``videoespresso demo``: a smoke run of the answer path on a generated sample video."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from . import app
from ._common import ConfigOption, ProfileOption, console, effective_config

QUESTION = "What happens after the shapes stop moving?"
OPTIONS = ["The scene cuts to a different shot", "A person enters", "The video fades to black", "Nothing changes"]


@app.command("demo")
def demo_command(
    out: Path = typer.Option(Path("videoespresso-demo"), "--out", help="Folder for the sample video and results."),
    profile: Optional[str] = typer.Option("offline", "--profile", "-p", help=ProfileOption.help),
    config: Optional[Path] = ConfigOption,
) -> None:
    """Generate a sample video, caption frames, pick core frames and answer a question.

    Then the dataset-building text stages (QA generation, the quality judge, chain of thought,
    distractors) run once on those captions with the profile's LLM. With the default offline
    profile that LLM is the real SmolLM2-135M-Instruct (real, small-model English), while the
    captioner, selector VLM and reasoner are tiny random-weight checkpoints (random text): the
    run proves the pipeline works end to end on this machine, not quality.

    Example: videoespresso demo --out /tmp/ve-demo
    """
    from ..select.base import caption_frames
    from ..video import parse_sampler, probe, sample_frames
    from ..video.synth import make_test_video
    from .ask_cmd import ask_command

    cfg = effective_config(profile, config)
    roles = {"captioner": cfg.models.captioner, "selector LLM": cfg.models.selector_llm,
             "reasoner": cfg.models.reasoner, "text-stage LLM": cfg.models.llm}
    from ..models.registry import random_weights

    random_roles = [role for role, spec in roles.items() if random_weights(spec)]
    if random_roles:
        real = [f"{role} ({spec})" for role, spec in roles.items() if role not in random_roles]
        console.print(
            f"[bold yellow]Random-weight tiny models for: {', '.join(random_roles)}; their output below is "
            f"random text. Real models: {', '.join(real) or 'none'}. This run proves the pipeline, not quality.[/]",
            highlight=False,
        )
    out.mkdir(parents=True, exist_ok=True)
    video = out / "sample.mp4"
    make_test_video(video, "mixed")
    info = probe(video)
    console.print(
        f"[bold]video[/] {video}: {info.duration_s:.1f} s, {info.num_frames} frames at "
        f"{info.avg_fps:g} fps, {info.width}x{info.height} {info.codec}",
        highlight=False,
    )

    from ..models import load_model

    sampled, images = sample_frames(video, parse_sampler("uniform:4"), size=cfg.sampling.max_side)
    captioner = load_model(cfg.models.captioner, kind="vlm", **cfg.model_options(cfg.models.captioner))
    captions = caption_frames(captioner, images, cfg.generation)
    console.print(f"[bold]captions[/] ({cfg.models.captioner}, uniform 4 frames):")
    for frame, caption in zip(sampled.frames, captions):
        console.print(f"  {frame.seconds:5.2f} s (#{frame.index}): {caption!r}", highlight=False, markup=False)

    console.print(f"[bold]question[/] {QUESTION}", highlight=False)
    ask_command(
        video=video,
        question=QUESTION,
        option=OPTIONS,
        selector="caption-llm",
        reasoner="two-stage",
        frames=None,
        show=out / "chosen-frames.png",
        json_out=out / "answer.json",
        count_flops=False,
        profile=profile,
        config=config,
        dump_config=None,
    )
    if random_weights(cfg.models.reasoner):
        console.print(f"[bold yellow](evidence and answer by the random-weight {cfg.models.reasoner})[/]", highlight=False)
    _text_stages(cfg, video, info.duration_s, sampled.frames, _write_frames(out, images), captions)


def _write_frames(out: Path, images: list) -> list[str]:
    """The sampled frames written as JPEGs under ``out/frames`` (the curate stages want paths)."""
    folder = out / "frames"
    folder.mkdir(exist_ok=True)
    paths = []
    for n, image in enumerate(images):
        path = folder / f"frame{n}.jpg"
        image.save(path)
        paths.append(str(path))
    return paths


def _text_stages(cfg, video: Path, duration_s: float, frames, paths: list[str], captions: list[str]) -> None:
    """QA generation, the judge, chain of thought and distractors once on the demo's captions,
    through the build's own stage classes (same prompts, schemas and settings as ``build``)."""
    from ..curate._common import ModelPool
    from ..curate.pipeline import build_stages
    from ..engine.stage import DROP, FAILURE

    llm = cfg.models.llm
    from ..models.registry import random_weights

    kind = "random-weight" if random_weights(llm) else "real"
    console.print(f"[bold]text stages of build[/] ({llm}, {kind} model) on the captions above:", highlight=False)
    pool = ModelPool(cfg.models.options, cache=str(video.parent / "responses.sqlite"))
    # one QA pair is all the demo shows: asking for more only makes the small model write longer
    one_pair = cfg.model_copy(update={"curate": cfg.curate.model_copy(update={"qa_per_group": 1})})
    stages = {stage.name: stage for stage in build_stages(one_pair, video.parent, pool)}
    # The captioned frames as a deduplicated video (nothing dropped); the build's own group stage
    # turns it into the caption group (and the per-video pool) that stage 5 reads.
    video_item = {
        "id": video.name, "video": video.name, "video_path": str(video), "info": {"duration_s": duration_s},
        "frames": [{"index": f.index, "seconds": f.seconds, "path": p} for f, p in zip(frames, paths)],
        "captions": list(captions), "kept": list(range(len(captions))),
    }
    items = [video_item]
    for name in ("group", "qa", "filter", "cot", "options"):
        stage = stages[name]
        stage.setup()
        items = stage.process(items[:1])
        stopped = [i for i in items if FAILURE in i or DROP in i]
        if stopped:
            why = stopped[0].get(FAILURE) or stopped[0].get(DROP)
            console.print(f"  {name}: stopped ({why['reason']}: {why['detail'][:200]})", highlight=False, markup=False)
            if why.get("raw"):
                console.print(f"  its reply: {why['raw'][:300]!r}", highlight=False, markup=False)
            return
        first = items[0]
        if name == "group":
            continue
        if name == "qa":
            console.print(f"  question: {first['question']!r}\n  answer:   {first['answer']!r} ({first['task']})",
                          highlight=False, markup=False)
        elif name == "filter":
            for verdict in first["judgements"]:
                console.print(f"  judge {verdict['judge']}: keep={verdict['keep']} {verdict['reason']!r}",
                              highlight=False, markup=False)
        elif name == "cot":
            console.print(f"  key objects: {first['key_objects']}\n  evidence: {first['evidence_text']!r}",
                          highlight=False, markup=False)
        else:
            console.print(f"  distractors: {first['distractors']}", highlight=False, markup=False)
