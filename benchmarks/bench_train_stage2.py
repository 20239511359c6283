"""Does `train stage2` teach a real LLM to answer from evidence? Held-out accuracy before and after.

Stage 2 in text form: the real SmolLM2-135M-Instruct (``smollm2``) reads the question, the four
options and the evidence (the captions of the gold frames of a seeded caption set,
:mod:`videoespresso.select.caption_sets`) through the reasoner's own stage-2 prompt
(``reason/evidence_answer_close``: "Please answer the question based on the evidence") and
replies with the option letter. It is LoRA-trained on the train split; accuracy on the held-out
split (letters read by the benchmark's extractor) is printed before and after, with the
chance rate (25 %) as the reference.

    python benchmarks/bench_train_stage2.py
    python benchmarks/bench_train_stage2.py --items 120 --epochs 1
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from videoespresso.bench.extract import extract_answer  # noqa: E402
from videoespresso.prompts import load_prompt  # noqa: E402
from videoespresso.schema import GenerationSettings, SFTExample, SFTMessage  # noqa: E402
from videoespresso.select.caption_sets import make_caption_sets, split  # noqa: E402
from videoespresso.train.lora import TrainSettings, train_lora  # noqa: E402

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


def accuracy(spec: str, items) -> tuple[float, float]:
    from videoespresso import load_model
    from videoespresso.models.protocols import user

    model = load_model(spec, kind="chat")
    t0 = time.perf_counter()
    replies = model.generate([[user(prompt(it))] for it in items], GenerationSettings(max_new_tokens=8))
    right = sum(extract_answer(r.text, it.options).letter == it.answer_letter for r, it in zip(replies, items))
    return right / len(items), (time.perf_counter() - t0) / len(items)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=float, default=1.0)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--lr", type=float, default=1e-3, help="higher than the paper's 1e-5: a few dozen steps")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()

    items = make_caption_sets(args.items, args.seed)
    train, heldout = split(items)
    out = Path(args.out or tempfile.mkdtemp(prefix="ve-train-s2-"))
    print(f"caption sets: {len(items)} items, {len(train)} train, {len(heldout)} held-out; out {out}")
    before, per = accuracy("smollm2", heldout)
    print(f"untrained smollm2: held-out accuracy {100 * before:.1f} % ({per:.2f} s/item)")
    result = train_lora(examples(train), "smollm2", out, target="stage2",
                        settings=TrainSettings(lr=args.lr, epochs=args.epochs, batch_size=args.batch_size, save_steps=10_000),
                        eval_examples=examples(heldout))
    print(f"trained: {result.steps} steps in {result.seconds:.1f} s; loss {result.first_loss:.3f} -> {result.last_loss:.3f}; "
          f"held-out loss {result.eval_loss_before:.3f} -> {result.eval_loss_after:.3f}")
    after, per = accuracy(f"hf:{out / 'adapter'}", heldout)
    print(f"trained smollm2:   held-out accuracy {100 * after:.1f} % ({per:.2f} s/item)")
    print(f"\nstage 2 (text form), {len(heldout)} held-out items: {100 * before:.1f} % -> {100 * after:.1f} % "
          f"(chance 25 %); {len(train)} train items, {args.epochs} epoch(s), effective batch {args.batch_size}, lr {args.lr}")


if __name__ == "__main__":
    main()
