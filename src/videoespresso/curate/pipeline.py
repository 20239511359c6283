"""The nine VideoEspresso stages (plus distractors) in order, built from a config, and a build.

Stage numbers, as ``--stages`` counts them: 1 sample, 2 caption, 3 dedup, 4 group, 5 qa,
6 filter, 7 cot, 8 spatial, 9 temporal, 10 options; the export follows stage 10.
"""

from __future__ import annotations

import dataclasses
import os

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from ..config import Config
from ..engine import LocalExecutor, Resources, RunResult, Stage, Store
from ..errors import UserError, printable
from ..failpoints import failpoint
from ..locking import OutputLock
from ._common import ModelPool
from .caption import CaptionFrames
from .cot import AnnotateCoT
from .dedup import RemoveRedundant
from .export import ExportResult, export
from .group import GroupCaptions
from .judge import QualityFilter
from .options import WriteDistractors
from .qa import GenerateQA
from .sample import SampleFrames
from .spatial import GroundObjects
from .temporal import GroundInTime

STAGE_NAMES = ("sample", "caption", "dedup", "group", "qa", "filter", "cot", "spatial", "temporal", "options")
VIDEO_EXTENSIONS = (".mp4", ".avi", ".mkv", ".mov", ".webm", ".m4v", ".mpg", ".mpeg", ".flv", ".wmv")
STORE_FILE = "store.sqlite"
CACHE_FILE = "responses.sqlite"
LOCK_FILE = "build.lock"


def build_stages(config: Config, root: Path, pool: ModelPool) -> list[Stage]:
    """All ten stages, configured; a stage's models load only when it has work."""
    from ..engine.storage import as_root

    root = as_root(root)
    cur, models = config.curate, config.models
    llm_settings = config.generation
    if cur.max_new_tokens is not None:
        llm_settings = llm_settings.model_copy(update={"max_new_tokens": cur.max_new_tokens})
    if cur.repetition_penalty is not None:
        llm_settings = llm_settings.model_copy(update={"repetition_penalty": cur.repetition_penalty})
    json_kwargs: dict[str, Any] = {
        "settings": llm_settings, "constrained": cur.constrained_json, "max_chars": cur.max_text_chars,
        "prompt_files": cur.prompt_files,
    }
    llm_resources = Resources(gpus=1, batch_size=cur.batch_size)
    stage_list = [
        SampleFrames(root, config.sampling.static_fps, config.sampling.dynamic_fps,
                     config.sampling.motion_threshold, config.sampling.max_side),
        CaptionFrames(root, pool, models.captioner, config.generation, frames_per_call=cur.batch_size,
                      prompt_files=cur.prompt_files),
        RemoveRedundant(pool, models.embedder, cur.redundancy_tau),
        GroupCaptions(root, cur.group_size, cur.group_overlap, cur.min_frames),
        GenerateQA(pool, models.llm, pairs_per_group=cur.qa_per_group, resources=llm_resources, **json_kwargs),
        QualityFilter(pool, judges=models.judges, vote=cur.judge_vote, resources=llm_resources, **json_kwargs),
        AnnotateCoT(pool, models.llm, max_objects=cur.max_key_objects, max_core_frames=cur.max_core_frames,
                    resources=llm_resources, **json_kwargs),
        GroundObjects(root, pool, models.grounder, models.scorer, cur.box_threshold, cur.text_threshold,
                      cur.clip_threshold, cur.max_boxes_per_object),
        GroundInTime(root, pool, models.embedder),
        WriteDistractors(pool, models.llm, temperature=cur.distractor_temperature, seed=cur.test_options_seed,
                         resources=llm_resources, **json_kwargs),
    ]
    unknown = sorted(set(cur.resources) - set(STAGE_NAMES))
    if unknown:
        raise UserError(f"curate.resources: unknown stage(s) {', '.join(unknown)}; expected one of {', '.join(STAGE_NAMES)}")
    for stage in stage_list:
        override = cur.resources.get(stage.name)
        if override is not None:
            changes = {k: v for k, v in override.model_dump().items() if v is not None}
            stage.resources = dataclasses.replace(stage.resources, **changes)
    return stage_list


def parse_stage_range(text: str | None) -> tuple[int, int]:
    """``"1-5"`` -> (1, 5); ``"7"`` -> (7, 7); None -> every stage."""
    last = len(STAGE_NAMES)
    if not text:
        return 1, last
    try:
        if "-" in text:
            a, b = text.split("-", 1)
            first, end = int(a) if a.strip() else 1, int(b) if b.strip() else last
        else:
            first = end = int(text)
    except ValueError:
        raise UserError(f"--stages {text!r}: expected N or A-B with stage numbers 1..{last}") from None
    if not 1 <= first <= end <= last:
        raise UserError(f"--stages {text!r}: expected 1 <= A <= B <= {last}")
    return first, end


