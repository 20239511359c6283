"""The local executor and the SQLite store, with plain-Python stages (no models)."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from videoespresso.engine import (
    LocalExecutor,
    Resources,
    Stage,
    Store,
    derive,
    dropped,
    failed,
    warn,
)

SRC = str(Path(__file__).resolve().parents[2] / "src")


class Double(Stage):
    name = "double"

    def __init__(self, factor: int = 2, batch_size: int = 3) -> None:
        super().__init__(Resources(batch_size=batch_size))
        self.factor = factor
        self.calls = 0
        self.setups = 0

    def setup(self) -> None:
        self.setups += 1

    def params(self) -> dict:
        return {"factor": self.factor}

    def process(self, batch):
        self.calls += len(batch)
        self.model_calls += 1
        return [derive(i, value=i["value"] * self.factor) for i in batch]


class Split(Stage):
    """1 -> 2 outputs; odd values dropped with a reason; 13 fails; 7 raises."""

    name = "split"

    def __init__(self) -> None:
        super().__init__(Resources(batch_size=4))
        self.seen: list[str] = []
        self.boom = True

    def process(self, batch):
        out = []
        for item in batch:
            self.seen.append(item["id"])
            if item["value"] == 14 and self.boom:
                raise RuntimeError("boom on 7")
            if item["value"] == 26:
                out.append(failed(item, "unlucky", "thirteen", raw="raw reply"))
            elif item["value"] % 4:
                out.append(dropped(item, "odd_half", f"{item['value']} / 2 is odd"))
            else:
                for k in range(2):
                    child = derive(item, f"{item['id']}/{k}", part=k)
                    if k:
                        warn(child, self.name, "second_half")
                    out.append(child)
        return out


def _items(n: int = 15) -> list[dict]:
    return [{"id": f"i{v}", "value": v} for v in range(n)]


def test_outcomes_are_recorded_and_counted(tmp_path):
    store = Store(tmp_path / "s.sqlite")
    result = LocalExecutor(store, progress=False).run([Double(), Split()], _items())
    split = result.stage("split")
    assert split.inputs == 15
    assert split.errors == 1 and split.failure_reasons["RuntimeError"] == 1
    assert split.failed == 1 and split.failure_reasons["unlucky"] == 1
    evens = [v for v in range(15) if (2 * v) % 4 == 0 and v not in (7, 13)]
    assert split.ok == len(evens) and split.outputs == 2 * len(evens)
    assert split.dropped == 15 - len(evens) - 2
    assert split.warning_reasons["second_half"] == len(evens)
    assert [i["id"] for i in result.items][:2] == ["i0/0", "i0/1"]
    assert all(i["_prov"].keys() == {"double", "split"} for i in result.items)
    fails = list(store.results("split", "failed"))
    assert fails[0].reason == "unlucky" and fails[0].raw == "raw reply" and fails[0].detail == "thirteen"
    err = list(store.results("split", "error"))[0]
    assert "boom on 7" in err.detail and "Traceback" in err.raw


def test_rerun_skips_finished_work_and_retries_errors(tmp_path):
    path = tmp_path / "s.sqlite"
    first = LocalExecutor(Store(path), progress=False).run([Double(), Split()], _items())
    double, split = Double(), Split()
    split.boom = False
    second = LocalExecutor(Store(path), progress=False).run([double, split], _items())
    assert double.calls == 0 and double.setups == 0
    assert second.stage("double").cached == 15
    # only the item that raised is retried; failures and drops are final
    assert split.seen == ["i7"]
    assert second.stage("split").errors == 0
    assert second.stage("split").dropped == first.stage("split").dropped + 1
    assert second.items == first.items


def test_params_change_recomputes_that_stage_and_downstream(tmp_path):
    path = tmp_path / "s.sqlite"
    LocalExecutor(Store(path), progress=False).run([Double(), Double(factor=1, batch_size=2)], _items(6))
    first, second = Double(), Double(factor=1, batch_size=2)
    second.name = "again"
    LocalExecutor(Store(path), progress=False).run([first, second], _items(6))
    assert first.calls == 0 and second.calls == 6  # a new stage name is new work
    changed, downstream = Double(factor=3), Double(factor=1, batch_size=2)
    downstream.name = "again"
    LocalExecutor(Store(path), progress=False).run([changed, downstream], _items(6))
    assert changed.calls == 6 and downstream.calls == 6


def test_stage_version_bump_stamps_provenance_downstream(tmp_path):
    """Even when a changed stage happens to give equal values, downstream sees new provenance."""

    class Same(Double):
        name = "same"

    path = tmp_path / "s.sqlite"
    LocalExecutor(Store(path), progress=False).run([Same(factor=1), Double()], _items(4))
    bumped, after = Same(factor=1), Double()
    bumped.version = "2"
    LocalExecutor(Store(path), progress=False).run([bumped, after], _items(4))
    assert bumped.calls == 4 and after.calls == 4


def test_bad_stage_output_is_an_error_not_a_crash(tmp_path):
    class Orphan(Stage):
        name = "orphan"

        def process(self, batch):
            return [{"id": "x", "_from": "nobody"} for _ in batch]

    result = LocalExecutor(Store(tmp_path / "s.sqlite"), progress=False).run([Orphan()], _items(3))
    assert result.stage("orphan").errors == 3
    assert result.stage("orphan").failure_reasons["RuntimeError"] == 3


def test_duplicate_ids_are_refused(tmp_path):
    with pytest.raises(ValueError, match="unique"):
        LocalExecutor(Store(tmp_path / "s.sqlite"), progress=False).run([Double()], [{"id": "a", "value": 1}] * 2)


_SCRIPT = textwrap.dedent(
    """
    import sys, time
    from videoespresso.engine import LocalExecutor, Resources, Stage, Store, derive

    class Slow(Stage):
        name = "slow"
        def __init__(self):
            super().__init__(Resources(batch_size=1))
        def process(self, batch):
            time.sleep(float(sys.argv[2]))
            return [derive(i, square=i["value"] ** 2) for i in batch]

    items = [{"id": f"i{v:02d}", "value": v} for v in range(20)]
    result = LocalExecutor(Store(sys.argv[1]), progress=False).run([Slow()], items)
    print(sum(i["square"] for i in result.items))
    """
)


def test_sigkill_mid_stage_loses_at_most_the_item_in_flight(tmp_path):
    script = tmp_path / "run.py"
    script.write_text(_SCRIPT)
    env = {**os.environ, "PYTHONPATH": SRC}
    db = tmp_path / "s.sqlite"
    proc = subprocess.Popen([sys.executable, str(script), str(db), "0.05"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.time() + 60
        done = 0
        while time.time() < deadline and done < 5:
            time.sleep(0.01)
            if db.exists():
                try:
                    with sqlite3.connect(db, timeout=5) as conn:
                        done = conn.execute("SELECT COUNT(*) FROM results").fetchone()[0]
                except sqlite3.OperationalError:
                    done = 0
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    with sqlite3.connect(db) as conn:
        before = conn.execute("SELECT COUNT(*) FROM results WHERE status = 'ok'").fetchone()[0]
    assert 5 <= before < 20
    rerun = subprocess.run([sys.executable, str(script), str(db), "0"], env=env, capture_output=True, text=True, timeout=120)
    assert rerun.returncode == 0, rerun.stderr
    assert int(rerun.stdout) == sum(v * v for v in range(20))
    store = Store(db)
    last = store.runs()[-1]["summary"]["stages"][0]
    assert last["cached"] == before and last["computed"] == 20 - before


def test_replay_only_stages_read_the_store_and_count_missing(tmp_path):
    path = tmp_path / "s.sqlite"
    LocalExecutor(Store(path), progress=False).run([Double()], _items(4))
    first, second = Double(), Split()
    result = LocalExecutor(Store(path), progress=False).run([first, second], _items(6), replay_only={"double"})
    assert first.calls == 0
    assert result.stage("double").cached == 4 and result.stage("double").missing == 2
    assert result.stage("split").inputs == 4
