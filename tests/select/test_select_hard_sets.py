"""The hard selection set: deterministic, answerable only from the gold captions (order, counts,
causes), worded apart from its captions, and held out by template with no leak in the files the
benchmark writes."""

from __future__ import annotations

import pytest

from videoespresso.select.caption_sets import leaks, read_jsonl, split, make_caption_sets, write_case_files
from videoespresso.select.hard_sets import (
    HELDOUT_TEMPLATES, KINDS, TEMPLATES, TRAIN_TEMPLATES, make_hard_item, make_hard_sets,
)


@pytest.fixture(scope="module")
def train():
    return make_hard_sets(120, seed=0, split="train")


@pytest.fixture(scope="module")
def heldout():
    return make_hard_sets(60, seed=0, split="heldout")


def _plain(caption: str) -> str:
    return caption.lower().removesuffix(".")


def test_deterministic_and_independent_of_count(train):
    assert make_hard_sets(120, seed=0, split="train") == train
    assert make_hard_sets(7, seed=0, split="train") == train[:7]
    assert make_hard_item(3, seed=1) != train[3]


def test_items_are_well_formed(train, heldout):
    for it in [*train, *heldout]:
        n = len(it.captions)
        assert 10 <= n <= 12 and len(it.seconds) == n
        assert it.gold == sorted(set(it.gold)) and all(1 <= g <= n for g in it.gold), it.id
        assert it.answer in it.options and len(set(it.options)) == 4, it.id
    assert {it.kind for it in train} == set(KINDS) == {it.kind for it in heldout}


def test_the_answer_is_read_from_the_gold_captions(train, heldout):
    for it in [*train, *heldout]:
        gold = [_plain(it.captions[g - 1]) for g in it.gold]
        people, events, repeat, causes, _ = TEMPLATES[it.template]
        if it.kind in ("after", "before"):
            assert gold == [it.answer], it.id
            words = it.question.split(" starts to ")[1].removesuffix(", what happens?")
            caption = next(c for c, w in events if w == words)
            actor = it.question.split(" starts to ")[0].split(" ", 2)[2]
            anchor = [k for k, c in enumerate(it.captions, 1) if _plain(c) == f"{actor} {caption}"]
            assert anchor == [it.gold[0] + (-1 if it.kind == "after" else 1)], it.id
        elif it.kind == "between":
            assert ", then ".join(gold) == it.answer, it.id
        elif it.kind == "count":
            person = it.question.split(" does ")[1].removesuffix(f" {repeat[1]}?")
            doing = [k for k, c in enumerate(it.captions, 1) if _plain(c) == f"{person} {repeat[0]}"]
            assert doing == it.gold and ["once", "twice", "three times"][len(doing) - 1] == it.answer, it.id
            # the other character does it too: counting needs who, not only what
            assert any(_plain(c).endswith(repeat[0]) and not _plain(c).startswith(person) for c in it.captions)
        elif it.kind == "cause":
            assert gold == [it.answer], it.id
            assert any(it.answer == f"{p} {c}" for p in people for c, _, _ in causes), it.id
        else:
            assert gold[0].startswith(it.answer + " "), it.id


def test_questions_use_other_words_than_the_captions_that_answer(train):
    """The question's event words never appear in a caption that shows the event: only in the
    distractors where a character talks about it."""
    for it in train:
        if it.kind not in ("after", "before", "who"):
            continue
        words = it.question.split(" to ", 1)[1].split(",")[0].removesuffix("?")
        holding = [c for c in it.captions if words in c]
        assert holding and all(any(s in c for s in ("says it is time", "asks whether", "promises to")) for c in holding), it.id


def test_templates_are_held_out(train, heldout):
    assert {it.template for it in train} == set(TRAIN_TEMPLATES)
    assert {it.template for it in heldout} == set(HELDOUT_TEMPLATES)
    assert not set(TRAIN_TEMPLATES) & set(HELDOUT_TEMPLATES)


def test_the_benchmark_files_have_no_leak(tmp_path, train, heldout):
    """What bench_train_selector writes (train_cases.jsonl, heldout_<set>.jsonl), read back."""
    easy_train, easy_heldout = split(make_caption_sets(120, seed=0))
    files = write_case_files(tmp_path, [*easy_train, *train], [("easy", easy_heldout), ("hard", heldout)])
    written = read_jsonl(files["train"])
    assert len(written) == len(easy_train) + len(train)
    for name in ("easy", "hard"):
        assert leaks(written, read_jsonl(files[name])) == []
    # the check itself: a held-out item in training, and a held-out template, are both refused
    with pytest.raises(ValueError, match="id is in the training items"):
        write_case_files(tmp_path / "leak", [*train, heldout[0]], [("hard", heldout)])
    other = make_hard_sets(6, seed=5, split="heldout")
    assert any("template 'garden'" in p for p in leaks(other, heldout))
