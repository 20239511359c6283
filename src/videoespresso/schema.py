"""The records that move between the parts of videoespresso.

Pure data: pydantic models, no I/O and no model calls. Conventions that hold everywhere:

* a frame always carries both its index in the decoded stream and its presentation time in
  seconds (:class:`FrameRef`);
* boxes are normalised corner boxes ``[x0, y0, x1, y1]`` in ``[0, 1]`` (:class:`Box`); the
  dataset's ``[cx, cy, w, h] x 100`` form lives in :mod:`videoespresso.formats.boxes`;
* generation settings are recorded next to every model output (:class:`GenerationSettings`).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_serializer, model_validator


class Record(BaseModel):
    """Base of all records: strict about unknown fields so typos fail loudly."""

    model_config = ConfigDict(extra="forbid", frozen=False, populate_by_name=True)


# --------------------------------------------------------------------------- tasks


class TaskInfo(Record):
    """One of the 14 VideoEspresso tasks under its two published names."""

    paper_name: str
    leaderboard_name: str
    group: str


#: The 14 tasks in the leaderboard's column order (reference section 4).
TASKS: tuple[TaskInfo, ...] = (
    TaskInfo(paper_name="Narrative Structuring", leaderboard_name="Narrative Analysis", group="Discourse Comprehension"),
    TaskInfo(paper_name="Event Process", leaderboard_name="Event Dynamic", group="Logical Reasoning"),
    TaskInfo(paper_name="Ingredient Details", leaderboard_name="Preparation Steps", group="Reality Application"),
    TaskInfo(paper_name="Causal Inference", leaderboard_name="Causal Analysis", group="Logical Reasoning"),
    TaskInfo(paper_name="Thematic Insight", leaderboard_name="Theme Analysis", group="Discourse Comprehension"),
    TaskInfo(paper_name="Contextual Interpretation", leaderboard_name="Contextual Analysis", group="Logical Reasoning"),
    TaskInfo(paper_name="Influence Tracing", leaderboard_name="Influence Analysis", group="Social Understanding"),
    TaskInfo(paper_name="Role Identification", leaderboard_name="Role Analysis", group="Discourse Comprehension"),
    TaskInfo(paper_name="Interaction Dynamics", leaderboard_name="Interaction Analysis", group="Social Understanding"),
    TaskInfo(paper_name="Behavior Profiling", leaderboard_name="Behavior Analysis", group="Social Understanding"),
    TaskInfo(paper_name="Emotional Recognition", leaderboard_name="Emotion Analysis", group="Social Understanding"),
    TaskInfo(paper_name="Cooking Steps", leaderboard_name="Cooking Process", group="Reality Application"),
    TaskInfo(paper_name="Traffic Analysis", leaderboard_name="Traffic Analysis", group="Reality Application"),
    TaskInfo(paper_name="Situational Awareness", leaderboard_name="Situation Analysis", group="Discourse Comprehension"),
)

TASK_NAMES: tuple[str, ...] = tuple(t.paper_name for t in TASKS)


def _task_key(name: str) -> str:
    return " ".join(name.lower().replace("_", " ").replace("-", " ").split())


_TASK_INDEX: dict[str, TaskInfo] = {}
for _t in TASKS:
    _TASK_INDEX[_task_key(_t.paper_name)] = _t
    _TASK_INDEX[_task_key(_t.leaderboard_name)] = _t


def find_task(name: str) -> TaskInfo | None:
    """Look a task up by its paper or leaderboard name (case and separators ignored)."""
    return _TASK_INDEX.get(_task_key(name))


#: Every valid spelling (paper and leaderboard names) by its normalised key.
_TASK_SPELLINGS: dict[str, str] = {
    _task_key(name): name for t in TASKS for name in (t.paper_name, t.leaderboard_name)
}


def closest_task(name: str) -> str | None:
    """The valid task name (paper or leaderboard) nearest to a name that matches none."""
    import difflib

    match = difflib.get_close_matches(_task_key(name), list(_TASK_SPELLINGS), n=1, cutoff=0.6)
    return _TASK_SPELLINGS[match[0]] if match else None


# --------------------------------------------------------------------------- generation


class GenerationSettings(Record):
    """Explicit decoding settings, recorded with every output. Greedy by default."""

    max_new_tokens: int = Field(256, ge=1)
    temperature: float = Field(0.0, ge=0.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    seed: int | None = None
    stop: list[str] = Field(default_factory=list)
    #: > 1 discourages repeating what the reply already says. ``hf`` penalises the word tokens
    #: (with a letter or digit) already in the reply, never the prompt or punctuation; endpoints
    #: get ``repetition_penalty`` in the request body (vLLM and SGLang apply theirs). None = off.
    #: Small models decoding greedily otherwise loop ("1.1.1.1...") until the token limit.
    repetition_penalty: float | None = Field(None, gt=0.0)

    @model_serializer(mode="wrap")
    def _drop_unset_penalty(self, handler: Any) -> dict[str, Any]:
        # Left out when off, so every cache key and run manifest written before the field
        # existed stays valid.
        data = handler(self)
        if isinstance(data, dict) and data.get("repetition_penalty") is None:
            data.pop("repetition_penalty", None)
        return data

    @property
    def greedy(self) -> bool:
        return self.temperature == 0.0

    @property
    def deterministic(self) -> bool:
        """Whether a repeated call must give the same reply (so it may be cached)."""
        return self.greedy or self.seed is not None


class Generation(Record):
    """One model reply with everything needed to reproduce it."""

    text: str
    model: str
    settings: GenerationSettings
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    cached: bool = False
    #: The validated JSON object when the call carried a schema.
    parsed: Any = None
    #: Why ``parsed`` is None although a schema was asked for (the reply did not validate).
    error: str | None = None


# --------------------------------------------------------------------------- video


class VideoInfo(Record):
    """What probing a video file tells."""

    path: str
    duration_s: float
    num_frames: int
    #: True when ``num_frames`` comes from the container header or from counting, not an estimate.
    num_frames_exact: bool
    avg_fps: float
    is_vfr: bool
    width: int
    height: int
    rotation: int = 0
    codec: str
    has_audio: bool
    start_s: float = 0.0


class FrameRef(Record):
    """A frame of a video: its index in the decoded stream and its presentation time."""

    index: int = Field(ge=0)
    seconds: float = Field(ge=0.0)
    #: JPEG on disk, when the frame was written out.
    path: str | None = None


class SampledFrames(Record):
    """The output of a sampler: the frames plus the sampler's name and parameters."""

    video: str
    sampler: str
    params: dict[str, Any] = Field(default_factory=dict)
    frames: list[FrameRef]

    @field_validator("frames")
    @classmethod
    def _sorted(cls, frames: list[FrameRef]) -> list[FrameRef]:
        indices = [f.index for f in frames]
        if indices != sorted(indices):
            raise ValueError("frames must be sorted by index")
        return frames


