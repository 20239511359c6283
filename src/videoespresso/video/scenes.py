"""Scenes with known content: solid shapes on a plain background, rendered to a real video file.

A :class:`Scene` is the ground truth. It says which objects (colour, shape, size) are where in
every frame, which events happen and when (an object enters, leaves, starts moving in a
direction, stops, changes colour), and so how many objects are visible at any time. Objects are
solid table colours (:mod:`videoespresso.video.colours`) on a plain background and never touch,
so classical vision can be exact on them and every quality figure measured on them is a
figure against the truth.

    >>> from videoespresso.video.scenes import random_scene, render_scene
    >>> scene = random_scene(seed=3)
    >>> clip = render_scene(scene, "/tmp/scene.mp4")  # doctest: +SKIP
    >>> [e.text for e in scene.events()]  # doctest: +SKIP
    ['the green circle enters', 'the green circle starts moving left', ...]

Objects appear and disappear in place ("enter" and "leave" are instants), a move lasts
:data:`MOVE_SECONDS` at constant speed, and events are at least a second apart, so a 1 fps
sampler sees each state.
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from .colours import COLOURS
from .synth import Drawn, SynthVideo, make_video

Shape = Literal["square", "circle", "triangle"]
Size = Literal["small", "medium", "large"]
Direction = Literal["left", "right", "up", "down"]
EventKind = Literal["enter", "leave", "move", "stop", "recolour"]

SHAPES: tuple[Shape, ...] = ("square", "circle", "triangle")
SIZES: tuple[Size, ...] = ("small", "medium", "large")
DIRECTIONS: tuple[Direction, ...] = ("left", "right", "up", "down")
#: Object colours scenes use (the background is black, so all of them stand out).
PALETTE: tuple[str, ...] = ("red", "orange", "yellow", "green", "cyan", "blue", "purple", "white")
#: Side of an object as a fraction of the frame height, per size word.
SIZE_FRACTION: dict[str, float] = {"small": 0.13, "medium": 0.21, "large": 0.31}
_STEP = {"left": (-1, 0), "right": (1, 0), "up": (0, -1), "down": (0, 1)}
MOVE_SECONDS = 1.0
SLOT_SECONDS = 2.0


@dataclass(frozen=True)
class Motion:
    start_s: float
    end_s: float
    direction: Direction
    #: Pixels per second.
    speed: float


@dataclass(frozen=True)
class SceneObject:
    id: str
    colour: str
    shape: Shape
    size: Size
    #: Centre (pixels) when it enters.
    x: float
    y: float
    enter_s: float = 0.0
    leave_s: float | None = None
    motions: tuple[Motion, ...] = ()
    #: ``(time_s, new colour)``, in time order.
    recolours: tuple[tuple[float, str], ...] = ()

    @property
    def name(self) -> str:
        """How questions and captions name it: its first colour and its shape."""
        return f"{self.colour} {self.shape}"


@dataclass(frozen=True)
class ObjectTruth:
    """One visible object in one frame."""

    id: str
    colour: str
    shape: Shape
    size: Size
    #: Pixel corner box ``(x0, y0, x1, y1)``, x1/y1 exclusive.
    box: tuple[int, int, int, int]
    #: Direction it is moving in at that time, or None when still.
    moving: Direction | None

    @property
    def centre(self) -> tuple[float, float]:
        x0, y0, x1, y1 = self.box
        return ((x0 + x1) / 2, (y0 + y1) / 2)


@dataclass(frozen=True)
class Event:
    time_s: float
    kind: EventKind
    object: str
    #: The object as named at the time ("the red square").
    text: str
    direction: Direction | None = None
    colour: str | None = None


@dataclass(frozen=True)
class Scene:
    objects: tuple[SceneObject, ...]
    seconds: float
    fps: float = 10.0
    size: tuple[int, int] = (256, 192)
    background: str = "black"
    seed: int | None = None

    @property
    def num_frames(self) -> int:
        return int(round(self.seconds * self.fps))

    def object(self, object_id: str) -> SceneObject:
        return next(o for o in self.objects if o.id == object_id)

    def side(self, obj: SceneObject) -> int:
        return int(round(SIZE_FRACTION[obj.size] * self.size[1]))

    def state(self, obj: SceneObject, t: float) -> ObjectTruth | None:
        """Where ``obj`` is at time ``t`` (its box, colour, motion), or None when not visible."""
        if t < obj.enter_s - 1e-9 or (obj.leave_s is not None and t >= obj.leave_s - 1e-9):
            return None
        x, y = obj.x, obj.y
        moving: Direction | None = None
        for m in obj.motions:
            done = min(max(t - m.start_s, 0.0), m.end_s - m.start_s)
            dx, dy = _STEP[m.direction]
            x += dx * m.speed * done
            y += dy * m.speed * done
            if m.start_s - 1e-9 <= t < m.end_s - 1e-9:
                moving = m.direction
        colour = obj.colour
        for when, new in obj.recolours:
            if t >= when - 1e-9:
                colour = new
        s = self.side(obj)
        x0, y0 = int(round(x - s / 2)), int(round(y - s / 2))
        return ObjectTruth(obj.id, colour, obj.shape, obj.size, (x0, y0, x0 + s, y0 + s), moving)

    def frame_time(self, index: int) -> float:
        return index / self.fps

    def frame_truth(self, index: int) -> list[ObjectTruth]:
        """The visible objects of frame ``index``, in scene order."""
        t = self.frame_time(index)
        return [s for s in (self.state(o, t) for o in self.objects) if s is not None]

    def frame_of(self, t: float) -> int:
        """The first frame at or after time ``t``."""
        return min(self.num_frames - 1, max(0, int(np.ceil(t * self.fps - 1e-6))))

    def events(self) -> list[Event]:
        """Every event, in time order (objects present from the first frame do not "enter")."""
        out: list[Event] = []
        for o in self.objects:
            if o.enter_s > 0:
                out.append(Event(o.enter_s, "enter", o.id, f"the {self._named(o, o.enter_s)} enters"))
            for m in o.motions:
                name = self._named(o, m.start_s)
                out.append(Event(m.start_s, "move", o.id, f"the {name} starts moving {m.direction}", direction=m.direction))
                out.append(Event(m.end_s, "stop", o.id, f"the {self._named(o, m.end_s)} stops"))
            for when, new in o.recolours:
                before = self._named(o, when - 1e-3)
                out.append(Event(when, "recolour", o.id, f"the {before} turns {new}", colour=new))
            if o.leave_s is not None:
                out.append(Event(o.leave_s, "leave", o.id, f"the {self._named(o, o.leave_s - 1e-3)} leaves"))
        return sorted(out, key=lambda e: (e.time_s, e.object))

    def _named(self, obj: SceneObject, t: float) -> str:
        colour = obj.colour
        for when, new in obj.recolours:
            if t >= when - 1e-9:
                colour = new
        return f"{colour} {obj.shape}"

    def render(self, index: int) -> np.ndarray:
        """Frame ``index`` as an ``(h, w, 3)`` uint8 array."""
        w, h = self.size
        img = np.empty((h, w, 3), dtype=np.uint8)
        img[:] = COLOURS[self.background]
        for truth in self.frame_truth(index):
            x0, y0, x1, y1 = truth.box
            mask = shape_mask(truth.shape, x1 - x0, y1 - y0)
            cx0, cy0, cx1, cy1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
            if cx1 <= cx0 or cy1 <= cy0:
                continue
            sub = mask[cy0 - y0 : cy1 - y0, cx0 - x0 : cx1 - x0]
            img[cy0:cy1, cx0:cx1][sub] = COLOURS[truth.colour]
        return img


def shape_mask(shape: str, w: int, h: int) -> np.ndarray:
    """A boolean ``(h, w)`` mask of ``shape`` filling its box (a triangle points up)."""
    yy, xx = np.mgrid[0:h, 0:w]
    cx, cy = (w - 1) / 2, (h - 1) / 2
    if shape == "square":
        return np.ones((h, w), dtype=bool)
    if shape == "circle":
        return ((xx - cx) / (w / 2)) ** 2 + ((yy - cy) / (h / 2)) ** 2 <= 1.0
    if shape == "triangle":
        half = (yy + 0.5) / h * (w / 2)
        return np.abs(xx - cx) <= half
    raise ValueError(f"unknown shape {shape!r}; known: {', '.join(SHAPES)}")


def render_scene(scene: Scene, path: str | os.PathLike[str], *, crf: int = 16, codec: str = "h264") -> SynthVideo:
    """Encode ``scene`` to ``path`` with PyAV (through :func:`make_video`, no barcode)."""
    segment = Drawn(scene.seconds, lambda t: scene.render(scene.frame_of(t)), kind="scene")
    return make_video(path, [segment], fps=scene.fps, size=scene.size, codec=codec, barcode=False, crf=crf)


# --------------------------------------------------------------------------- random scenes


def random_scene(
    seed: int,
    *,
    objects: tuple[int, int] = (2, 3),
    fps: float = 10.0,
    size: tuple[int, int] = (256, 192),
) -> Scene:
    """A seeded scene: 2-3 objects of distinct colours, one of which moves once and stops;
    the others enter one by one, and possibly one changes colour and one leaves.

    Events fall in :data:`SLOT_SECONDS` slots, one per slot, in a random order that respects
    each object's life (it enters before it moves, it leaves last). Placements are drawn until
    no two objects ever overlap and every object stays inside the frame.
    """
    rng = random.Random(seed)
    for _attempt in range(200):
        scene = _draw(rng, objects, fps, size, seed)
        if scene is not None:
            return scene
    raise RuntimeError(f"random_scene(seed={seed}): no non-overlapping layout found")


def _draw(rng: random.Random, counts: tuple[int, int], fps: float, size: tuple[int, int], seed: int) -> Scene | None:
    w, h = size
    k = rng.randint(*counts)
    colours = rng.sample(PALETTE, k + 1)
    spare = colours.pop()
    ids = [f"o{i + 1}" for i in range(k)]
    shapes = {i: rng.choice(SHAPES) for i in ids}
    sizes = {i: rng.choice(SIZES) for i in ids}
    at_start = ids[: rng.randint(1, k - 1)]
    mover = rng.choice(ids)
    recolour = rng.choice([i for i in ids if i != mover] + [None])
    leaver = rng.choice([i for i in ids if i != mover] + [None])
    # Actions to place in slots, each with what must come before it.
    actions: list[tuple[str, str]] = [("enter", i) for i in ids if i not in at_start]
    actions.append(("move", mover))
    if recolour is not None:
        actions.append(("recolour", recolour))
    if leaver is not None:
        actions.append(("leave", leaver))
    order: list[tuple[str, str]] = []
    pending = list(actions)
    while pending:
        ready = [a for a in pending if _ready(a, order, pending, at_start)]
        pick = rng.choice(ready)
        order.append(pick)
        pending.remove(pick)
    times = {a: 1.0 + SLOT_SECONDS * n for n, a in enumerate(order)}
    seconds = 1.0 + SLOT_SECONDS * len(order) + 1.0
    direction = rng.choice(DIRECTIONS)
    side_of = {i: SIZE_FRACTION[sizes[i]] * h for i in ids}
    distance = rng.uniform(0.25, 0.4) * (w if direction in ("left", "right") else h)
    objs = []
    for i in ids:
        s = side_of[i]
        x = rng.uniform(s / 2 + 2, w - s / 2 - 2)
        y = rng.uniform(s / 2 + 2, h - s / 2 - 2)
        motions: tuple[Motion, ...] = ()
        if i == mover:
            start = times[("move", i)]
            motions = (Motion(start, start + MOVE_SECONDS, direction, distance / MOVE_SECONDS),)
        objs.append(SceneObject(
            id=i, colour=colours[ids.index(i)], shape=shapes[i], size=sizes[i], x=x, y=y,
            enter_s=0.0 if i in at_start else times[("enter", i)],
            leave_s=times.get(("leave", i)),
            motions=motions,
            recolours=((times[("recolour", i)], spare),) if ("recolour", i) in times else (),
        ))
    scene = Scene(tuple(objs), seconds=seconds, fps=fps, size=size, seed=seed)
    return scene if _layout_ok(scene) else None


def _ready(action: tuple[str, str], done: list[tuple[str, str]], pending: list[tuple[str, str]], at_start: list[str]) -> bool:
    kind, obj = action
    if kind == "enter":
        return True
    entered = obj in at_start or ("enter", obj) in done
    if kind == "leave":
        # Once gone it does nothing more: it leaves after its other actions.
        return entered and not any(a[1] == obj and a != action for a in pending)
    return entered


def _layout_ok(scene: Scene, margin: int = 6) -> bool:
    w, h = scene.size
    for i in range(scene.num_frames):
        truths = scene.frame_truth(i)
        for t in truths:
            x0, y0, x1, y1 = t.box
            if x0 < 2 or y0 < 2 or x1 > w - 2 or y1 > h - 2:
                return False
        for a in range(len(truths)):
            for b in range(a + 1, len(truths)):
                p, q = truths[a].box, truths[b].box
                if not (p[2] + margin <= q[0] or q[2] + margin <= p[0] or p[3] + margin <= q[1] or q[3] + margin <= p[1]):
                    return False
    return True


__all__ = [
    "DIRECTIONS", "Event", "Motion", "ObjectTruth", "PALETTE", "SHAPES", "SIZES", "Scene",
    "SceneObject", "random_scene", "render_scene", "shape_mask",
]
