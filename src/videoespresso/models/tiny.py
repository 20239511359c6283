"""Tiny random-weight checkpoints of real architectures, for tests and the offline profile.

Each ``tiny:<arch>`` is a real transformers architecture (Qwen2-VL, Qwen2, CLIP, GroundingDINO)
shrunk to a few hundred thousand parameters, with random weights and a tokenizer trained here
with the ``tokenizers`` library on made-up sentences. It is written once into
``$VIDEOESPRESSO_HOME/tiny/<arch>-v<N>`` (default ``~/.cache/videoespresso``) and then loaded
through the same ``hf:`` code path as a user's checkpoint. Outputs are random: these checkpoints
prove plumbing, never quality.

Builds are deterministic (same seed, same bytes) and atomic: a checkpoint is assembled in a
temporary sibling folder and renamed into place, so a crash never leaves a half-written folder
and two concurrent builders both end up with one complete copy.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from ..errors import SpecError

if TYPE_CHECKING:
    from tokenizers import Tokenizer

_SEED = 1234

# --------------------------------------------------------------------------- corpus

_SUBJECTS = [
    "a man", "a woman", "the chef", "a child", "the driver", "two people", "a dog", "the crowd",
    "an old man", "the police officer", "a girl", "the cyclist", "a cat", "the teacher",
]
_VERBS = [
    "opens", "closes", "picks up", "puts down", "walks past", "looks at", "cuts", "stirs",
    "drives", "parks", "holds", "throws", "carries", "points at", "washes", "crosses",
]
_OBJECTS = [
    "the door", "a red car", "the knife", "a bowl of soup", "the window", "a blue bag",
    "the street", "a wooden table", "the onions", "a white truck", "the phone", "a bicycle",
    "the pan", "a green bottle", "the camera", "the traffic light",
]
_PLACES = [
    "in the kitchen", "on the road", "near the park", "inside the room", "at night",
    "in the rain", "on the bridge", "at the market", "in front of the house", "by the river",
]
_QUESTIONS = [
    "What does {s} do after {v2} {o}?",
    "Why does {s} {v} {o} {p}?",
    "Which frame shows {s} {p}?",
    "How many times does {s} {v} {o}?",
    "What happens before {s} {v} {o}?",
]
_EXTRA = [
    "The image depicts {s} {p}.",
    "The answer is (A).", "The answer is (B).", "The answer is (C).", "The answer is (D).",
    "Frames 1, 2 and 3 are the core frames.",
    'The evidence: {"frames": [0, 4, 7], "objects": ["person", "car"], "score": 0.85}',
    '{"answer": "B", "reason": "the man opens the door", "ok": true, "n": 12}',
    "Please answer the question based on the evidence.",
    "Please provide evidence helpful to answer the question.",
    "<obj_start>person<obj_end><box_start>[[50, 40, 20, 60]]<box_end>",
    "Select the answer and only give the option letters.",
    "Numbers: 0 1 2 3 4 5 6 7 8 9 10 16 32 64 100 128 256 512 1024.",
]


def _corpus(n: int = 400) -> list[str]:
    """A few hundred made-up sentences about videos, deterministic for a given ``n``."""
    rng = random.Random(_SEED)
    lines: list[str] = []
    for i in range(n):
        s, o, p = rng.choice(_SUBJECTS), rng.choice(_OBJECTS), rng.choice(_PLACES)
        v = rng.choice(_VERBS)
        if i % 3 == 0:
            template = rng.choice(_QUESTIONS)
        elif i % 3 == 1:
            template = rng.choice(_EXTRA)
        else:
            template = "{S} {v} {o} {p}, then {s} {v2} it."
        line = (
            template.replace("{S}", s[0].upper() + s[1:])
            .replace("{s}", s)
            .replace("{v2}", rng.choice(_VERBS))
            .replace("{v}", v)
            .replace("{o}", o)
            .replace("{p}", p)
        )
        lines.append(line)
    return lines


# --------------------------------------------------------------------------- tokenizers


def _byte_level_bpe(special_tokens: list[str], vocab_size: int) -> "Tokenizer":
    """A byte-level BPE: every byte is in the alphabet, so any text round-trips."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=special_tokens,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_corpus(), trainer=trainer)
    return tok


