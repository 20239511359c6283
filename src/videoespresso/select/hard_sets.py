"""A harder seeded selection set: questions about the order of events and their causes, worded
with synonyms, over stories with distractor captions that share the question's words.

Each item is a story of 10-12 numbered captions in one of eight **templates** (a kitchen, a
workshop, a park, an office, a garden, a station, a library, a beach), each with its two
characters and its own bank of events. An event has the words a caption uses ("cracks two eggs
into a bowl") and other words that mean the same, used by questions only ("break some eggs"),
so a question rarely shares its content words with the caption that answers it. Six kinds:

* ``after``: "Right after the chef starts to break some eggs, what happens?": the gold frame is
  the one after the eggs are cracked (the anchor itself is not gold: the answer is not in it);
* ``before``: the same with the frame before;
* ``between``: "What happens after A ... and before B ...?": the one or two frames between;
* ``count``: "How many times does the chef taste the food?": every frame where that character
  does it (1-3); the other character does it too (not gold);
* ``cause``: "What makes the chef run a hand under the tap?": the earlier frame of the cause
  ("the chef touches the hot pan"), two to four frames before its effect;
* ``who``: "Who is the one to break some eggs?": the frame where it happens.

Gold frames are the frames the answer is read from. Distractors are fair, not adversarial:
scene captions, idle actions, and for the question's anchor event one caption where the other
character *speaks about* doing it ("the waiter says it is time to break some eggs"): that
caption holds the question's own words, and only reading (who does what, and when) tells it
from the event. Options are four events of the same story (the answer and three others), so the
answer is never given away by words foreign to the story.

The split holds out **templates**, not only items: items of ``train`` use the first six
templates, items of ``heldout`` the last two (a garden and a station), so a model that
memorised the training stories has seen no held-out story, character or event. Item ids name
their split and template. Everything is a pure function of the seed.

    >>> from videoespresso.select.hard_sets import make_hard_sets
    >>> train = make_hard_sets(600, seed=0, split="train")
    >>> heldout = make_hard_sets(60, seed=0, split="heldout")
"""

from __future__ import annotations

import random
from typing import Literal

from .caption_sets import SPACING_S, CaptionSetItem

HardSplit = Literal["train", "heldout"]
KINDS = ("after", "before", "between", "count", "cause", "who")

