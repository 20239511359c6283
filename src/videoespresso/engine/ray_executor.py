"""The Ray executor: the same stage list, each stage's work spread over a Ray cluster.

Everything that makes a run resumable stays on the driver, exactly as in
:class:`~videoespresso.engine.local.LocalExecutor` (which this class subclasses): the store
lookups, the keys, the provenance stamp, the per-stage counts and the progress bars. Only the
stage's ``process`` calls move to the cluster:

* the inputs still to compute become a Ray Dataset of ``(key, item JSON)`` rows (items are
  JSON-serialisable by the stage contract; frames travel as paths, never as pixels);
* a stage that loads something in ``setup()`` (every model stage) runs in an actor pool
  (``map_batches`` with a class and ``compute=ActorPoolStrategy``), so ``setup()`` happens once
  per actor; a stage without ``setup`` runs as plain tasks;
* ``num_cpus``, ``num_gpus``, ``batch_size`` and the pool size come from the stage's
  ``Resources`` (fractions allowed); each worker returns one result row per input, built by the
  same :func:`~videoespresso.engine.local.process_batch` as the local executor;
* the driver streams the result rows back with ``iter_batches`` and writes each block to the
  SQLite store in one transaction as it arrives. Workers never touch the store, so they need no
  shared disk for it, and a killed run loses only the blocks in flight.

Failure handling: an exception inside ``process`` is isolated per item by ``process_batch`` (an
``error`` row, retried by the next run). A worker that dies (segfault, out of memory) is
restarted a bounded number of times (``max_restarts`` / ``max_retries``); if the stage still
cannot finish, every input that got no result is recorded as an ``error`` with reason
``worker_failed`` and the run goes on, so nothing hangs and nothing is lost.
"""

from __future__ import annotations

import json
import logging
import os
import pickle
import re
import shutil
import signal
import socket
import tempfile
import time
import warnings
from typing import Any, Callable

from rich.console import Console

from ..failpoints import failpoint
from .local import LocalExecutor, process_batch
from .stage import Item, Stage
from .store import ResultKey, Store, StoredResult

#: Environment variables handed to every Ray worker (a local Ray inherits them anyway; a
#: cluster's workers get them through the job's runtime environment).
FORWARDED_ENV = (
    "VIDEOESPRESSO_HOME", "HF_HOME", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "TOKENIZERS_PARALLELISM",
    "OPENAI_API_KEY", "OPENAI_BASE_URL",
)
#: CPUs one actor asks for at most on a Ray this executor starts itself: an actor holding a
#: whole CPU of a small machine starves Ray Data's other tasks and the job hangs.
LOCAL_ACTOR_CPUS = 0.5


#: A local Ray this executor starts keeps its files in ``<tmp>/ve-ray-XXXX``, with an owner
#: file naming the driver process.
TEMP_PREFIX = "ve-ray-"
OWNER_FILE = "ve-owner.json"