class Caption(Record):
    frame: FrameRef
    text: str
    model: str | None = None


# --------------------------------------------------------------------------- grounding


class Box(Record):
    """A normalised corner box ``[x0, y0, x1, y1]`` in ``[0, 1]``, with an optional score."""

    x0: float = Field(ge=0.0, le=1.0)
    y0: float = Field(ge=0.0, le=1.0)
    x1: float = Field(ge=0.0, le=1.0)
    y1: float = Field(ge=0.0, le=1.0)
    score: float | None = None

    @model_validator(mode="after")
    def _ordered(self) -> "Box":
        if self.x1 < self.x0 or self.y1 < self.y0:
            raise ValueError(f"box corners out of order: {self.as_list()}")
        return self

    def as_list(self) -> list[float]:
        return [self.x0, self.y0, self.x1, self.y1]


class KeyObject(Record):
    """A key object of a chain of thought, with its boxes (possibly none) in one frame."""

    name: str
    boxes: list[Box] = Field(default_factory=list)
    frame: FrameRef | None = None


class Detection(Record):
    """One box a phrase grounder found for a phrase."""

    phrase: str
    box: Box
    score: float


# --------------------------------------------------------------------------- QA and CoT


class QAPair(Record):
    id: str
    video: str
    question: str
    answer: str
    task: str
    #: The frames the question relies on.
    frames: list[FrameRef] = Field(default_factory=list)


