"""How well each frame selector finds the frames a question needs, given the frame captions.

Data: :mod:`videoespresso.select.caption_sets` (seeded stories of 8-12 numbered captions, a
question answerable only from 1-3 of them, the gold frame numbers, four options), split
train / held-out by item id; this script scores the held-out split by default. Each item's
captions are handed to the selector with the candidate frames of one generated still video
(a caption every 2 s), so the selectors run their real code path, captioner excepted.

Reported per selector: frames chosen on average, recall and precision of the gold frames,
exact-set match, and the share of items whose reply needed a repair or fell back to the
uniform rule; also recall per question kind, and seconds per item.

Selectors: ``uniform`` (4 of the candidates, the official rule: the reference), ``embedding``
(``minilm``, top 4 with a 1 s gap), ``caption-llm`` (``smollm2``, the real SmolLM2-135M-Instruct,
JSON-constrained, up to 4 frames).

    python benchmarks/bench_selection_quality.py                     # held-out split of 300 items
    python benchmarks/bench_selection_quality.py --limit 20 --selectors uniform,caption-llm
    python benchmarks/bench_selection_quality.py --split train --options
    python benchmarks/bench_selection_quality.py --build build/ --video-root videos/   # a build's questions
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from videoespresso.schema import FrameRef  # noqa: E402
from videoespresso.select.caption_sets import SPACING_S, make_caption_sets, split, summary  # noqa: E402
from videoespresso.video.synth import StaticShot, make_video  # noqa: E402

ALL = ("uniform", "embedding", "caption-llm")


def build_selector(name: str, k: int, llm: str = "smollm2"):
    from videoespresso import load_model
    from videoespresso.select.caption_llm import CaptionLLMSelector
    from videoespresso.select.embedding import EmbeddingSelector
    from videoespresso.select.uniform import UniformSelector

    if name == "uniform":
        return UniformSelector(frames=k)
    if name == "embedding":
        return EmbeddingSelector(load_model("minilm"), k=k)
    if name == "caption-llm":
        return CaptionLLMSelector(load_model(llm, kind="chat"), max_frames=k)
    raise SystemExit(f"unknown selector {name!r}; known: {', '.join(ALL)}")


def still_video(n_captions: int) -> tuple[Path, int]:
    """One still video, 1 fps: frame ``k * step`` is the frame of caption ``k + 1`` (a caption every SPACING_S s)."""
    folder = Path(tempfile.mkdtemp(prefix="ve-selq-"))
    fps = 1.0
    video = make_video(folder / "still.mp4", [StaticShot(n_captions * SPACING_S)], fps=fps, size=(160, 120)).path
    return video, int(round(SPACING_S * fps))


def candidates(item, step: int) -> list[FrameRef]:
    return [FrameRef(index=k * step, seconds=k * SPACING_S) for k in range(len(item.captions))]


@dataclass
class Case:
    """One selection problem: the candidates with their captions and the gold frame indices."""

    id: str
    question: str
    options: list[str] | None
    video: Path
    candidates: list[FrameRef]
    captions: list[str]
    gold: set[int]
    kind: str


def score_selector(name: str, selector, items, *, options: bool = False) -> tuple:
    """:func:`score_cases` on caption-set items (each shown with one generated still video)."""
    video, step = still_video(max(len(it.captions) for it in items))
    cases = [Case(it.id, it.question, it.options, video, candidates(it, step), list(it.captions),
                  {(g - 1) * step for g in it.gold}, it.kind) for it in items]
    return score_cases(name, selector, cases, options=options)


def score_cases(name: str, selector, cases: list[Case], *, options: bool = False) -> tuple:
    """(name, frames, recall, precision, exact, repaired, fallback, recall by kind, s/item) on ``cases``."""
    n_frames = hits = gold_total = exact = repaired = fell_back = 0
    by_kind: dict[str, list[int]] = {}
    t0 = time.perf_counter()
    for case in cases:
        before = dict(selector.stats)
        sel = selector.select(case.video, case.question, item_id=case.id,
                              options=case.options if options else None,
                              candidates=case.candidates, captions=case.captions)
        after = selector.stats
        picked = {f.index for f in sel.frames}
        n_frames += len(picked)
        hit = len(picked & case.gold)
        hits += hit
        gold_total += len(case.gold)
        exact += picked == case.gold
        fell_back += sel.fallback is not None
        changed = {r for r in after if after[r] != before.get(r, 0)} - {"fallback"}
        repaired += bool(changed) and sel.fallback is None
        kind = by_kind.setdefault(case.kind, [0, 0])
        kind[0] += hit
        kind[1] += len(case.gold)
    seconds = time.perf_counter() - t0
    n = len(cases)
    return (name, n_frames / n, hits / max(1, gold_total), hits / max(1, n_frames), exact / n, repaired / n,
            fell_back / n, {k: v[0] / max(1, v[1]) for k, v in sorted(by_kind.items())}, seconds / n)


def build_cases(build: Path, video_root: Path) -> tuple[list[Case], list[str]]:
    """Cases from a ``build`` folder: for each exported question the frames of the caption group it
    was written from (their captions from the build's store) are the candidates, and the
    annotated core frames (the oracle's frames) are the gold. Returns the cases and a line per
    question left out."""
    import json

    from videoespresso.train.examples import caption_groups, question_group

    groups = caption_groups(build)
    cases, skipped = [], []
    for line in (build / "dataset.jsonl").read_text("utf-8").splitlines():
        record = json.loads(line)
        qa = record["qa"]
        core = [FrameRef.model_validate(f) for f in record["cot"]["core_frames"]]
        group = question_group(qa["id"], core, groups)
        if isinstance(group, str):
            skipped.append(f"{qa['id']}: {group}")
            continue
        frames, captions = group
        cases.append(Case(qa["id"], qa["question"], record.get("options"), video_root / qa["video"],
                          frames, captions, {f.index for f in core}, qa["task"]))
    return cases, skipped


def print_table(rows) -> None:
    print(f"{'selector':24s} {'frames':>6s} {'recall':>7s} {'precis.':>7s} {'exact':>6s} {'repair':>7s} {'fallbk':>7s}  "
          f"{'recall by kind':40s} {'s/item':>7s}")
    for name, frames, recall, precision, exact, repaired, fb, kinds, per in rows:
        kinds_text = " ".join(f"{k} {v:.2f}" for k, v in kinds.items())
        print(f"{name:24s} {frames:6.2f} {recall:7.3f} {precision:7.3f} {exact:6.3f} {repaired:7.3f} {fb:7.3f}  "
              f"{kinds_text:40s} {per:7.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=300, help="items to generate (default 300)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--split", choices=("heldout", "train", "all"), default="heldout")
    parser.add_argument("--limit", type=int, default=None, help="score only the first N items of the split")
    parser.add_argument("--selectors", default=",".join(ALL), help=f"comma-separated, from {', '.join(ALL)}")
    parser.add_argument("--k", type=int, default=4, help="frames a selector may choose (default 4)")
    parser.add_argument("--options", action="store_true", help="show the four options with the question")
    parser.add_argument("--llm", default="smollm2", help="caption-llm's model spec (e.g. a trained adapter, hf:runs/sel/adapter)")
    parser.add_argument("--build", type=Path, default=None,
                        help="score on a build folder instead (candidates: each question's caption group; gold: its core frames)")
    parser.add_argument("--video-root", type=Path, default=None, help="with --build: the folder the build read its videos from")
    args = parser.parse_args()

    if args.build is not None:
        if args.video_root is None:
            raise SystemExit("--build needs --video-root (the folder `build` read its videos from)")
        cases, skipped = build_cases(args.build, args.video_root)
        if args.limit:
            cases = cases[: args.limit]
        print(f"build {args.build}: {len(cases)} questions ({len(skipped)} left out); "
              f"{sum(len(c.candidates) for c in cases) / max(1, len(cases)):.1f} candidates and "
              f"{sum(len(c.gold) for c in cases) / max(1, len(cases)):.2f} gold frames per question")
        for line in skipped[:10]:
            print(f"  left out: {line}")
        rows = []
        for name in [s.strip() for s in args.selectors.split(",") if s.strip()]:
            selector = build_selector(name, args.k, args.llm)
            rows.append(score_cases(name, selector, cases, options=args.options))
        print()
        print_table(rows)
        print(f"\n({len(cases)} build questions; k = {args.k}; gold = the build's core frames)")
        return

    items = make_caption_sets(args.items, args.seed)
    train, heldout = split(items)
    chosen_split = {"heldout": heldout, "train": train, "all": items}[args.split]
    if args.limit:
        chosen_split = chosen_split[: args.limit]
    print(f"caption sets: {len(items)} items (seed {args.seed}), train {len(train)}, held-out {len(heldout)}; "
          f"scoring {args.split}: {summary(chosen_split)}")

    rows = []
    for name in [s.strip() for s in args.selectors.split(",") if s.strip()]:
        selector = build_selector(name, args.k, args.llm)
        rows.append(score_selector(name, selector, chosen_split, options=args.options))
        print(f"  {name}: done in {rows[-1][-1] * len(chosen_split):.1f} s; stats {selector.stats}")

    print()
    print_table(rows)
    print(f"\n({len(chosen_split)} {args.split} items; k = {args.k}; uniform is the reference; "
          f"options {'shown' if args.options else 'not shown'})")


if __name__ == "__main__":
    main()
