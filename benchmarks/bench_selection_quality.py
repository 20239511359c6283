"""How well each frame selector finds the frames a question needs, given the frame captions.

Data, by ``--sets`` (both by default):

* ``easy``: :mod:`videoespresso.select.caption_sets` (seeded stories of 8-12 numbered captions, a
  question answerable only from 1-3 of them), held-out split by item id; word overlap solves it;
* ``hard``: :mod:`videoespresso.select.hard_sets` (questions about the order of events, counts and
  causes, worded with synonyms, with distractors that share the question's words), held-out by
  story template;
* ``--cases FILE``: any caption-set JSONL file (one :class:`CaptionSetItem` a line: ``id``,
  ``kind`` (any string), ``captions``, ``seconds``, ``question``, ``answer``, ``options``,
  ``gold`` 1-based), scored instead of the generated sets (repeatable).

Each item's captions are handed to the selector with the candidate frames of one generated
still video (a caption every 2 s), so the selectors run their real code path, captioner excepted.

Reported per selector and set: frames chosen on average, recall and precision of the gold
frames, exact-set match, the share of replies repaired or fallen back to the uniform rule,
recall per question kind, seconds per item. ``--json PATH`` writes the same table (one row per
selector and set, with ``items`` and ``seeds``).

Selectors: ``uniform`` (4 of the candidates, the official rule: the reference), ``embedding``
(``minilm``, top 4 with a 1 s gap), ``caption-llm`` (``--llm``: ``smollm2`` by default, the real
SmolLM2-135M-Instruct, JSON-constrained, up to 4 frames; or a trained adapter ``hf:OUT/adapter``),
``oracle`` (the gold frames themselves: the ceiling).

    python benchmarks/bench_selection_quality.py                     # both sets, all selectors
    python benchmarks/bench_selection_quality.py --limit 20 --selectors uniform,caption-llm
    python benchmarks/bench_selection_quality.py --cases my_cases.jsonl --llm hf:runs/sel/adapter --json out.json
    python benchmarks/bench_selection_quality.py --build build/ --video-root videos/   # a build's questions
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from videoespresso.schema import FrameRef  # noqa: E402
from videoespresso.select.caption_sets import SPACING_S, make_caption_sets, read_jsonl, split, summary  # noqa: E402
from videoespresso.select.hard_sets import make_hard_sets  # noqa: E402
from videoespresso.video.synth import StaticShot, make_video  # noqa: E402

ALL = ("uniform", "embedding", "caption-llm", "oracle")
SETS = ("easy", "hard")


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
    if name == "oracle":
        return None  # score_cases reads the gold frames themselves: the ceiling
    raise SystemExit(f"unknown selector {name!r}; known: {', '.join(ALL)}")


def still_video(n_captions: int) -> tuple[Path, int]:
    """One still video, 1 fps: frame ``k * step`` is the frame of caption ``k + 1`` (a caption every SPACING_S s)."""
    folder = Path(tempfile.mkdtemp(prefix="ve-selq-"))
    fps = 1.0
    video = make_video(folder / "still.mp4", [StaticShot(n_captions * SPACING_S)], fps=fps, size=(160, 120)).path
    return video, int(round(SPACING_S * fps))


def candidates(item, step: int) -> list[FrameRef]:
    """Caption ``k``'s frame: frame ``k * step`` of the still video, at the time the item gives it
    (what the prompt shows)."""
    return [FrameRef(index=k * step, seconds=item.seconds[k] if k < len(item.seconds) else k * SPACING_S)
            for k in range(len(item.captions))]


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
        if selector is None:  # the oracle
            picked, fallback, changed = set(case.gold), None, set()
        else:
            before = dict(selector.stats)
            sel = selector.select(case.video, case.question, item_id=case.id,
                                  options=case.options if options else None,
                                  candidates=case.candidates, captions=case.captions)
            after = selector.stats
            picked, fallback = {f.index for f in sel.frames}, sel.fallback
            changed = {r for r in after if after[r] != before.get(r, 0)} - {"fallback"}
        n_frames += len(picked)
        hit = len(picked & case.gold)
        hits += hit
        gold_total += len(case.gold)
        exact += picked == case.gold
        fell_back += fallback is not None
        repaired += bool(changed) and fallback is None
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


def as_row(set_name: str, scored: tuple, items: int, seeds: int = 1) -> dict:
    """One table row (what ``--json`` writes) from :func:`score_cases`' tuple."""
    name, frames, recall, precision, exact, repaired, fb, kinds, per = scored
    return {"set": set_name, "selector": name, "recall": round(recall, 4), "precision": round(precision, 4),
            "frames": round(frames, 3), "exact_set": round(exact, 4), "items": items, "seeds": seeds,
            "repaired": round(repaired, 4), "fallback": round(fb, 4),
            "recall_by_kind": {k: round(v, 3) for k, v in kinds.items()}, "seconds_per_item": round(per, 3)}


