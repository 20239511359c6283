"""Cost of the ``minilm`` embedder wrapper over calling sentence-transformers directly.

Both sides embed the same captions with the same model object, batch size and normalisation:
ours through ``SentenceTransformerEmbedder.embed``, the reference through
``SentenceTransformer.encode(normalize_embeddings=True)``. Runs alternate so that machine load
hits both alike (the order flips every round); the figure is the median of the per-round ratios,
which shared-machine noise moves far less than a ratio of totals. The claim: the wrapper costs
under 5 %. ``--threads`` pins torch's thread count (both sides alike) to cut contention noise.

Run: PYTHONPATH=src python benchmarks/bench_minilm_wrapper.py [--texts 256] [--rounds 15] [--threads 1]
"""

from __future__ import annotations

import argparse
import itertools
import time

import numpy as np

from videoespresso import load_model

SUBJECTS = ["A man", "A woman", "Two children", "A dog", "A chef", "A cyclist", "An old man", "A crowd"]
ACTIONS = ["opens a door", "chops onions", "crosses the street", "plays the violin", "reads a book",
           "waves at the camera", "pours water into a glass", "runs across a park"]
PLACES = ["in a kitchen", "at night", "on a busy road", "in the rain", "on a stage", "near a window"]


def captions(n: int) -> list[str]:
    combos = itertools.cycle(itertools.product(SUBJECTS, ACTIONS, PLACES))
    return [f"{s} {a} {p} (frame {i})." for i, (s, a, p) in zip(range(n), combos)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--texts", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--threads", type=int, default=1, help="torch threads; 0 = torch's default")
    args = parser.parse_args()
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)

    embedder = load_model("minilm")
    st_model = embedder.model
    texts = captions(args.texts)

    def ours() -> np.ndarray:
        return embedder.embed(texts)

    def direct() -> np.ndarray:
        return st_model.encode(
            texts, batch_size=embedder.batch_size, normalize_embeddings=True,
            convert_to_numpy=True, show_progress_bar=False,
        )

    np.testing.assert_allclose(ours(), direct(), atol=1e-6)  # also the warm-up
    times: dict[str, list[float]] = {"wrapper": [], "direct": []}
    for round_ in range(args.rounds):
        order = (("wrapper", ours), ("direct", direct))
        for name, fn in order if round_ % 2 == 0 else order[::-1]:
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    ratios = np.array(times["wrapper"]) / np.array(times["direct"])
    median = float(np.median(ratios))
    print(f"minilm, {args.texts} captions, batch {embedder.batch_size}, {args.rounds} paired rounds, "
          f"torch threads {args.threads or 'default'}")
    for name in ("direct", "wrapper"):
        best = min(times[name])
        print(f"{name:8s}: best {best:.3f} s ({args.texts / best:.0f} texts/s), "
              f"median {np.median(times[name]):.3f} s")
    print(f"per-round ratios wrapper/direct: {', '.join(f'{r:.3f}' for r in ratios)}")
    print(f"ratio wrapper/direct (median of rounds): {median:.3f} (overhead {100 * (median - 1):+.1f} %)")

if __name__ == "__main__":
    main()
