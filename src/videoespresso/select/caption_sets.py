"""Seeded caption sets with known core frames, for measuring (and training) frame selectors.

Each item is a small story told by N numbered captions with times (two characters in one
place, doing things with objects), a question answerable only from 1-3 of the captions, the
gold frame numbers (1-based, as a selector prompt shows them), the answer and four options
(the answer among three wrong ones, shuffled). Other captions are distractors on purpose: the
same characters doing other things, other objects, the scene itself, so that word overlap
alone does not find the gold frames.

Three question kinds:

* ``colour`` (1 gold frame): the colour of the one object a character picks up;
* ``after`` (2 gold frames): what a character does with an object after picking it up;
* ``route`` (3 gold frames): the three places a character walks to, in order.

The split into ``train`` and ``heldout`` is by a hash of the item id (stable when more items
are generated). Everything is a pure function of the seed.

    >>> from videoespresso.select.caption_sets import make_caption_sets, split
    >>> items = make_caption_sets(300, seed=0)
    >>> train, heldout = split(items)
"""

from __future__ import annotations

import hashlib
import random
from pathlib import Path
from typing import Any, Literal, Sequence

from pydantic import BaseModel, Field

Kind = Literal["colour", "after", "route"]
#: Seconds between consecutive captions.
SPACING_S = 2.0

_PEOPLE = ["the man", "the woman", "the boy", "the girl", "the old man", "the old woman", "the chef",
           "the nurse", "the mechanic", "the teacher", "the student", "the guard"]
_PLACES = {
    "kitchen": ["the sink", "the fridge", "the stove", "the window", "the table", "the cupboard"],
    "park": ["the bench", "the fountain", "the gate", "the oak tree", "the pond", "the playground"],
    "office": ["the printer", "the desk", "the window", "the coffee machine", "the door", "the whiteboard"],
    "garage": ["the workbench", "the car", "the shelf", "the door", "the toolbox", "the bicycle rack"],
    "street": ["the bus stop", "the crossing", "the shop", "the lamp post", "the corner", "the kiosk"],
    "classroom": ["the blackboard", "the desk", "the window", "the door", "the bookshelf", "the map"],
}
_OBJECTS = ["umbrella", "cup", "ball", "book", "phone", "bag", "key", "hat", "box", "bottle", "scarf",
            "camera", "letter", "apple", "toy car", "towel", "helmet", "notebook"]
_COLOURS = ["red", "blue", "green", "yellow", "black", "white", "orange", "purple", "brown", "pink"]
_AFTER = ["puts it in a drawer", "throws it into a bin", "hands it to a friend", "drops it on the floor",
          "washes it in the sink", "wraps it in paper", "hides it under a coat", "places it on a shelf"]
_AFTER_CAPTION = {
    "puts it in a drawer": "{p} puts the {o} in a drawer",
    "throws it into a bin": "{p} throws the {o} into a bin",
    "hands it to a friend": "{p} hands the {o} to a friend",
    "drops it on the floor": "{p} drops the {o} on the floor",
    "washes it in the sink": "{p} washes the {o} in the sink",
    "wraps it in paper": "{p} wraps the {o} in paper",
    "hides it under a coat": "{p} hides the {o} under a coat",
    "places it on a shelf": "{p} places the {o} on a shelf",
}
_IDLE = ["{p} sits down and rests", "{p} looks around slowly", "{p} checks the time", "{p} yawns",
         "{p} waves at someone outside the frame", "{p} ties a shoelace", "{p} laughs at a joke",
         "{p} stretches both arms", "{p} reads a sign on the wall", "{p} scratches {h} head"]
_SCENE = ["the {place} is quiet and nobody moves", "sunlight falls across {l}", "a dog walks past {l}",
          "a car drives by in the background", "the light flickers near {l}", "rain starts to fall outside",
          "a bird lands near {l}", "music plays somewhere in the {place}"]


