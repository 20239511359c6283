"""Does `train selector` teach a real LLM to pick core frames? Held-out quality before and after.

The real SmolLM2-135M-Instruct (``smollm2``) is LoRA-trained as the caption-LLM frame picker on
the *train* split of ``--set`` (``easy``: :mod:`videoespresso.select.caption_sets`, split by item;
``hard``: :mod:`videoespresso.select.hard_sets`, split by story template), with examples built by
:func:`~videoespresso.train.examples.selector_example` (the ``select/choose`` prompt the selector
renders, the target in the compact JSON its constrained decoder writes). Then the caption-llm
selector runs over the *held-out* split of every ``--eval-sets`` set with the untrained and the
trained model, with uniform, embedding and the oracle as references measured in the same run;
one row per selector and set (``--json`` writes them). Trained rows are means over ``--seeds``
(with the spread of recall). The items trained on and scored are written to ``--out``
(``train_cases.jsonl``, ``heldout_<set>.jsonl``, checked for leaks before training) with each
seed's adapter in ``--out/seed<N>/adapter`` (score it again with
``bench_selection_quality.py --cases OUT/heldout_hard.jsonl --llm hf:OUT/seed0/adapter``).

Recipe knobs: ``--train-items``, ``--epochs``, ``--lr``, ``--batch-size``, ``--lora-r`` /
``--lora-alpha``, ``--modules all|attention``, ``--top-layers N`` (LoRA on the top N decoder
layers only: backward then stops there, the cheap end of the sweep).

Second measure: trainer overhead. The same examples and steps through our ``train_lora`` and
through a plain loop (peft model + AdamW + the same encoded tensors, no Trainer): samples/s
ratio (the goal: within 5 %), and peak memory. Each variant runs in a process of its own (this
script again, ``--overhead-variant``) so its peak resident set size (the kernel's ``VmHWM``:
torch's allocations are not Python objects, so tracemalloc misses them) is its own; a third process only
loads the model and encodes the examples, the floor both share, so the peak above it is what
training itself costs.

    python benchmarks/bench_train_selector.py --overhead-steps 0   # easy set, ~245 items, 1 epoch
    python benchmarks/bench_train_selector.py --set easy --train-items 96 --batch-size 4 --lr 2e-3 --top-layers 8 \
        --heldout-limit 30 --overhead-steps 0 --out runs/sel-easy --json runs/sel-easy.json
    python benchmarks/bench_train_selector.py --set hard --seeds 0,1,2 --heldout-limit 30 --overhead-steps 0
    python benchmarks/bench_train_selector.py --items 40 --overhead-only --overhead-steps 3
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_selection_quality import (  # noqa: E402
    SETS, as_row, build_selector, candidates, generated_sets, mean_rows, print_table, score_selector, still_video, write_json,
)

from videoespresso.schema import SFTExample  # noqa: E402
from videoespresso.select.caption_sets import make_caption_sets, split, write_case_files  # noqa: E402
from videoespresso.select.hard_sets import make_hard_sets  # noqa: E402
from videoespresso.train.examples import selector_example  # noqa: E402
from videoespresso.train.lora import PROJECTIONS, TrainSettings, encode_example, lora_targets, train_lora  # noqa: E402

#: Decoder layers of SmolLM2-135M (``--top-layers`` counts from the top).
NUM_LAYERS = 30


def selector_examples(items, step: int, k: int) -> list[SFTExample]:
    return [selector_example(f"{it.id}:selector", it.question, None, candidates(it, step), it.captions, it.gold, k,
                             source="caption-sets") for it in items]


def plain_loop(base: str, examples, steps: int, batch: int, lr: float, on_step=None) -> float:
    """Samples/s of a hand-written peft + AdamW loop over the same encoded examples."""
    import torch

    from videoespresso import load_model
    from videoespresso.train.lora import _peft_model

    backend = load_model(base, kind="chat")
    rows = [encode_example(backend, e, max_tokens=6144, image_size=224)[0] for e in examples]
    torch.manual_seed(0)
    model = _peft_model(backend.model.train(), TrainSettings())
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr, weight_decay=0.02)
    t0 = time.perf_counter()
    seen = 0
    for step in range(steps):
        for j in range(batch):
            row = rows[(step * batch + j) % len(rows)]
            (model(**row).loss / batch).backward()
            seen += 1
        opt.step()
        opt.zero_grad()
        if on_step is not None:
            on_step(step + 1)
    return seen / (time.perf_counter() - t0)


def peak_rss_mb() -> float:
    """This process's peak resident set size so far, in MiB: the kernel's ``VmHWM``. Not
    ``ru_maxrss``: Linux carries it across fork + exec, so a child started by a parent that has
    trained already reports the parent's peak (all three variants read 2716 MiB that way)."""
    hwm = _status_mb("VmHWM")
    return hwm if hwm is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _status_mb(field: str) -> float | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


