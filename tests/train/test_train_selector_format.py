"""Selector training sees what inference renders and parses: the prompt the caption-LLM selector
sends, and as target a reply the JSON-constrained decoder can write token by token (a spaced
``{"frames": [2, 5]}`` target was refused by the grammar from its fourth token on, which is how
the trained SmolLM2 picker lost recall). And a short training run on the hard set's format."""

from __future__ import annotations

import pytest

from videoespresso.schema import FrameRef, Generation, GenerationSettings
from videoespresso.select.caption_llm import CaptionLLMSelector, core_frames_schema, frames_reply, parse_frame_numbers
from videoespresso.select.caption_sets import SPACING_S, make_caption_sets
from videoespresso.select.hard_sets import make_hard_sets
from videoespresso.train.examples import selector_example

K = 4


def _items():
    return [*make_caption_sets(6, seed=0), *make_hard_sets(6, seed=0, split="train")]


def _example(item):
    refs = [FrameRef(index=k * 2, seconds=k * SPACING_S) for k in range(len(item.captions))]
    return refs, selector_example(f"{item.id}:selector", item.question, None, refs, item.captions, item.gold, K,
                                  source="caption-sets")


@pytest.fixture(scope="module")
def tiny_chat():
    from videoespresso import load_model

    return load_model("tiny:qwen2", kind="chat")


def test_selector_target_is_a_reply_the_constrained_decoder_writes(tiny_chat):
    import xgrammar as xgr

    grammar = tiny_chat._json_grammar()
    eos = tiny_chat._eos_ids[0]
    for item in _items():
        _, example = _example(item)
        target = example.messages[-1].content
        matcher = xgr.GrammarMatcher(grammar.compile(core_frames_schema(len(item.captions), K)))
        ids = tiny_chat.tokenizer(target, add_special_tokens=False)["input_ids"]
        accepted = [matcher.accept_token(i) for i in ids]
        assert all(accepted), (item.id, target, accepted)
        assert matcher.accept_token(eos) and matcher.is_terminated(), target
        parsed = parse_frame_numbers(target, len(item.captions), K)
        assert parsed.positions == [g - 1 for g in item.gold] and parsed.repairs == [] and parsed.failure is None
    assert frames_reply([2, 5]) == '{"frames":[2,5]}'


class _Recording:
    """An LLM that records the prompt and answers with the reply it is given."""

    spec = "recording"

    def __init__(self, reply: str) -> None:
        self.reply, self.prompts = reply, []

    def generate(self, conversations, settings=None, schema=None):
        self.prompts.append(conversations[0][0].text)
        return [Generation(text=self.reply, model=self.spec, settings=settings or GenerationSettings())]


def test_selector_example_is_what_the_selector_sends_and_parses(tmp_path):
    from videoespresso.video.synth import StaticShot, make_video

    video = make_video(tmp_path / "v.mp4", [StaticShot(24.0)], fps=1.0, size=(64, 48)).path
    for item in _items():
        refs, example = _example(item)
        llm = _Recording(example.messages[-1].content)
        selection = CaptionLLMSelector(llm, max_frames=K).select(video, item.question, candidates=refs,
                                                                 captions=item.captions)
        assert llm.prompts == [example.messages[0].content]
        assert [f.index for f in selection.frames] == [refs[g - 1].index for g in item.gold]
        assert selection.fallback is None


def test_short_training_run_on_the_hard_format(tmp_path):
    """Seconds at tiny size: the hard set's examples train, and the adapter picks valid frames."""
    from videoespresso import load_model
    from videoespresso.train.lora import TrainSettings, lora_targets, train_lora

    from videoespresso.video.synth import StaticShot, make_video

    items = make_hard_sets(6, seed=0, split="train")
    examples = [_example(it)[1] for it in items]
    result = train_lora(examples, "tiny:qwen2", tmp_path / "run", target="selector",
                        settings=TrainSettings(lr=1e-2, max_steps=3, batch_size=2, save_steps=1000, warmup_ratio=0.0,
                                               target_modules=lora_targets("attention")))
    assert result.steps == 3 and result.examples == 6 and result.truncated == 0
    selector = CaptionLLMSelector(load_model(f"hf:{tmp_path / 'run' / 'adapter'}", kind="chat"), max_frames=K)
    video = make_video(tmp_path / "v.mp4", [StaticShot(24.0)], fps=1.0, size=(64, 48)).path
    held = make_hard_sets(2, seed=0, split="heldout")
    for item in held:
        refs = _example(item)[0]
        selection = selector.select(video, item.question, candidates=refs, captions=item.captions)
        assert 1 <= len(selection.frames) <= K and selection.fallback is None
        assert {f.index for f in selection.frames} <= {r.index for r in refs}


def test_lora_targets_name_modules_and_layers():
    import re

    from videoespresso.errors import ConfigError
    from videoespresso.train.lora import LANGUAGE_MODEL_PROJECTIONS, lora_targets

    every, attention, top = lora_targets(), lora_targets("attention"), lora_targets("all", [28, 29])
    assert every == LANGUAGE_MODEL_PROJECTIONS
    assert re.fullmatch(every, "model.layers.3.mlp.up_proj") and not re.fullmatch(attention, "model.layers.3.mlp.up_proj")
    assert re.fullmatch(attention, "model.layers.3.self_attn.k_proj")
    assert re.fullmatch(top, "model.layers.29.mlp.up_proj") and not re.fullmatch(top, "model.layers.2.mlp.up_proj")
    assert not re.fullmatch(every, "model.vision_model.layers.1.self_attn.q_proj")
    with pytest.raises(ConfigError, match="attention"):
        lora_targets("mlp")
