import json

import pytest
from pydantic import ValidationError

from videoespresso import schema as s


def _examples():
    frame = s.FrameRef(index=48, seconds=1.6, path="frames/000048_1.600.jpg")
    box = s.Box(x0=0.1, y0=0.2, x1=0.5, y1=0.9, score=0.7)
    settings = s.GenerationSettings(max_new_tokens=32, seed=3, stop=["\n"])
    return [
        frame,
        box,
        settings,
        s.Generation(text="B", model="tiny:qwen2-vl", settings=settings, prompt_tokens=10,
                     completion_tokens=1, parsed={"a": [1, 2]}),
        s.VideoInfo(path="v.mp4", duration_s=2.0, num_frames=60, num_frames_exact=True,
                    avg_fps=30.0, is_vfr=False, width=320, height=240, codec="h264",
                    has_audio=False),
        s.SampledFrames(video="v.mp4", sampler="uniform", params={"k": 1}, frames=[frame]),
        s.Caption(frame=frame, text="The image depicts a red square.", model="tiny:qwen2-vl"),
        s.KeyObject(name="person", boxes=[box], frame=frame),
        s.Detection(phrase="person", box=box, score=0.5),
        s.QAPair(id="q1", video="v.mp4", question="Why?", answer="Because.", task="Causal Inference",
                 frames=[frame]),
        s.CoTAnnotation(core_frames=[frame], core_captions=["c"], key_objects=[], evidence="e"),
        s.BenchItem(id="0", video_path="a.mp4", question="q", options=["a", "b", "c", "d"],
                    correct_answer="C", task="Causal Inference", extra={"key_items": ["x"]}),
        s.TrainItem(video_path="a.mp4", keyframes=["1.jpg"], keyframes_key="path",
                    captions=["c"], question="q", answer="a"),
        s.Prediction(id="0", task="Causal Inference", output="(B)", letter="B", rule="paren",
                     correct_answer="B", settings=settings, frames=[frame]),
        s.TaskScore(task="t", n=2, correct=1, unparsed=0, accuracy=0.5, ci95=(0.1, 0.9)),
        s.Score(per_task=[], overall_weighted=0.0, overall_unweighted=0.0, n=0, unparsed=0),
    ]


@pytest.mark.parametrize("record", _examples(), ids=lambda r: type(r).__name__)
def test_every_record_round_trips_through_json(record):
    text = record.model_dump_json()
    again = type(record).model_validate_json(text)
    assert again == record
    assert json.loads(again.model_dump_json()) == json.loads(text)


def test_box_rejects_out_of_range_and_swapped_corners():
    with pytest.raises(ValidationError):
        s.Box(x0=0.5, y0=0.0, x1=0.4, y1=1.0)
    with pytest.raises(ValidationError):
        s.Box(x0=0.0, y0=0.0, x1=1.2, y1=1.0)


def test_bench_item_needs_four_options_and_a_letter():
    with pytest.raises(ValidationError):
        s.BenchItem(id="0", video_path="a", question="q", options=["a", "b", "c"],
                    correct_answer="A", task="t")
    with pytest.raises(ValidationError):
        s.BenchItem(id="0", video_path="a", question="q", options=["a", "b", "c", "d"],
                    correct_answer="E", task="t")


def test_tasks_have_both_names_and_leaderboard_order():
    assert len(s.TASKS) == 14
    assert s.TASKS[0].leaderboard_name == "Narrative Analysis"
    assert s.find_task("causal inference").leaderboard_name == "Causal Analysis"
    assert s.find_task("Preparation_Steps").paper_name == "Ingredient Details"
    assert s.find_task("nonsense") is None


def test_generation_settings_are_greedy_by_default():
    settings = s.GenerationSettings()
    assert settings.greedy and settings.deterministic
    assert not s.GenerationSettings(temperature=0.8).deterministic
    assert s.GenerationSettings(temperature=0.8, seed=1).deterministic


def test_sft_example_contract():
    from videoespresso.schema import FrameRef, SFTExample, SFTMessage

    ex = SFTExample(
        id="q1", target="stage1",
        messages=[SFTMessage(role="user", content="Why?"), SFTMessage(role="assistant", content="Because.")],
        images=["f000000_t000000.000.jpg"], frames=[FrameRef(index=0, seconds=0.0)], source="build",
    )
    assert ex.completion == "Because." and [m.role for m in ex.prompt_messages] == ["user"]
    assert SFTExample.model_validate_json(ex.model_dump_json()) == ex
    with pytest.raises(ValueError, match="assistant"):
        SFTExample(id="q2", target="selector", messages=[SFTMessage(role="user", content="x")])
    with pytest.raises(ValueError, match="frames"):
        SFTExample(id="q3", target="stage2", messages=ex.messages, images=[], frames=ex.frames)
