"""The seeded caption sets: deterministic, answerable only from the gold captions, stably split,
and usable as selector input."""

from __future__ import annotations

import re

import pytest

from videoespresso.schema import FrameRef
from videoespresso.select.caption_sets import (
    SPACING_S, is_heldout, make_caption_sets, make_item, read_jsonl, split, write_jsonl,
)


@pytest.fixture(scope="module")
def items():
    return make_caption_sets(300, seed=0)


def test_deterministic_and_independent_of_count(items):
    assert make_caption_sets(300, seed=0) == items
    assert make_caption_sets(10, seed=0) == items[:10]
    assert make_item(5, seed=1) != items[5]


def test_items_are_well_formed(items):
    assert {it.kind for it in items} == {"colour", "after", "route"}
    for it in items:
        n = len(it.captions)
        assert 8 <= n <= 12 and len(it.seconds) == n
        assert it.seconds == [k * SPACING_S for k in range(n)]
        assert len(it.gold) == {"colour": 1, "after": 2, "route": 3}[it.kind]
        assert it.gold == sorted(set(it.gold)) and all(1 <= g <= n for g in it.gold)
        assert it.answer in it.options and len(set(it.options)) == 4
        assert it.answer_letter in "ABCD"


def test_the_answer_needs_the_gold_captions(items):
    for it in items:
        gold_text = " ".join(it.captions[g - 1] for g in it.gold).lower()
        other = [c.lower() for k, c in enumerate(it.captions, start=1) if k not in it.gold]
        if it.kind == "colour":
            target = it.question.split(" is the ")[1].split(" that ")[0]
            assert it.answer in gold_text and target in gold_text
            assert not any(re.search(rf"\b{target}\b", c) for c in other), it.id
        elif it.kind == "after":
            target = it.question.split(" with the ")[1].split(" after ")[0]
            assert all(target in it.captions[g - 1].lower() for g in it.gold)
            assert not any(re.search(rf"\b{target}\b", c) for c in other), it.id
        else:
            person = it.question.split(" does ")[1].split(" walk ")[0]
            walks = [k for k, c in enumerate(it.captions, start=1) if c.lower().startswith(f"{person} walks to")]
            assert walks == it.gold, it.id
            places = it.answer.split(", then ")
            assert [it.captions[g - 1].lower().removesuffix(".").split(" walks to ")[1] for g in it.gold] == places


def test_split_is_stable_and_roughly_a_fifth(items):
    train, heldout = split(items)
    assert len(train) + len(heldout) == 300
    assert 40 <= len(heldout) <= 80
    assert {it.id for it in heldout} == {it.id for it in items if is_heldout(it.id)}
    _, heldout_more = split(make_caption_sets(400, seed=0))
    assert {it.id for it in heldout} <= {it.id for it in heldout_more}


def test_jsonl_round_trip_and_bad_line(items, tmp_path):
    path = write_jsonl(items[:5], tmp_path / "cs.jsonl")
    assert read_jsonl(path) == items[:5]
    path.write_text(path.read_text() + '{"id": "broken"}\n')
    with pytest.raises(ValueError, match=r"cs.jsonl:6: not a caption-set item"):
        read_jsonl(path)


def test_selectors_run_on_an_item(items, tmp_path, minilm):
    from videoespresso.select.embedding import EmbeddingSelector
    from videoespresso.video.synth import StaticShot, make_video

    it = items[0]
    video = make_video(tmp_path / "still.mp4", [StaticShot(len(it.captions) * SPACING_S)], fps=1.0).path
    refs = [FrameRef(index=2 * k, seconds=2.0 * k) for k in range(len(it.captions))]
    sel = EmbeddingSelector(minilm, k=2).select(video, it.question, candidates=refs, captions=it.captions)
    assert len(sel.frames) == 2
    # the one caption naming the picked-up object ranks first
    assert sel.frames[int(max(range(2), key=lambda i: sel.scores[i]))].index // 2 + 1 == it.gold[0]


def test_core_frames_schema_bounds_numbers_and_count():
    from pydantic import ValidationError

    from videoespresso.select import core_frames_schema

    schema = core_frames_schema(10, 4)
    assert schema.model_validate({"frames": [3, 10]}).frames == [3, 10]
    for bad in ([], [11], [0], [1, 2, 3, 4, 5]):
        with pytest.raises(ValidationError):
            schema.model_validate({"frames": bad})
    assert core_frames_schema(2, 4).model_json_schema()["properties"]["frames"]["maxItems"] == 2


@pytest.mark.slow
def test_caption_llm_with_smollm2_needs_no_repair(items, tmp_path, smollm2):
    """The real SmolLM2 under the bounded schema: every reply valid JSON in range and within the
    limit (repeated numbers are possible: the grammar cannot forbid them, the parser drops them)."""
    from videoespresso.select import CaptionLLMSelector
    from videoespresso.video.synth import StaticShot, make_video

    video = make_video(tmp_path / "still.mp4", [StaticShot(12 * SPACING_S)], fps=1.0).path
    selector = CaptionLLMSelector(smollm2, max_frames=4)
    for it in items[:3]:
        refs = [FrameRef(index=2 * k, seconds=2.0 * k) for k in range(len(it.captions))]
        sel = selector.select(video, it.question, candidates=refs, captions=it.captions)
        assert sel.fallback is None and 1 <= len(sel.frames) <= 4
    assert set(selector.stats) <= {"duplicates"}


def test_a_users_file_with_its_own_kinds_reads(tmp_path):
    """What `bench_selection_quality.py --cases` scores: any kind name, no template."""
    line = ('{"id": "u1", "kind": "my-own-kind", "captions": ["A cat sleeps.", "A dog barks."], "seconds": [0.0, 3.5], '
            '"question": "Who barks?", "answer": "the dog", "options": ["the dog", "the cat", "a bird", "nobody"], '
            '"gold": [2]}\n')
    path = tmp_path / "mine.jsonl"
    path.write_text(line)
    (item,) = read_jsonl(path)
    assert item.kind == "my-own-kind" and item.template is None and item.answer_letter == "A"
