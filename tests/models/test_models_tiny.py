"""The tiny checkpoint factory: deterministic, small, atomic, loadable by the plain Auto classes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from videoespresso.errors import SpecError
from videoespresso.models import tiny
from videoespresso.models.tiny import build_tiny, list_tiny_archs, tiny_path


def _digest(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


@pytest.mark.parametrize("arch", list_tiny_archs())
def test_build_is_deterministic_small_and_complete(arch, tmp_path):
    first = build_tiny(arch, cache_dir=tmp_path / "a")
    second = build_tiny(arch, cache_dir=tmp_path / "b")
    assert first.name == second.name == f"{arch}-v{tiny._ARCHS[arch].version}"
    assert _digest(first) == _digest(second), "same seed must give the same bytes"
    files = {p.name for p in first.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "videoespresso_tiny.json"} <= files
    assert sum(p.stat().st_size for p in first.iterdir()) < 4_000_000
    meta = json.loads((first / "videoespresso_tiny.json").read_text())
    assert meta["arch"] == arch
    # no temporary folder is left next to the result
    assert [p.name for p in (tmp_path / "a").iterdir()] == [first.name]


def test_existing_build_is_reused(tmp_path):
    path = build_tiny("qwen2", cache_dir=tmp_path)
    stamp = (path / "model.safetensors").stat().st_mtime_ns
    assert build_tiny("qwen2", cache_dir=tmp_path) == path
    assert (path / "model.safetensors").stat().st_mtime_ns == stamp


def test_default_home_comes_from_environment(ve_home):
    assert tiny_path("clip") == ve_home / "tiny" / f"clip-v{tiny._ARCHS['clip'].version}"


def test_crashed_build_leaves_nothing(tmp_path, monkeypatch):
    def crash(out: Path) -> None:
        (out / "config.json").write_text("{}")
        raise RuntimeError("power cut")

    monkeypatch.setitem(tiny._ARCHS, "qwen2", tiny._Arch(1, crash, "crashing"))
    with pytest.raises(RuntimeError, match="power cut"):
        build_tiny("qwen2", cache_dir=tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_concurrent_builder_that_wins_is_kept(tmp_path, monkeypatch):
    """Another process renames its copy into place while we build: we keep theirs, drop ours."""
    real = tiny._ARCHS["qwen2"]
    final = tmp_path / "qwen2-v1"

    def racing(out: Path) -> None:
        real.build(out)
        final.mkdir()
        (final / "winner").write_text("theirs")

    monkeypatch.setitem(tiny._ARCHS, "qwen2", tiny._Arch(1, racing, "racing"))
    assert build_tiny("qwen2", cache_dir=tmp_path) == final
    assert [p.name for p in final.iterdir()] == ["winner"]
    assert [p.name for p in tmp_path.iterdir()] == ["qwen2-v1"]


def test_unknown_arch_lists_known_ones():
    with pytest.raises(SpecError, match="qwen2-vl.*grounding-dino"):
        build_tiny("llama-9000")
    from videoespresso import load_model

    with pytest.raises(SpecError, match="known: qwen2-vl"):
        load_model("tiny:llama-9000")


def test_qwen_tokenizer_round_trips_and_has_family_tokens(tiny_vlm):
    tok = tiny_vlm.processor.tokenizer
    text = 'Ünïcödé 🎬 {"a": [1, 2]} <obj_start>person<obj_end>\n\ttabs'
    assert tok.decode(tok(text, add_special_tokens=False)["input_ids"]) == text
    assert 500 <= len(tok) <= 1000
    assert tok.image_token == "<|image_pad|>"
    assert tok.image_token_id == tiny_vlm.model.config.image_token_id
    assert tok.convert_tokens_to_ids("<|im_end|>") == tiny_vlm.model.generation_config.eos_token_id
    rendered = tiny_vlm.processor.apply_chat_template(
        [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "hi"}]}],
        add_generation_prompt=True,
        tokenize=False,
    )
    assert rendered.endswith(
        "<|im_start|>user\n<|vision_start|><|image_pad|><|vision_end|>hi<|im_end|>\n<|im_start|>assistant\n"
    )


def test_grounding_dino_vocab_puts_bert_ids_where_the_model_expects_them(tiny_grounder):
    tok = tiny_grounder.processor.tokenizer
    assert tok.convert_tokens_to_ids(["[CLS]", "[SEP]", ".", "?"]) == [101, 102, 1012, 1029]
    ids = tok("a man . red car .")["input_ids"]
    assert ids[0] == 101 and ids[-1] == 102 and ids.count(1012) == 2
    assert tiny_grounder.model.config.decoder_layers >= 2


def test_building_leaves_the_callers_random_state_alone(tmp_path):
    import torch

    torch.manual_seed(99)
    expected = torch.rand(3)
    torch.manual_seed(99)
    build_tiny("qwen2", cache_dir=tmp_path)
    assert torch.equal(torch.rand(3), expected)


@pytest.mark.slow
def test_two_processes_building_at_once_share_one_complete_folder(tmp_path):
    import os
    import subprocess
    import sys

    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        p for p in [str(Path("src").resolve()), os.environ.get("PYTHONPATH", "")] if p))
    code = f"from videoespresso.models.tiny import build_tiny; print(build_tiny('qwen2-vl', cache_dir={str(tmp_path)!r}))"
    procs = [subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, env=env) for _ in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [err for _, err in outs]
    paths = {out.strip() for out, _ in outs}
    assert paths == {str(tmp_path / "qwen2-vl-v1")}
    assert [p.name for p in tmp_path.iterdir()] == ["qwen2-vl-v1"]
    assert _digest(tmp_path / "qwen2-vl-v1") == _digest(build_tiny("qwen2-vl", cache_dir=tmp_path / "fresh"))
