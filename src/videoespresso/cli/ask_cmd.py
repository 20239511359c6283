"""``videoespresso ask``: answer one question about one video with a few chosen frames."""

from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

import typer

from ..errors import ConfigError
from . import app
from ._common import (
    ConfigOption,
    DumpConfigOption,
    ProfileOption,
    console,
    effective_config,
    err_console,
    note_random_weights,
)


@app.command("ask")
def ask_command(
    video: Path = typer.Argument(..., help="The video file."),
    question: str = typer.Argument(..., help="The question."),
    option: Optional[List[str]] = typer.Option(
        None, "--option", "-o", help="An answer option (repeat 2-8 times: close-ended)."
    ),
    selector: str = typer.Option("caption-llm", "--selector", "-s", help="uniform, embedding or caption-llm."),
    reasoner: str = typer.Option("two-stage", "--reasoner", "-r", help="two-stage or direct."),
    frames: Optional[int] = typer.Option(
        None, "--frames", "-k", min=1, help="uniform: frames to use; other selectors: most frames to keep."
    ),
    show: Optional[Path] = typer.Option(None, "--show", help="Write a contact sheet PNG of the chosen frames here."),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Write the selection and the result to this JSON file."),
    count_flops: bool = typer.Option(False, "--count-flops", help="Count the FLOPs each reasoner stage executes (local models)."),
    profile: Optional[str] = ProfileOption,
    config: Optional[Path] = ConfigOption,
    dump_config: Optional[Path] = DumpConfigOption,
) -> None:
    """Choose the frames a question needs, then answer it (evidence first with two-stage).

    Example: videoespresso ask clip.mp4 "What does the man pick up?" -o "a cup" -o "a knife" -o "a phone" -o "a bag" --show sheet.png
    """
    from rich.text import Text

    from ..models import load_model
    from ..reason import load_frames, make_reasoner
    from ..select import contact_sheet, load_selector
    from ..video import check_file

    options = list(option or [])
    if options and not 2 <= len(options) <= 8:
        raise ConfigError(f"give 2 to 8 --option values for a close-ended question, not {len(options)}")
    if selector == "oracle":
        raise ConfigError("the oracle selector needs annotated items; use it through `eval`")
    check_file(video)  # a missing file, a FIFO, a folder: named with what it is, before any model loads
    for path, flag in ((show, "--show"), (json_out, "--json")):
        if path is not None:
            _check_writable(path, flag)
    cfg = effective_config(profile, config, dump_config)
    overrides = {}
    if frames is not None:
        overrides = {"frames": frames} if selector == "uniform" else {"k" if selector == "embedding" else "max_frames": frames}
    roles = {"reasoner": cfg.models.reasoner}
    if selector in ("embedding", "caption-llm"):
        roles["selector captioner"] = cfg.models.selector_vlm
    if selector == "caption-llm":
        roles["selector LLM"] = cfg.models.selector_llm
    random_weights = note_random_weights(roles)
    chooser = load_selector(selector, cfg, **overrides)
    selection = chooser.select(video, question, options=options or None)
    if selection.fallback:
        err_console.print(Text.assemble(("selector fallback: ", "yellow"), selection.fallback))
    chosen = load_frames(video, selection, size=cfg.sampling.max_side)
    model = load_model(cfg.models.reasoner, kind="vlm", **cfg.model_options(cfg.models.reasoner))
    answerer = make_reasoner(
        reasoner, model, cfg.generation, count_flops=count_flops,
    )
    result = answerer.answer(chosen, question, options or None)
    times = ", ".join(f"{f.seconds:.1f} s (#{f.index})" for f in selection.frames)
    console.print(f"[bold]frames[/] ({selection.selector}): {times}", highlight=False)
    if result.evidence is not None:
        console.print(Text.assemble(("evidence: ", "bold"), result.evidence))
    console.print(Text.assemble(("answer: ", "bold"), result.answer))
    chosen_option = _chosen_option(result.answer, options) if options else None
    if options:
        if chosen_option is None:
            console.print("chosen option: none could be read from the answer", highlight=False)
        else:
            console.print(Text.assemble(("chosen option: ", "bold"), f"({chosen_option['letter']}) {chosen_option['text']}"))
    tokens = ", ".join(
        f"{s.stage} {s.prompt_tokens}+{s.completion_tokens}"
        + (f" ({s.flops / 1e9:.2f} GFLOPs)" if s.flops is not None else "")
        for s in result.stages
    )
    console.print(f"tokens (prompt+new): {tokens}", highlight=False)
    if show is not None:
        show.parent.mkdir(parents=True, exist_ok=True)
        contact_sheet(chosen, title=question).save(show)
        console.print(f"contact sheet written to {show}", highlight=False)
    if json_out is not None:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        body = {"selection": selection.model_dump(mode="json"), "result": result.model_dump(mode="json"),
                "chosen_option": chosen_option, "random_weights": random_weights}
        json_out.write_text(json.dumps(body, indent=2, ensure_ascii=False), encoding="utf-8")


def _chosen_option(answer: str, options: list[str]) -> dict | None:
    """The option the answer picks, read by the benchmark's extractor (A-D, up to 4 options)."""
    from ..bench.extract import extract_answer

    if len(options) > 4:
        return None
    found = extract_answer(answer, options + [""] * (4 - len(options)))
    if found.letter is None or "ABCD".index(found.letter) >= len(options):
        return None
    index = "ABCD".index(found.letter)
    return {"letter": found.letter, "text": options[index], "rule": found.rule}


def _check_writable(path: Path, flag: str) -> None:
    """Refuse an output the run could not write, before minutes of model calls are spent."""
    import os

    if path.is_dir():
        raise ConfigError(f"{flag} {path} is a folder; give a file path")
    parent = path.parent
    parent.mkdir(parents=True, exist_ok=True)
    if not os.access(parent, os.W_OK):
        raise ConfigError(f"{flag} {path}: the folder {parent} is not writable")
