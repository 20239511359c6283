"""The Ray executor on a local 2-CPU Ray (loopback only), against the local executor.

One Ray is started for the module (about 3-10 s) with its own temporary folder; the module's
last fixture step shuts it down and checks that no process holding that folder is left. The
full 3-video builds (byte-identical exports, a killed run resumed) are in
``tests/curate/test_curate_build_ray.py`` (slow).
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import pytest
from _procs import wait_gone

from videoespresso.engine import LocalExecutor, Resources, Stage, Store, derive, dropped, failed

ray = pytest.importorskip("ray")


@pytest.fixture(scope="module")
def local_ray():
    from ray import cloudpickle

    # Stages defined here travel to the workers by value (the workers cannot import tests/).
    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    temp = tempfile.mkdtemp(prefix="ve-rt-", dir="/tmp")
    ray.init(address="local", num_cpus=2, include_dashboard=False, _temp_dir=temp, _node_ip_address="127.0.0.1",
             log_to_driver=False, logging_level="WARNING")
    try:
        yield temp
    finally:
        ray.shutdown()
        left = wait_gone(temp)
        shutil.rmtree(temp, ignore_errors=True)
        assert not left, f"Ray processes left behind: {left}"


class Scale(Stage):
    """No setup: runs as plain Ray tasks. Raises on x == 3 (an error, retried by a rerun)."""

    name = "scale"

    def __init__(self) -> None:
        super().__init__(Resources(cpus=0.5, batch_size=2))

    def process_item(self, item):
        if item["x"] == 3:
            raise ValueError("x == 3 is not allowed")
        return [derive(item, x=item["x"] * 2)]


class Expand(Stage):
    """With setup: runs in an actor pool. N in, M out; drops, fails and counts model calls."""

    name = "expand"

    def __init__(self, workers: int = 2) -> None:
        super().__init__(Resources(cpus=0.25, gpus=0.5, batch_size=3, workers=workers))
        self.offset = None

    def setup(self) -> None:
        self.offset = 100

    def process(self, batch):
        self.model_calls += 1
        out = []
        for item in batch:
            if item["x"] == 8:
                out.append(dropped(item, "eight", "dropped on purpose"))
            elif item["x"] == 10:
                out.append(failed(item, "ten", "failed on purpose", raw="raw reply"))
            else:
                out += [derive(item, f"{item['id']}/{k}", y=item["x"] + self.offset + k) for k in range(2)]
        return out


def _inputs(n: int = 8):
    return [{"id": f"i{k}", "x": k} for k in range(n)]


def _counts(result):
    return [
        (s.name, s.inputs, s.outputs, s.ok, s.failed, s.dropped, s.errors, dict(s.failure_reasons), dict(s.drop_reasons))
        for s in result.stages
    ]


def test_ray_matches_local_and_resumes(local_ray, tmp_path):
    from videoespresso.engine.ray_executor import RayExecutor

    with Store(tmp_path / "local.sqlite") as store:
        local = LocalExecutor(store, progress=False).run([Scale(), Expand()], _inputs())
    with Store(tmp_path / "ray.sqlite") as store:
        executor = RayExecutor(store, progress=False)
        first = executor.run([Scale(), Expand()], _inputs())
        # Same items, same provenance stamps, same counts and reasons as the local executor.
        assert sorted(first.items, key=lambda i: i["id"]) == sorted(local.items, key=lambda i: i["id"])
        assert _counts(first) == _counts(local)
        scale, expand = first.stage("scale"), first.stage("expand")
        assert scale.errors == 1 and scale.failures[0]["id"] == "i3"
        assert scale.failures[0]["reason"] == "ValueError" and "x == 3" in scale.failures[0]["detail"]
        assert expand.failure_reasons == {"ten": 1} and expand.drop_reasons == {"eight": 1}
        assert expand.model_calls >= 3  # 7 inputs in batches of at most 3
        assert "setup" in expand.timings
        # Rerun: only the errored item is tried again (and errs again); nothing else is computed.
        again = executor.run([Scale(), Expand()], _inputs())
        assert again.stage("scale").computed == 1 and again.stage("scale").cached == 7
        assert again.stage("expand").computed == 0 and again.stage("expand").model_calls == 0
        assert sorted(again.items, key=lambda i: i["id"]) == sorted(first.items, key=lambda i: i["id"])
        stored = {r.item_id: r for r in store.results("expand")}
        assert stored["i5"].status == "failed" and stored["i5"].raw == "raw reply"
        # Fractional resources are passed on; GPUs are dropped on a cluster without any.
        assert executor.remote_args(Expand()) == {"num_cpus": 0.25, "num_gpus": 0.0}
        executor.close()  # a Ray it did not start is left running
    assert ray.is_initialized()


class Crash(Stage):
    """Kills its worker process on one item: the executor must not hang."""

    name = "crash"

    def __init__(self) -> None:
        super().__init__(Resources(cpus=0.25, batch_size=1))

    def setup(self) -> None:
        pass

    def process_item(self, item):
        if item["id"] == "i2":
            os._exit(1)
        return [derive(item, z=1)]


def test_a_dying_worker_fails_items_with_a_reason_and_the_run_completes(local_ray, tmp_path):
    from videoespresso.engine.ray_executor import RayExecutor

    with Store(tmp_path / "crash.sqlite") as store:
        executor = RayExecutor(store, progress=False, max_retries=0)
        result = executor.run([Crash(), Scale()], _inputs(4))
        crash = result.stage("crash")
        assert crash.ok + crash.errors == 4
        stored = {r.item_id: r for r in store.results("crash")}
        assert set(stored) == {"i0", "i1", "i2", "i3"}, "every input has a result row"
        assert stored["i2"].status == "error" and stored["i2"].reason == "worker_failed"
        # The next stage ran on what survived.
        assert result.stage("scale").inputs == crash.outputs


def _videos(folder: Path) -> Path:
    from videoespresso.video.synth import make_test_video

    make_test_video(folder / "a.mp4", "mixed", seconds=1.0)
    make_test_video(folder / "b.mp4", "moving", seconds=1.0)
    make_test_video(folder / "c.mp4", "static_moving", seconds=1.0)
    (folder / "broken.mp4").write_bytes(b"not a video")
    return folder


def _small_config():
    from videoespresso.config import load_config

    cfg = load_config("tiny")
    return cfg.model_copy(update={"sampling": cfg.sampling.model_copy(update={"max_side": 64})})


def _by_id(items):
    return sorted(items, key=lambda i: i["id"])


def test_build_stage_1_on_ray_writes_frames_to_a_second_fs_root_and_resumes_from_it(local_ray, tmp_path):
    """End to end through ``run_build``: real generated videos, the sampling stage as Ray tasks
    writing frames through fsspec to a ``file://`` root that is not the driver's staging folder,
    then resumed from that URL into a fresh staging folder."""
    from videoespresso.curate import run_build
    from videoespresso.errors import UserError

    videos, cfg = _videos(tmp_path / "videos"), _small_config()
    local = run_build(videos, tmp_path / "local", cfg, stages="1", progress=False)
    second = tmp_path / "second-root" / "build"
    url = "file://" + str(second)
    remote = run_build(videos, url, cfg, stages="1", progress=False, executor="ray", staging=tmp_path / "staging1")
    assert remote.url == url and remote.folder == tmp_path / "staging1"
    ls, rs = local.run.stage("sample"), remote.run.stage("sample")
    assert (rs.ok, rs.failed, dict(rs.failure_reasons)) == (ls.ok, ls.failed, dict(ls.failure_reasons)) == (
        3, 1, {"unreadable_video": 1})
    assert [f["id"] for f in rs.failures] == ["broken.mp4"]
    assert _by_id(remote.run.items) == _by_id(local.run.items)
    frames = [f["path"] for item in remote.run.items for f in item["frames"]]
    assert frames and all((second / p).is_file() for p in frames)  # written by the workers
    assert not (tmp_path / "staging1" / "frames").exists()
    assert (second / "store.sqlite").is_file()  # published by the driver
    # A fresh staging folder: the store comes back from the URL and nothing is recomputed.
    again = run_build(videos, url, cfg, stages="1", progress=False, executor="ray", staging=tmp_path / "staging2")
    assert (again.run.stage("sample").computed, again.run.stage("sample").cached) == (0, 4)  # failures are final
    assert _by_id(again.run.items) == _by_id(local.run.items)
    # memory:// is private to one process: refused for Ray with the reason.
    with pytest.raises(UserError, match="memory:// lives inside one process"):
        run_build(videos, "memory://ve-test/ray", cfg, stages="1", progress=False, executor="ray")


def test_build_to_memory_url_reads_and_writes_frames_through_fsspec(tmp_path, tiny_vlm, minilm):
    """The local executor, stages 1-4 into ``memory://``: frames written there by sampling, read
    back from there by captioning, the same results as a plain folder."""
    import fsspec

    from videoespresso.curate import run_build

    videos, cfg = _videos(tmp_path / "videos"), _small_config()
    models = {"tiny:qwen2-vl": tiny_vlm, "minilm": minilm}
    local = run_build(videos, tmp_path / "local", cfg, stages="1-4", progress=False, preloaded=models)
    url = "memory://ve-test/build"
    remote = run_build(videos, url, cfg, stages="1-4", progress=False, preloaded=models, staging=tmp_path / "st")
    assert _by_id(remote.run.items) == _by_id(local.run.items)
    assert remote.run.stage("caption").ok == 3
    fs = fsspec.filesystem("memory")
    published = {p.split("/ve-test/build/", 1)[1] for p in fs.find("/ve-test/build")}
    assert {"store.sqlite", "responses.sqlite"} <= published
    assert {f["path"] for item in remote.run.items for f in item["frames"]} <= published


@pytest.mark.parametrize("args, message", [
    (["--executor", "spark"], "--executor 'spark': expected one of local, ray"),
    (["--ray-address", "auto"], "--ray-address needs --executor ray"),
])
def test_build_cli_rejects_a_bad_executor_choice_in_one_line(tmp_path, capsys, args, message):
    from videoespresso.cli import main as cli_main
    from videoespresso.video.synth import make_test_video

    make_test_video(tmp_path / "videos" / "a.mp4", "static", seconds=0.5)
    with pytest.raises(SystemExit) as exit_info:
        cli_main(["build", str(tmp_path / "videos"), "--out", str(tmp_path / "out"), "--profile", "tiny",
                  "--no-progress", *args])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert message in " ".join(err.split())


def test_curate_resources_override_each_stage_and_unknown_stages_are_named(tmp_path):
    from videoespresso.config import load_config
    from videoespresso.curate._common import ModelPool
    from videoespresso.curate.pipeline import build_stages
    from videoespresso.errors import UserError

    import yaml

    path = tmp_path / "res.yaml"
    path.write_text(yaml.safe_dump({"curate": {"resources": {
        "qa": {"gpus": 0.5, "workers": 3}, "sample": {"cpus": 0.25, "batch_size": 2},
    }}}))
    cfg = load_config("tiny", path)
    stages = {s.name: s for s in build_stages(cfg, tmp_path, ModelPool())}
    qa = stages["qa"].resources
    assert (qa.gpus, qa.workers, qa.batch_size) == (0.5, 3, cfg.curate.batch_size)  # unset fields kept
    assert (stages["sample"].resources.cpus, stages["sample"].resources.batch_size) == (0.25, 2)
    assert stages["cot"].resources.workers == 1
    path.write_text(yaml.safe_dump({"curate": {"resources": {"qaa": {"workers": 2}}}}))
    with pytest.raises(UserError, match="unknown stage.*qaa"):
        build_stages(load_config("tiny", path), tmp_path, ModelPool())
    path.write_text(yaml.safe_dump({"curate": {"resources": {"qa": {"workers": 0}}}}))
    with pytest.raises(UserError):
        load_config("tiny", path)


def test_build_cli_publishes_to_an_object_store_url_with_its_summary(tmp_path, capsys):
    import json

    import fsspec

    from videoespresso.cli import main as cli_main
    from videoespresso.video.synth import make_test_video

    make_test_video(tmp_path / "videos" / "a.mp4", "static", seconds=0.5)
    cli_main(["build", str(tmp_path / "videos"), "--out", "memory://ve-cli/build", "--staging", str(tmp_path / "st"),
              "--stages", "1", "--profile", "tiny", "--no-progress"])
    assert "published to memory://ve-cli/build" in " ".join(capsys.readouterr().out.split())
    fs = fsspec.filesystem("memory")
    summary = json.loads(fs.cat_file("/ve-cli/build/summary.json"))
    assert summary["executor"] == "local" and summary["stages"][0]["ok"] == 1
    assert fs.exists("/ve-cli/build/store.sqlite") and not fs.exists("/ve-cli/build/build.lock")
    assert (tmp_path / "st" / "store.sqlite").is_file()


def test_stale_ray_folders_of_dead_drivers_are_reaped_and_nothing_else(tmp_path):
    """A driver killed with kill -9 leaves Ray's agents running and its ve-ray-* folder behind;
    the next local start reaps them: only folders with an owner file whose owner is gone, only
    processes naming that exact folder."""
    import json as _json
    import socket
    import subprocess as _sp
    import sys as _sys

    from videoespresso.engine.ray_executor import OWNER_FILE, reap_stale_ray_dirs

    gone = _sp.Popen(["true"])
    gone.wait()

    def folder(name: str, owner: dict | None) -> Path:
        path = tmp_path / name
        (path / "session_1" / "logs").mkdir(parents=True)
        if owner is not None:
            (path / OWNER_FILE).write_text(_json.dumps(owner))
        return path

    host = socket.gethostname()
    stale = folder("ve-ray-dead", {"pid": gone.pid, "start": 1, "host": host})
    sibling = folder("ve-ray-dead2", None)  # no owner file: not provably ours
    alive = folder("ve-ray-alive", {"pid": os.getpid(), "start": None, "host": host})
    elsewhere = folder("ve-ray-elsewhere", {"pid": gone.pid, "start": 1, "host": host + "-other"})
    other = folder("not-ours", {"pid": gone.pid, "start": 1, "host": host})

    def agent(path: Path) -> _sp.Popen:
        return _sp.Popen([_sys.executable, "-c", "import time; time.sleep(600)", f"--temp-dir={path}",
                          f"--log-dir={path}/session_1/logs"])

    leftover, bystander, kept = agent(stale), agent(sibling), agent(alive)
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not all(
            str(p) in open(f"/proc/{a.pid}/cmdline").read() for a, p in ((leftover, stale), (bystander, sibling))
        ):
            time.sleep(0.05)
        assert reap_stale_ray_dirs(str(tmp_path)) == [str(stale)]
        assert leftover.wait(timeout=10) == -9
        assert not stale.exists()
        assert bystander.poll() is None and kept.poll() is None
        assert sibling.exists() and alive.exists() and other.exists() and elsewhere.exists()
    finally:
        for p in (leftover, bystander, kept):
            if p.poll() is None:
                p.kill()
                p.wait()


_START_AND_WAIT = """
import sys, time
from videoespresso.engine import Store
from videoespresso.engine.ray_executor import RayExecutor
ex = RayExecutor(Store(sys.argv[1]), num_cpus=1)
ex.start()
print(ex._temp_dir, flush=True)
if sys.argv[2] == "wait":
    time.sleep(600)
