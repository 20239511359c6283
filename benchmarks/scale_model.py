"""Cost model: time and GPU-hours to build N QA pairs (default 200k) on G GPUs, stage by stage.

Three kinds of input, kept apart in the printout:

1. **Measured here** (an offline build of generated clips with this code): frames sampled per
   second of video by the adaptive sampler, model calls per input of every stage (captions per
   frame, judge calls per QA pair, grounder calls per object and frame, ...) and the prompt
   templates' own length in tokens (characters / 4, the usual rule for English BPE text).
2. **Assumed for videos like the paper's** (flags, printed): mean video length, the share of
   frames dedup keeps, judge keep rate, caption/answer lengths, key objects per item. The record
   gives the group size (15) and the final size (202k); the rest is not public.
3. **Throughput from public figures** (flags, printed), per GPU (H100 80GB class) under batched
   serving (vLLM-style continuous batching): prefill and decode tokens/s of an 8B VLM (the
   paper's InternVL2-8B captioner), of a 70B-class LLM standing in for GPT-4o / Claude / Gemini
   (a 70B model on 4 GPUs with tensor parallelism; per-GPU figures), GroundingDINO-T images/s,
   CLIP crops/s and BGE-M3 sentences/s.

Per stage: GPU-seconds = calls x (prompt tokens / prefill rate + output tokens / decode rate),
or calls / rate for the vision and embedding models. Wall time on G GPUs assumes the stage is
spread evenly over them (the Ray executor's actor pools), stages one after the other.

    PYTHONPATH=src python benchmarks/scale_model.py [--qa-pairs 200000] [--gpus 8] [--videos 6]
    PYTHONPATH=src python benchmarks/scale_model.py --no-measure   # the built-in measured values
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from _curate_common import make_videos, workdir

#: Values measured by this script on 6 generated clips (Dec 2026), used with --no-measure.
MEASURED_DEFAULTS = {
    "frames_per_second": 1.67, "grounder_calls_per_object_frame": 1.0,
    "template_tokens": {"caption": 45, "qa": 164, "judge": 114, "cot": 138, "options": 80},
}
#: One call per frame (caption), per QA pair and judge (filter), per QA pair (cot, options), per
#: group (qa): fixed by the stages' code. The measuring build's own counts are lower because the
#: response cache answers repeated prompts (static synthetic frames repeat pixel for pixel), so
#: they are printed, not used.
CAPTION_CALLS_PER_FRAME = 1.0
JUDGE_CALLS_PER_QA = 1.0


def measure(n_videos: int) -> dict:
    """Structure of the pipeline from a real offline build of generated clips."""
    import yaml

    from videoespresso.config import load_config
    from videoespresso.curate import run_build
    from videoespresso.engine import Store
    from videoespresso.prompts import load_prompt

    tmp = workdir()
    try:
        videos = make_videos(tmp / "videos", n_videos, 3.0)
        cfg_path = tmp / "cfg.yaml"
        cfg_path.write_text(yaml.safe_dump({
            "sampling": {"max_side": 96}, "generation": {"max_new_tokens": 12},
            "curate": {"batch_size": 1, "group_size": 4, "qa_per_group": 2, "max_text_chars": 16,
                       "max_new_tokens": 120},
        }))
        cfg = load_config("offline", cfg_path)
        result = run_build(videos, tmp / "out", cfg, progress=False)
        stages = {s.name: s for s in result.run.stages}
        frames = seconds = 0.0
        with Store(result.store) as store:
            for res in store.results("sample", "ok"):
                for video in res.outputs:
                    frames += len(video["frames"])
                    seconds += float(video["info"]["duration_s"])
        spatial = stages["spatial"]
        objects_frames = 0
        with Store(result.store) as store:
            for res in store.results("cot", "ok"):
                for item in res.outputs:
                    objects_frames += len(item.get("key_objects", [])) * len(item.get("core_frames", []))
        templates = {}
        for stage, name in (("caption", "curate/caption"), ("qa", "curate/qa"), ("judge", "curate/judge"),
                            ("cot", "curate/cot"), ("options", "curate/distractors")):
            templates[stage] = round(len(load_prompt(name).text) / 4)
        return {
            "frames_per_second": frames / max(seconds, 1e-9),
            "_caption_calls_per_frame": stages["caption"].model_calls / max(frames, 1),
            "grounder_calls_per_object_frame": (spatial.model_calls / max(objects_frames, 1)) if objects_frames else 1.0,
            "template_tokens": templates,
            "_build": {s.name: (s.inputs, s.outputs, s.model_calls) for s in result.run.stages},
        }
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def model(args: argparse.Namespace, m: dict) -> list[dict]:
    """Per-stage calls, tokens and GPU-seconds for ``args.qa_pairs`` kept QA pairs."""
    kept_qa = args.qa_pairs
    generated_qa = kept_qa / args.judge_keep
    groups = generated_qa / args.qa_per_group
    kept_frames = groups * args.group_size
    frames = kept_frames / args.dedup_keep
    video_seconds = frames / m["frames_per_second"]
    videos = video_seconds / args.video_seconds
    t = m["template_tokens"]
    group_captions = args.group_size * args.caption_tokens

    def llm(calls, prompt, output, prefill, decode):
        return calls, prompt, output, calls * (prompt / prefill + output / decode)

    rows = []

    def add(stage, model_name, calls, prompt, output, gpu_s, note=""):
        rows.append({"stage": stage, "model": model_name, "calls": calls, "prompt": prompt, "output": output,
                     "gpu_s": gpu_s, "note": note})

    add("sample", "CPU (decode)", videos, 0, 0, 0.0, f"{videos:,.0f} videos, {video_seconds / 3600:,.0f} h of video")
    calls = frames * CAPTION_CALLS_PER_FRAME
    add("caption", "8B VLM", *llm(calls, args.image_tokens + t["caption"], args.caption_tokens,
                                  args.vlm_prefill, args.vlm_decode), f"{frames:,.0f} frames")
    add("dedup", "BGE-M3", frames, args.caption_tokens, 0, frames / args.embed_rate)
    add("group", "CPU", videos, 0, 0, 0.0, f"{groups:,.0f} groups")
    add("qa", "70B LLM", *llm(groups, t["qa"] + group_captions, args.qa_per_group * args.qa_tokens,
                              args.llm_prefill, args.llm_decode))
    add("filter", "70B LLM", *llm(generated_qa * args.judges * JUDGE_CALLS_PER_QA, t["judge"] + group_captions
                                  + args.qa_tokens, args.judge_tokens, args.llm_prefill, args.llm_decode),
        f"{args.judges} judges")
    add("cot", "70B LLM", *llm(kept_qa, t["cot"] + group_captions + args.qa_tokens, args.cot_tokens,
                               args.llm_prefill, args.llm_decode))
    grounder_calls = kept_qa * args.key_objects * args.core_frames * m["grounder_calls_per_object_frame"]
    add("spatial", "GroundingDINO-T + CLIP", grounder_calls, 0, 0,
        grounder_calls / args.grounder_rate + grounder_calls * args.boxes / args.clip_rate)
    add("temporal", "BGE-M3", kept_qa, 0, 0, kept_qa * (args.core_frames + args.key_objects + 1) / args.embed_rate)
    add("options", "70B LLM", *llm(kept_qa, t["options"] + args.qa_tokens, args.options_tokens,
                                   args.llm_prefill, args.llm_decode))
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--qa-pairs", type=float, default=200_000)
    p.add_argument("--gpus", type=int, default=8)
    p.add_argument("--videos", type=int, default=6, help="generated clips of the measuring build")
    p.add_argument("--no-measure", action="store_true", help="use the values measured in Dec 2026")
    a = p.add_argument_group("assumed for videos like the paper's")
    a.add_argument("--video-seconds", type=float, default=120.0, help="mean length of a source video")
    a.add_argument("--dedup-keep", type=float, default=0.5, help="share of sampled frames kept by dedup")
    a.add_argument("--group-size", type=int, default=15)
    a.add_argument("--qa-per-group", type=int, default=3)
    a.add_argument("--judges", type=int, default=2)
    a.add_argument("--judge-keep", type=float, default=0.7, help="share of QA pairs the filter keeps")
    a.add_argument("--image-tokens", type=int, default=256, help="vision tokens of one 448 px frame (InternVL2)")
    a.add_argument("--caption-tokens", type=int, default=60)
    a.add_argument("--qa-tokens", type=int, default=60, help="one question + answer")
    a.add_argument("--judge-tokens", type=int, default=40)
    a.add_argument("--cot-tokens", type=int, default=120)
    a.add_argument("--options-tokens", type=int, default=60)
    a.add_argument("--key-objects", type=float, default=3.0)
    a.add_argument("--core-frames", type=float, default=3.0)
    a.add_argument("--boxes", type=float, default=2.0, help="boxes per grounder call checked by CLIP")
    t = p.add_argument_group("throughput per GPU (public figures, H100 80GB class, batched serving)")
    t.add_argument("--vlm-prefill", type=float, default=10_000.0, help="8B VLM prompt tokens/s")
    t.add_argument("--vlm-decode", type=float, default=2_500.0, help="8B VLM output tokens/s")
    t.add_argument("--llm-prefill", type=float, default=1_500.0, help="70B LLM prompt tokens/s per GPU")
    t.add_argument("--llm-decode", type=float, default=300.0, help="70B LLM output tokens/s per GPU")
    t.add_argument("--grounder-rate", type=float, default=20.0, help="GroundingDINO-T images/s")
    t.add_argument("--clip-rate", type=float, default=1_000.0, help="CLIP crops/s")
    t.add_argument("--embed-rate", type=float, default=2_000.0, help="BGE-M3 sentences/s")
    args = p.parse_args()

    m = dict(MEASURED_DEFAULTS) if args.no_measure else measure(args.videos)
    print("measured" + (" (built-in)" if args.no_measure else f" (offline build of {args.videos} generated clips)") + ":")
    print(f"  frames sampled per video second {m['frames_per_second']:.2f}, "
          f"grounder calls per (key object, core frame) {m['grounder_calls_per_object_frame']:.2f}")
    if "_caption_calls_per_frame" in m:
        print(f"  (caption calls made per frame {m['_caption_calls_per_frame']:.2f}: the rest were response-cache "
              "hits on repeated synthetic frames; the model uses one call per frame)")
    print(f"  template tokens (chars/4): {m['template_tokens']}")
    if "_build" in m:
        print(f"  build (in, out, model calls) per stage: {m['_build']}")
    print("assumed: " + ", ".join(f"{k}={getattr(args, k)}" for k in (
        "video_seconds", "dedup_keep", "group_size", "qa_per_group", "judges", "judge_keep", "image_tokens",
        "caption_tokens", "qa_tokens", "cot_tokens", "key_objects", "core_frames")))
    print("throughput per GPU: " + ", ".join(f"{k}={getattr(args, k):,.0f}" for k in (
        "vlm_prefill", "vlm_decode", "llm_prefill", "llm_decode", "grounder_rate", "clip_rate", "embed_rate")))
    rows = model(args, m)
    total = sum(r["gpu_s"] for r in rows)
    bound = max(rows, key=lambda r: r["gpu_s"])
    print()
    print(f"| stage | model | calls | prompt tok/call | output tok/call | GPU-s/call | GPU-hours | hours on {args.gpus} GPUs | share | note |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---|")
    for r in rows:
        per_call = r["gpu_s"] / r["calls"] if r["calls"] else 0.0
        print(f"| {r['stage']} | {r['model']} | {r['calls']:,.0f} | {r['prompt']:,.0f} | {r['output']:,.0f} | "
              f"{per_call:.3f} | {r['gpu_s'] / 3600:,.1f} | {r['gpu_s'] / 3600 / args.gpus:,.2f} | {r['gpu_s'] / total:.0%} | {r['note']} |")
    print(f"| **total** | | | | | | **{total / 3600:,.1f}** | **{total / 3600 / args.gpus:,.1f}** | 100% | |")
    print()
    print(f"{args.qa_pairs:,.0f} QA pairs: {total / 3600:,.1f} GPU-hours, {total / 3600 / args.gpus:,.1f} h on "
          f"{args.gpus} GPUs; bound by {bound['stage']} ({bound['gpu_s'] / total:.0%} of the GPU time)")


if __name__ == "__main__":
    main()
