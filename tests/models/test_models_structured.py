"""Structured output: validation helpers and xgrammar-constrained decoding on the tiny models."""

from __future__ import annotations

import re
from typing import Literal

import numpy as np
import pytest
from PIL import Image
from pydantic import BaseModel, Field

from videoespresso.errors import StructuredOutputError, UserError
from videoespresso.models.protocols import user
from videoespresso.models.structured import schema_to_json, validate_reply
from videoespresso.schema import GenerationSettings


class Answer(BaseModel):
    letter: Literal["A", "B", "C", "D"]
    reason: str = Field(max_length=24)
    frames: list[int] = Field(max_length=3)
    confidence: int = Field(ge=0, le=10)
    objects: list[str] = Field(default_factory=list)  # unbounded on purpose: see the schema below
    ok: bool


ANSWER_SCHEMA = Answer.model_json_schema()
ANSWER_SCHEMA["properties"]["objects"]["maxItems"] = 2
ANSWER_SCHEMA["properties"]["objects"]["items"]["maxLength"] = 12

FRAMES_SCHEMA = {
    "type": "object",
    "properties": {
        "frames": {"type": "array", "items": {"type": "integer", "minimum": 0, "maximum": 15},
                   "minItems": 1, "maxItems": 4},
        "why": {"type": "string", "maxLength": 16},
    },
    "required": ["frames", "why"],
}


def test_schema_to_json_accepts_models_dicts_and_strings():
    assert schema_to_json(Answer)["properties"]["letter"]["enum"] == ["A", "B", "C", "D"]
    assert schema_to_json(FRAMES_SCHEMA) == FRAMES_SCHEMA
    assert schema_to_json('{"type": "integer"}') == {"type": "integer"}
    with pytest.raises(UserError, match="unsupported schema"):
        schema_to_json(42)


def test_validate_reply_tolerates_wrappers_and_names_problems():
    good = '{"letter":"B","reason":"door","frames":[1,2],"confidence":3,"ok":true}'
    assert validate_reply(good, Answer).letter == "B"
    assert validate_reply(f"Sure! ```json\n{good}\n```", Answer).frames == [1, 2]
    assert validate_reply(f"The answer is {good} as asked.", Answer).ok is True
    assert validate_reply('{"frames":[3],"why":"x"}', FRAMES_SCHEMA) == {"frames": [3], "why": "x"}
    with pytest.raises(StructuredOutputError, match="letter") as err:
        validate_reply(good.replace('"B"', '"E"'), Answer)
    assert err.value.reply == good.replace('"B"', '"E"')
    with pytest.raises(StructuredOutputError, match="frames/0"):
        validate_reply('{"frames":[99],"why":"x"}', FRAMES_SCHEMA)
    with pytest.raises(StructuredOutputError, match="not JSON"):
        validate_reply("no json here", FRAMES_SCHEMA)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_constrained_sampling_always_validates(tiny_llm, seed):
    settings = GenerationSettings(max_new_tokens=160, temperature=1.0, seed=seed)
    out = tiny_llm.generate([[user("Answer in JSON.")]] * 2, settings, schema=ANSWER_SCHEMA)
    for g in out:
        assert g.error is None, g.error
        assert g.parsed == validate_reply(g.text, ANSWER_SCHEMA)
        skeleton = re.sub(r'"(?:[^"\\]|\\.)*"', '""', g.text)
        assert not re.search(r"\s", skeleton), f"compact JSON expected: {skeleton}"
        Answer.model_validate(g.parsed)


def test_pydantic_schema_gives_an_instance_and_seeds_vary(tiny_llm):
    class Short(BaseModel):
        letter: Literal["A", "B", "C", "D"]
        note: str = Field(max_length=10)

    texts = set()
    for seed in range(4):
        g = tiny_llm.generate([[user("Pick.")]], GenerationSettings(max_new_tokens=60, temperature=1.0, seed=seed),
                              schema=Short)[0]
        assert isinstance(g.parsed, Short), g.error
        texts.add(g.text)
    assert len(texts) > 1


def test_dict_schema_greedy_on_vlm_with_images(tiny_vlm):
    rng = np.random.default_rng(5)
    frames = [Image.fromarray(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)) for _ in range(3)]
    out = tiny_vlm.generate(
        [[user("Which frames matter?", frames)], [user("And here?", frames[:1])]],
        GenerationSettings(max_new_tokens=80),
        schema=FRAMES_SCHEMA,
    )
    for g in out:
        assert g.error is None, g.error
        assert 1 <= len(g.parsed["frames"]) <= 4 and all(0 <= f <= 15 for f in g.parsed["frames"])


def test_truncated_reply_is_recorded_not_raised(tiny_llm):
    out = tiny_llm.generate([[user("JSON please")]] * 2, GenerationSettings(max_new_tokens=3), schema=Answer)
    for g in out:
        assert g.parsed is None
        assert g.error and ("Answer" in g.error or "not JSON" in g.error)
        assert g.completion_tokens == 3


def test_stop_string_inside_constrained_reply_does_not_break_the_batch(tiny_llm):
    out = tiny_llm.generate([[user("JSON please")]] * 2, GenerationSettings(max_new_tokens=40, stop=['"']),
                            schema=FRAMES_SCHEMA)
    assert [g.text for g in out] == ["{", "{"]
    assert all(g.parsed is None and g.error for g in out)


def test_grammar_writes_properties_in_the_schema_order(tiny_llm):
    """The order of a schema's properties is the order a model reasons in (the question before
    its answer): the grammar must not sort them alphabetically."""

    class Pair(BaseModel):
        question: str = Field(max_length=8)
        answer: str = Field(max_length=8)
        core: Literal[1, 2]

    for seed in (0, 1):
        [g] = tiny_llm.generate([[user("A pair.")]], GenerationSettings(max_new_tokens=80, temperature=1.0, seed=seed),
                                schema=Pair)
        assert g.error is None, g.error
        keys = re.findall(r'"(question|answer|core)":', g.text)
        assert keys == ["question", "answer", "core"], g.text


def test_reply_word_penalty_spares_the_prompt_and_punctuation():
    import torch

    from videoespresso.models.hf import _ReplyWordPenalty

    words = torch.tensor([True, True, False, True])  # token 2 is punctuation
    penalty = _ReplyWordPenalty(words, 2.0, prompt_len=2)
    ids = torch.tensor([[3, 0, 0, 2]])  # prompt: 3, 0; reply: 0, 2
    scores = torch.tensor([[4.0, 4.0, 4.0, 4.0]])
    out = penalty(ids, scores.clone())
    assert out.tolist() == [[2.0, 4.0, 4.0, 4.0]]  # only the reply's word token 0 is penalised
    assert penalty(torch.tensor([[1, 0, 0]]), torch.tensor([[-1.0, -1.0, -1.0, -1.0]]))[0, 0] == -2.0
    assert penalty(ids[:, :2], scores.clone()).tolist() == scores.tolist()  # nothing generated yet


def test_settings_without_a_penalty_dump_as_before():
    assert "repetition_penalty" not in GenerationSettings().model_dump()
    assert GenerationSettings(repetition_penalty=1.2).model_dump()["repetition_penalty"] == 1.2
    assert GenerationSettings.model_validate(GenerationSettings(repetition_penalty=1.2).model_dump()).repetition_penalty == 1.2