class CoTAnnotation(Record):
    """Core frames, key objects and the evidence sentence (with inline tags rendered)."""

    core_frames: list[FrameRef] = Field(default_factory=list)
    core_captions: list[str] = Field(default_factory=list)
    key_objects: list[KeyObject] = Field(default_factory=list)
    evidence: str = ""


# --------------------------------------------------------------------------- build stages


class PoolRef(Record):
    """Where a video's :class:`VideoPool` lies: a file under the build root named by its sha.

    Items carry this reference instead of the pool itself, so a 10-minute video's frames and
    captions are stored once, not once per group and QA item; the sha is part of every item that
    refers to it, so a changed pool still changes the store keys of everything downstream.
    """

    path: str
    sha: str
    frames: int = Field(ge=0)


class VideoPool(Record):
    """Every sampled frame of one video with its caption: the pool temporal grounding retrieves
    from (stage 4 writes it, stage 9 reads it)."""

    video_id: str
    frames: list[FrameRef]
    captions: list[str]

    @model_validator(mode="after")
    def _aligned(self) -> "VideoPool":
        if len(self.frames) != len(self.captions):
            raise ValueError(f"{len(self.frames)} frames but {len(self.captions)} captions")
        return self


class GroupItem(Record):
    """Stage 4's output: consecutive kept frames of one video with their captions."""

    id: str
    source: str = Field(alias="_from")
    video_id: str
    video: str
    video_path: str
    duration_s: float | None = None
    group: int = Field(ge=0)
    frames: list[FrameRef]
    captions: list[str]
    pool: PoolRef
    warnings: list[dict[str, Any]] = Field(default_factory=list, alias="_warnings")
    provenance: dict[str, str] = Field(default_factory=dict, alias="_prov")

    def item(self) -> dict[str, Any]:
        """The engine's item form (JSON, the underscore keys the executor reads)."""
        return self.model_dump(mode="json", by_alias=True)


class QAItem(GroupItem):
    """Stage 5's output: one question-answer pair written from a group."""

    question: str
    answer: str
    task: str
    #: The frames the answer relies on (the whole group when the model named none that exist).
    qa_frames: list[FrameRef]
    qa_model: str


# --------------------------------------------------------------------------- selection


class Selection(Record):
    """Frames a selector chose for one question, with its scores and parameters."""

    video: str
    question: str = ""
    question_id: str | None = None
    frames: list[FrameRef]
    scores: list[float] = Field(default_factory=list)
    selector: str
    params: dict[str, Any] = Field(default_factory=dict)
    #: Why a fallback rule was used (an invalid selector reply), when it was.
    fallback: str | None = None


# --------------------------------------------------------------------------- benchmark

OptionLetter = Literal["A", "B", "C", "D"]
LETTERS: tuple[str, ...] = ("A", "B", "C", "D")


class BenchItem(Record):
    """One test question of ``bench_hard.json``.

    ``options`` holds the option texts without their ``(A):`` prefix; the reader keeps the raw
    strings and any unknown fields in ``extra`` so a round trip is lossless.
    """

    id: str
    video_path: str
    question: str
    options: list[str]
    correct_answer: OptionLetter
    answer: str = ""
    evidence: str = ""
    task: str
    core_frames_paths: list[str] = Field(default_factory=list)
    core_frames_captions: list[str] = Field(default_factory=list)
    raw_options: list[str] = Field(default_factory=list)
    extra: dict[str, Any] = Field(default_factory=dict)

    @field_validator("options")
    @classmethod
    def _four(cls, options: list[str]) -> list[str]:
        if len(options) != 4:
            raise ValueError(f"expected 4 options, got {len(options)}")
        return options


