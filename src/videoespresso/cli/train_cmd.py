"""``videoespresso train``: LoRA fine-tuning of the selector LLM and the two reasoner stages."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ..errors import ConfigError
from . import app
from ._common import ConfigOption, ProfileOption, console, effective_config, err_console, note_random_weights

TARGET_HELP = "selector (captions -> core frames), stage1 (frames + question -> evidence) or stage2 (+ evidence -> answer)."


@app.command("train")
def train_command(
    target: str = typer.Argument(..., help=TARGET_HELP),
    data: Path = typer.Option(..., "--data", "-d", help="A build folder, an official train .json, or an examples .jsonl (what --examples-only writes)."),
    base: Optional[str] = typer.Option(None, "--base", help="The model to adapt: hf:<folder or repo>, tiny:<arch>, smollm2, or an earlier adapter (hf:<out>/adapter). Required unless --examples-only."),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder: adapter/, merged/ (--merge), loss.jsonl, loss.png, checkpoints/ (--examples-only: examples.jsonl)."),
    eval_data: Optional[Path] = typer.Option(None, "--eval-data", help="Held-out examples (same kinds as --data): mean loss before and after training."),
    max_steps: int = typer.Option(-1, "--max-steps", help="Stop after this many optimiser steps (-1: --epochs decides)."),
    epochs: float = typer.Option(1.0, "--epochs", min=0.01, help="Passes over the data (the paper: 1)."),
    lr: Optional[float] = typer.Option(None, "--lr", min=0.0, help="Learning rate (default: 2e-5 selector and stage 1, 1e-5 stage 2)."),
    batch_size: int = typer.Option(16, "--batch-size", min=1, help="Examples per optimiser step, by gradient accumulation (the paper: 16)."),
    lora_r: int = typer.Option(16, "--lora-r", min=1, help="LoRA rank."),
    lora_alpha: int = typer.Option(32, "--lora-alpha", min=1, help="LoRA alpha."),
    max_tokens: int = typer.Option(6144, "--max-tokens", min=16, help="Longest example; longer targets are truncated and counted."),
    image_size: int = typer.Option(224, "--image-size", min=16, help="Frames are resized so their longer side is at most this."),
    save_steps: int = typer.Option(50, "--save-steps", min=1, help="Write a resume checkpoint every N steps."),
    seed: int = typer.Option(0, "--seed", min=0, help="Seed for LoRA initialisation and data order."),
    merge: bool = typer.Option(False, "--merge", help="Also write merged/, a full checkpoint (hf:<out>/merged)."),
    resume: bool = typer.Option(True, "--resume/--no-resume", help="Continue from the last checkpoint in <out>/checkpoints (default on)."),
    frames_root: Optional[Path] = typer.Option(None, "--frames-root", help="Official train files: the folder keyframe paths are relative to (default: the file's folder)."),
    video_root: Optional[Path] = typer.Option(None, "--video-root", help="Official train files: the folder video paths are relative to (selector examples need the videos)."),
    selector_vlm: Optional[str] = typer.Option(None, "--selector-vlm", help="selector from an official train file: the VLM that captions the candidate frames, as at inference (default: the profile's selector_vlm). Replies are cached."),
    embedder: Optional[str] = typer.Option(None, "--embedder", help="selector from an official train file: the text embedder that matches keyframe captions to candidate captions when file names are not frame numbers (default: the profile's embedder)."),
    candidates: Optional[int] = typer.Option(None, "--candidates", min=1, help="selector from an official train file: uniformly spaced candidate frames per video (default: the profile's select.candidates, 16)."),
    frame_fps: float = typer.Option(1.0, "--frame-fps", min=0.0, help="Official train files: the fps that numeric keyframe names (480.jpg) count in (default 1, the maintainers' statement), to locate selector targets and place --context-frames; 0: selector targets by caption only."),
    context_frames: int = typer.Option(0, "--context-frames", min=0, help="stage1/stage2: add N uniformly spaced frames of the video to the core frames (time order, no repeats); needs the videos (--video-root). Decoded once into <out>/context_frames/."),
    evidence_tags: str = typer.Option("keep", "--evidence-tags", help="stage1/stage2: keep the evidence's inline <obj_start>...<box_end> tags as the dataset writes them, or strip them to plain prose (object names kept)."),
    examples_only: bool = typer.Option(False, "--examples-only", help="Build the examples, write <out>/examples.jsonl (a --data for later runs) and stop: no model is trained."),
    profile: Optional[str] = ProfileOption,
    config: Optional[Path] = ConfigOption,
) -> None:
    """LoRA supervised fine-tuning (peft + the Hugging Face Trainer) with the paper's recipe:
    r 16, alpha 32, cosine schedule, warm-up 0.03, weight decay 0.02, effective batch 16, 1 epoch,
    224 px. Prompts are rendered by the inference backend itself, so what is trained is what
    is asked later; labels cover the target only. The same command runs under `torchrun` /
    `accelerate launch` for several GPUs.

    Example: videoespresso train stage1 --data runs/build --base hf:llava-hf/llava-onevision-qwen2-7b-ov-hf --out runs/stage1 --merge

    Selector examples from an official train file (candidates captioned by the selector VLM):
    videoespresso train selector --data videoespresso_train_video.json --video-root videos --selector-vlm hf:OpenGVLab/InternVL3-1B-hf --out runs/sel --examples-only
    """
    from ..train.examples import TARGETS
    from ..train.lora import TrainSettings, load_training_examples, train_lora, write_examples

    if target not in TARGETS:
        raise ConfigError(f"target must be one of {', '.join(TARGETS)}, not {target!r}")
    if max_steps == 0 or max_steps < -1:
        raise ConfigError("--max-steps must be -1 or at least 1")
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} is a file; give a folder")
    if base is None and not examples_only:
        raise ConfigError("--base is required (the model to adapt), unless --examples-only")
    if evidence_tags not in ("keep", "strip"):
        raise ConfigError(f"--evidence-tags must be keep or strip, not {evidence_tags!r}")
    if data.suffix == ".jsonl" and (context_frames or evidence_tags != "keep"):
        raise ConfigError("--context-frames and --evidence-tags apply while building examples (a build folder or a "
                          "train file); an examples file was built with its own")
    if context_frames and target == "selector":
        raise ConfigError("--context-frames applies to stage1 and stage2 (the selector reads captions)")
    cfg = effective_config(profile, config)
    options = _builder_options(target, [data, eval_data], cfg, out, selector_vlm, embedder, candidates, frame_fps)
    if target != "selector":
        options |= {"context_frames": context_frames, "context_dir": out / "context_frames",
                    "evidence_tags": evidence_tags, "frame_fps": frame_fps or None}
    from contextlib import nullcontext

    from .bench_cmd import _progress

    # A progress bar only where building is slow: captioning the candidates of a train file.
    with _progress() if "selector_vlm" in options else nullcontext() as progress:
        if progress is not None:
            bar = progress.add_task(f"{target} examples (captioning candidates)", total=None)
            options["on_item"] = lambda: progress.advance(bar)
        examples, problems = load_training_examples(data, target, frames_root=frames_root, video_root=video_root,
                                                    **options)
        held_out = []
        if eval_data is not None:
            held_out, more = load_training_examples(eval_data, target, frames_root=frames_root, video_root=video_root,
                                                    **options)
            problems += more
    for line in problems[:10]:
        err_console.print(f"skipped: {line}", highlight=False, markup=False)
    if len(problems) > 10:
        err_console.print(f"skipped: ... and {len(problems) - 10} more", highlight=False)
    if examples_only:
        written = write_examples(examples, out / "examples.jsonl")
        if held_out:
            write_examples(held_out, out / "eval_examples.jsonl")
        console.print(f"{len(examples)} {target} examples -> {written}"
                      + (f" ({len(held_out)} held-out -> {out / 'eval_examples.jsonl'})" if held_out else ""),
                      highlight=False)
        return
    assert base is not None
    note_random_weights({"base": base})
    settings = TrainSettings(lr=lr, epochs=epochs, max_steps=max_steps, batch_size=batch_size, lora_r=lora_r,
                             lora_alpha=lora_alpha, max_tokens=max_tokens, image_size=image_size,
                             save_steps=save_steps, seed=seed)

    with _progress() as progress:
        bar = progress.add_task(f"train {target}", total=None)

        def on_step(step: int, total: int) -> None:
            progress.update(bar, completed=step, total=total)

        result = train_lora(examples, base, out, target=target, settings=settings, merge=merge, resume=resume,
                            eval_examples=held_out, on_step=on_step)
    import os

    if int(os.environ.get("RANK", "0")) != 0:
        return  # under torchrun / accelerate, process 0 reports for all
    for line in result.skipped[:10]:
        err_console.print(f"skipped: {line}", highlight=False, markup=False)
    console.print(
        f"{result.examples} {target} examples, {result.steps} steps in {result.seconds:.1f} s"
        + (f" (resumed from {Path(result.resumed_from).name})" if result.resumed_from else "")
        + (f"; loss {result.first_loss:.4f} -> {result.last_loss:.4f}" if result.first_loss is not None else "")
        + (f"; {result.truncated} targets truncated to --max-tokens" if result.truncated else ""),
        highlight=False,
    )
    if result.eval_loss_before is not None:
        console.print(f"held-out loss {result.eval_loss_before:.4f} -> {result.eval_loss_after:.4f} "
                      f"({len(held_out)} examples)", highlight=False)
    console.print(f"adapter -> {out / 'adapter'} (use as hf:{out / 'adapter'})", highlight=False)
    if result.merged is not None:
        console.print(f"merged checkpoint -> {result.merged} (use as hf:{result.merged})", highlight=False)


def _builder_options(target: str, sources: list[Optional[Path]], cfg, out: Path, selector_vlm: Optional[str],
                     embedder: Optional[str], candidates: Optional[int], frame_fps: float) -> dict[str, object]:
    """Models and sizes for selector examples from an official train file, from the options or
    the profile. Nothing is loaded for other targets or sources (a build or examples file): the
    selector VLM is a 1B model on the paper profile. Its replies are cached in the config's
    cache file, else ``<out>/selector_captions.cache.sqlite``, so rebuilding captions nothing again."""
    if target != "selector" or not any(p is not None and p.suffix == ".json" and p.is_file() for p in sources):
        return {}
    from ..models import load_model
    from ..select.factory import LazyModel, captioning_settings

    vlm_spec = selector_vlm or cfg.models.selector_vlm
    text_spec = embedder or cfg.models.embedder
    note_random_weights({"selector VLM": vlm_spec})
    out.mkdir(parents=True, exist_ok=True)
    cache = Path(cfg.cache) if cfg.cache else out / "selector_captions.cache.sqlite"
    return {
        "selector_vlm": load_model(vlm_spec, kind="vlm", cache=cache, **cfg.model_options(vlm_spec)),
        # loaded only when a keyframe must be located by caption
        "embedder": LazyModel(text_spec, "embedder", cfg.model_options(text_spec)),
        "candidates": candidates or cfg.select.candidates,
        "frame_fps": frame_fps or None,
        "image_size": cfg.sampling.max_side,
        "caption_settings": captioning_settings(cfg),
        "max_frames": cfg.select.max_frames,
    }