class CaptionSetItem(BaseModel):
    """One question over numbered captions, with the frames it needs."""

    id: str
    #: The question kind (``colour``, ``after``, ``route`` here; any name in a user's file).
    kind: str
    #: The story template an item was drawn from, where the generator has templates
    #: (:mod:`~videoespresso.select.hard_sets`): the held-out split holds out whole templates.
    template: str | None = None
    captions: list[str]
    #: Presentation time of each caption's frame, seconds.
    seconds: list[float]
    question: str
    answer: str
    options: list[str] = Field(min_length=4, max_length=4)
    #: 1-based numbers of the captions the answer needs, ascending.
    gold: list[int]

    @property
    def answer_letter(self) -> str:
        return "ABCD"[self.options.index(self.answer)]


def _a(word: str) -> str:
    return f"an {word}" if word[0] in "aeiou" else f"a {word}"


def _cap(text: str) -> str:
    return text[0].upper() + text[1:] + "."


def _his(person: str) -> str:
    return "her" if any(w in person for w in ("woman", "girl", "nurse")) else "his"


def make_item(index: int, seed: int = 0) -> CaptionSetItem:
    """Item ``index`` of the caption sets drawn with ``seed`` (independent of other items)."""
    rng = random.Random(f"{seed}:{index}")
    kind: Kind = ("colour", "after", "route")[index % 3]
    place = rng.choice(sorted(_PLACES))
    landmarks = _PLACES[place]
    a, b = rng.sample(_PEOPLE, 2)
    n = rng.randint(8, 12)
    n_gold = {"colour": 1, "after": 2, "route": 3}[kind]
    gold = sorted(rng.sample(range(n), n_gold))
    objects = rng.sample(_OBJECTS, 6)
    target, others = objects[0], objects[1:]

    def filler(k: int) -> str:
        roll = rng.random()
        if roll < 0.35:
            return rng.choice(_SCENE).format(place=place, l=rng.choice(landmarks))
        person = rng.choice([a, b])
        if roll < 0.6:
            return rng.choice(_IDLE).format(p=person, h=_his(person))
        if roll < 0.8:
            # same characters, other objects: word overlap with the question, not the answer
            return f"{person} looks at {_a(rng.choice(_COLOURS))} {rng.choice(others)} near {rng.choice(landmarks)}"
        # the other character walks around (a distractor for ``route``)
        return f"{b} walks to {rng.choice(landmarks)}"

    captions = [filler(k) for k in range(n)]
    if kind == "colour":
        colour = rng.choice(_COLOURS)
        captions[gold[0]] = f"{a} picks up {_a(colour)} {target} near {rng.choice(landmarks)}"
        question = f"What colour is the {target} that {a} picks up?"
        answer = colour
        wrong = rng.sample([c for c in _COLOURS if c != colour], 3)
    elif kind == "after":
        action = rng.choice(_AFTER)
        colour = rng.choice(_COLOURS)
        captions[gold[0]] = f"{a} picks up {_a(colour)} {target} near {rng.choice(landmarks)}"
        captions[gold[1]] = _AFTER_CAPTION[action].format(p=a, o=target)
        question = f"What does {a} do with the {target} after picking it up?"
        answer = action
        wrong = rng.sample([x for x in _AFTER if x != action], 3)
    else:
        route = rng.sample(landmarks, 3)
        for k, place_k in zip(gold, route):
            captions[k] = f"{a} walks to {place_k}"
        question = f"Which three places does {a} walk to, in order?"
        answer = ", then ".join(route)
        wrong_set: set[str] = set()
        while len(wrong_set) < 3:
            wrong_set.add(", then ".join(rng.sample(landmarks, 3)))
            wrong_set.discard(answer)
        wrong = sorted(wrong_set)
    options = [answer, *wrong]
    rng.shuffle(options)
    return CaptionSetItem(
        id=f"cs{seed}-{index:05d}", kind=kind, captions=[_cap(c) for c in captions],
        seconds=[round(k * SPACING_S, 1) for k in range(n)], question=question, answer=answer,
        options=options, gold=[k + 1 for k in gold],
    )


