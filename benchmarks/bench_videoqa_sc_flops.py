"""Claim: VideoQA-SC (caption-llm selector + two-stage reasoner at the selector's 2-3 frames)
costs at most 5% of uniform-128 with the direct reasoner, *selector included* (the paper's 2%
left the selector out).

Two configurations, both measured in this run:

* **paper** (counted on the meta device, no weights): selector = InternVL2-1B captioning 16
  candidates (a 16 s video at 1 fps) + Qwen2-0.5B or -1.5B picking frames; reasoner =
  LLaVA-NeXT-Interleave-7B (the family whose per-frame FLOPs the paper's headline uses), at the
  paper's average frame counts (2.77 with 0.5B, 2.36 with 1.5B). References: the same reasoner,
  direct, on 16 and 128 uniform frames. Text lengths: :class:`TokenBudget` defaults.
* **tiny** (executed for real on CPU, every FLOP counted by torch's FlopCounterMode while the
  models run): the offline profile's tiny Qwen2-VL (captioner and reasoner) and tiny Qwen2
  (frame picker) on a generated 16 s clip; the frame count is whatever the random-weight picker
  chose. References: the direct reasoner on 16 and 128 uniform frames of the same clip.

Run: PYTHONPATH=src python benchmarks/bench_videoqa_sc_flops.py [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

TERA = 1e12


def paper_configuration() -> list[dict]:
    from videoespresso.reason.flops import query_cost

    reasoner = "llava-next-interleave-7b"
    uni16 = query_cost(reasoner, 16, "direct")
    uni128 = query_cost(reasoner, 128, "direct")
    rows = []
    variants = [(picker, frames, reuse) for picker, frames in (("qwen2-0.5b", 2.77), ("qwen2-1.5b", 2.36))
                for reuse in (False, True)]
    for picker, frames, reuse in variants:
        sc = query_cost(reasoner, frames, "two-stage", selector="caption-llm",
                        selector_vlm="internvl2-1b", selector_llm=picker, candidates=16,
                        reuse_prefix=reuse)
        how = "stage 2 reuses the cached prefix" if reuse else "stages run independently"
        rows.append({
            "configuration": f"paper: internvl2-1b + {picker} -> {reasoner} two-stage ({how})",
            "frames": frames,
            "selector_tflops": sc.selector_flops / TERA,
            "reasoner_tflops": sc.reasoner_flops / TERA,
            "total_tflops": sc.flops / TERA,
            "uniform16_direct_tflops": uni16.flops / TERA,
            "uniform128_direct_tflops": uni128.flops / TERA,
            "ratio_vs_uniform16": sc.flops / uni16.flops,
            "ratio_vs_uniform128": sc.flops / uni128.flops,
            "ratio_vs_uniform128_without_selector": sc.reasoner_flops / uni128.flops,
            "stages": sc.to_dict()["stages"],
        })
    return rows


def tiny_configuration(workdir: Path) -> dict:
    from videoespresso.config import load_config
    from videoespresso.models import load_model
    from videoespresso.reason import DirectReasoner, TwoStageReasoner, load_frames
    from videoespresso.reason.flops import count_flops
    from videoespresso.schema import GenerationSettings
    from videoespresso.select import CaptionLLMSelector, UniformSelector
    from videoespresso.video.synth import make_test_video

    cfg = load_config("offline")
    clip = workdir / "clip16s.mp4"
    # 16 s at 8 fps: 128 frames, so uniform-128 shows every frame once.
    make_test_video(clip, "static_moving", seconds=16 / 3, fps=8.0)
    vlm = load_model(cfg.models.selector_vlm, kind="vlm")
    llm = load_model(cfg.models.selector_llm, kind="chat")
    reasoner_model = vlm if cfg.models.reasoner == cfg.models.selector_vlm else load_model(
        cfg.models.reasoner, kind="vlm")
    size = cfg.sampling.max_side
    question = "What does the moving shape do after the still shot?"
    options = ["It stops", "It bounces", "It disappears", "It grows"]
    budget = dict(caption=40, select=12, evidence=100, answer=4)

    selector = CaptionLLMSelector(
        llm, vlm, max_frames=cfg.select.max_frames, candidates=16, image_size=size,
        settings=GenerationSettings(max_new_tokens=budget["select"]),
        caption_settings=GenerationSettings(max_new_tokens=budget["caption"]),
    )
    box: dict = {}
    selector_flops = count_flops(lambda: box.setdefault(
        "sel", selector.select(clip, question, options=options)))
    selection = box["sel"]
    frames = load_frames(clip, selection, size=size)
    two_stage = TwoStageReasoner(
        reasoner_model, GenerationSettings(max_new_tokens=budget["answer"]),
        evidence_settings=GenerationSettings(max_new_tokens=budget["evidence"]), count_flops=True,
    )
    result = two_stage.answer(frames, question, options)
    reasoner_flops = sum(s.flops for s in result.stages)

    direct = DirectReasoner(reasoner_model, GenerationSettings(max_new_tokens=budget["answer"]),
                            count_flops=True)
    refs = {}
    for k in (16, 128):
        uniform = UniformSelector(frames=k).select(clip, question)
        answer = direct.answer(load_frames(clip, uniform, size=size), question, options)
        refs[k] = answer.stages[0].flops
    total = selector_flops + reasoner_flops
    return {
        "configuration": f"tiny: {cfg.models.selector_vlm} + {cfg.models.selector_llm} -> "
                         f"{cfg.models.reasoner} two-stage (executed)",
        "frames": len(selection.frames),
        "selector_fallback": selection.fallback,
        "selector_gflops": selector_flops / 1e9,
        "reasoner_gflops": reasoner_flops / 1e9,
        "total_gflops": total / 1e9,
        "uniform16_direct_gflops": refs[16] / 1e9,
        "uniform128_direct_gflops": refs[128] / 1e9,
        "ratio_vs_uniform16": total / refs[16],
        "ratio_vs_uniform128": total / refs[128],
        "ratio_vs_uniform128_without_selector": reasoner_flops / refs[128],
        "stage_tokens": [
            {"stage": s.stage, "prompt_tokens": s.prompt_tokens, "new_tokens": s.completion_tokens,
             "gflops": s.flops / 1e9} for s in result.stages
        ],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    start = time.perf_counter()
    paper = paper_configuration()
    with tempfile.TemporaryDirectory(prefix="ve-bench-flops-") as tmp:
        tiny = tiny_configuration(Path(tmp))
    for row in paper:
        print(f"\n{row['configuration']} at {row['frames']} frames")
        print(f"  selector {row['selector_tflops']:.2f} + reasoner {row['reasoner_tflops']:.2f}"
              f" = {row['total_tflops']:.2f} TFLOPs per question")
        print(f"  uniform 16 direct {row['uniform16_direct_tflops']:.2f}, uniform 128 direct "
              f"{row['uniform128_direct_tflops']:.2f} TFLOPs")
        print(f"  ratio vs uniform-16: {row['ratio_vs_uniform16']:.3f}   vs uniform-128: "
              f"{row['ratio_vs_uniform128']:.2%} (without the selector: "
              f"{row['ratio_vs_uniform128_without_selector']:.2%})")
        for s in row["stages"]:
            print(f"    {s['stage']:<17} {s['family']:<25} calls {s['calls']:>2}  prompt tok "
                  f"{s['prompt_tokens']:>6}  new tok {s['new_tokens']:>4}  {s['tflops']:.3f} TFLOPs")
    print(f"\n{tiny['configuration']} at {tiny['frames']} frames"
          + (f" (selector fallback: {tiny['selector_fallback']})" if tiny["selector_fallback"] else ""))
    print(f"  selector {tiny['selector_gflops']:.3f} + reasoner {tiny['reasoner_gflops']:.3f}"
          f" = {tiny['total_gflops']:.3f} GFLOPs per question")
    print(f"  uniform 16 direct {tiny['uniform16_direct_gflops']:.3f}, uniform 128 direct "
          f"{tiny['uniform128_direct_gflops']:.3f} GFLOPs")
    print(f"  ratio vs uniform-16: {tiny['ratio_vs_uniform16']:.3f}   vs uniform-128: "
          f"{tiny['ratio_vs_uniform128']:.2%} (without the selector: "
          f"{tiny['ratio_vs_uniform128_without_selector']:.2%})")
    goal = 0.05
    print(f"\ngoal (<= {goal:.0%} of uniform-128, selector included):")
    for row in paper:
        verdict = "met" if row["ratio_vs_uniform128"] <= goal else "NOT met"
        print(f"  {verdict:<7} {row['ratio_vs_uniform128']:.2%}  {row['configuration']}")
    print(f"(benchmark ran {time.perf_counter() - start:.0f} s)")
    if args.json:
        args.json.write_text(json.dumps({"paper": paper, "tiny": tiny}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