class StepPeak:
    """Peak RSS of the steady training steps, after the first: whatever loading and the first
    step (optimizer state allocated) peaked at is left out. After step 1 the kernel's high-water
    mark is reset (``/proc/self/clear_refs`` 5, Linux 4.0+) and read back at the end (``VmHWM``);
    ``rss_after_step1`` is the resident set at the reset, the floor that peak sits on."""

    def __init__(self) -> None:
        self.rss_after_step1: float | None = None

    def __call__(self, step: int, *_: object) -> None:
        if step == 1:
            self.rss_after_step1 = _status_mb("VmRSS")
            try:
                Path("/proc/self/clear_refs").write_text("5")
            except OSError:
                self.rss_after_step1 = None

    def result(self) -> dict[str, float | None]:
        return {"rss_after_step1_mb": self.rss_after_step1,
                "step_peak_mb": _status_mb("VmHWM") if self.rss_after_step1 is not None else None}


def run_variant(variant: str, examples, args) -> dict[str, float]:
    """One overhead variant in this (fresh) process: ``setup`` loads the model and encodes the
    examples only; ``trainer`` runs ``train_lora``; ``plain`` the hand-written loop."""
    steps, batch = args.overhead_steps, args.batch_size
    n = steps * batch
    sub = examples[:n]
    if variant == "setup":
        from videoespresso import load_model

        backend = load_model("smollm2", kind="chat")
        rows = [encode_example(backend, e, max_tokens=6144, image_size=224)[0] for e in sub]
        return {"rate": 0.0, "peak_rss_mb": peak_rss_mb(), "rows": len(rows)}
    peak = StepPeak()
    if variant == "trainer":
        quick = TrainSettings(lr=args.lr, max_steps=steps, batch_size=batch, save_steps=10_000, logging_steps=1)
        timed = train_lora(sub, "smollm2", Path(tempfile.mkdtemp(prefix="ve-train-oh-")), target="selector",
                           settings=quick, on_step=peak)
        return {"rate": n / timed.seconds, "peak_rss_mb": peak_rss_mb(), **peak.result()}
    if variant == "plain":
        rate = plain_loop("smollm2", sub, steps, batch, args.lr, on_step=peak)
        return {"rate": rate, "peak_rss_mb": peak_rss_mb(), **peak.result()}
    raise SystemExit(f"unknown variant {variant!r}")