def mean_rows(rows: list[dict]) -> dict:
    """The mean of the rows of one selector and set over training seeds, with the spread of recall
    (``recall_sd``, ``recall_min``, ``recall_max``)."""
    import statistics

    out = dict(rows[0])
    for key in ("recall", "precision", "frames", "exact_set", "repaired", "fallback", "seconds_per_item"):
        out[key] = round(statistics.fmean(r[key] for r in rows), 4)
    recalls = [r["recall"] for r in rows]
    out |= {"seeds": len(rows), "recall_sd": round(statistics.pstdev(recalls), 4),
            "recall_min": min(recalls), "recall_max": max(recalls)}
    kinds = {k for r in rows for k in r["recall_by_kind"]}
    out["recall_by_kind"] = {k: round(statistics.fmean(r["recall_by_kind"].get(k, 0.0) for r in rows), 3)
                             for k in sorted(kinds)}
    return out


def print_table(rows: list[dict]) -> None:
    print(f"{'set':14s} {'selector':24s} {'frames':>6s} {'recall':>7s} {'(sd)':>6s} {'precis.':>7s} {'exact':>6s} "
          f"{'repair':>7s} {'fallbk':>7s} {'items':>5s} {'seeds':>5s}  {'recall by kind':40s} {'s/item':>7s}")
    for r in rows:
        kinds_text = " ".join(f"{k} {v:.2f}" for k, v in r["recall_by_kind"].items())
        sd = f"{r['recall_sd']:.3f}" if "recall_sd" in r else ""
        print(f"{r['set'][:14]:14s} {r['selector'][:24]:24s} {r['frames']:6.2f} {r['recall']:7.3f} {sd:>6s} "
              f"{r['precision']:7.3f} {r['exact_set']:6.3f} {r['repaired']:7.3f} {r['fallback']:7.3f} {r['items']:5d} "
              f"{r['seeds']:5d}  {kinds_text:40s} {r['seconds_per_item']:7.3f}")


def write_json(path: Path, rows: list[dict], **about) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({**about, "rows": rows}, indent=2) + "\n", encoding="utf-8")


def generated_sets(names, *, items: int, hard_items: int, seed: int, which: str = "heldout") -> list[tuple[str, list]]:
    """The named generated sets' items of split ``which`` (``heldout`` or ``train``)."""
    out = []
    for name in names:
        if name == "easy":
            train, heldout = split(make_caption_sets(items, seed))
            out.append(("easy", heldout if which == "heldout" else train))
        elif name == "hard":
            out.append(("hard", make_hard_sets(hard_items, seed, which)))
        else:
            raise SystemExit(f"unknown set {name!r}; known: {', '.join(SETS)}")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sets", default=",".join(SETS), help=f"generated sets to score, from {', '.join(SETS)}")
    parser.add_argument("--cases", action="append", type=Path, default=[],
                        help="score this caption-set JSONL file instead of the generated sets (repeatable)")
    parser.add_argument("--json", type=Path, default=None, help="also write the table as JSON here")
    parser.add_argument("--items", type=int, default=300, help="easy-set items to generate before the split (default 300)")
    parser.add_argument("--hard-items", type=int, default=120, help="hard-set items of the split to generate (default 120)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--split", choices=("heldout", "train"), default="heldout")
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
            rows.append(as_row(args.build.name, score_cases(name, selector, cases, options=args.options), len(cases)))
        print()
        print_table(rows)
        print(f"\n({len(cases)} build questions; k = {args.k}; gold = the build's core frames)")
        if args.json:
            write_json(args.json, rows, k=args.k, build=str(args.build))
        return

    if args.cases:
        sets = [(Path(f).stem, read_jsonl(f)) for f in args.cases]
    else:
        sets = generated_sets([x.strip() for x in args.sets.split(",") if x.strip()], items=args.items,
                              hard_items=args.hard_items, seed=args.seed, which=args.split)
    sets = [(name, chosen[: args.limit] if args.limit else chosen) for name, chosen in sets]
    for name, chosen in sets:
        print(f"{name}: {summary(chosen)}")

    rows = []
    for name in [s.strip() for s in args.selectors.split(",") if s.strip()]:
        selector = build_selector(name, args.k, args.llm)
        label = f"caption-llm {args.llm}" if name == "caption-llm" else name
        for set_name, chosen in sets:
            rows.append(as_row(set_name, score_selector(label, selector, chosen, options=args.options), len(chosen)))
            print(f"  {label} on {set_name}: done in {rows[-1]['seconds_per_item'] * len(chosen):.1f} s; "
                  f"stats {getattr(selector, 'stats', {})}")

    print()
    print_table(rows)
    print(f"\n({args.split} items; k = {args.k}; uniform is the reference, oracle the ceiling; "
          f"options {'shown' if args.options else 'not shown'})")
    if args.json:
        write_json(args.json, rows, k=args.k, split=args.split, options=args.options)


if __name__ == "__main__":
    main()
