"""Does `train stage2` teach a real LLM to answer from evidence? Held-out accuracy before and after.

Stage 2 in text form: the real SmolLM2-135M-Instruct (``smollm2``) reads the question, the four
options and the evidence (the captions of the gold frames of a caption set) through the
reasoner's own stage-2 prompt (``reason/evidence_answer_close``: "Please answer the question
based on the evidence") and replies with the option letter. It is LoRA-trained on the train split
of ``--set``; accuracy on the held-out split of each of ``--eval-sets`` (``easy``:
:mod:`videoespresso.select.caption_sets`, ``hard``: :mod:`videoespresso.select.hard_sets`, held out
by template) or of ``--cases FILE`` (any caption-set JSONL) is printed before and after, in two
answer modes: ``generate`` (the reply, letters read by the benchmark's extractor) and
``logprob`` (the most likely option letter after the prompt, as ``bench --mode logprob``), with
chance (25 %) as the reference. ``--model SPEC`` scores that model only (a trained adapter,
``hf:OUT/adapter``), no training; ``--json PATH`` writes the table.

    python benchmarks/bench_train_stage2.py
    python benchmarks/bench_train_stage2.py --items 120 --epochs 1 --heldout-limit 30
    python benchmarks/bench_train_stage2.py --model hf:runs/s2/adapter --cases my_cases.jsonl --json s2.json
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_selection_quality import generated_sets  # noqa: E402

from videoespresso.bench.extract import extract_answer  # noqa: E402
from videoespresso.prompts import load_prompt  # noqa: E402
from videoespresso.schema import GenerationSettings, SFTExample, SFTMessage  # noqa: E402
from videoespresso.select.caption_sets import make_caption_sets, read_jsonl, split, write_case_files  # noqa: E402
from videoespresso.select.hard_sets import make_hard_sets  # noqa: E402
from videoespresso.train.lora import TrainSettings, lora_targets, train_lora  # noqa: E402

#: Decoder layers of SmolLM2-135M (``--top-layers`` counts from the top).
NUM_LAYERS = 30

TEXT_FORM = "The evidence below was read from the video's frames."


def prompt(item) -> str:
    evidence = " ".join(f"Frame {g} ({item.seconds[g - 1]:.1f} s): {item.captions[g - 1].rstrip('.')}." for g in item.gold)
    options = "\n".join(f"({'ABCD'[i]}) {text}" for i, text in enumerate(item.options))
    return load_prompt("reason/evidence_answer_close").render(frame_times=TEXT_FORM, question=item.question,
                                                             options=options, evidence=evidence)


def examples(items) -> list[SFTExample]:
    return [SFTExample(id=f"{it.id}:stage2", target="stage2", source="caption-sets", messages=[
        SFTMessage(role="user", content=prompt(it)), SFTMessage(role="assistant", content=it.answer_letter)])
        for it in items]


def accuracy(model, items, mode: str) -> tuple[float, float, Counter]:
    """(accuracy, s/item, letters answered) of ``model`` on ``items`` in answer ``mode`` (generate
    or logprob)."""
    from videoespresso.models.protocols import user

    t0 = time.perf_counter()
    convs = [[user(prompt(it))] for it in items]
    if mode == "logprob":
        scores = model.option_logprobs(convs, [list("ABCD")] * len(convs))
        letters = ["ABCD"[max(range(4), key=row.__getitem__)] for row in scores]
    else:
        replies = model.generate(convs, GenerationSettings(max_new_tokens=8))
        letters = [extract_answer(r.text, it.options).letter for r, it in zip(replies, items)]
    right = sum(letter == it.answer_letter for letter, it in zip(letters, items))
    return right / len(items), (time.perf_counter() - t0) / len(items), Counter(letters)


def majority(items) -> float:
    """The accuracy of always answering the most frequent gold letter (a constant answer's best)."""
    counts = Counter(it.answer_letter for it in items)
    return round(max(counts.values()) / len(items), 4)


def score(label: str, spec: str, sets, modes) -> list[dict]:
    from videoespresso import load_model

    model = load_model(spec, kind="chat")
    rows = []
    for set_name, items in sets:
        for mode in modes:
            acc, per, letters = accuracy(model, items, mode)
            rows.append({"set": set_name, "model": label, "mode": mode, "accuracy": round(acc, 4), "items": len(items),
                         "seeds": 1, "seconds_per_item": round(per, 3),
                         "letters": {k: letters[k] for k in sorted(letters, key=str)},
                         "majority_letter": majority(items)})
            print(f"  {label} on {set_name} ({mode}): {100 * acc:.1f} % ({per:.2f} s/item); letters answered "
                  f"{dict(letters)}")
    return rows


def mean_seeds(rows: list[dict]) -> list[dict]:
    import statistics

    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault((r["set"], r["model"], r["mode"]), []).append(r)
    out = []
    for group in groups.values():
        accs = [r["accuracy"] for r in group]
        out.append({**group[0], "accuracy": round(statistics.fmean(accs), 4), "seeds": len(group),
                    "accuracy_sd": round(statistics.pstdev(accs), 4)})
    return out


def print_table(rows: list[dict]) -> None:
    print(f"{'set':14s} {'model':28s} {'mode':9s} {'accuracy':>8s} {'(sd)':>6s} {'majority':>8s} {'items':>5s} {'seeds':>5s} "
          f"{'s/item':>7s}  letters answered")
    for r in sorted(rows, key=lambda r: (r["set"], r["mode"])):
        sd = f"{100 * r['accuracy_sd']:.1f}" if "accuracy_sd" in r else ""
        print(f"{r['set'][:14]:14s} {r['model'][:28]:28s} {r['mode']:9s} {100 * r['accuracy']:7.1f}% {sd:>6s} "
              f"{100 * r['majority_letter']:7.1f}% {r['items']:5d} {r['seeds']:5d} {r['seconds_per_item']:7.2f}  {r['letters']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--set", choices=("easy", "hard"), default="easy", help="the set trained on (its train split)")
    parser.add_argument("--eval-sets", default="easy,hard", help="held-out sets scored")
    parser.add_argument("--cases", action="append", type=Path, default=[], help="score this caption-set JSONL instead")
    parser.add_argument("--model", default=None, help="score this model spec only (no training)")
    parser.add_argument("--modes", default="generate,logprob", help="answer modes: generate, logprob")
    parser.add_argument("--items", type=int, default=300, help="easy-set items generated before the split")
    parser.add_argument("--train-items", type=int, default=None, help="training items (default: the easy split, or 240 hard)")
    parser.add_argument("--hard-items", type=int, default=120)
    parser.add_argument("--heldout-limit", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0, help="data seed")
    parser.add_argument("--seeds", default="0", help="training seeds, comma-separated")
    parser.add_argument("--epochs", type=float, default=1.0)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--lr", type=float, default=1e-3, help="higher than the paper's 1e-5: a few dozen steps")
    parser.add_argument("--top-layers", type=int, default=0, help="LoRA on the top N decoder layers only (0: all)")
    parser.add_argument("--no-untrained", action="store_true", help="skip scoring the untrained base (measured before)")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()

    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    if args.cases:
        sets = [(f.stem, read_jsonl(f)) for f in args.cases]
    else:
        sets = generated_sets([x.strip() for x in args.eval_sets.split(",") if x.strip()], items=args.items,
                              hard_items=args.hard_items, seed=args.seed, which="heldout")
    sets = [(name, items[: args.heldout_limit] if args.heldout_limit else items) for name, items in sets]
    rows = [] if args.no_untrained else score(args.model or "smollm2", args.model or "smollm2", sets, modes)
    if args.model is None:
        if args.set == "easy":
            train, _ = split(make_caption_sets(args.items, args.seed))
            train = train[: args.train_items] if args.train_items else train
        else:
            train = make_hard_sets(args.train_items or 240, args.seed, "train")
        out = Path(args.out or tempfile.mkdtemp(prefix="ve-train-s2-"))
        try:
            write_case_files(out, train, sets)
        except ValueError as exc:
            raise SystemExit(str(exc)) from None
        trained = []
        for seed in [int(x) for x in args.seeds.split(",")]:
            folder = out / f"seed{seed}"
            result = train_lora(examples(train), "smollm2", folder, target="stage2", eval_examples=examples(sets[0][1][:16]),
                                settings=TrainSettings(lr=args.lr, epochs=args.epochs, batch_size=args.batch_size,
                                                       save_steps=10_000, seed=seed, target_modules=lora_targets(
                                                           "all", range(NUM_LAYERS - args.top_layers, NUM_LAYERS)
                                                           if args.top_layers else None)))
            print(f"seed {seed}: {result.steps} steps in {result.seconds:.1f} s; loss {result.first_loss:.3f} -> "
                  f"{result.last_loss:.3f}; held-out loss {result.eval_loss_before:.3f} -> {result.eval_loss_after:.3f}")
            trained += score("trained", f"hf:{folder / 'adapter'}", sets, modes)
        rows += mean_seeds(trained)
    print()
    print_table(rows)
    print("\n(chance 25 %; majority: always the most frequent gold letter; stage 2 in text form: question + options + the gold frames' captions as evidence)")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"rows": rows, "trained_on": args.set, "lr": args.lr, "epochs": args.epochs,
                                         "batch_size": args.batch_size, "seeds": args.seeds,
                                         "top_layers": args.top_layers}, indent=2) + "\n")


if __name__ == "__main__":
    main()
