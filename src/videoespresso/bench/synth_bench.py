"""A generated benchmark with known answers: scenes rendered to video, questions in the official
``bench_hard.json`` shape.

Each clip is a :func:`~videoespresso.video.scenes.random_scene`; its description is the truth,
so every answer is computed, never written by a model. Five question kinds:

* ``moved_colour``: the colour of the object that moves;
* ``direction``: which way it moves;
* ``first``: which of four objects appears first;
* ``count``: how many objects are visible at the end, or appear in all;
* ``after``: what happens right after an event.

Every item has four options (``"(A): ..."``), ``correct_answer``, a true ``evidence`` sentence,
and gold core frames: the frames where the facts the answer needs are visible, written as JPEG
files named by their second (``core/<clip>/5.jpg`` is the frame at 5 s: the official 1 fps
naming, and every event of a scene falls on a whole second). Clips are split into train and
held-out sets by a seeded draw; a clip's questions all go to its split.

    videoespresso synth-bench --out synth --n 40 --seed 0
    videoespresso eval ... --bench synth/bench_heldout.json --video-root synth
"""

from __future__ import annotations

import json
import random
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

from ..formats.bench import read_bench
from ..formats.jsonl import write_json_atomic
from ..models.classical.vision import position_of, position_phrase
from ..schema import LETTERS
from ..video.scenes import DIRECTIONS, PALETTE, SHAPES, Event, Scene, random_scene, render_scene

#: Question kind -> task name written in the items.
TASKS: dict[str, str] = {
    "moved_colour": "Moving Object Colour",
    "direction": "Motion Direction",
    "first": "Appearance Order",
    "count": "Object Count",
    "after": "Next Event",
}
KINDS = tuple(TASKS)
SPLITS = ("train", "heldout")


@dataclass
class SynthBench:
    """What :func:`make_synth_bench` wrote."""

    out: Path
    #: Split -> the benchmark file.
    files: dict[str, Path]
    #: Split -> clip names.
    clips: dict[str, list[str]]
    #: Split -> kind -> item count.
    counts: dict[str, dict[str, int]] = field(default_factory=dict)


def clip_seed(seed: int, index: int) -> int:
    """The scene seed of clip ``index`` of a benchmark drawn with ``seed``."""
    return seed * 1_000_003 + index


def truth_caption(scene: Scene, index: int) -> str:
    """A sentence of what frame ``index`` shows, from the scene description."""
    truth = scene.frame_truth(index)
    w, h = scene.size
    if not truth:
        return f"A plain {scene.background} background with no objects."
    parts = [
        f"a {t.size} {t.colour} {t.shape} {position_phrase(position_of(*t.centre, w, h))}"
        + (f" moving {t.moving}" if t.moving else "")
        for t in truth
    ]
    listed = parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]
    return f"A plain {scene.background} background with {listed}."


def _cap(text: str) -> str:
    return text[0].upper() + text[1:]


def _second(t: float) -> int:
    return int(round(t))


@dataclass
class _Question:
    kind: str
    question: str
    answer: str
    distractors: list[str]
    #: Seconds of the core frames.
    seconds: list[int]
    evidence: str


def _others(rng: random.Random, pool: list[str], exclude: set[str], n: int) -> list[str]:
    choices = [p for p in dict.fromkeys(pool) if p not in exclude]
    return rng.sample(choices, min(n, len(choices)))


def _absent_names(scene: Scene) -> list[str]:
    present = {o.name for o in scene.objects} | {f"{c} {o.shape}" for o in scene.objects for _, c in o.recolours}
    return [f"{c} {s}" for c in PALETTE for s in SHAPES if f"{c} {s}" not in present]


def _moved_colour(scene: Scene, rng: random.Random) -> _Question | None:
    move = next((e for e in scene.events() if e.kind == "move"), None)
    if move is None:
        return None
    obj = scene.object(move.object)
    colour = scene.state(obj, move.time_s).colour
    stop = next(e for e in scene.events() if e.kind == "stop" and e.object == move.object)
    scene_colours = [o.colour for o in scene.objects] + [c for o in scene.objects for _, c in o.recolours]
    wrong = _others(rng, scene_colours, {colour}, 3)
    wrong += _others(rng, list(PALETTE), {colour, *wrong}, 3 - len(wrong))
    return _Question(
        "moved_colour", "What colour is the object that moves?", colour, wrong,
        [_second(move.time_s), _second(stop.time_s)],
        f"At {_second(move.time_s)} s {move.text}; at {_second(stop.time_s)} s it stops. It is {colour}.",
    )


