"""``videoespresso flops``: count the compute of a question, per frame and per query."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

import typer

from ..errors import ConfigError
from . import app
from ._common import console


def _image_size(value: Optional[str], family: Any) -> int | None:
    if value is None:
        return None
    if value == "native":
        return family.native_image_size
    try:
        size = int(value)
    except ValueError:
        raise ConfigError(f"--image-size must be a number of pixels or 'native', not {value!r}") from None
    if size < 14:
        raise ConfigError(f"--image-size {size} is smaller than one 14-px patch")
    return size


def _frame_row(family: Any, cost: Any) -> dict[str, Any]:
    paper = family.paper_tflops_per_frame
    return {
        "family": family.name,
        "image_size": cost.image_size,
        "tokens_per_frame": cost.tokens,
        "vision_tflops": cost.vision_flops / 1e12,
        "llm_tflops": cost.llm_flops / 1e12,
        "tflops_per_frame": cost.tflops,
        "paper_tflops_per_frame": paper,
        "difference": None if paper is None else cost.tflops / paper - 1.0,
        "stand_in": family.stand_in,
    }


def _frame_table(rows: list[dict[str, Any]]) -> None:
    from rich.table import Table

    table = Table(title="TFLOPs per frame (counted on the meta device; multiply-add = 2)")
    for column in ("family", "px", "tokens", "vision", "LLM", "total", "paper", "diff"):
        table.add_column(column, justify="left" if column == "family" else "right")
    for r in rows:
        paper = r["paper_tflops_per_frame"]
        table.add_row(
            r["family"] + (" *" if r["stand_in"] else ""),
            str(r["image_size"]),
            str(r["tokens_per_frame"]),
            f"{r['vision_tflops']:.3f}",
            f"{r['llm_tflops']:.3f}",
            f"{r['tflops_per_frame']:.3f}",
            "-" if paper is None else f"{paper:.3f}",
            "-" if r["difference"] is None else f"{r['difference']:+.1%}",
        )
    console.print(table)
    if any(r["stand_in"] for r in rows):
        console.print("* built as a transformers stand-in with the same hyper-parameters "
                      "(see --list)")


@app.command("flops")
def flops_command(
    model_family: Optional[str] = typer.Option(
        None, "--model-family", "-m", help="Reasoner family (see --list)."
    ),
    frames: float = typer.Option(16, "--frames", "-k", min=0, help="Frames shown to the reasoner (may be fractional: an average)."),
    reasoner: str = typer.Option("direct", "--reasoner", help="direct or two-stage."),
    selector: str = typer.Option("none", "--selector", help="none or caption-llm (counted too)."),
    selector_vlm: str = typer.Option("internvl2-1b", "--selector-vlm", help="Family that captions candidates."),
    selector_llm: str = typer.Option("qwen2-0.5b", "--selector-llm", help="Family that picks the frames."),
    candidates: int = typer.Option(16, "--candidates", min=1, help="Candidate frames the selector captions."),
    image_size: Optional[str] = typer.Option(
        None, "--image-size", help="Frame side in px, or 'native' (default: the family's counted size, 224 px for most)."
    ),
    question_tokens: int = typer.Option(90, "--question-tokens", min=0, help="Prompt text per question (official prompt + 4 options)."),
    evidence_tokens: int = typer.Option(100, "--evidence-tokens", min=0, help="Stage-1 evidence length."),
    answer_tokens: int = typer.Option(4, "--answer-tokens", min=1, help="Generated answer length."),
    caption_tokens: int = typer.Option(40, "--caption-tokens", min=1, help="Selector caption length per candidate."),
    reuse_prefix: bool = typer.Option(
        False, "--reuse-prefix", help="two-stage: stage 2 reuses stage 1's cached frames + question prefix (prefix-caching server)."
    ),
    compare: bool = typer.Option(False, "--compare", help="Table of every family with a paper figure."),
    exact: bool = typer.Option(
        False, "--exact", help="Build every model at full depth (slower; same numbers as the default 1-and-2-layer extrapolation)."
    ),
    list_: bool = typer.Option(False, "--list", help="List the shipped model families and exit."),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Also write the numbers to this JSON file."),
) -> None:
    """Count FLOPs per frame and per query for a model family (meta device, no weights).

    Example: videoespresso flops --model-family llava-next-interleave-7b --frames 2.36 --reasoner two-stage --selector caption-llm
    """
    from ..reason.flops import TokenBudget, family_counter, get_family, model_families, query_cost

    if list_:
        for family in model_families().values():
            paper = family.paper_tflops_per_frame
            note = f"paper {paper} TFLOPs/frame" if paper is not None else "selector part"
            console.print(f"[bold]{family.name}[/]  {family.description}  ({note}; {family.checkpoint})",
                          highlight=False)
            if family.stand_in:
                console.print(f"    stand-in: {family.stand_in}", highlight=False)
        return
    if reasoner not in ("direct", "two-stage"):
        raise ConfigError(f"--reasoner must be 'direct' or 'two-stage', not {reasoner!r}")
    if selector not in ("none", "caption-llm"):
        raise ConfigError(f"--selector must be 'none' or 'caption-llm', not {selector!r}")
    result: dict[str, Any] = {}
    if compare:
        rows = []
        for family in model_families().values():
            if family.paper_tflops_per_frame is None:
                continue
            cost = family_counter(family.name, _image_size(image_size, family), not exact).frame_cost()
            rows.append(_frame_row(family, cost))
        _frame_table(rows)
        result["per_frame"] = rows
    if model_family is None:
        if not compare:
            raise ConfigError("give --model-family NAME (or --list, or --compare)")
    else:
        family = get_family(model_family)
        if not family.has_vision:
            raise ConfigError(f"{model_family} is a text-only model; pick a video reasoner family")
        size = _image_size(image_size, family)
        cost = family_counter(family.name, size, not exact).frame_cost()
        row = _frame_row(family, cost)
        if not compare:
            _frame_table([row])
        query = query_cost(
            family.name, frames, reasoner,  # type: ignore[arg-type]
            selector=selector,  # type: ignore[arg-type]
            selector_vlm=selector_vlm, selector_llm=selector_llm,
            candidates=candidates, image_size=size, exact=exact, reuse_prefix=reuse_prefix,
            budget=TokenBudget(
                question_tokens=question_tokens, evidence_tokens=evidence_tokens,
                answer_tokens=answer_tokens, caption_tokens=caption_tokens,
            ),
        )
        _query_table(query)
        console.print(
            f"paper-style count ({frames:g} frames x {cost.tflops:.3f}): "
            f"{frames * cost.tflops:.2f} TFLOPs", highlight=False,
        )
        result.update(
            family=family.name,
            frame=row,
            frames=frames,
            paper_style_tflops=frames * cost.tflops,
            query=query.to_dict(),
        )
    if json_out is not None:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(result, indent=2), encoding="utf-8")
        console.print(f"written {json_out}", highlight=False)


def _query_table(query: Any) -> None:
    from rich.table import Table

    table = Table(title=f"One question, {query.reasoner} reasoner at {query.frames:g} frames")
    for column in ("stage", "family", "calls", "frames", "prompt tok", "new tok", "TFLOPs"):
        table.add_column(column, justify="left" if column in ("stage", "family") else "right")
    for s in query.stages:
        table.add_row(s.stage, s.family, str(s.calls), f"{s.frames:g}", str(s.prompt_tokens),
                      str(s.new_tokens), f"{s.flops / 1e12:.3f}")
    console.print(table)
    console.print(
        f"selector {query.selector_flops / 1e12:.3f} + reasoner {query.reasoner_flops / 1e12:.3f}"
        f" = [bold]{query.flops / 1e12:.3f} TFLOPs[/] per question", highlight=False,
    )