ex.close()
"""


@pytest.mark.slow
def test_a_ray_driver_killed_with_sigkill_is_reaped_by_the_next_local_start():
    import signal
    import subprocess as _sp

    # short: Ray's socket paths under it must fit in 107 bytes
    tmp_path = Path(tempfile.mkdtemp(prefix="ve-t-", dir="/tmp"))
    try:
        _killed_driver_is_reaped(tmp_path, signal, _sp)
    finally:
        shutil.rmtree(tmp_path, ignore_errors=True)


def _killed_driver_is_reaped(tmp_path: Path, signal, _sp) -> None:
    env = {**os.environ, "VIDEOESPRESSO_RAY_TMPDIR": str(tmp_path)}
    first = _sp.Popen([sys.executable, "-c", _START_AND_WAIT, str(tmp_path / "a.sqlite"), "wait"],
                      stdout=_sp.PIPE, text=True, env=env)
    try:
        folder = Path(first.stdout.readline().strip())
        assert folder.is_dir() and folder.name.startswith("ve-ray-")
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    assert folder.is_dir()  # what kill -9 leaves behind
    second = _sp.run([sys.executable, "-c", _START_AND_WAIT, str(tmp_path / "b.sqlite"), "close"],
                     capture_output=True, text=True, env=env, timeout=300)
    assert second.returncode == 0, second.stderr[-2000:]
    assert not folder.exists()
    assert not list(tmp_path.glob("ve-ray-*"))  # the second run's own folder went at close
