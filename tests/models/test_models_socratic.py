"""``socratic:<llm>``: the LLM reads the describe captions in place of the pictures."""

from __future__ import annotations

import pytest

from videoespresso import load_model
from videoespresso.errors import SpecError
from videoespresso.models.protocols import VideoClip, VisionLanguageModel, system, user, user_video
from videoespresso.models.socratic import SocraticModel
from videoespresso.reason.reasoners import TwoStageReasoner
from videoespresso.schema import GenerationSettings
from videoespresso.video.scenes import random_scene

from PIL import Image


class _Frame:
    def __init__(self, image, ref):
        self.image, self.ref = image, ref


@pytest.fixture(scope="module")
def scene_frames():
    scene = random_scene(2)
    return scene, [Image.fromarray(scene.render(i)) for i in range(0, scene.num_frames, 10)]


def test_pictures_become_captions_and_text_turns_stay(scene_frames, tiny_llm):
    scene, frames = scene_frames
    model = SocraticModel(load_model("describe"), tiny_llm)
    assert isinstance(model, VisionLanguageModel) and model.spec == "socratic:tiny:qwen2"
    clip = VideoClip(frames[:3], [0, 10, 20], [0.0, 1.0, 2.0], scene.fps, scene.num_frames)
    [conv] = model.to_text([[system("Be brief."), user_video("Which colour moves?", clip)]])
    assert conv[0].text == "Be brief." and not conv[1].visuals
    text = conv[1].text
    assert text.startswith("Captions of the frames, in order:\nFrame 1 (0.0 s): A dark scene")
    assert text.endswith("\n\nWhich colour moves?")
    for t in scene.frame_truth(10):
        assert f"{t.size} {t.colour} {t.shape}" in text


def test_two_stage_reasoner_runs_on_it_end_to_end(scene_frames, tiny_llm):
    from videoespresso.schema import FrameRef

    scene, frames = scene_frames
    model = SocraticModel(load_model("describe"), tiny_llm)
    reasoner = TwoStageReasoner(model, GenerationSettings(max_new_tokens=4),
                                evidence_settings=GenerationSettings(max_new_tokens=8))
    picked = [_Frame(frames[k], FrameRef(index=10 * k, seconds=float(k))) for k in (0, 3)]
    result = reasoner.answer(picked, "How many objects are there?", ["1", "2", "3", "4"])
    assert result.model == "socratic:tiny:qwen2" and len(result.stages) == 2
    assert "Captions of the frames" not in result.stages[0].prompt  # the reasoner's own prompt
    assert isinstance(result.answer, str)


def test_spec_loads_the_llm_it_names():
    with pytest.raises(SpecError, match="a socratic model is a vlm, not 'grounder'"):
        load_model("socratic:tiny:qwen2", kind="grounder")
    model = load_model("socratic:tiny:qwen2", kind="vlm")
    assert model.spec == "socratic:tiny:qwen2" and model.llm.spec == "tiny:qwen2"
    [reply] = model.generate([[user("Describe.", [Image.new("RGB", (32, 32))])]], GenerationSettings(max_new_tokens=2))
    assert reply.model == "socratic:tiny:qwen2"