def _chatml_template(image: str, video: str, default_system: str | None) -> str:
    """A ChatML chat template (the Qwen family's format) with the family's image/video markers.

    Written from the documented format: ``<|im_start|>role\\n...<|im_end|>\\n`` turns, media
    markers where the content list has them, ``<|im_start|>assistant\\n`` as generation prompt.
    """
    system = (
        "{%- if loop.first and message['role'] != 'system' -%}"
        "{{- '<|im_start|>system\\n" + default_system + "<|im_end|>\\n' -}}"
        "{%- endif -%}"
        if default_system
        else ""
    )
    return (
        "{%- for message in messages -%}"
        + system
        + "{{- '<|im_start|>' + message['role'] + '\\n' -}}"
        "{%- if message['content'] is string -%}"
        "{{- message['content'] -}}"
        "{%- else -%}"
        "{%- for part in message['content'] -%}"
        "{%- if part['type'] == 'image' -%}"
        "{{- '" + image + "' -}}"
        "{%- elif part['type'] == 'video' -%}"
        "{{- '" + video + "' -}}"
        "{%- elif part['type'] == 'text' -%}"
        "{{- part['text'] -}}"
        "{%- endif -%}"
        "{%- endfor -%}"
        "{%- endif -%}"
        "{{- '<|im_end|>\\n' -}}"
        "{%- endfor -%}"
        "{%- if add_generation_prompt -%}"
        "{{- '<|im_start|>assistant\\n' -}}"
        "{%- endif -%}"
    )


# Qwen2 / Qwen2-VL instruct: a default system turn; media as <|vision_start|><|image_pad|><|vision_end|>.
_QWEN_CHAT_TEMPLATE = _chatml_template(
    "<|vision_start|><|image_pad|><|vision_end|>",
    "<|vision_start|><|video_pad|><|vision_end|>",
    "You are a helpful assistant.",
)
# LLaVA-OneVision (Qwen2 language model): no default system turn; media as <image> / <video> + newline.
_LLAVA_OV_CHAT_TEMPLATE = _chatml_template("<image>\\n", "<video>\\n", None)

_QWEN_SPECIALS = [
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|image_pad|>",
    "<|video_pad|>",
]


def _qwen_tokenizer(vision: bool) -> Any:
    extra: dict[str, str] = {}
    if vision:
        extra = {
            "image_token": "<|image_pad|>",
            "video_token": "<|video_pad|>",
            "vision_start_token": "<|vision_start|>",
            "vision_end_token": "<|vision_end|>",
        }
    return _chatml_tokenizer(_QWEN_SPECIALS, extra, _QWEN_CHAT_TEMPLATE)


def _chatml_tokenizer(specials: list[str], extra: dict[str, str], template: str) -> Any:
    from transformers import PreTrainedTokenizerFast

    return PreTrainedTokenizerFast(
        tokenizer_object=_byte_level_bpe(specials, vocab_size=800),
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        unk_token=None,
        padding_side="left",
        chat_template=template,
        extra_special_tokens=extra,
        model_max_length=4096,
    )


# GroundingDINO's text branch hard-codes BERT's ids of [CLS], [SEP], "." and "?" (101, 102, 1012,
# 1029) to split phrases, so the tiny WordPiece vocabulary puts those four tokens at those ids.
_BERT_FIXED = {0: "[PAD]", 100: "[UNK]", 101: "[CLS]", 102: "[SEP]", 103: "[MASK]", 1012: ".", 1029: "?"}


def _bert_wordpiece() -> Any:
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    # The vocabulary is assembled by hand rather than with WordPieceTrainer, whose tie-breaking
    # is not stable between runs: same corpus, same ids, same bytes on disk.
    normalizer = normalizers.BertNormalizer(lowercase=True)
    splitter = pre_tokenizers.BertPreTokenizer()
    counts: dict[str, int] = {}
    for line in _corpus():
        for word, _ in splitter.pre_tokenize_str(normalizer.normalize_str(line)):
            counts[word] = counts.get(word, 0) + 1
    chars = sorted({c for word in counts for c in word} | set("abcdefghijklmnopqrstuvwxyz0123456789"))
    words = sorted((w for w in counts if len(w) > 1), key=lambda w: (-counts[w], w))
    learned = [t for t in chars + [f"##{c}" for c in chars] + words if t not in _BERT_FIXED.values()]
    size = max(1030, len(learned) + len(_BERT_FIXED) + 99)
    vocab: dict[str, int] = {}
    pending = iter(learned)
    unused = 0
    for idx in range(size):
        if idx in _BERT_FIXED:
            token = _BERT_FIXED[idx]
        elif idx < 100:
            token = f"[unused{idx - 1}]"
        else:
            token = next(pending, None)
            if token is None:
                token = f"[unused{99 + unused}]"
                unused += 1
        vocab[token] = idx
    tok = Tokenizer(models.WordPiece(vocab=vocab, unk_token="[UNK]", max_input_chars_per_word=100))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", 101), ("[SEP]", 102)],
    )
    tok.decoder = decoders.WordPiece(prefix="##")
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        unk_token="[UNK]",
        sep_token="[SEP]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        mask_token="[MASK]",
        model_max_length=256,
    )