def measure_variant(variant: str, args) -> dict[str, float]:
    """Run :func:`run_variant` in a child process and read its result line."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--overhead-variant", variant, "--items", str(args.items),
           "--seed", str(args.seed), "--k", str(args.k), "--batch-size", str(args.batch_size), "--lr", str(args.lr),
           "--overhead-steps", str(args.overhead_steps)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        raise SystemExit(f"overhead variant {variant} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return json.loads(lines[-1][len("RESULT "):])


def overhead(args) -> None:
    setup, trainer, plain = (measure_variant(v, args) for v in ("setup", "trainer", "plain"))
    print(f"\noverhead ({args.overhead_steps} steps x {args.batch_size}, one process per variant):")
    print(f"  samples/s: train_lora {trainer['rate']:.2f}, plain peft loop {plain['rate']:.2f}, "
          f"ratio {trainer['rate'] / plain['rate']:.3f}")
    print(f"  peak RSS of the process: train_lora {trainer['peak_rss_mb']:.0f} MiB, plain peft loop "
          f"{plain['peak_rss_mb']:.0f} MiB, ratio {trainer['peak_rss_mb'] / plain['peak_rss_mb']:.3f} "
          f"(load + encode alone: {setup['peak_rss_mb']:.0f} MiB)")
    if trainer.get("step_peak_mb") and plain.get("step_peak_mb"):
        print(f"  peak RSS of steps 2..{args.overhead_steps}: train_lora {trainer['step_peak_mb']:.0f} MiB "
              f"(RSS after step 1: {trainer['rss_after_step1_mb']:.0f}), plain peft loop {plain['step_peak_mb']:.0f} MiB "
              f"(after step 1: {plain['rss_after_step1_mb']:.0f}), ratio {trainer['step_peak_mb'] / plain['step_peak_mb']:.3f}")


def training_items(args) -> list:
    """The training split's items of ``--set``."""
    if args.set == "easy":
        train, _ = split(make_caption_sets(args.items, args.seed))
        return train[: args.train_items] if args.train_items else train
    return make_hard_sets(args.train_items or 240, args.seed, "train")