def discover_videos(sources: str | Path | Sequence[str | Path], limit: int | None = None) -> list[dict[str, Any]]:
    """Input items from video files, folders (searched recursively) and text files listing one
    video a line, in the order given.

    Ids are paths relative to the folder (prefixed by the folder as given when several inputs
    are given), or as listed or given, so they survive moving the inputs; the file size and
    modification time are part of the item so a replaced video is rebuilt.
    """
    if isinstance(sources, (str, os.PathLike)):
        sources = [sources]
    paths = [Path(s) for s in sources]
    if not paths:
        raise UserError("no input given: name video files, folders or list files")
    entries: list[tuple[Path, str]] = []
    for source in paths:
        entries.extend(_entries(source, prefix=source.as_posix() if len(paths) > 1 else None))
    if not entries:
        where = ", ".join(printable(p) for p in paths)
        raise UserError(f"{where}: no video files found (extensions: {', '.join(VIDEO_EXTENSIONS)})")
    seen: set[str] = set()
    for _, rel in entries:
        if rel in seen:
            raise UserError(f"{printable(rel)}: given twice (each video may be named once)")
        seen.add(rel)
    if limit is not None:
        entries = entries[:limit]
    items = []
    for path, rel in entries:
        try:
            stat = path.stat()
        except OSError:
            stat = None  # the sample stage fails the item and says why
        items.append({
            "id": rel, "video": _absolute(path), "video_path": rel,
            "size": stat.st_size if stat else None, "mtime_ns": stat.st_mtime_ns if stat else None,
        })
    return items


def _entries(source: Path, prefix: str | None) -> list[tuple[Path, str]]:
    """(path, id) of each video one input names: itself, a folder's videos, a list file's lines."""
    from ..video import path_problem

    if not os.path.lexists(source):
        # a mistyped argument: refused before anything runs, not built as a failed item
        raise UserError(f"{printable(source)}: no such video, folder or list file")
    if source.suffix.lower() in VIDEO_EXTENSIONS and not source.is_dir():
        # Kept even when unreadable: the sample stage fails the item with its reason.
        return [(source, source.as_posix())]
    if source.is_dir():
        # Every entry named like a video that is not a folder (folders are searched) is kept,
        # a FIFO, socket, device file or dangling symlink included: its item then fails with
        # the reason, instead of vanishing from the run unreported.
        found = sorted(p for p in source.rglob("*") if p.suffix.lower() in VIDEO_EXTENSIONS and not p.is_dir())
        return [(p, p.relative_to(source).as_posix() if prefix is None else f"{prefix.rstrip('/')}/"
                 f"{p.relative_to(source).as_posix()}") for p in found]
    problem = path_problem(source)
    if problem is not None:
        raise UserError(f"{printable(source)}: {problem} (give video files, folders or text files listing videos)")
    entries = []
    for line in _list_lines(source):
        line = line.strip()
        if line and not line.startswith("#"):
            path = Path(line)
            entries.append((path if path.is_absolute() else source.parent / path, line))
    return entries


def _list_lines(source: Path) -> list[str]:
    """The lines of a list file, or one error when it is not text (a video with another extension)."""
    not_text = (f"{printable(source)}: not a list file (a text file naming one video a line): it holds binary "
                f"data; a video needs one of the extensions {', '.join(VIDEO_EXTENSIONS)}")
    with source.open("rb") as f:
        head = f.read(4096)
    if b"\0" in head:
        raise UserError(not_text)
    try:
        return source.read_text("utf-8").splitlines()
    except UnicodeDecodeError:
        raise UserError(not_text) from None


def _absolute(path: Path) -> str:
    if path.is_symlink() and not path.exists():
        # Resolved, a dangling link would name its missing target instead of itself.
        return os.path.abspath(path)
    try:
        return str(path.resolve())
    except (OSError, RuntimeError):
        # A symlink loop cannot be resolved; the sample stage fails the item and says why.
        return os.path.abspath(path)


@dataclass
class BuildResult:
    run: RunResult
    exported: ExportResult | None
    store: Path
    #: Where the run wrote (the build folder, or the staging folder of a remote ``out``).
    folder: Path | None = None
    #: The object-store URL the folder was published to, when ``out`` was one.
    url: str | None = None
    #: Seconds spent starting or connecting to Ray (0 for the local executor).
    startup_seconds: float = 0.0


EXECUTORS = ("local", "ray")


def make_executor(name: str, store: Store, *, ray_address: str | None = None, progress: bool = True,
                  console: Any = None) -> LocalExecutor:
    """The executor called ``name`` (``local`` or ``ray``) over ``store``."""
    if name == "local":
        if ray_address:
            raise UserError("--ray-address needs --executor ray")
        return LocalExecutor(store, progress=progress, console=console)
    if name == "ray":
        from ..engine.ray_executor import RayExecutor

        return RayExecutor(store, address=ray_address, progress=progress, console=console)
    raise UserError(f"--executor {name!r}: expected one of {', '.join(EXECUTORS)}")


