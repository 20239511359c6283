"""The offline profile's build: the real SmolLM2-135M-Instruct writes the QA pairs, verdicts,
chain of thought and distractors of 3 generated clips (the captioner, grounder and CLIP stay
random-weight checkpoints, so the captions it reads are random words).

Assertions are about structure and validity (every text field is a phrase of real words in
valid JSON), never about content: a 135M model reading random captions writes fluent nonsense.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from videoespresso.config import load_config
from videoespresso.curate import run_build
from videoespresso.schema import TASK_NAMES

_WORD = re.compile(r"[A-Za-z]{2,}")


def _words(text: str) -> int:
    return len(_WORD.findall(text))


@pytest.fixture(scope="module")
def offline_build(tmp_path_factory, tiny_models, smollm2) -> tuple[Path, object]:
    from videoespresso.video.synth import make_test_video

    root = tmp_path_factory.mktemp("offline-smollm2")
    videos = root / "videos"
    make_test_video(videos / "a_mixed.mp4", "mixed", seconds=1.5)
    make_test_video(videos / "b_static_moving.mp4", "static_moving", seconds=1.0)
    make_test_video(videos / "c_moving.mp4", "moving", seconds=2.0)
    config = root / "config.yaml"
    # small clips and one QA pair per group keep the real model's share of the suite near a minute
    config.write_text(yaml.safe_dump({
        "sampling": {"max_side": 96},
        "generation": {"max_new_tokens": 12},
        "curate": {"group_size": 8, "qa_per_group": 1, "max_text_chars": 60, "max_new_tokens": 120},
    }))
    cfg = load_config("offline", config)
    out = root / "build"
    result = run_build(videos, out, cfg, preloaded={**tiny_models, "smollm2": smollm2}, progress=False)
    return out, result


@pytest.mark.timeout(900)  # the module build: about a minute on an idle 2-core machine
def test_offline_profile_text_stages_run_on_smollm2(offline_build):
    out, _ = offline_build
    cfg = load_config("offline")
    assert cfg.models.llm == cfg.models.judges[0] == "smollm2"
    records = [json.loads(line) for line in (out / "dataset.jsonl").read_text().splitlines()]
    assert records, "the offline build exported nothing"
    for record in records:
        qa, cot = record["qa"], record["cot"]
        assert qa["task"] in TASK_NAMES
        assert _words(qa["question"]) >= 2 and _words(qa["answer"]) >= 2, qa
        [verdict] = record["judgements"]
        assert verdict["judge"] == "smollm2" and isinstance(verdict["keep"], bool)
        assert _words(verdict["reason"]) >= 1, verdict
        assert cot["core_frames"] and _words(cot["evidence"]) >= 2, cot
        assert len(record["options"]) == 4 and len({o.lower() for o in record["options"]}) == 4
        assert qa["answer"] in record["options"]
        distractors = [o for o in record["options"] if o != qa["answer"]]
        assert all(_words(o) >= 1 for o in distractors), distractors


def test_offline_build_every_text_stage_called_the_model(offline_build):
    _, result = offline_build
    for name in ("qa", "filter", "cot", "options"):
        row = result.run.stage(name).to_dict()
        assert row["model_calls"] >= 1 and row["ok"] >= 1, row
        # an item the model could not answer validly is failed with its reason, never lost
        assert sum(row["failure_reasons"].values()) == row["failed"], row
