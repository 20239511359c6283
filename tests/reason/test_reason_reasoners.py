"""Direct and two-stage reasoners with the tiny Qwen2-VL checkpoint (random weights: structure
only). The two-stage test checks the prompt the model actually received in stage 2."""

from dataclasses import dataclass

import pytest
from PIL import Image

from videoespresso.errors import ConfigError
from videoespresso.reason import (
    ANSWER_CUE,
    EVIDENCE_CUE,
    DirectReasoner,
    ReasonRequest,
    ReasonResult,
    TwoStageReasoner,
    make_reasoner,
)
from videoespresso.schema import FrameRef, GenerationSettings

OPTIONS = ["He opens the door", "He sits down", "He runs away", "He waves"]


@dataclass
class Shown:
    image: Image.Image
    ref: FrameRef


@pytest.fixture(scope="module")
def frames():
    colours = [(200, 30, 30), (30, 200, 30), (30, 30, 200)]
    return [Shown(Image.new("RGB", (56, 56), c), FrameRef(index=25 * i, seconds=1.0 * i))
            for i, c in enumerate(colours)]


SETTINGS = GenerationSettings(max_new_tokens=12)


def check_stage(stage, name):
    assert stage.stage == name
    assert isinstance(stage.output, str)
    assert stage.prompt_tokens and stage.prompt_tokens > 0
    assert stage.completion_tokens is not None and 0 <= stage.completion_tokens <= 12
    assert stage.prompt_template.startswith("reason/") and "@v" in stage.prompt_template


def test_two_stage_feeds_stage_one_evidence_into_stage_two(tiny_vlm, frames):
    reasoner = TwoStageReasoner(tiny_vlm, SETTINGS)
    result = reasoner.answer(frames, "What does the man do after entering?", OPTIONS)
    assert isinstance(result, ReasonResult) and result.mode == "close"
    evidence_stage, answer_stage = result.stages
    check_stage(evidence_stage, "evidence")
    check_stage(answer_stage, "answer")
    assert result.evidence == " ".join(evidence_stage.output.split())
    # the last generate call was stage 2: its rendered prompt holds stage 1's evidence
    received = tiny_vlm.last_prompts[0]
    assert f"Evidence: {result.evidence}" in received
    assert ANSWER_CUE in received and EVIDENCE_CUE not in received
    assert EVIDENCE_CUE in evidence_stage.prompt and "(D) He waves" in evidence_stage.prompt
    assert "(A) He opens the door" in received
    assert result.answer == answer_stage.output.strip()
    assert [f.index for f in result.frames] == [0, 25, 50]
    assert "0.0 s, 1.0 s, 2.0 s" in received
    # the stages share frames + question + options as an exact prefix (cacheable by a server)
    shared = evidence_stage.prompt.split(EVIDENCE_CUE)[0]
    assert shared.endswith("(D) He waves\n") and answer_stage.prompt.startswith(shared)
    assert result.prompt_tokens == evidence_stage.prompt_tokens + answer_stage.prompt_tokens


def test_two_stage_open_ended_and_batched(tiny_vlm, frames):
    reasoner = TwoStageReasoner(tiny_vlm, SETTINGS, evidence_settings=GenerationSettings(max_new_tokens=6))
    results = reasoner.answer_batch([
        ReasonRequest(frames[:1], "Why is the screen red?"),
        ReasonRequest(frames, "What changes?", OPTIONS),
    ])
    assert [r.mode for r in results] == ["open", "close"]
    assert results[0].stages[0].completion_tokens <= 6
    assert "Answer in one or two sentences." in results[0].stages[1].prompt
    assert "Options:" not in results[0].stages[1].prompt
    for r in results:
        assert r.stages[1].prompt.count("Evidence: ") == 1
        assert f"Evidence: {r.evidence}" in r.stages[1].prompt
    assert len(results[0].frames) == 1


def test_direct_reasoner_and_flop_counting(tiny_vlm, frames):
    direct = DirectReasoner(tiny_vlm, SETTINGS, count_flops=True)
    result = direct.answer(frames, "What colour is the first frame?", OPTIONS)
    (stage,) = result.stages
    check_stage(stage, "answer")
    assert result.evidence is None and result.reasoner == "direct"
    assert "Select the answer and only give the option letter." in tiny_vlm.last_prompts[0]
    assert stage.flops and stage.flops > 0
    fewer = direct.answer(frames[:1], "What colour is the first frame?", OPTIONS)
    assert fewer.stages[0].prompt_tokens < stage.prompt_tokens  # fewer frames, fewer image tokens


def test_make_reasoner(tiny_vlm):
    assert isinstance(make_reasoner("two-stage", tiny_vlm), TwoStageReasoner)
    assert isinstance(make_reasoner("direct", tiny_vlm), DirectReasoner)
    with pytest.raises(ConfigError, match="unknown reasoner"):
        make_reasoner("three-stage", tiny_vlm)