def run_build(
    source: str | Path | Sequence[str | Path],
    out: str | Path,
    config: Config,
    *,
    stages: str | None = None,
    limit: int | None = None,
    preloaded: dict[str, Any] | None = None,
    progress: bool = True,
    console: Any = None,
    executor: str = "local",
    ray_address: str | None = None,
    staging: str | Path | None = None,
) -> BuildResult:
    """Build (or resume) a dataset from videos into ``out``; export after the last stage.

    ``source`` is one input or several, each a video file, a folder or a list file (see
    :func:`discover_videos`).

    ``out`` is a folder, a ``file://`` URL or an object-store URL (``s3://``, ``gs://``,
    ``memory://``): the latter is built in a local staging folder (filled from the URL first when
    it holds an earlier run's store) and published to the URL at the end. ``executor`` is
    ``local`` or ``ray`` (``ray_address``: a running cluster; none starts a local Ray).
    """
    from ..engine import storage

    if executor not in EXECUTORS:
        raise UserError(f"--executor {executor!r}: expected one of {', '.join(EXECUTORS)}")
    if executor == "ray" and preloaded:
        preloaded = None  # each Ray worker loads its own models; a driver's models cannot travel
    first, last = parse_stage_range(stages)
    items = discover_videos(source, limit)
    url = str(out).rstrip("/") if storage.is_remote(out) else None
    if url is not None and executor == "ray" and url.startswith("memory://"):
        raise UserError(f"--out {url}: memory:// lives inside one process, Ray workers cannot share it; "
                        "use a folder, file:// or an object store URL")
    out = storage.local_folder(out, staging)
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file; give a build folder")
    out.mkdir(parents=True, exist_ok=True)
    cache = Path(config.cache) if config.cache else out / CACHE_FILE
    pool = ModelPool(config.models.options, cache=cache, preloaded=preloaded)
    # Frames go where --out points (through fsspec for a URL); the store stays in ``out``.
    stage_list = build_stages(config, url or out, pool)[:last]
    store_path = out / STORE_FILE
    startup = 0.0
    # One build per folder at a time: two would race on the export files.
    with OutputLock(out / LOCK_FILE, f"build folder {out}"):
        if url is not None:
            try:
                storage.pull(url, out, (STORE_FILE, CACHE_FILE))
            except Exception as exc:
                raise UserError(f"--out {url}: cannot read the published build: {exc}") from None
        try:
            with Store(store_path) as store:
                refuse_stale_replay(store, stage_list[: first - 1], out, stages)
                runner = make_executor(executor, store, ray_address=ray_address, progress=progress, console=console)
                try:
                    result = runner.run(stage_list, items, replay_only={s.name for s in stage_list[: first - 1]})
                finally:
                    startup = getattr(runner, "startup_seconds", 0.0)
                    if hasattr(runner, "close"):
                        runner.close()
        finally:
            pool.close()
        exported = None
        if last == len(STAGE_NAMES):
            failpoint("build:export")
            exported = export(result.items, out, config.curate.test_options_seed, test_ratio=config.curate.test_ratio,
                              split_seed=config.curate.split_seed, frames_root=url)
        if url is not None:
            publish(out, url)
    return BuildResult(run=result, exported=exported, store=store_path, folder=out, url=url,
                       startup_seconds=startup)


def refuse_stale_replay(store: Store, replayed: list[Stage], folder: Path, stages: str | None) -> None:
    """Refuse a run that starts after a stage whose stored rows are all of another version.

    A stage replayed from the store finds nothing under its current version, so the run would go
    on with no items and export an empty dataset over the folder's files; a build folder of
    another version has to be rebuilt from that stage instead.
    """
    stored = store.versions()
    for number, stage in enumerate(replayed, start=1):
        versions = stored.get(stage.name, set())
        if versions and stage.version not in versions:
            raise UserError(
                f"{folder}: this build folder was made by another version of videoespresso: stage {number} "
                f"({stage.name}) is stored at version {', '.join(sorted(versions))}, this version writes "
                f"{stage.version}; --stages {stages} would find none of its results. Rerun from stage "
                f"{number} (--stages {number}-{len(STAGE_NAMES)}) or build into a new folder"
            )


def publish(folder: Path, url: str, only: list[str] | None = None) -> None:
    """Copy a build folder (or some files of it) to an object-store URL."""
    from ..engine import storage

    try:
        storage.push(folder, url, only)
    except Exception as exc:
        raise UserError(f"--out {url}: cannot publish the build: {type(exc).__name__}: {exc}") from None


__all__ = [
    "BuildResult", "EXECUTORS", "make_executor", "publish", "refuse_stale_replay", "STAGE_NAMES", "build_stages", "discover_videos", "parse_stage_range", "run_build",
]