def _direction(scene: Scene, rng: random.Random) -> _Question | None:
    move = next((e for e in scene.events() if e.kind == "move"), None)
    if move is None or move.direction is None:
        return None
    name = move.text.removeprefix("the ").split(" starts")[0]
    stop = next(e for e in scene.events() if e.kind == "stop" and e.object == move.object)
    return _Question(
        "direction", f"In which direction does the {name} move?", move.direction,
        [d for d in DIRECTIONS if d != move.direction],
        [_second(move.time_s), _second(stop.time_s)],
        f"At {_second(move.time_s)} s {move.text}; by {_second(stop.time_s)} s it has moved {move.direction}.",
    )


def _first(scene: Scene, rng: random.Random) -> _Question | None:
    starters = [o for o in scene.objects if o.enter_s == 0]
    later = sorted((o for o in scene.objects if o.enter_s > 0), key=lambda o: o.enter_s)
    if not later:
        return None
    first = rng.choice(starters)
    shown = later[:3]
    wrong = [o.name for o in shown] + _others(rng, _absent_names(scene), set(), 3 - len(shown))
    seconds = [0] + [_second(o.enter_s) for o in shown]
    entries = "; ".join(f"the {o.name} enters at {_second(o.enter_s)} s" for o in shown)
    return _Question(
        "first", "Which of these objects appears in the video first?", first.name, wrong, seconds,
        f"The {first.name} is there from the start; {entries}.",
    )


def _count(scene: Scene, rng: random.Random) -> _Question:
    if rng.random() < 0.5:
        last = scene.num_frames - 1
        n = len(scene.frame_truth(last))
        question = "How many objects are visible at the end of the video?"
        seconds = [int(scene.frame_time(last))]
        evidence = f"The last frame shows {n} object{'s' if n != 1 else ''}: " + truth_caption(scene, last)
    else:
        n = len(scene.objects)
        question = "How many different objects appear in the video?"
        seconds = sorted({_second(o.enter_s) for o in scene.objects})
        evidence = "The objects are the " + ", the ".join(o.name for o in scene.objects) + f": {n} in all."
    start = max(0, n - rng.randint(0, 2))
    numbers = [str(k) for k in range(start, start + 4)]
    return _Question("count", question, str(n), [k for k in numbers if k != str(n)][:3], seconds[:4], evidence)


def _after(scene: Scene, rng: random.Random) -> _Question | None:
    events = scene.events()
    if len(events) < 2:
        return None
    k = rng.randrange(len(events) - 1)
    x, nxt = events[k], events[k + 1]
    others = [_cap(e.text) for e in events if e is not x and e is not nxt]
    invented = [f"The {name} enters" for name in _absent_names(scene)]
    mover = next((e for e in events if e.kind == "move"), None)
    if mover is not None:
        name = mover.text.removeprefix("the ").split(" starts")[0]
        invented += [f"The {name} starts moving {d}" for d in DIRECTIONS if d != mover.direction]
    wrong = _others(rng, others, set(), 2)
    wrong += _others(rng, invented, {_cap(nxt.text), *wrong}, 3 - len(wrong))
    return _Question(
        "after", f"What happens right after {x.text}?", _cap(nxt.text), wrong,
        [_second(x.time_s), _second(nxt.time_s)],
        f"At {_second(x.time_s)} s {x.text}; next, at {_second(nxt.time_s)} s, {nxt.text}.",
    )


_BUILDERS: dict[str, Callable[[Scene, random.Random], _Question | None]] = {
    "moved_colour": _moved_colour, "direction": _direction, "first": _first, "count": _count, "after": _after,
}


def scene_questions(scene: Scene, rng: random.Random) -> list[_Question]:
    return [q for q in (_BUILDERS[k](scene, rng) for k in KINDS) if q is not None]


