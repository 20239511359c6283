"""The transformers backends, run on the tiny random-weight checkpoints (structure, never content)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from videoespresso import load_model
from videoespresso.errors import CheckpointNotFoundError, SpecError, UserError
from videoespresso.models.hf import _resolve_dtype, checkpoint_kind
from videoespresso.models.protocols import (
    ChatModel,
    ImageTextScorer,
    PhraseGrounder,
    VisionLanguageModel,
    assistant,
    system,
    user,
)
from videoespresso.schema import Generation, GenerationSettings


def _image(seed: int, size: tuple[int, int]) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8))


@pytest.fixture(scope="module")
def images() -> list[Image.Image]:
    return [_image(0, (80, 64)), _image(1, (60, 100)), _image(2, (56, 56)), _image(3, (120, 90))]


def test_backends_implement_their_protocols(tiny_vlm, tiny_llm, tiny_grounder, tiny_clip):
    assert isinstance(tiny_vlm, VisionLanguageModel) and tiny_vlm.kind == "vlm"
    assert isinstance(tiny_llm, ChatModel) and tiny_llm.kind == "chat"
    assert isinstance(tiny_grounder, PhraseGrounder) and tiny_grounder.kind == "grounder"
    assert isinstance(tiny_clip, ImageTextScorer) and tiny_clip.kind == "scorer"
    # no GPU here: automatic placement is CPU float32
    if not torch.cuda.is_available():
        assert tiny_vlm.device == "cpu" and tiny_vlm.dtype == torch.float32


def test_vlm_batches_several_images_per_prompt_with_left_padding(tiny_vlm, images):
    conversations = [
        [user("What happens between these frames?", images[:2])],
        [system("Answer briefly."), user("Describe the frames.", images[2:4]), assistant("A room."),
         user("And then?")],
        [user("No image here.")],
    ]
    settings = GenerationSettings(max_new_tokens=8)
    calls = tiny_vlm.calls
    batched = tiny_vlm.generate(conversations, settings)
    assert tiny_vlm.calls == calls + 3
    assert [type(g) for g in batched] == [Generation] * 3
    for g in batched:
        assert g.model == "tiny:qwen2-vl"
        assert g.settings == settings
        assert 1 <= g.completion_tokens <= 8
        assert g.parsed is None and g.error is None
    prompt_tokens = [g.prompt_tokens for g in batched]
    assert len(set(prompt_tokens)) == 3, "different prompts and images give different lengths"
    assert prompt_tokens[2] < prompt_tokens[0], "image placeholders are expanded into many tokens"

    prompts = tiny_vlm.last_prompts
    assert len(prompts) == 3
    assert prompts[0].count("<|image_pad|>") == 2 and prompts[1].count("<|image_pad|>") == 2
    # images come before the text of their turn
    assert prompts[0].index("<|vision_end|>") < prompts[0].index("What happens")
    assert "Answer briefly." in prompts[1] and "A room." in prompts[1]
    assert prompts[0].endswith("<|im_start|>assistant\n")

    # left padding is correct when a batched reply equals the same prompt run alone
    alone = [tiny_vlm.generate([c], settings)[0] for c in conversations]
    assert [g.text for g in alone] == [g.text for g in batched]
    assert [g.prompt_tokens for g in alone] == prompt_tokens


def test_vlm_serves_text_only_chat_and_takes_array_frames(tiny_vlm, images):
    assert load_model("tiny:qwen2-vl", kind="chat").kind == "vlm"
    frame = np.asarray(images[0])
    from_array = tiny_vlm.generate([[user("Describe.", [frame])]], GenerationSettings(max_new_tokens=4))[0]
    from_pil = tiny_vlm.generate([[user("Describe.", [images[0]])]], GenerationSettings(max_new_tokens=4))[0]
    assert from_array.text == from_pil.text


def test_sub_batches_give_the_same_replies(tiny_vlm, images):
    conversations = [[user(f"Frame question {i}?", images[i : i + 2])] for i in range(3)]
    settings = GenerationSettings(max_new_tokens=6)
    whole = tiny_vlm.generate(conversations, settings)
    old = tiny_vlm.batch_size
    tiny_vlm.batch_size = 2
    try:
        split = tiny_vlm.generate(conversations, settings)
    finally:
        tiny_vlm.batch_size = old
    assert [g.text for g in split] == [g.text for g in whole]
    assert len(tiny_vlm.last_prompts) == 3


def test_chat_model_generates_and_records_settings(tiny_llm):
    settings = GenerationSettings(max_new_tokens=12, temperature=0.9, top_p=0.8, seed=7)
    conversations = [[user("What does the man open?")], [system("Be brief."), user("Why?")]]
    first = tiny_llm.generate(conversations, settings)
    again = tiny_llm.generate(conversations, settings)
    assert [g.text for g in first] == [g.text for g in again], "a seed makes sampling reproducible"
    for g in first:
        assert isinstance(g.text, str) and g.settings == settings and g.model == "tiny:qwen2"
        assert g.prompt_tokens > 0 and 1 <= g.completion_tokens <= 12
    assert tiny_llm.last_prompts[1].startswith("<|im_start|>system\nBe brief.<|im_end|>")
    samples = {tiny_llm.generate([conversations[0]], settings.model_copy(update={"seed": s}))[0].text
               for s in range(3)}
    assert len(samples) > 1, "different seeds sample different replies"


def test_checkpoint_decoding_defaults_do_not_leak_into_recorded_settings(tiny_llm):
    """Hub generation_config.json files carry top_k / repetition_penalty ...; only our settings count."""
    conv = [[user("Describe the video.")]]
    settings = [GenerationSettings(max_new_tokens=8), GenerationSettings(max_new_tokens=8, temperature=1.0, seed=2)]
    before = [tiny_llm.generate(conv, s)[0].text for s in settings]
    config = tiny_llm.model.generation_config
    saved = config.to_dict()
    config.update(repetition_penalty=5.0, top_k=1, no_repeat_ngram_size=2, min_new_tokens=8, do_sample=True,
                  temperature=0.01, top_p=0.01)
    try:
        after = [tiny_llm.generate(conv, s)[0].text for s in settings]
    finally:
        config.update(**{k: saved.get(k) for k in ("repetition_penalty", "top_k", "no_repeat_ngram_size",
                                                    "min_new_tokens", "do_sample", "temperature", "top_p")})
    assert after == before


def test_stop_strings_cut_the_reply(tiny_llm):
    conv = [[user("Describe the video in detail.")]]
    full = tiny_llm.generate(conv, GenerationSettings(max_new_tokens=24))[0].text
    assert len(full) > 4
    stop = full[2:4]
    cut = tiny_llm.generate(conv, GenerationSettings(max_new_tokens=24, stop=[stop]))[0]
    assert cut.text == full[: full.index(stop)]
    assert stop not in cut.text


def test_chat_model_refuses_images(tiny_llm, images):
    with pytest.raises(UserError, match="text-only chat model; conversation 1"):
        tiny_llm.generate([[user("hi")], [user("look", images[:1])]])


def test_option_logprobs_match_a_manual_forward_pass(tiny_llm):
    conv = [system("Pick one."), user("Which letter?")]
    options = ["A", "B", "the man opens the door"]
    scores = tiny_llm.option_logprobs([conv, [user("Yes or no?")]], [options, ["yes", "no"]])
    assert [len(s) for s in scores] == [3, 2]
    assert all(s < 0 for row in scores for s in row)

    tok, model = tiny_llm.tokenizer, tiny_llm.model
    prompt = tok.apply_chat_template(
        [{"role": "system", "content": "Pick one."}, {"role": "user", "content": "Which letter?"}],
        add_generation_prompt=True,
        tokenize=False,
    )
    prompt_ids = tok(prompt, add_special_tokens=False)["input_ids"]
    for option, got in zip(options, scores[0]):
        option_ids = tok(option, add_special_tokens=False)["input_ids"]
        total = 0.0
        # one token at a time, no padding: each continuation token's probability given all before it
        for k, token in enumerate(option_ids):
            ids = torch.tensor([prompt_ids + option_ids[:k]])
            with torch.no_grad():
                logits = model(input_ids=ids).logits[0, -1]
            total += torch.log_softmax(logits.float(), dim=-1)[token].item()
        assert got == pytest.approx(total, abs=1e-4)


def test_letter_scoring_in_a_padded_batch_matches_each_prompt_alone(tiny_llm):
    conversations = [[user("Which?")], [system("Long system prompt " * 5), user("Which letter fits best?")],
                     [user("Pick a letter for the frames shown.")]]
    letters = [["A", "B", "C", "D"]] * 3
    batched = tiny_llm.option_logprobs(conversations, letters)
    assert len(tiny_llm.last_prompts) == 3 and "Which letter fits best?" in tiny_llm.last_prompts[1]
    alone = [tiny_llm.option_logprobs([c], [l])[0] for c, l in zip(conversations, letters)]
    for got, want in zip(batched, alone):
        assert got == pytest.approx(want, abs=1e-4)
    tok, model = tiny_llm.tokenizer, tiny_llm.model
    prompt = tok.apply_chat_template(
        [{"role": "user", "content": "Which?"}], add_generation_prompt=True, tokenize=False)
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([tok(prompt, add_special_tokens=False)["input_ids"]])).logits[0, -1]
    manual = torch.log_softmax(logits.float(), dim=-1)
    assert batched[0] == pytest.approx([manual[tok.convert_tokens_to_ids(x)].item() for x in "ABCD"], abs=1e-4)


def test_vlm_option_logprobs_do_not_depend_on_batching(tiny_vlm, images):
    conv = [user("Which option fits the frames?", images[:2])]
    options = ["A", "(B) a red car", "C"]
    together = tiny_vlm.option_logprobs([conv], [options])[0]
    alone = [tiny_vlm.option_logprobs([conv], [[o]])[0][0] for o in options]
    assert together == pytest.approx(alone, abs=1e-4)
    with pytest.raises(UserError, match="2 continuation lists"):
        tiny_vlm.option_logprobs([conv], [options, options])


def test_grounder_returns_normalised_boxes(tiny_grounder, images):
    phrases = [["a man", "red car"], ["dog"], []]
    found = tiny_grounder.ground(images[:3], phrases, box_threshold=0.0, text_threshold=0.0)
    assert len(found) == 3
    assert found[2] == []
    assert found[0] and found[1]
    for dets, allowed in zip(found, phrases):
        assert [d.score for d in dets] == sorted((d.score for d in dets), reverse=True)
        for d in dets:
            assert d.phrase in allowed
            x0, y0, x1, y1 = d.box.as_list()
            assert 0.0 <= x0 <= x1 <= 1.0 and 0.0 <= y0 <= y1 <= 1.0
            assert d.box.score == d.score
    strict = tiny_grounder.ground(images[:1], [["a man"]], box_threshold=1.01, text_threshold=0.0)
    assert strict == [[]]


def test_clip_scores_cosine_matrix(tiny_clip, images):
    texts = ["a man opens the door", "a dog", "a red car on the road"]
    matrix = tiny_clip.score(images[:3], texts)
    assert matrix.shape == (3, 3) and matrix.dtype == np.float32
    assert np.all(np.abs(matrix) <= 1.0 + 1e-5)
    assert tiny_clip.score([images[1]], [texts[2]])[0, 0] == pytest.approx(matrix[1, 2], abs=1e-5)
    assert tiny_clip.score([], texts).shape == (0, 3)


def test_missing_local_checkpoint_is_a_clear_error(tmp_path):
    with pytest.raises(CheckpointNotFoundError, match=r"hf:/no/such/model.*does not exist"):
        load_model("hf:/no/such/model")
    with pytest.raises(CheckpointNotFoundError, match="no config.json"):
        load_model(f"hf:{tmp_path}")
    # an existing file is named as one, not as missing
    weights = tmp_path / "model.safetensors"
    weights.write_bytes(b"\0" * 8)
    with pytest.raises(CheckpointNotFoundError) as info:
        load_model(f"hf:{weights}")
    assert str(info.value) == (f"hf:{weights}: {weights} is a file, not a checkpoint folder "
                               "(a folder with config.json and the weights)")


def test_unreachable_hub_repository_is_a_clear_error():
    # HF_HUB_OFFLINE is set for the whole suite (conftest): one line, at once, with what to do.
    with pytest.raises(CheckpointNotFoundError, match="hf:nobody/no-such-model: 'nobody/no-such-model' is not in the Hugging Face cache and HF_HUB_OFFLINE is set.*hf:DIR"):
        load_model("hf:nobody/no-such-model")


def test_hub_that_cannot_be_reached_fails_fast_with_a_hint(monkeypatch):
    import socket

    # A closed port on loopback plays the unreachable hub: no traffic leaves the machine.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{port}")
    with pytest.raises(CheckpointNotFoundError, match=rf"hub \(127.0.0.1:{port}\) cannot be reached.*HF_HUB_OFFLINE=1"):
        load_model("hf:nobody/no-such-model")


def test_wrong_kind_says_what_the_checkpoint_is():
    with pytest.raises(SpecError, match="kind 'scorer'.*not 'vlm'"):
        load_model("tiny:clip", kind="vlm")
    with pytest.raises(SpecError, match="kind 'chat'.*not 'vlm'"):
        load_model("tiny:qwen2", kind="vlm")
    with pytest.raises(SpecError, match="kind 'grounder'.*not 'scorer'"):
        load_model("tiny:grounding-dino", kind="scorer")
    with pytest.raises(SpecError, match="not 'embedder'"):
        load_model("tiny:qwen2", kind="embedder")
    with pytest.raises(SpecError, match="unknown option"):
        load_model("tiny:qwen2", batchsize=3)


def test_kind_is_read_from_the_config():
    from transformers import AutoConfig

    from videoespresso.models.tiny import build_tiny

    kinds = {arch: checkpoint_kind(AutoConfig.from_pretrained(build_tiny(arch)))
             for arch in ("qwen2-vl", "qwen2", "clip", "grounding-dino")}
    assert kinds == {"qwen2-vl": "vlm", "qwen2": "chat", "clip": "scorer", "grounding-dino": "grounder"}


def test_dtype_choice():
    assert _resolve_dtype(None, "cpu") == torch.float32
    assert _resolve_dtype("bf16", "cpu") == torch.bfloat16
    assert _resolve_dtype("torch.float16", "cpu") == torch.float16
    with pytest.raises(SpecError, match="unknown dtype"):
        _resolve_dtype("int3", "cpu")


def test_explicit_dtype_and_batch_size_are_honoured():
    model = load_model("tiny:qwen2", dtype="bfloat16", batch_size=1, device="cpu")
    assert model.dtype == torch.bfloat16 and model.model.dtype == torch.bfloat16
    out = model.generate([[user("hi")], [user("there")]], GenerationSettings(max_new_tokens=3))
    assert len(out) == 2 and model.calls == 2


@pytest.mark.parametrize("arch", ["llava-onevision", "smolvlm"])
def test_other_vlm_families_batch_images_too(images, arch):
    model = load_model(f"tiny:{arch}", kind="vlm")
    conversations = [[user("What happens?", images[:2])], [user("Describe.", images[2:3])], [user("No image.")]]
    settings = GenerationSettings(max_new_tokens=6)
    batched = model.generate(conversations, settings)
    assert model.last_prompts[0].count("<image>") == 2
    assert [g.text for g in batched] == [model.generate([c], settings)[0].text for c in conversations]
    assert [len(r) for r in model.option_logprobs(conversations[:2], [["A", "B"], ["C"]])] == [2, 1]


def test_template_without_system_role_gets_system_folded_into_user(tmp_path):
    import shutil

    from videoespresso.models.tiny import build_tiny

    folder = tmp_path / "no-system"
    shutil.copytree(build_tiny("qwen2"), folder)
    template = (folder / "chat_template.jinja").read_text()
    (folder / "chat_template.jinja").write_text(
        "{%- if messages[0]['role'] == 'system' -%}{{ raise_exception('System role not supported') }}"
        "{%- endif -%}" + template
    )
    model = load_model(f"hf:{folder}", kind="chat")
    model.generate([[system("Be brief."), user("Why?")]], GenerationSettings(max_new_tokens=2))
    assert "<|im_start|>user\nBe brief.\n\nWhy?<|im_end|>" in model.last_prompts[0]


def test_custom_code_is_only_run_when_asked(tmp_path):
    (tmp_path / "config.json").write_text(
        '{"model_type": "my_custom", "auto_map": {"AutoConfig": "configuration_x.MyConfig"}}'
    )
    with pytest.raises(CheckpointNotFoundError, match="needs custom code; pass trust_remote_code=True"):
        load_model(f"hf:{tmp_path}")
