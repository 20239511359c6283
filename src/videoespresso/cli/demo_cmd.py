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

    With the default offline profile every model is a tiny random-weight checkpoint: the run
    proves the pipeline works end to end on this machine; the text it prints is random.

    Example: videoespresso demo --out /tmp/ve-demo
    """
    from ..select.base import caption_frames
    from ..video import parse_sampler, probe, sample_frames
    from ..video.synth import make_test_video
    from .ask_cmd import ask_command

    cfg = effective_config(profile, config)
    random_weights = all(
        spec.startswith("tiny:") for spec in (cfg.models.captioner, cfg.models.selector_llm, cfg.models.reasoner)
    )
    if random_weights:
        console.print(
            "[bold yellow]Profile uses random-weight tiny models: every caption, evidence and answer "
            "below is random text. This run proves the pipeline, not quality.[/]"
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
    if random_weights:
        console.print("[bold yellow](produced by random-weight models)[/]")
