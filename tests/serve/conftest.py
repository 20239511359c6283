"""A small but real VideoQA-SC pipeline (tiny random-weight models) for the server tests."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def light_videoqa(tiny_vlm, tiny_llm):
    """Caption-then-LLM selection over 4 candidates, then the two-stage reasoner, all small."""
    from videoespresso.reason import TwoStageReasoner
    from videoespresso.schema import GenerationSettings
    from videoespresso.select import CaptionLLMSelector
    from videoespresso.serve.videoqa import VideoQA

    selector = CaptionLLMSelector(
        tiny_llm, tiny_vlm, max_frames=3, candidates=4, image_size=64,
        settings=GenerationSettings(max_new_tokens=12), caption_settings=GenerationSettings(max_new_tokens=6),
    )
    reasoner = TwoStageReasoner(tiny_vlm, GenerationSettings(max_new_tokens=8))
    return VideoQA(selector, reasoner, max_side=64)


@pytest.fixture(scope="session")
def video_root(tmp_path_factory) -> Path:
    from videoespresso.video.synth import make_test_video

    root = tmp_path_factory.mktemp("video-root")
    make_test_video(root / "clip.mp4", "mixed", seconds=0.5)
    make_test_video(root / "sub" / "moving.mp4", "moving", seconds=0.5)
    return root