# template -> (characters, events [(caption words, question words)], repeated action, cause pairs,
# scene lines). Question words are in the base form ("break some eggs").
_T = dict[str, tuple[list[str], list[tuple[str, str]], tuple[str, str], list[tuple[str, str, str]], list[str]]]
TEMPLATES: _T = {
    "kitchen": (["the chef", "the waiter"], [
        ("cracks two eggs into a bowl", "break some eggs"), ("chops an onion on the board", "slice the onion"),
        ("stirs the soup with a spoon", "mix the broth"), ("opens the oven door", "pull the oven open"),
        ("washes a pan in the sink", "clean a skillet"), ("puts a plate on the counter", "set down a dish"),
        ("turns off the stove", "switch the cooker off"), ("rolls out the dough", "flatten the pastry"),
    ], ("tastes the sauce", "sample the food"), [
        ("touches the hot pan", "holds a hand under cold water", "run a hand under the tap"),
        ("drops a glass on the floor", "sweeps up the broken pieces", "clean up the shards"),
    ], ["the kitchen is warm and steamy", "a timer rings somewhere", "steam rises from a pot"]),
    "workshop": (["the carpenter", "the apprentice"], [
        ("saws a plank in half", "cut the wood"), ("sands the edge of a board", "smooth the timber"),
        ("hammers a nail into the frame", "knock in a pin"), ("measures the shelf with a tape", "check the length"),
        ("paints the door blue", "colour the door"), ("drills a hole in the wall", "bore into the wall"),
        ("glues two pieces together", "stick the parts together"), ("oils the hinges", "grease the joints"),
    ], ("wipes the workbench", "clean the table"), [
        ("drops a heavy box on a foot", "limps to a chair", "hobble to a seat"),
        ("knocks over a tin of paint", "fetches a cloth", "go and get a rag"),
    ], ["sawdust floats in the light", "a radio plays in the workshop", "the workshop is cold"]),
    "park": (["the boy", "the dog walker"], [
        ("throws a ball for the dog", "toss something for the pet"), ("climbs the oak tree", "go up a tree"),
        ("feeds the ducks at the pond", "give bread to the birds"), ("buys an ice cream at the kiosk", "get a cone"),
        ("kicks a pile of leaves", "scatter the foliage"), ("ties the dog to the gate", "fasten the pet"),
        ("takes a photo of the fountain", "photograph the water feature"), ("flies a kite", "send a kite up"),
    ], ("checks a phone", "look at the mobile"), [
        ("trips over a root", "rubs a sore knee", "nurse a hurt leg"),
        ("gets hit by a sudden shower", "opens an umbrella", "put up a brolly"),
    ], ["the park is green and calm", "a jogger passes in the distance", "clouds move over the park"]),
    "office": (["the manager", "the intern"], [
        ("prints a report", "make a printout"), ("answers the phone", "pick up a call"),
        ("writes on the whiteboard", "note something on the board"), ("makes a cup of coffee", "brew a hot drink"),
        ("files papers in a cabinet", "store the documents"), ("types an email", "send a message"),
        ("waters the plant", "give the fern a drink"), ("locks the door", "secure the entrance"),
    ], ("looks at the clock", "check the time"), [
        ("spills coffee on the keyboard", "dries the keys with a tissue", "mop up the keys"),
        ("hears the fire alarm", "walks quickly to the exit", "hurry out of the room"),
    ], ["the office is bright and quiet", "a printer hums in a corner", "phones ring in the next room"]),
    "library": (["the librarian", "the reader"], [
        ("stamps a book", "mark a volume"), ("shelves three novels", "put some stories back"),
        ("opens an atlas", "look inside a book of maps"), ("photocopies a page", "duplicate a sheet"),
        ("returns a book at the desk", "hand back a volume"), ("switches on a reading lamp", "turn a light on"),
        ("writes a note on a card", "jot something down"), ("pushes a trolley of books", "wheel a cart"),
    ], ("turns a page", "flip over a leaf"), [
        ("knocks a pile of books off a table", "picks the books up from the floor", "gather volumes from the ground"),
        ("finds the room too dark", "opens the curtains", "let some daylight in"),
    ], ["the library is silent", "dust drifts between the shelves", "a clock ticks on the wall"]),
    "beach": (["the surfer", "the lifeguard"], [
        ("paddles out on a board", "swim out to sea"), ("builds a sandcastle", "make a tower of sand"),
        ("puts up a parasol", "raise a sunshade"), ("collects shells", "gather some seashells"),
        ("blows a whistle", "sound a signal"), ("rubs on sun cream", "apply lotion"),
        ("eats a sandwich", "have a snack"), ("jogs along the shore", "run by the sea"),
    ], ("looks through binoculars", "scan the horizon"), [
        ("steps on a crab", "hops on one foot", "jump about on one leg"),
        ("sees a swimmer in trouble", "runs into the water", "rush into the waves"),
    ], ["waves roll onto the beach", "gulls circle above the sand", "the sun is bright over the sea"]),
    "garden": (["the gardener", "the neighbour"], [
        ("digs a hole by the fence", "make a pit in the soil"), ("plants a rose bush", "put in a flower"),
        ("waters the tomatoes", "sprinkle the vegetables"), ("trims the hedge", "cut back the shrubs"),
        ("picks strawberries", "gather some fruit"), ("rakes the lawn", "clear the grass"),
        ("fills the bird feeder", "top up the seed tray"), ("pushes the wheelbarrow to the shed", "wheel the cart away"),
    ], ("wipes sweat from the brow", "mop the forehead"), [
        ("gets stung by a bee", "puts ice on an arm", "cool a sore spot"),
        ("sees the soil is dry", "turns on the sprinkler", "start the watering"),
    ], ["the garden is full of flowers", "a cat sleeps on the wall", "wind moves the leaves"]),
    "station": (["the traveller", "the porter"], [
        ("buys a ticket at the machine", "get a pass"), ("reads the timetable", "study the schedule"),
        ("carries a suitcase up the stairs", "haul luggage upstairs"), ("boards the train", "get on the carriage"),
        ("sits down in the waiting room", "take a seat indoors"), ("buys a coffee at the cafe", "get a hot drink"),
        ("waves goodbye to a friend", "say farewell"), ("shows a ticket to the guard", "present the pass to staff"),
    ], ("checks the departure board", "look at the screen of trains"), [
        ("hears the train is late", "sighs and sits down", "slump onto a bench"),
        ("drops a bag on the platform", "bends down to pick it up", "stoop to the ground"),
    ], ["the station is busy", "an announcement echoes", "a train pulls in on the far track"]),
}
TRAIN_TEMPLATES = ("kitchen", "workshop", "park", "office", "library", "beach")
HELDOUT_TEMPLATES = ("garden", "station")
_IDLE = ["{p} looks around", "{p} yawns", "{p} stretches both arms", "{p} checks a pocket", "{p} laughs"]
_COUNT_WORDS = ["once", "twice", "three times", "four times"]
#: Captions where a character talks about an event without doing it (the question's own words).
_SPEECH = ["{p} says it is time to {w}", "{p} asks whether someone will {w}", "{p} promises to {w} later"]