class TrainItem(Record):
    """One item of a train JSON file (video or multi-image version).

    ``keyframes_key`` remembers which spelling the file used (``path`` or ``keyframes_path``).
    """

    video_path: str = ""
    keyframes: list[str] = Field(default_factory=list)
    keyframes_key: Literal["path", "keyframes_path"] = "keyframes_path"
    captions: list[str] = Field(default_factory=list)
    question: str
    answer: str
    evidence: str = ""
    task: str = ""
    extra: dict[str, Any] = Field(default_factory=dict)


# --------------------------------------------------------------------------- training examples

SFTTarget = Literal["selector", "stage1", "stage2"]


class SFTMessage(Record):
    """One chat turn of a training example. User turns hold the text only; the images of the
    example belong to the first user turn, in order (``SFTExample.images``)."""

    role: Literal["system", "user", "assistant"]
    content: str


class SFTExample(Record):
    """One supervised fine-tuning example, the unit every trainer and SFT export consumes.

    ``messages`` ends with the assistant turn that is the training target. ``images`` are frame
    image paths (given to the first user turn, in order) and ``frames`` their index + seconds in
    ``video`` when known; a text-only example (the selector reading captions, stage 2 in text
    form) has neither. ``source`` says where it came from (``build``, ``official-video``,
    ``official-images``, ``caption-sets``); ``meta`` holds builder details (how a target was
    found, the question id, the task).
    """

    id: str
    target: SFTTarget
    messages: list[SFTMessage]
    images: list[str] = Field(default_factory=list)
    video: str | None = None
    frames: list[FrameRef] = Field(default_factory=list)
    source: str = ""
    meta: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _ends_with_target(self) -> "SFTExample":
        if not self.messages or self.messages[-1].role != "assistant":
            raise ValueError("an SFT example must end with the assistant turn it trains on")
        if self.frames and len(self.frames) != len(self.images):
            raise ValueError(f"{len(self.frames)} frames for {len(self.images)} images")
        return self

    @property
    def prompt_messages(self) -> list[SFTMessage]:
        """Every turn before the trained reply."""
        return self.messages[:-1]

    @property
    def completion(self) -> str:
        """The trained reply."""
        return self.messages[-1].content


class Prediction(Record):
    """A model's answer to one benchmark item, with how it was obtained and parsed."""

    id: str
    task: str
    video_path: str = ""
    output: str
    model: str = ""
    settings: GenerationSettings | None = None
    frames: list[FrameRef] = Field(default_factory=list)
    with_evidence: bool = False
    prompt_template: str = ""
    correct_answer: OptionLetter | None = None
    #: The extracted letter, or None when no rule could decide.
    letter: OptionLetter | None = None
    #: Which extraction rule fired (or why none did).
    rule: str = ""
    error: str | None = None
    extra: dict[str, Any] = Field(default_factory=dict)


class TaskScore(Record):
    task: str
    n: int
    correct: int
    unparsed: int
    accuracy: float
    stderr: float | None = None
    ci95: tuple[float, float] | None = None
    #: Items the run could not answer (counted in ``n`` only when failures count as wrong).
    failed: int = 0


class Score(Record):
    """Close-ended results: per task, the leaderboard's weighted overall and the paper's mean."""

    per_task: list[TaskScore]
    overall_weighted: float
    overall_unweighted: float
    n: int
    unparsed: int
    rule_counts: dict[str, int] = Field(default_factory=dict)
    stderr_weighted: float | None = None
    ci95_weighted: tuple[float, float] | None = None
    stderr_unweighted: float | None = None
    ci95_unweighted: tuple[float, float] | None = None
    failed: int = 0
    #: How the 95% intervals were computed.
    interval_method: str = ""
