"""How many threads torch computes with on CPU: the cores that are free, not all of them.

torch starts one intra-op thread per core. When other processes hold cores, those threads wait
for each other at every operation: measured on a 2-core machine under load
(``benchmarks/bench_torch_threads.py``), SmolLM2 decoded 2.3 tokens/s with 1 thread and 0.8 with
2. So the first local model load sets the thread count to the cores this process may use
(``os.sched_getaffinity``) minus the load already on them (the 1-minute load average, this
process counted out), at least 1. An idle machine keeps every core; ``OMP_NUM_THREADS``, when
set, wins (torch reads it itself).
"""

from __future__ import annotations

import os

_done = False


def free_cores() -> int:
    """Cores this process may use that other runnable processes do not already hold (>= 1)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    try:
        others = max(0.0, os.getloadavg()[0] - 1.0)  # this process is running while it asks
    except OSError:
        return cores
    return max(1, min(cores, round(cores - others)))


def fit_torch_threads() -> int | None:
    """Lower torch's intra-op threads to :func:`free_cores`, once per process, unless
    ``OMP_NUM_THREADS`` chose the count; returns the count set (None when left alone)."""
    global _done
    if _done or os.environ.get("OMP_NUM_THREADS"):
        return None
    _done = True
    import torch

    n = free_cores()
    if n >= torch.get_num_threads():
        return None
    torch.set_num_threads(n)
    return n