def _clip_tokenizer() -> Any:
    from tokenizers import processors
    from transformers import PreTrainedTokenizerFast

    bpe = _byte_level_bpe(["<|startoftext|>", "<|endoftext|>"], vocab_size=600)
    bos, eos = bpe.token_to_id("<|startoftext|>"), bpe.token_to_id("<|endoftext|>")
    bpe.post_processor = processors.TemplateProcessing(
        single="<|startoftext|> $A <|endoftext|>",
        special_tokens=[("<|startoftext|>", bos), ("<|endoftext|>", eos)],
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=bpe,
        bos_token="<|startoftext|>",
        eos_token="<|endoftext|>",
        pad_token="<|endoftext|>",
        unk_token=None,
        model_max_length=32,
    )


# --------------------------------------------------------------------------- architectures


def _seed() -> None:
    """Seed weight initialisation (the caller's RNG state is restored by :func:`_quiet_build`)."""
    import torch

    torch.manual_seed(_SEED)


def _build_qwen2_vl(out: Path) -> None:
    from transformers import (
        Qwen2VLConfig,
        Qwen2VLForConditionalGeneration,
        Qwen2VLImageProcessor,
        Qwen2VLProcessor,
        Qwen2VLVideoProcessor,
    )

    tok = _qwen_tokenizer(vision=True)
    ids = {t: tok.convert_tokens_to_ids(t) for t in _QWEN_SPECIALS}
    hidden, heads = 64, 4
    config = Qwen2VLConfig(
        text_config={
            "vocab_size": len(tok),
            "hidden_size": hidden,
            "intermediate_size": 128,
            "num_hidden_layers": 2,
            "num_attention_heads": heads,
            "num_key_value_heads": 2,
            "max_position_embeddings": 4096,
            # mrope_section splits head_dim/2 rotary frequencies over (time, height, width).
            "rope_parameters": {"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [2, 3, 3]},
            "bos_token_id": ids["<|endoftext|>"],
            "eos_token_id": ids["<|im_end|>"],
            "pad_token_id": ids["<|endoftext|>"],
        },
        vision_config={
            "depth": 2,
            "embed_dim": 32,
            "num_heads": 2,
            "mlp_ratio": 2,
            # the merger projects into the language model: its output must be the text width.
            "hidden_size": hidden,
            "patch_size": 14,
            "spatial_merge_size": 2,
            "temporal_patch_size": 2,
        },
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
        tie_word_embeddings=False,
    )
    _seed()
    model = Qwen2VLForConditionalGeneration(config).eval()
    model.generation_config.eos_token_id = ids["<|im_end|>"]
    model.generation_config.pad_token_id = ids["<|endoftext|>"]
    model.generation_config.do_sample = False
    # At most 16 visual tokens per image (28 x 28 pixels each) keeps prompts short.
    image_processor = Qwen2VLImageProcessor(min_pixels=28 * 28 * 4, max_pixels=28 * 28 * 16)
    video_processor = Qwen2VLVideoProcessor(min_pixels=28 * 28 * 4, max_pixels=28 * 28 * 16)
    processor = Qwen2VLProcessor(
        image_processor=image_processor,
        tokenizer=tok,
        video_processor=video_processor,
        chat_template=_QWEN_CHAT_TEMPLATE,
    )
    model.save_pretrained(out)
    processor.save_pretrained(out)


def _build_qwen2(out: Path) -> None:
    from transformers import Qwen2Config, Qwen2ForCausalLM

    tok = _qwen_tokenizer(vision=False)
    config = Qwen2Config(
        vocab_size=len(tok),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=4096,
        bos_token_id=tok.convert_tokens_to_ids("<|endoftext|>"),
        eos_token_id=tok.convert_tokens_to_ids("<|im_end|>"),
        pad_token_id=tok.convert_tokens_to_ids("<|endoftext|>"),
        tie_word_embeddings=True,
    )
    _seed()
    model = Qwen2ForCausalLM(config).eval()
    model.generation_config.do_sample = False
    model.save_pretrained(out)
    tok.save_pretrained(out)


def _build_clip(out: Path) -> None:
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor

    tok = _clip_tokenizer()
    config = CLIPConfig(
        text_config={
            "vocab_size": len(tok),
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "max_position_embeddings": 32,
            "bos_token_id": tok.bos_token_id,
            "eos_token_id": tok.eos_token_id,
            "pad_token_id": tok.pad_token_id,
        },
        vision_config={
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "image_size": 32,
            "patch_size": 8,
        },
        projection_dim=16,
    )
    _seed()
    model = CLIPModel(config).eval()
    image_processor = CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    processor = CLIPProcessor(image_processor=image_processor, tokenizer=tok)
    model.save_pretrained(out)
    processor.save_pretrained(out)


def _build_grounding_dino(out: Path) -> None:
    from transformers import (
        BertConfig,
        GroundingDinoConfig,
        GroundingDinoForObjectDetection,
        GroundingDinoImageProcessor,
        GroundingDinoProcessor,
        SwinConfig,
    )

    tok = _bert_wordpiece()
    backbone = SwinConfig(
        image_size=64,
        patch_size=4,
        embed_dim=16,
        depths=[1, 1, 1, 1],
        num_heads=[1, 1, 2, 2],
        window_size=4,
        out_features=["stage2", "stage3", "stage4"],
    )
    text = BertConfig(
        vocab_size=len(tok),
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=256,
        pad_token_id=0,
    )
    config = GroundingDinoConfig(
        backbone_config=backbone,
        text_config=text,
        num_queries=30,
        d_model=32,
        encoder_layers=1,
        encoder_ffn_dim=32,
        encoder_attention_heads=2,
        decoder_layers=2,
        decoder_ffn_dim=32,
        decoder_attention_heads=2,
        num_feature_levels=4,
        encoder_n_points=2,
        decoder_n_points=2,
        max_text_len=256,
    )
    _seed()
    model = GroundingDinoForObjectDetection(config).eval()
    image_processor = GroundingDinoImageProcessor(size={"shortest_edge": 64, "longest_edge": 96})
    processor = GroundingDinoProcessor(image_processor=image_processor, tokenizer=tok)
    model.save_pretrained(out)
    processor.save_pretrained(out)


def _build_llava_onevision(out: Path) -> None:
    from transformers import (
        LlavaOnevisionConfig,
        LlavaOnevisionForConditionalGeneration,
        LlavaOnevisionImageProcessor,
        LlavaOnevisionProcessor,
        LlavaOnevisionVideoProcessor,
    )

    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<image>", "<video>"]
    tok = _chatml_tokenizer(specials, {"image_token": "<image>", "video_token": "<video>"}, _LLAVA_OV_CHAT_TEMPLATE)
    ids = {t: tok.convert_tokens_to_ids(t) for t in specials}
    tile, patch = 28, 14
    # anyres tiling: each image is a base tile plus up to a 2 x 2 grid of tiles.
    pinpoints = [[tile, tile], [tile, 2 * tile], [2 * tile, tile], [2 * tile, 2 * tile]]
    config = LlavaOnevisionConfig(
        text_config={
            "model_type": "qwen2",
            "vocab_size": len(tok),
            "hidden_size": 64,
            "intermediate_size": 128,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "num_key_value_heads": 2,
            "max_position_embeddings": 4096,
            "bos_token_id": ids["<|endoftext|>"],
            "eos_token_id": ids["<|im_end|>"],
            "pad_token_id": ids["<|endoftext|>"],
        },
        vision_config={
            "model_type": "siglip_vision_model",
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "image_size": tile,
            "patch_size": patch,
        },
        image_token_index=ids["<image>"],
        video_token_index=ids["<video>"],
        vision_feature_select_strategy="full",
        vision_feature_layer=-1,
        image_grid_pinpoints=pinpoints,
        vision_aspect_ratio="anyres_max_9",
    )
    _seed()
    model = LlavaOnevisionForConditionalGeneration(config).eval()
    model.generation_config.eos_token_id = ids["<|im_end|>"]
    model.generation_config.pad_token_id = ids["<|endoftext|>"]
    model.generation_config.do_sample = False
    size = {"height": tile, "width": tile}
    processor = LlavaOnevisionProcessor(
        image_processor=LlavaOnevisionImageProcessor(size=size, image_grid_pinpoints=pinpoints),
        tokenizer=tok,
        video_processor=LlavaOnevisionVideoProcessor(size=size),
        num_image_tokens=(tile // patch) ** 2,
        vision_feature_select_strategy="full",
        chat_template=_LLAVA_OV_CHAT_TEMPLATE,
        vision_aspect_ratio="anyres_max_9",
    )
    model.save_pretrained(out)
    processor.save_pretrained(out)


# SmolVLM (Idefics3 format): "User:<image>text<end_of_utterance>\n" turns after one <|im_start|>,
# "Assistant:" as generation prompt; written from the documented format.
_SMOLVLM_CHAT_TEMPLATE = (
    "{{- '<|im_start|>' -}}"
    "{%- for message in messages -%}"
    "{{- message['role'] | capitalize -}}"
    "{%- if message['content'] is string -%}"
    "{{- ': ' + message['content'] -}}"
    "{%- else -%}"
    "{{- ':' if message['content'][0]['type'] == 'image' else ': ' -}}"
    "{%- for part in message['content'] -%}"
    "{%- if part['type'] == 'image' -%}{{- '<image>' -}}"
    "{%- elif part['type'] == 'text' -%}{{- part['text'] -}}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- endif -%}"
    "{{- '<end_of_utterance>\\n' -}}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- 'Assistant:' -}}{%- endif -%}"
)


def _build_smolvlm(out: Path) -> None:
    from transformers import (
        PreTrainedTokenizerFast,
        SmolVLMConfig,
        SmolVLMForConditionalGeneration,
        SmolVLMImageProcessor,
        SmolVLMProcessor,
        SmolVLMVideoProcessor,
    )

    tags = ["<fake_token_around_image>", "<image>", "<global-img>", "<video>"]
    # image splitting names each tile by its grid cell: all 36 cell tags must be tokens
    cells = [f"<row_{r}_col_{c}>" for r in range(1, 7) for c in range(1, 7)]
    specials = ["<|endoftext|>", "<|im_start|>", "<end_of_utterance>", *tags, *cells]
    tok = PreTrainedTokenizerFast(
        tokenizer_object=_byte_level_bpe(specials, vocab_size=800),
        bos_token="<|im_start|>",
        eos_token="<end_of_utterance>",
        pad_token="<|endoftext|>",
        unk_token=None,
        padding_side="left",
        chat_template=_SMOLVLM_CHAT_TEMPLATE,
        extra_special_tokens={
            "image_token": "<image>",
            "fake_image_token": "<fake_token_around_image>",
            "global_image_token": "<global-img>",
            "end_of_utterance_token": "<end_of_utterance>",
            "video_token": "<video>",
        },
        model_max_length=4096,
    )
    ids = {t: tok.convert_tokens_to_ids(t) for t in ("<|endoftext|>", "<|im_start|>", "<end_of_utterance>", "<image>")}
    tile, patch, scale = 32, 8, 2
    config = SmolVLMConfig(
        text_config={
            "model_type": "llama",
            "vocab_size": len(tok),
            "hidden_size": 64,
            "intermediate_size": 128,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "num_key_value_heads": 2,
            "max_position_embeddings": 4096,
            "bos_token_id": ids["<|im_start|>"],
            "eos_token_id": ids["<end_of_utterance>"],
            "pad_token_id": ids["<|endoftext|>"],
        },
        vision_config={
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "image_size": tile,
            "patch_size": patch,
        },
        image_token_id=ids["<image>"],
        scale_factor=scale,
    )
    _seed()
    model = SmolVLMForConditionalGeneration(config).eval()
    model.generation_config.eos_token_id = ids["<end_of_utterance>"]
    model.generation_config.pad_token_id = ids["<|endoftext|>"]
    model.generation_config.do_sample = False
    sizes = {"size": {"longest_edge": 2 * tile}, "max_image_size": {"longest_edge": tile}}
    processor = SmolVLMProcessor(
        image_processor=SmolVLMImageProcessor(do_image_splitting=True, **sizes),
        tokenizer=tok,
        video_processor=SmolVLMVideoProcessor(**sizes),
        image_seq_len=(tile // patch) ** 2 // scale**2,
        chat_template=_SMOLVLM_CHAT_TEMPLATE,
    )
    model.save_pretrained(out)
    processor.save_pretrained(out)


@dataclass(frozen=True)
class _Arch:
    version: int
    build: Callable[[Path], None]
    description: str


_ARCHS: dict[str, _Arch] = {
    "qwen2-vl": _Arch(1, _build_qwen2_vl, "Qwen2-VL vision-language model (several images per prompt)"),
    "qwen2": _Arch(1, _build_qwen2, "Qwen2 causal LM with the ChatML chat template"),
    "clip": _Arch(1, _build_clip, "CLIP image-text scorer"),
    "grounding-dino": _Arch(1, _build_grounding_dino, "GroundingDINO phrase grounder"),
    "smolvlm": _Arch(1, _build_smolvlm, "SmolVLM (SigLIP + Llama, Idefics3 image splitting)"),
    "llava-onevision": _Arch(1, _build_llava_onevision, "LLaVA-OneVision (SigLIP + Qwen2, anyres tiles), the reasoner's family"),
}


def list_tiny_archs() -> list[str]:
    """Names accepted by ``tiny:<arch>`` and :func:`build_tiny`."""
    return list(_ARCHS)


def describe_tiny_archs() -> dict[str, str]:
    return {name: arch.description for name, arch in _ARCHS.items()}


def tiny_home() -> Path:
    """Where tiny checkpoints live: ``$VIDEOESPRESSO_HOME/tiny`` (default ``~/.cache/videoespresso``)."""
    home = os.environ.get("VIDEOESPRESSO_HOME")
    base = Path(home).expanduser() if home else Path.home() / ".cache" / "videoespresso"
    return base / "tiny"


def tiny_path(arch: str, cache_dir: Path | None = None) -> Path:
    """The folder ``tiny:<arch>`` is (or would be) built into."""
    spec = _arch(arch)
    root = Path(cache_dir) if cache_dir is not None else tiny_home()
    return root / f"{arch}-v{spec.version}"


def _arch(arch: str) -> _Arch:
    if arch not in _ARCHS:
        raise SpecError(f"unknown tiny architecture {arch!r}; known: {', '.join(_ARCHS)}")
    return _ARCHS[arch]


def build_tiny(arch: str, cache_dir: Path | None = None) -> Path:
    """Build ``tiny:<arch>`` once and return its folder (a normal ``save_pretrained`` checkpoint).

    An existing folder is complete by construction (it only appears by an atomic rename) and is
    returned as is. Concurrent builders each assemble a private temporary copy; the first rename
    wins and the others discard theirs.
    """
    spec = _arch(arch)
    final = tiny_path(arch, cache_dir)
    if final.is_dir():
        return final

    def fill(tmp: Path) -> None:
        _quiet_build(spec.build, tmp)
        (tmp / "videoespresso_tiny.json").write_text(
            json.dumps({"arch": arch, "version": spec.version, "seed": _SEED}, indent=1) + "\n",
            encoding="utf-8",
        )

    return assemble_folder(final, fill)


def assemble_folder(final: Path, fill: Callable[[Path], None]) -> Path:
    """Create ``final`` atomically: ``fill`` a private temporary folder beside it, then rename.

    A folder that exists is complete by construction. Concurrent builders each fill their own
    copy; the first rename wins and the others discard theirs (as does a builder that fails).
    """
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.tmp-", dir=final.parent))
    try:
        tmp.chmod(0o755)
        fill(tmp)
        try:
            os.rename(tmp, final)
        except OSError:
            if not final.is_dir():
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return final


def _quiet_build(build: Callable[[Path], None], out: Path) -> None:
    """Run a builder with transformers' info/warning chatter silenced (random init is intended)
    and the process's torch RNG state left as it was."""
    import torch
    from transformers.utils import logging as hf_logging

    level = hf_logging.get_verbosity()
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        with torch.random.fork_rng(devices=[]):
            build(out)
    finally:
        hf_logging.set_verbosity(level)
        if bars:
            hf_logging.enable_progress_bar()