def settings_from(args, seed: int) -> TrainSettings:
    layers = list(range(NUM_LAYERS - args.top_layers, NUM_LAYERS)) if args.top_layers else None
    return TrainSettings(lr=args.lr, epochs=args.epochs, batch_size=args.batch_size, save_steps=10_000,
                         lora_r=args.lora_r, lora_alpha=args.lora_alpha or 2 * args.lora_r,
                         target_modules=lora_targets(args.modules, layers), seed=seed)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--set", choices=SETS, default="easy", help="the set trained on (its train split)")
    parser.add_argument("--eval-sets", default=",".join(SETS), help="held-out sets scored before and after")
    parser.add_argument("--items", type=int, default=300, help="easy-set items generated before the split")
    parser.add_argument("--train-items", type=int, default=None,
                        help="training items (default: the easy split's ~245, or 240 hard-set items)")
    parser.add_argument("--hard-items", type=int, default=120, help="hard-set held-out items generated")
    parser.add_argument("--seed", type=int, default=0, help="data seed")
    parser.add_argument("--seeds", default="0", help="training seeds, comma-separated (the table gives mean and sd)")
    parser.add_argument("--k", type=int, default=4)
    parser.add_argument("--epochs", type=float, default=1.0)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--lr", type=float, default=1e-3, help="higher than the paper's 2e-5: a few dozen steps, not 200k items")
    parser.add_argument("--lora-r", type=int, default=16)
    parser.add_argument("--lora-alpha", type=int, default=None, help="default: 2 x rank")
    parser.add_argument("--modules", choices=tuple(PROJECTIONS), default="all", help="LoRA on all linear projections or attention only")
    parser.add_argument("--top-layers", type=int, default=0, help="LoRA on the top N decoder layers only (0: all)")
    parser.add_argument("--heldout-limit", type=int, default=None)
    parser.add_argument("--loss-items", type=int, default=16, help="held-out items of the first set whose loss is printed")
    parser.add_argument("--references", default="uniform,embedding,oracle,caption-llm",
                        help="untrained selectors scored beside the trained one (caption-llm: the untrained base)")
    parser.add_argument("--json", type=Path, default=None, help="also write the table as JSON here")
    parser.add_argument("--overhead-steps", type=int, default=4, help="steps of the overhead comparison (0: skip)")
    parser.add_argument("--out", default=None, help="output folder: case files, seed<N>/adapter (default: a temp folder)")
    parser.add_argument("--overhead-only", action="store_true", help="only the trainer overhead comparison (speed and peak RSS)")
    parser.add_argument("--overhead-variant", choices=("setup", "trainer", "plain"), default=None,
                        help=argparse.SUPPRESS)  # internal: one variant, in a child process
    args = parser.parse_args()

    train = training_items(args)
    _, step = still_video(12)
    examples = selector_examples(train, step, args.k)
    if args.overhead_variant:
        print("RESULT " + json.dumps(run_variant(args.overhead_variant, examples, args)))
        return
    if args.overhead_only:
        if args.overhead_steps * args.batch_size > len(examples):
            print(f"note: {len(examples)} train examples for {args.overhead_steps * args.batch_size} samples; "
                  "examples are reused by the plain loop and cut short by train_lora")
        overhead(args)
        return
    out = Path(args.out or tempfile.mkdtemp(prefix="ve-train-sel-"))
    heldout_sets = generated_sets([x.strip() for x in args.eval_sets.split(",") if x.strip()], items=args.items,
                                  hard_items=args.hard_items, seed=args.seed, which="heldout")
    heldout_sets = [(name, items[: args.heldout_limit] if args.heldout_limit else items) for name, items in heldout_sets]
    try:
        files = write_case_files(out, train, heldout_sets)
    except ValueError as exc:
        raise SystemExit(str(exc)) from None
    print(f"{args.set} set: {len(train)} training items; held-out " +
          ", ".join(f"{name} {len(items)}" for name, items in heldout_sets) + f"; case files {sorted(map(str, files.values()))}")

    rows = []
    for name in [x.strip() for x in args.references.split(",") if x.strip()]:
        selector = build_selector(name, args.k)
        label = "caption-llm smollm2" if name == "caption-llm" else name
        rows += [as_row(set_name, score_selector(label, selector, items), len(items)) for set_name, items in heldout_sets]
    trained: dict[str, list[dict]] = {}
    eval_examples = selector_examples(heldout_sets[0][1][: args.loss_items], step, args.k)
    for seed in [int(x) for x in args.seeds.split(",")]:
        folder = out / f"seed{seed}"
        result = train_lora(examples, "smollm2", folder, target="selector", settings=settings_from(args, seed),
                            eval_examples=eval_examples)
        rate = result.examples * args.epochs / result.seconds
        print(f"seed {seed}: {result.steps} steps in {result.seconds:.1f} s ({rate:.2f} samples/s); loss "
              f"{result.first_loss:.3f} -> {result.last_loss:.3f}; held-out {heldout_sets[0][0]} loss "
              f"{result.eval_loss_before:.3f} -> {result.eval_loss_after:.3f}; adapter {folder / 'adapter'}")
        selector = build_selector("caption-llm", args.k, f"hf:{folder / 'adapter'}")
        for set_name, items in heldout_sets:
            trained.setdefault(set_name, []).append(
                as_row(set_name, score_selector("caption-llm trained", selector, items), len(items)))
    rows += [mean_rows(seed_rows) for seed_rows in trained.values()]
    rows.sort(key=lambda r: r["set"])
    print()
    print_table(rows)
    recipe = settings_from(args, 0)
    print(f"\n(k = {args.k}; trained on {len(train)} {args.set} items, {args.epochs} epoch(s), effective batch "
          f"{args.batch_size}, lr {args.lr}, LoRA r {recipe.lora_r} alpha {recipe.lora_alpha} on {args.modules} "
          f"projections of {'the top ' + str(args.top_layers) if args.top_layers else 'all'} layers; seeds {args.seeds})")
    if args.json:
        write_json(args.json, rows, trained_on=args.set, train_items=len(train), epochs=args.epochs, lr=args.lr,
                   batch_size=args.batch_size, lora_r=recipe.lora_r, lora_alpha=recipe.lora_alpha, modules=args.modules,
                   top_layers=args.top_layers, seeds=args.seeds, out=str(out))

    if args.overhead_steps:
        overhead(args)


if __name__ == "__main__":
    main()
