"""How true the classical roles are, against generated scenes whose content is known.

Scenes: :func:`videoespresso.video.scenes.random_scene` (seeds ``--seed`` .. ``--seed + N - 1``),
rendered to H.264 and decoded back, so the roles see what an encoder leaves of the pixels.

Reported:

* **captioner fact accuracy** (``describe``): frames one second apart captioned together in one
  request; each fact (count, colour, shape, size, position, motion, appeared / left / turned)
  checked against the scene (:mod:`videoespresso.bench.synth_truth`); also frames captioned one
  by one (no motion facts then);
* **objects named**: the share of the visible objects whose "size colour shape" or
  "colour shape" appears in the frame's caption, for ``describe`` and, with ``--baseline``, the
  random-weight ``tiny:qwen2-vl`` captioner the ``tiny`` profile uses (the reference figure);
* **grounder box IoU** (``segment``, and ``tiny:grounding-dino`` with ``--baseline``): for every
  visible object of every fifth frame, the best box for "the <colour> <shape>" against its true
  box: mean IoU and the share at IoU >= 0.7;
* with ``--qa N``: the ``socratic:smollm2`` two-stage reasoner on the first N items of a
  held-out generated benchmark (``synth-bench``), with the gold core frames and with ``--frames``
  uniform frames: accuracy per question kind against chance (25 %).

    python benchmarks/bench_truthful_roles.py                       # 20 scenes
    python benchmarks/bench_truthful_roles.py --scenes 50 --baseline
    python benchmarks/bench_truthful_roles.py --scenes 0 --qa 20 --frames 8
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import av  # noqa: E402
import numpy as np  # noqa: E402

from videoespresso.bench.synth_truth import FactTally, box_iou, check_frames  # noqa: E402
from videoespresso.video.scenes import random_scene, render_scene  # noqa: E402


def decode(path):
    with av.open(str(path)) as c:
        return [f.to_image() for f in c.decode(video=0)]


def objects_named(captioner, scene, frames, indices, prompt: str) -> tuple[int, int]:
    from videoespresso.models.protocols import user
    from videoespresso.schema import GenerationSettings

    replies = captioner.generate([[user(prompt, [frames[i]])] for i in indices], GenerationSettings(max_new_tokens=48))
    named = total = 0
    for i, reply in zip(indices, replies):
        text = reply.text.lower()
        for t in scene.frame_truth(i):
            total += 1
            named += f"{t.colour} {t.shape}" in text
    return named, total


def grounder_ious(grounder, scene, frames) -> list[float]:
    out = []
    for i in range(0, scene.num_frames, 5):
        truth = scene.frame_truth(i)
        phrases = [f"the {t.colour} {t.shape}" for t in truth]
        if not phrases:
            continue
        found = grounder.ground([frames[i]], [phrases], box_threshold=0.0, text_threshold=0.0)[0]
        for t, phrase in zip(truth, phrases):
            mine = [d for d in found if d.phrase.strip().lower() in phrase.lower() or phrase.lower() in d.phrase.lower()]
            out.append(box_iou(scene, i, mine, t.id))
    return out


def run_qa(n: int, frames_k: int, workdir: Path, seed: int) -> None:
    from videoespresso import load_model
    from videoespresso.bench.extract import extract
    from videoespresso.bench.synth_bench import make_synth_bench
    from videoespresso.formats.bench import read_bench
    from videoespresso.reason.reasoners import ReasonRequest, TwoStageReasoner
    from videoespresso.schema import GenerationSettings
    from videoespresso.select.base import uniform_indices
    from videoespresso.video import VideoReader

    made = make_synth_bench(workdir / "synth", n=max(4, (n + 4) // 5 * 4), seed=seed, heldout=0.25)
    items = read_bench(made.files["heldout"])[:n]
    model = load_model("socratic:smollm2")
    reasoner = TwoStageReasoner(
        model, GenerationSettings(max_new_tokens=8),
        evidence_settings=GenerationSettings(max_new_tokens=64, repetition_penalty=1.2),
    )
    for label in ("gold core frames", f"uniform-{frames_k}"):
        requests = []
        for item in items:
            with VideoReader(made.out / item.video_path) as reader:
                if label.startswith("gold"):
                    fps = reader.info.avg_fps
                    idx = [min(reader.info.num_frames - 1, int(round(s * fps))) for s in item.extra["core_frames_seconds"]]
                else:
                    idx = uniform_indices(reader.info.num_frames, frames_k)
                requests.append(ReasonRequest(reader.get_frames_at(idx), item.question, item.options))
        start = time.perf_counter()
        results = reasoner.answer_batch(requests)
        seconds = time.perf_counter() - start
        per_kind: dict[str, list[int]] = defaultdict(lambda: [0, 0])
        for item, result in zip(items, results):
            ok = extract(result.answer, item.options).letter == item.correct_answer
            cell = per_kind[item.extra["kind"]]
            cell[0] += ok
            cell[1] += 1
        right = sum(c[0] for c in per_kind.values())
        print(f"QA socratic:smollm2, {label}: {right}/{len(items)} = {right / max(1, len(items)):.1%} "
              f"(chance 25 %), {seconds / max(1, len(items)):.1f} s/item")
        for kind, (r, t) in sorted(per_kind.items()):
            print(f"  {kind:13s} {r}/{t}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenes", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--baseline", action="store_true", help="Also measure the random-weight tiny roles.")
    parser.add_argument("--qa", type=int, default=0, help="Held-out synth-bench items for the socratic reasoner.")
    parser.add_argument("--frames", type=int, default=8, help="Uniform frames per question for --qa.")
    args = parser.parse_args()

    from videoespresso import load_model

    describe = load_model("describe")
    segment = load_model("segment", kind="grounder")
    tiny_vlm = load_model("tiny:qwen2-vl") if args.baseline else None
    tiny_dino = load_model("tiny:grounding-dino", kind="grounder") if args.baseline else None
    prompt = "Describe this video frame in one or two sentences."
    together, alone = FactTally(), FactTally()
    named = defaultdict(lambda: [0, 0])
    ious: dict[str, list[float]] = defaultdict(list)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        for n in range(args.scenes):
            scene = random_scene(args.seed + n)
            frames = decode(render_scene(scene, Path(tmp) / f"s{n}.mp4").path)
            idx = list(range(0, scene.num_frames, int(scene.fps)))
            from videoespresso.models.classical.describe import describe_frames

            together.merge(check_frames(scene, idx, describe_frames([frames[i] for i in idx])))
            for i in idx:
                alone.merge(check_frames(scene, [i], describe_frames([frames[i]])))
            for name, model in (("describe", describe), ("tiny:qwen2-vl", tiny_vlm)):
                if model is not None:
                    r, t = objects_named(model, scene, frames, idx, prompt)
                    named[name][0] += r
                    named[name][1] += t
            for name, model in (("segment", segment), ("tiny:grounding-dino", tiny_dino)):
                if model is not None:
                    ious[name].extend(grounder_ious(model, scene, frames))
        elapsed = time.perf_counter() - start
        if args.scenes:
            print(f"{args.scenes} scenes (seeds {args.seed}..{args.seed + args.scenes - 1}), {elapsed:.1f} s")
            for label, tally in (("frames captioned together", together), ("frames captioned alone", alone)):
                print(f"describe fact accuracy, {label}: {tally.right}/{tally.right + tally.wrong} = {tally.accuracy:.2%}")
                print("  " + ", ".join(f"{k} {r}/{r + w}" for k, (r, w) in sorted(tally.by_kind.items())))
                for mistake in tally.mistakes[:5]:
                    print(f"  wrong: {mistake}")
            for name, (r, t) in named.items():
                print(f"objects named in the caption, {name}: {r}/{t} = {r / max(1, t):.1%}")
            for name, values in ious.items():
                arr = np.asarray(values)
                print(f"box IoU, {name}: mean {arr.mean():.3f}, share >= 0.7 {(arr >= 0.7).mean():.1%} ({arr.size} boxes)")
        if args.qa:
            run_qa(args.qa, args.frames, Path(tmp), args.seed)


if __name__ == "__main__":
    main()
