"""Does `train selector` teach a real LLM to pick core frames? Held-out quality before and after.

The real SmolLM2-135M-Instruct (``smollm2``) is LoRA-trained as the caption-LLM frame picker on
the *train* split of the seeded caption sets (:mod:`videoespresso.select.caption_sets`), with
examples rendered by the same ``select/choose`` prompt the selector uses at inference. Then the
caption-llm selector runs over the *held-out* split with the untrained and the trained model
(and uniform as the reference), and recall, precision and exact-set match are printed side by
side (the table of ``bench_selection_quality.py``).

Second measure: trainer overhead. The same examples and steps through our ``train_lora`` and
through a plain loop (peft model + AdamW + the same encoded tensors, no Trainer): samples/s
ratio (the goal: within 5 %).

    python benchmarks/bench_train_selector.py                      # 300 items, 1 epoch
    python benchmarks/bench_train_selector.py --items 120 --heldout-limit 20 --epochs 1
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_selection_quality import build_selector, candidates, print_table, score_selector, still_video  # noqa: E402

from videoespresso.schema import SFTExample, SFTMessage  # noqa: E402
from videoespresso.select.caption_sets import make_caption_sets, split  # noqa: E402
from videoespresso.train.examples import selector_prompt  # noqa: E402
from videoespresso.train.lora import TrainSettings, encode_example, train_lora  # noqa: E402


def selector_examples(items, step: int, k: int) -> list[SFTExample]:
    return [
        SFTExample(id=f"{it.id}:selector", target="selector", source="caption-sets", messages=[
            SFTMessage(role="user", content=selector_prompt(it.question, None, candidates(it, step), it.captions, k)),
            SFTMessage(role="assistant", content=json.dumps({"frames": list(it.gold)})),
        ])
        for it in items
    ]


def plain_loop(base: str, examples, steps: int, batch: int, lr: float) -> float:
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
    return seen / (time.perf_counter() - t0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--k", type=int, default=4)
    parser.add_argument("--epochs", type=float, default=1.0)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--lr", type=float, default=1e-3, help="higher than the paper's 2e-5: a few dozen steps, not 200k items")
    parser.add_argument("--heldout-limit", type=int, default=None)
    parser.add_argument("--overhead-steps", type=int, default=4, help="steps of the overhead comparison (0: skip)")
    parser.add_argument("--out", default=None, help="training output folder (default: a temp folder)")
    args = parser.parse_args()

    items = make_caption_sets(args.items, args.seed)
    train, heldout = split(items)
    heldout = heldout[: args.heldout_limit] if args.heldout_limit else heldout
    _, step = still_video(max(len(it.captions) for it in items))
    examples = selector_examples(train, step, args.k)
    out = Path(args.out or tempfile.mkdtemp(prefix="ve-train-sel-"))
    print(f"caption sets: {len(items)} items, {len(train)} train examples, {len(heldout)} held-out; out {out}")

    settings = TrainSettings(lr=args.lr, epochs=args.epochs, batch_size=args.batch_size, save_steps=10_000)
    result = train_lora(examples, "smollm2", out, target="selector", settings=settings,
                        eval_examples=selector_examples(heldout, step, args.k))
    ours = result.examples * args.epochs / result.seconds
    print(f"trained: {result.steps} steps in {result.seconds:.1f} s ({ours:.2f} samples/s); loss {result.first_loss:.3f} -> "
          f"{result.last_loss:.3f}; held-out loss {result.eval_loss_before:.3f} -> {result.eval_loss_after:.3f}")

    rows = [score_selector("uniform", build_selector("uniform", args.k), heldout)]
    rows.append(score_selector("caption-llm smollm2", build_selector("caption-llm", args.k, "smollm2"), heldout))
    rows.append(score_selector("caption-llm trained", build_selector("caption-llm", args.k, f"hf:{out / 'adapter'}"), heldout))
    print()
    print_table(rows)
    print(f"\n({len(heldout)} held-out items; k = {args.k}; trained on {len(train)} train items, "
          f"{args.epochs} epoch(s), effective batch {args.batch_size}, lr {args.lr})")

    if args.overhead_steps:
        n = args.overhead_steps * args.batch_size
        sub = examples[:n]
        quick = TrainSettings(lr=args.lr, max_steps=args.overhead_steps, batch_size=args.batch_size, save_steps=10_000,
                              logging_steps=1)
        timed = train_lora(sub, "smollm2", Path(tempfile.mkdtemp(prefix="ve-train-oh-")), target="selector", settings=quick)
        trainer_rate = n / timed.seconds
        loop_rate = plain_loop("smollm2", sub, args.overhead_steps, args.batch_size, args.lr)
        print(f"\noverhead: train_lora {trainer_rate:.2f} samples/s, plain peft loop {loop_rate:.2f} samples/s, "
              f"ratio {trainer_rate / loop_rate:.3f} ({args.overhead_steps} steps x {args.batch_size})")


if __name__ == "__main__":
    main()