def _cap(text: str) -> str:
    return text[0].upper() + text[1:] + "."


def make_hard_item(index: int, seed: int = 0, split: HardSplit = "train") -> CaptionSetItem:
    """Item ``index`` of ``split`` drawn with ``seed`` (independent of other items)."""
    rng = random.Random(f"hard:{seed}:{split}:{index}")
    names = TRAIN_TEMPLATES if split == "train" else HELDOUT_TEMPLATES
    template = names[(index // len(KINDS)) % len(names)]
    kind = KINDS[index % len(KINDS)]
    people, events, repeat, causes, scenes = TEMPLATES[template]
    a, b = rng.sample(people, 2)
    n = rng.randint(10, 12)
    # each slot: (caption, tag); tags name events so questions can point at them
    story_events = rng.sample(events, len(events))
    slots: list[str | None] = [None] * n

    def event_text(k: int) -> tuple[str, str, str]:
        caption, words = story_events[k % len(story_events)]
        actor = rng.choice([a, b])
        return actor, f"{actor} {caption}", words

    def speech(words: str, speaker: str, away_from: list[int], count: int = 2) -> None:
        """``count`` captions of ``speaker`` talking about ``words``, on free slots not next to ``away_from``."""
        free = [k for k in range(n) if slots[k] is None and all(abs(k - j) > 1 for j in away_from)]
        free = free or [k for k in range(n) if slots[k] is None]
        for k, line in zip(rng.sample(free, min(count, len(free))), rng.sample(_SPEECH, count)):
            slots[k] = line.format(p=speaker, w=words)

    used = 0
    question, answer, gold, others = "", "", [], []
    if kind in ("after", "before"):
        anchor = rng.randrange(1, n - 1)
        other_pos = anchor + 1 if kind == "after" else anchor - 1
        actor, text, words = event_text(used)
        slots[anchor] = text
        _, target, _ = event_text(used + 1)
        slots[other_pos] = target
        used += 2
        where = "Right after" if kind == "after" else "Just before"
        question = f"{where} {actor} starts to {words}, what happens?"
        answer, gold = target, [other_pos]
        speech(words, a if actor == b else b, [anchor])
    elif kind == "between":
        width = rng.choice([1, 2])
        start = rng.randrange(0, n - width - 1)
        actor1, first, words1 = event_text(0)
        actor2, last, words2 = event_text(1)
        slots[start], slots[start + width + 1] = first, last
        middle = []
        for j in range(width):
            _, text, _ = event_text(2 + j)
            slots[start + 1 + j] = text
            middle.append(text)
        used = 2 + width
        question = f"What happens after {actor1} starts to {words1} and before {actor2} starts to {words2}?"
        answer, gold = ", then ".join(middle), list(range(start + 1, start + 1 + width))
        options_pool = []
        for j in range(3):
            _, t1, _ = event_text(used + j)
            options_pool.append(t1 if width == 1 else f"{t1}, then {event_text(used + j + 3)[1]}")
        others = options_pool
    elif kind == "count":
        times = rng.randint(1, 3)
        mine = sorted(rng.sample(range(n), times))
        for k in mine:
            slots[k] = f"{a} {repeat[0]}"
        theirs = rng.sample([k for k in range(n) if slots[k] is None], rng.randint(2, 3))
        for k in theirs:
            slots[k] = f"{b} {repeat[0]}"
        speech(repeat[1], b, mine, count=1)
        question = f"How many times does {a} {repeat[1]}?"
        answer, gold = _COUNT_WORDS[times - 1], mine
        others = [w for w in _COUNT_WORDS if w != answer]
    elif kind == "cause":
        cause, effect, words = rng.choice(causes)
        gap = rng.randint(2, 4)
        at = rng.randrange(0, n - gap)
        slots[at], slots[at + gap] = f"{a} {cause}", f"{a} {effect}"
        speech(words, b, [at])
        question = f"What makes {a} {words}?"
        answer, gold = f"{a} {cause}", [at]
    else:  # who
        at = rng.randrange(n)
        caption, words = story_events[0]
        slots[at] = f"{a} {caption}"
        used = 1
        question = f"Who is the one to {words}?"
        answer, gold = a, [at]
        speech(words, b, [at], count=3)
        others = [b, *rng.sample([p for t in TEMPLATES.values() for p in t[0] if p not in (a, b)], 2)]
    for k in range(n):
        if slots[k] is not None:
            continue
        roll = rng.random()
        person = rng.choice([a, b])
        if roll < 0.3:
            slots[k] = rng.choice(scenes)
        elif roll < 0.55:
            slots[k] = rng.choice(_IDLE).format(p=person)
        elif used < len(story_events):  # each event once, so "right after X" names one moment
            _, slots[k], _ = event_text(used)
            used += 1
        else:
            slots[k] = rng.choice(_IDLE).format(p=person)
    captions = [_cap(c) for c in slots if c is not None]
    if not others:
        pool = sorted({c for k, c in enumerate(slots) if k not in gold and c is not None and c != answer
                       and not c.startswith(tuple(scenes)) and not any(c.startswith(f"{p} {line.split(' ', 1)[1].split('{w}')[0]}") for p in people for line in _SPEECH)
                       and any(c == f"{p} {e}" for p in people for e, _ in events)})
        extra = [f"{p} {e}" for p in people for e, _ in events if f"{p} {e}" != answer and f"{p} {e}" not in pool]
        others = rng.sample(pool, min(3, len(pool)))
        others += rng.sample(extra, 3 - len(others))
    options = [answer, *others[:3]]
    rng.shuffle(options)
    return CaptionSetItem(
        id=f"hs{seed}-{split}-{template}-{index:05d}", kind=kind, template=template, captions=captions,
        seconds=[round(k * SPACING_S, 1) for k in range(n)], question=question, answer=answer,
        options=options, gold=sorted(g + 1 for g in gold),
    )


def make_hard_sets(n: int, seed: int = 0, split: HardSplit = "train") -> list[CaptionSetItem]:
    """``n`` items of ``split`` (templates and kinds in rotation) drawn with ``seed``."""
    return [make_hard_item(i, seed, split) for i in range(n)]


__all__ = ["make_hard_sets", "make_hard_item", "TEMPLATES", "TRAIN_TEMPLATES", "HELDOUT_TEMPLATES", "KINDS"]