def _item(clip: str, scene: Scene, q: _Question, rng: random.Random, out: Path) -> dict[str, Any]:
    options = [q.answer, *q.distractors]
    if len(options) != 4 or len(set(options)) != 4:
        raise AssertionError(f"{clip} {q.kind}: options must be four distinct texts, got {options}")
    rng.shuffle(options)
    letter = LETTERS[options.index(q.answer)]
    paths, captions = [], []
    for second in sorted(set(q.seconds)):
        index = scene.frame_of(second)
        relative = f"core/{clip}/{second}.jpg"
        target = out / relative
        if not target.exists():
            from PIL import Image

            target.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(scene.render(index)).save(target, quality=92)
        paths.append(relative)
        captions.append(truth_caption(scene, index))
    return {
        "id": f"{clip}-{q.kind}",
        "video_path": f"videos/{clip}.mp4",
        "question": q.question,
        "options": [f"({LETTERS[i]}): {_cap(text)}" for i, text in enumerate(options)],
        "correct_answer": f"({letter})",
        "answer": _cap(q.answer),
        "evidence": q.evidence,
        "task": TASKS[q.kind],
        "core_frames_paths": paths,
        "core_frames_captions": captions,
        "kind": q.kind,
        "core_frames_seconds": sorted(set(q.seconds)),
    }


def scene_to_json(scene: Scene) -> dict[str, Any]:
    return asdict(scene)


def scene_from_json(data: dict[str, Any]) -> Scene:
    from ..video.scenes import Motion, SceneObject

    objects = tuple(
        SceneObject(**{**o, "motions": tuple(Motion(**m) for m in o["motions"]),
                       "recolours": tuple(tuple(r) for r in o["recolours"])})
        for o in data["objects"]
    )
    return Scene(objects, seconds=data["seconds"], fps=data["fps"], size=tuple(data["size"]),
                 background=data["background"], seed=data["seed"])


def read_scenes(out: str | Path) -> dict[str, Scene]:
    """Clip name -> scene, from a benchmark folder's ``scenes.json``."""
    data = json.loads((Path(out) / "scenes.json").read_text(encoding="utf-8"))
    return {name: scene_from_json(s) for name, s in data.items()}


def make_synth_bench(
    out: str | Path,
    n: int,
    seed: int = 0,
    *,
    heldout: float = 0.25,
    on_clip: Callable[[str], None] | None = None,
) -> SynthBench:
    """Render ``n`` clips into ``out/videos``, write ``bench_train.json``, ``bench_heldout.json``
    (the official shape, paths relative to ``out``), ``scenes.json`` (the truth) and the core
    frames. Deterministic for a given ``(n, seed, heldout)``; clips already rendered are kept."""
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    if not 0.0 <= heldout <= 1.0:
        raise ValueError(f"heldout must be a share between 0 and 1, got {heldout}")
    out = Path(out)
    (out / "videos").mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    # Both splits hold a clip whenever there are two and the share is strictly between 0 and 1:
    # an empty benchmark file is refused by every reader.
    n_held = min(n - 1, max(1, round(n * heldout))) if n > 1 and 0.0 < heldout < 1.0 else round(n * heldout)
    held = set(rng.sample(range(n), n_held))
    items: dict[str, list[dict[str, Any]]] = {s: [] for s in SPLITS}
    clips: dict[str, list[str]] = {s: [] for s in SPLITS}
    scenes: dict[str, Any] = {}
    for index in range(n):
        clip = f"clip_{seed}_{index:04d}"
        scene = random_scene(clip_seed(seed, index))
        video = out / "videos" / f"{clip}.mp4"
        if not video.exists():
            tmp = video.with_name(video.stem + ".part.mp4")
            render_scene(scene, tmp)
            tmp.replace(video)
        split = "heldout" if index in held else "train"
        qrng = random.Random(clip_seed(seed, index) ^ 0x5EED)
        items[split].extend(_item(clip, scene, q, qrng, out) for q in scene_questions(scene, qrng))
        clips[split].append(clip)
        scenes[clip] = scene_to_json(scene)
        if on_clip is not None:
            on_clip(clip)
    write_json_atomic(out / "scenes.json", scenes, indent=1)
    files = {}
    for split in SPLITS:
        files[split] = out / f"bench_{split}.json"
        write_json_atomic(files[split], items[split], indent=2)
        if items[split]:
            read_bench(files[split])  # what was written reads back with the project's reader
    counts = {s: {k: sum(i["kind"] == k for i in items[s]) for k in KINDS} for s in SPLITS}
    return SynthBench(out, files, clips, counts)


__all__ = [
    "KINDS", "SPLITS", "SynthBench", "TASKS", "clip_seed", "make_synth_bench", "read_scenes",
    "scene_from_json", "scene_questions", "scene_to_json", "truth_caption",
]
