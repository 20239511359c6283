"""The official prompt is reproduced character for character; evidence is a real switch."""

from __future__ import annotations

import pytest

from videoespresso.bench.prompts import render_prompt, template_id, template_names
from videoespresso.errors import ConfigError
from videoespresso.schema import BenchItem


def _item() -> BenchItem:
    return BenchItem(
        id="0",
        video_path="all_video/x.mp4",
        question="Why does the man open the door",
        options=["He hears a knock", "He is leaving", "The dog wants out", "Wind"],
        raw_options=["(A): He hears a knock", "(B): He is leaving", "(C): The dog wants out", "(D): Wind"],
        correct_answer="A",
        evidence="A <obj_start>man<obj_end><box_start>[[50, 50, 20, 60]]<box_end> walks to the door.",
        task="Causal Inference",
    )


def _official(item: BenchItem, with_evidence: bool) -> str:
    # The construction in eval/close_ended.py, written out independently of our template file.
    options_prompt = ""
    for prefix, raw in zip(["\n(A) ", "(B) ", "(C) ", "(D) "], item.raw_options):
        options_prompt += prefix + raw.split("):", 1)[-1].strip() + "\n"
    if with_evidence:
        return (
            f"Please finish the {item.task} task. Question: {item.question}. Your inference evidence is "
            f"{item.evidence}. You have the following options: {options_prompt}. Select the answer and "
            "only give the option letters."
        )
    return (
        f"Please finish the {item.task} task. Question: {item.question}. You have the following options: "
        f"{options_prompt}. Select the answer and only give the option letters."
    )


@pytest.mark.parametrize("with_evidence", [False, True])
def test_official_template_is_verbatim(with_evidence: bool) -> None:
    item = _item()
    assert render_prompt(item, "official", with_evidence=with_evidence) == _official(item, with_evidence)


def test_evidence_off_means_off() -> None:
    for name in template_names():
        text = render_prompt(_item(), name, with_evidence=False)
        assert "obj_start" not in text and "evidence" not in text.lower()
        assert "obj_start" in render_prompt(_item(), name, with_evidence=True)


def test_template_ids_carry_version_and_hash() -> None:
    ids = {template_id(name) for name in template_names()}
    assert len(ids) == len(template_names())
    assert template_id("official").startswith("official@1:")
    with pytest.raises(ConfigError, match="unknown prompt template"):
        render_prompt(_item(), "nope")
