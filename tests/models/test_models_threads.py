"""torch's CPU thread count follows the cores that are free (benchmarks/bench_torch_threads.py
measured 1 thread ~3x faster than 2 on a loaded 2-core machine).

The load average cannot be set for a test, so the two readings of the OS are replaced; the
thread count is then set on the real torch in a child process (it is once per process)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from videoespresso.models import threads


@pytest.mark.parametrize("cores, load, free", [(2, 0.3, 2), (2, 1.0, 2), (2, 2.0, 1), (2, 17.5, 1), (8, 3.0, 6)])
def test_free_cores_counts_the_load_of_others(monkeypatch, cores, load, free):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(cores)))
    monkeypatch.setattr(os, "getloadavg", lambda: (load, load, load))
    assert threads.free_cores() == free


CHILD = """
import os, torch
os.getloadavg = lambda: (9.0, 9.0, 9.0)
os.sched_getaffinity = lambda pid: {0, 1}
torch.set_num_threads(2)
from videoespresso.models.threads import fit_torch_threads
print(fit_torch_threads(), torch.get_num_threads())
"""


@pytest.mark.parametrize("omp, expected", [(None, "1 1"), ("2", "None 2")])
def test_the_first_load_lowers_torch_threads_unless_omp_num_threads_says(omp, expected):
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    if omp:
        env["OMP_NUM_THREADS"] = omp
    out = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr[-1000:]
    assert out.stdout.split() == expected.split()