def make_caption_sets(n: int, seed: int = 0) -> list[CaptionSetItem]:
    """``n`` items (kinds in rotation) drawn with ``seed``."""
    return [make_item(i, seed) for i in range(n)]


def is_heldout(item_id: str, heldout_share: float = 0.2) -> bool:
    """Whether an item belongs to the held-out split (by a hash of its id)."""
    digest = hashlib.sha256(item_id.encode("utf-8")).digest()
    return int.from_bytes(digest[:4], "big") / 2**32 < heldout_share


def split(items: Sequence[CaptionSetItem], heldout_share: float = 0.2) -> tuple[list[CaptionSetItem], list[CaptionSetItem]]:
    """(train, heldout) by :func:`is_heldout`."""
    train = [it for it in items if not is_heldout(it.id, heldout_share)]
    heldout = [it for it in items if is_heldout(it.id, heldout_share)]
    return train, heldout


def write_jsonl(items: Sequence[CaptionSetItem], path: str | Path) -> Path:
    """Write items as JSON lines (atomically: a temporary file, then a rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text("".join(it.model_dump_json() + "\n" for it in items), encoding="utf-8")
    tmp.replace(path)
    return path


def read_jsonl(path: str | Path) -> list[CaptionSetItem]:
    out = []
    for n, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), start=1):
        if line.strip():
            try:
                out.append(CaptionSetItem.model_validate_json(line))
            except ValueError as exc:
                raise ValueError(f"{path}:{n}: not a caption-set item: {str(exc).splitlines()[0]}") from None
    return out


def leaks(train: Sequence[CaptionSetItem], heldout: Sequence[CaptionSetItem]) -> list[str]:
    """Ways held-out items appear in training, one line each (empty: no leak): a shared id, a
    shared story (the same question over the same captions), a shared template where items
    name theirs (:mod:`~videoespresso.select.hard_sets` holds out whole templates)."""
    problems = []
    ids = {it.id for it in train}
    stories = {(it.question, tuple(it.captions)) for it in train}
    templates = {it.template for it in train if it.template is not None}
    for it in heldout:
        if it.id in ids:
            problems.append(f"held-out item {it.id}: its id is in the training items")
        if (it.question, tuple(it.captions)) in stories:
            problems.append(f"held-out item {it.id}: the same question over the same captions is in the training items")
        if it.template is not None and it.template in templates:
            problems.append(f"held-out item {it.id}: template {it.template!r} is in the training items")
    return problems


def write_case_files(out: str | Path, train: Sequence[CaptionSetItem],
                     heldout_sets: Sequence[tuple[str, Sequence[CaptionSetItem]]]) -> dict[str, Path]:
    """Write the items a benchmark trains on (``train_cases.jsonl``) and scores
    (``heldout_<name>.jsonl``), then read the files back and check them with :func:`leaks`:
    raises ValueError naming the first leak. The files can be scored again with
    ``bench_selection_quality.py --cases``."""
    out = Path(out)
    files = {"train": write_jsonl(train, out / "train_cases.jsonl")}
    for name, items in heldout_sets:
        files[name] = write_jsonl(items, out / f"heldout_{name}.jsonl")
    written = read_jsonl(files["train"])
    for name, _ in heldout_sets:
        problems = leaks(written, read_jsonl(files[name]))
        if problems:
            raise ValueError(f"held-out set {name} leaks into training ({len(problems)} items): {problems[0]}")
    return files


def summary(items: Sequence[CaptionSetItem]) -> dict[str, Any]:
    kinds: dict[str, int] = {}
    for it in items:
        kinds[it.kind] = kinds.get(it.kind, 0) + 1
    return {"items": len(items), "kinds": kinds,
            "captions_mean": round(sum(len(it.captions) for it in items) / max(1, len(items)), 2)}


__all__ = ["CaptionSetItem", "make_caption_sets", "make_item", "split", "is_heldout", "write_jsonl",
           "read_jsonl", "leaks", "write_case_files", "summary", "SPACING_S"]