def _start_ticks(pid: int) -> int | None:
    """The process's start time (clock ticks since boot), which tells a reused pid apart."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            # the command name (field 2) may hold spaces and parentheses: split after its last ")"
            return int(f.read().rsplit(b")", 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return None


def _write_owner(folder: str) -> None:
    with open(os.path.join(folder, OWNER_FILE), "w", encoding="utf-8") as f:
        json.dump({"pid": os.getpid(), "start": _start_ticks(os.getpid()), "host": socket.gethostname()}, f)


def _owner_alive(owner: dict[str, Any]) -> bool:
    pid = owner.get("pid")
    if not isinstance(pid, int) or owner.get("host") != socket.gethostname():
        # not provably dead: a pid of another host (a container sharing /tmp) says nothing here
        return True
    ticks = _start_ticks(pid)
    return ticks is not None and (owner.get("start") is None or ticks == owner.get("start"))


def _processes_using(folder: str) -> list[int]:
    """Pids of this user's processes whose command line names ``folder`` (Ray's agents carry
    their session folder in their arguments)."""
    pattern = re.compile(re.escape(folder.encode()) + rb"(?=/|\x00|$)")
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            if os.stat(f"/proc/{entry}").st_uid != os.getuid():
                continue
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmdline = f.read()
        except OSError:
            continue
        if pattern.search(cmdline):
            found.append(int(entry))
    return found


def reap_stale_ray_dirs(root: str) -> list[str]:
    """Remove the private Ray folders under ``root`` whose driver died (``kill -9`` leaves the
    Ray agents running and the folder behind), after killing the processes that still use them.

    Only folders this executor made (the ``ve-ray-`` prefix, this user's, with an owner file)
    whose owner process on this host is gone are touched; a folder without an owner file (made
    by an older version) is left alone.
    Returns the folders removed.
    """
    reaped = []
    try:
        names = [n for n in os.listdir(root) if n.startswith(TEMP_PREFIX)]
    except OSError:
        return reaped
    for name in names:
        folder = os.path.join(root, name)
        try:
            if os.path.islink(folder) or not os.path.isdir(folder) or os.stat(folder).st_uid != os.getuid():
                continue
            with open(os.path.join(folder, OWNER_FILE), encoding="utf-8") as f:
                owner = json.load(f)
        except (OSError, ValueError):
            continue
        if not isinstance(owner, dict) or _owner_alive(owner):
            continue
        for pid in _processes_using(folder):
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        shutil.rmtree(folder, ignore_errors=True)
        reaped.append(folder)
    return reaped


def _import_ray() -> Any:
    try:
        import ray  # noqa: F401
        import ray.data  # noqa: F401
    except ImportError:
        from ..errors import UserError

        raise UserError(
            "--executor ray needs Ray Data: pip install 'videoespresso[ray]' (or 'ray[data]')"
        ) from None
    return ray


def _has_setup(stage: Stage) -> bool:
    return type(stage).setup is not Stage.setup


def _result_row(key: ResultKey, res: StoredResult) -> str:
    return json.dumps({
        "key": key.key, "item_id": res.item_id, "status": res.status, "outputs": res.outputs,
        "reason": res.reason, "detail": res.detail, "raw": res.raw, "seconds": res.seconds,
    }, ensure_ascii=False)


def _run_rows(stage: Stage, stamp: str, batch: dict[str, Any], setup_s: float = 0.0) -> dict[str, list[Any]]:
    """One Ray batch through ``process_batch``: a result row per input row, and the batch's
    model calls and timings on its first row (zeros and ``{}`` on the others)."""
    keys = [ResultKey(*json.loads(k)) for k in batch["key"]]
    items = [json.loads(i) for i in batch["item"]]
    calls_before, timings_before = stage.model_calls, dict(stage.timings)
    results = process_batch(stage, list(zip(items, keys)), stamp)
    timings = {k: v - timings_before.get(k, 0.0) for k, v in stage.timings.items()
               if v - timings_before.get(k, 0.0) > 0}
    if setup_s:
        timings["setup"] = timings.get("setup", 0.0) + setup_s
    n = len(results)
    return {
        "key": [k.key for k, _ in results],
        "result": [_result_row(k, r) for k, r in results],
        "calls": [stage.model_calls - calls_before] + [0] * (n - 1),
        "timings": [json.dumps(timings)] + ["{}"] * (n - 1),
    }


class _StageActor:
    """One copy of a model stage in an actor: ``setup()`` once, then batch after batch."""

    def __init__(self, stage_blob: bytes, stamp: str) -> None:
        self.stage: Stage = pickle.loads(stage_blob)
        self.stamp = stamp
        start = time.perf_counter()
        self.stage.setup()
        self.setup_s = time.perf_counter() - start

    def __call__(self, batch: dict[str, Any]) -> dict[str, list[Any]]:
        setup_s, self.setup_s = self.setup_s, 0.0
        return _run_rows(self.stage, self.stamp, batch, setup_s)


def _stage_task(batch: dict[str, Any], stage_blob: bytes, stamp: str) -> dict[str, list[Any]]:
    """A stage without ``setup`` (sampling, grouping) as a plain Ray task."""
    return _run_rows(pickle.loads(stage_blob), stamp, batch)


class RayExecutor(LocalExecutor):
    """Runs each stage's missing inputs on Ray Data; the driver keeps the store.

    ``address``: a running cluster (``"auto"``, ``"ray://host:10001"``, ``"host:6379"``); None
    starts a local Ray of ``num_cpus`` CPUs on 127.0.0.1, shut down again by :meth:`close`.
    ``max_retries``: restarts of a dead worker (and retries of its task) before the inputs it
    held are recorded as errors.
    """

    def __init__(
        self,
        store: Store,
        *,
        address: str | None = None,
        num_cpus: float | None = None,
        max_retries: int = 2,
        console: Console | None = None,
        progress: bool = True,
    ) -> None:
        super().__init__(store, console=console, progress=progress)
        self.address = address
        self.num_cpus = num_cpus
        self.max_retries = max_retries
        self._temp_dir: str | None = None
        self._started = False
        self._gpus: float | None = None
        self._warned_gpu: set[str] = set()
        #: Seconds spent starting (or connecting to) Ray, reported apart from the stages.
        self.startup_seconds = 0.0

    # -- Ray's lifetime ---------------------------------------------------------------------

    def start(self) -> None:
        """Connect to ``address`` or start a local Ray (loopback only); idempotent."""
        ray = _import_ray()
        if ray.is_initialized():  # a Ray started by the caller (a notebook, a test session)
            if self._gpus is None:
                self._configure(ray)
            return
        begin = time.perf_counter()
        env = {k: os.environ[k] for k in FORWARDED_ENV if k in os.environ}
        runtime_env = {"env_vars": env} if env else None
        if self.address:
            ray.init(address=self.address, runtime_env=runtime_env, log_to_driver=False,
                     logging_level="WARNING")
        else:
            # Keep every socket on loopback and Ray's files in a private short folder (Unix
            # socket paths are limited to about 100 characters).
            os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
            os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
            tmp_root = os.environ.get("VIDEOESPRESSO_RAY_TMPDIR", "/tmp")
            reap_stale_ray_dirs(tmp_root)
            self._temp_dir = tempfile.mkdtemp(prefix=TEMP_PREFIX, dir=tmp_root)
            _write_owner(self._temp_dir)
            ray.init(
                address="local", num_cpus=self.num_cpus or os.cpu_count() or 1, num_gpus=None,
                include_dashboard=False, _temp_dir=self._temp_dir, _node_ip_address="127.0.0.1",
                runtime_env=runtime_env, log_to_driver=False, logging_level="WARNING",
            )
        self._started = True
        self._configure(ray)
        self.startup_seconds = time.perf_counter() - begin

    def _configure(self, ray: Any) -> None:
        logging.getLogger("ray.data").setLevel(logging.WARNING)
        ctx = ray.data.DataContext.get_current()
        ctx.enable_progress_bars = False  # the executor's own bars count items, as locally
        ctx.print_on_execution_start = False
        ctx.max_errored_blocks = 0  # an errored block fails the stage (handled below), never hangs it
        self._gpus = float(ray.cluster_resources().get("GPU", 0.0))

    def close(self) -> None:
        """Shut down a Ray this executor started (a cluster given by address is left running)."""
        if not self._started:
            return
        import ray

        ray.shutdown()
        self._started = False
        if self._temp_dir is not None:
            shutil.rmtree(self._temp_dir, ignore_errors=True)
            self._temp_dir = None

    def __enter__(self) -> "RayExecutor":
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- one stage ----------------------------------------------------------------------------

    def remote_args(self, stage: Stage) -> dict[str, Any]:
        """``num_cpus`` / ``num_gpus`` of one worker of ``stage`` on this cluster."""
        res = stage.resources
        cpus = float(res.cpus)
        if not self.address:
            cpus = min(cpus, LOCAL_ACTOR_CPUS)
        gpus = float(res.gpus)
        if gpus > 0 and not self._gpus:
            if stage.name not in self._warned_gpu:
                self.console.print(
                    f"note: stage {stage.name} asks for {gpus:g} GPU(s) but the Ray cluster has none; "
                    "it runs on CPUs", highlight=False,
                )
                self._warned_gpu.add(stage.name)
            gpus = 0.0
        return {"num_cpus": cpus, "num_gpus": gpus}

    def _compute(
        self, stage: Stage, todo: list[tuple[Item, ResultKey]], stamp: str,
        results: dict[str, StoredResult], advance: Callable[[int], None],
    ) -> tuple[int, dict[str, float]]:
        self.start()
        import ray

        by_key = {key.key: (item, key) for item, key in todo}
        rows = [
            {"key": json.dumps([key.stage, key.version, key.prompt_hash, key.params_hash, key.input_hash]),
             "item": json.dumps(item, ensure_ascii=False)}
            for item, key in todo
        ]
        res = stage.resources
        size = max(1, res.batch_size)
        workers = max(1, res.workers)
        # Enough blocks that every worker gets work, whole batches per block.
        blocks = max(1, min(len(rows), max(workers * 4, -(-len(rows) // size))))
        ds = ray.data.from_items(rows, override_num_blocks=blocks)
        from ray import cloudpickle

        blob = cloudpickle.dumps(stage)
        args = self.remote_args(stage)
        # Bounded restarts and retries go through map_batches' remote arguments (Ray Data's own
        # default for actors is unlimited restarts: a worker that keeps dying would hang the run).
        # Ray 2.5x flags those keyword arguments as deprecated without a named replacement yet.
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*ray_remote_args.*deprecated")
            if _has_setup(stage):
                mapped = ds.map_batches(
                    _StageActor, fn_constructor_args=(blob, stamp), batch_size=size, batch_format="numpy",
                    compute=ray.data.ActorPoolStrategy(min_size=1, max_size=workers),
                    max_restarts=self.max_retries, max_task_retries=self.max_retries, **args,
                )
            else:
                mapped = ds.map_batches(
                    _stage_task, fn_kwargs={"stage_blob": blob, "stamp": stamp}, batch_size=size,
                    batch_format="numpy", max_retries=self.max_retries, **args,
                )
        calls = 0
        timings: dict[str, float] = {}
        first_block = True
        try:
            for batch in mapped.iter_batches(batch_size=None, batch_format="numpy", prefetch_batches=1):
                written: list[tuple[ResultKey, StoredResult]] = []
                for row_json, n_calls, t_json in zip(batch["result"], batch["calls"], batch["timings"]):
                    row = json.loads(row_json)
                    _, key = by_key[row["key"]]
                    written.append((key, StoredResult(
                        key=key.key, stage=stage.name, item_id=row["item_id"], status=row["status"],
                        outputs=row["outputs"], reason=row["reason"], detail=row["detail"], raw=row["raw"],
                        seconds=row["seconds"],
                    )))
                    calls += int(n_calls)
                    for k, v in json.loads(t_json).items():
                        timings[k] = timings.get(k, 0.0) + v
                self.store.put_many(written)
                for key, stored in written:
                    results[key.key] = stored
                if first_block:
                    first_block = False
                    failpoint(f"build:mid:{stage.name}")
                advance(len(written))
        except Exception as exc:  # a worker died more often than allowed: fail what is left, per item
            left = [(item, key) for k, (item, key) in by_key.items() if k not in results]
            reason = f"{type(exc).__name__}: {exc}".splitlines()[0][:300]
            lost = [(key, StoredResult(
                key=key.key, stage=stage.name, item_id=item["id"], status="error", outputs=[],
                reason="worker_failed", detail=reason, raw=str(exc)[-4000:],
            )) for item, key in left]
            if lost:
                self.store.put_many(lost)
                for key, stored in lost:
                    results[key.key] = stored
                advance(len(lost))
            self.console.print(
                f"stage {stage.name}: Ray workers failed; {len(lost)} item(s) recorded as errors "
                f"(worker_failed) and retried by the next run: {reason}", highlight=False, markup=False,
            )
        return calls, timings


__all__ = ["LOCAL_ACTOR_CPUS", "RayExecutor"]
