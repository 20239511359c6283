"""Compute accounting on the meta device: the paper's per-frame column, per-query costs, CLI."""

import json

import pytest

from videoespresso.cli import main
from videoespresso.errors import ConfigError
from videoespresso.reason.flops import (
    TokenBudget,
    family_counter,
    get_family,
    model_families,
    query_cost,
)

#: Families whose per-frame count we claim within 10% of the paper (see docs/architecture.md).
MATCHED = ("llava-1.5-7b", "internvl2-8b", "llava-next-interleave-7b")


def test_shipped_families_cover_the_paper_and_the_selector():
    names = set(model_families())
    assert {
        "llava-1.5-7b", "internvl2-8b", "llava-next-interleave-7b", "qwen2-vl-7b", "longva-7b",
        "internvl2-1b", "qwen2-0.5b", "qwen2-1.5b",
    } <= names
    with pytest.raises(ConfigError, match="unknown model family"):
        get_family("gpt-5")


@pytest.mark.parametrize("name", MATCHED)
def test_per_frame_tflops_within_ten_percent_of_the_paper(name):
    family = get_family(name)
    cost = family_counter(name).frame_cost()
    assert cost.tokens == 256  # 224 px / 14 px patches (LLaVA), one 448 px tile + pixel shuffle (InternVL)
    assert cost.vision_flops > 0 and cost.llm_flops > cost.vision_flops
    assert abs(cost.tflops / family.paper_tflops_per_frame - 1) < 0.10


def test_costs_grow_with_frames_and_tokens():
    counter = family_counter("llava-1.5-7b")
    frame = counter.frame_cost()
    assert counter.vision_flops(3) == 3 * counter.vision_flops(1)
    assert counter.decode_flops(10, 500) > 0
    assert counter.decode_flops(10, 500) == counter.prefill_flops(510) - counter.prefill_flops(500)
    direct2 = query_cost("llava-1.5-7b", 2, "direct")
    direct4 = query_cost("llava-1.5-7b", 4, "direct")
    # linear in frames up to attention, which only adds
    assert 2 * frame.flops < direct4.flops - direct2.flops < 2.2 * frame.flops
    two = query_cost("llava-1.5-7b", 2, "two-stage")
    assert [s.stage for s in two.stages] == ["evidence", "answer"]
    assert two.flops > 1.9 * direct2.flops  # the frames are shown to both stages
    cached = query_cost("llava-1.5-7b", 2, "two-stage", reuse_prefix=True)
    assert cached.stages[0] == two.stages[0]
    assert cached.stages[1].vision_flops == 0
    # only the evidence and the cue (112 of 714 positions) are prefilled again
    assert cached.stages[1].flops < 0.2 * two.stages[1].flops
    fractional = query_cost("llava-1.5-7b", 2.5, "direct")
    assert direct2.flops < fractional.flops < query_cost("llava-1.5-7b", 3, "direct").flops


def test_selector_is_counted_and_split():
    budget = TokenBudget(caption_tokens=30)
    with_selector = query_cost(
        "llava-1.5-7b", 2, "two-stage", selector="caption-llm", candidates=8, budget=budget
    )
    stages = {s.stage: s for s in with_selector.stages}
    assert stages["selector-caption"].calls == 8
    assert stages["selector-caption"].family == "internvl2-1b"
    assert stages["selector-llm"].frames == 0 and stages["selector-llm"].vision_flops == 0
    assert with_selector.selector_flops == stages["selector-caption"].flops + stages["selector-llm"].flops
    assert with_selector.flops == with_selector.selector_flops + with_selector.reasoner_flops
    assert with_selector.selector_flops > 0


def test_flops_cli_list_and_json(tmp_path, capsys):
    main(["flops", "--list"])
    listed = capsys.readouterr().out
    assert "llava-next-interleave-7b" in listed and "stand-in" in listed
    out = tmp_path / "f.json"
    main([
        "flops", "--model-family", "llava-1.5-7b", "--frames", "2.36", "--reasoner", "two-stage",
        "--selector", "caption-llm", "--candidates", "4", "--json", str(out),
    ])
    data = json.loads(out.read_text())
    assert data["family"] == "llava-1.5-7b"
    assert data["frame"]["paper_tflops_per_frame"] == 3.625
    assert abs(data["paper_style_tflops"] - 2.36 * data["frame"]["tflops_per_frame"]) < 1e-9
    query = data["query"]
    assert query["total_tflops"] == pytest.approx(query["selector_tflops"] + query["reasoner_tflops"])
    assert [s["stage"] for s in query["stages"]] == ["selector-caption", "selector-llm", "evidence", "answer"]


def test_flops_cli_rejects_bad_input(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["flops", "--model-family", "nope", "--frames", "2"])
    assert exc.value.code == 2
    assert "unknown model family" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["flops", "--model-family", "qwen2-0.5b", "--frames", "2"])
    assert "text-only" in capsys.readouterr().err


def test_depth_extrapolation_equals_the_full_model():
    scaled = family_counter("internvl2-1b", None, True)
    full = family_counter("internvl2-1b", None, False)
    assert scaled.frame_cost() == full.frame_cost()
    assert scaled.decode_flops(7, 300) == full.decode_flops(7, 300)


def test_decoder_attention_is_counted_causally():
    # prefill(s) = a * s + layers * 2 * heads * head_dim * s * (s + 1) for a causal decoder, so
    # prefill(2s) - 2 * prefill(s) = layers * 4 * heads * head_dim * s^2 (twice that if the
    # full score matrix were priced).
    counter = family_counter("qwen2-0.5b")
    text = counter.family.text
    heads, layers = text["num_attention_heads"], text["num_hidden_layers"]
    head_dim = text["hidden_size"] // heads
    s = 100
    quadratic = counter.prefill_flops(2 * s) - 2 * counter.prefill_flops(s)
    assert quadratic == layers * 4 * heads * head_dim * s * s


@pytest.mark.parametrize("name", ["llava-1.5-7b", "internvl2-8b"])
def test_split_meta_count_equals_a_whole_forward_on_cpu(name):
    """The meta-device count (vision path + decoder over embeddings) equals the counted FLOPs of
    one real forward of the whole model (image tokens + text, fused CPU attention) for a shrunk
    copy of the family."""
    from dataclasses import replace

    import torch
    import transformers as tf

    from videoespresso.reason.flops import FamilyCounter, _config, count_flops

    family = get_family(name)
    small = replace(
        family,
        text=dict(family.text, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                  num_attention_heads=4, num_key_value_heads=2, vocab_size=1000),
        vision=dict(family.vision, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                    num_attention_heads=2),
    )
    counter = FamilyCounter(small)
    config = _config(small, counter.image_size)
    config.image_token_id = 999
    cls = {"llava": tf.LlavaForConditionalGeneration, "internvl": tf.InternVLForConditionalGeneration}
    torch.manual_seed(0)
    model = cls[small.builder](config).eval()
    n = counter.tokens_per_frame
    ids = torch.cat([torch.full((1, n), 999), torch.randint(0, 900, (1, 8))], dim=1)
    pixels = torch.randn(1, 3, counter.image_size, counter.image_size)
    whole = count_flops(lambda: model(input_ids=ids, pixel_values=pixels))
    assert whole == counter.vision_flops(1) + counter.prefill_flops(n + 8)
