"""Compute accounting: FLOPs counted, not quoted.

A model family (``data/model_families.yaml``: hyper-parameters only) is built as a transformers
model on the ``meta`` device, so a 7B model costs no memory, and its modules are run under
:class:`torch.utils.flop_counter.FlopCounterMode`:

* the vision path (encoder + projector) on one frame gives the frame's vision FLOPs and, from the
  output's shape, the number of LLM tokens a frame becomes;
* the language model (decoder + LM head, logits at every position, as a profiler run on
  ``model(**inputs)`` counts) on ``n`` input embeddings gives the prefill FLOPs of ``n`` tokens;
* generating ``m`` tokens after a context of ``c`` costs ``prefill(c + m) - prefill(c)``: with a
  KV cache each new token pays exactly its own row of the computation.

FLOPs count a multiply-add as 2 (FlopCounterMode's convention). Decoder attention is counted
causally (the lower triangle of the score matrix; the counter itself prices the full square),
vision-encoder attention in full (it is bidirectional).

The per-frame figure is the paper's unit (reference section 6): one frame's vision FLOPs plus the
LLM prefill of that frame's tokens. Per-query costs (:func:`query_cost`) add the text prompt,
the generated tokens, every stage of a two-stage reasoner and the frame selector.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from functools import cached_property, lru_cache
from importlib import resources
from typing import TYPE_CHECKING, Any, Callable, Literal

import yaml

from ..errors import ConfigError

if TYPE_CHECKING:
    import torch

Builder = Literal["llava", "internvl", "qwen2-vl", "causal-lm"]
TERA = 1e12


# --------------------------------------------------------------------------- families


@dataclass(frozen=True)
class ModelFamily:
    """One family's architecture hyper-parameters, as shipped in ``data/model_families.yaml``."""

    name: str
    description: str
    checkpoint: str
    builder: Builder
    text: dict[str, Any]
    vision: dict[str, Any] = field(default_factory=dict)
    projector: dict[str, Any] = field(default_factory=dict)
    image_size: int | None = None
    native_image_size: int | None = None
    paper_tflops_per_frame: float | None = None
    stand_in: str | None = None

    @property
    def has_vision(self) -> bool:
        return self.builder != "causal-lm"


@lru_cache(maxsize=1)
def model_families() -> dict[str, ModelFamily]:
    """All shipped families, by name, in file order."""
    text = resources.files("videoespresso").joinpath("data/model_families.yaml").read_text("utf-8")
    raw = yaml.safe_load(text)["families"]
    return {name: ModelFamily(name=name, **fields) for name, fields in raw.items()}


def get_family(name: str) -> ModelFamily:
    families = model_families()
    if name not in families:
        raise ConfigError(f"unknown model family {name!r}; known: {', '.join(families)}")
    return families[name]


# --------------------------------------------------------------------------- building


def _depth_key(family: ModelFamily) -> str:
    return "depth" if family.builder == "qwen2-vl" else "num_hidden_layers"


def _config(family: ModelFamily, image_size: int, depth: int | None = None) -> Any:
    import transformers as tf

    text = dict(family.text)
    text_type = text.pop("type", "qwen2")
    text_cls = {"llama": tf.LlamaConfig, "qwen2": tf.Qwen2Config}
    if depth is not None:
        text["num_hidden_layers"] = depth
    if family.builder == "causal-lm":
        return text_cls[text_type](**text)
    vision = dict(family.vision)
    if depth is not None:
        vision[_depth_key(family)] = depth
    if family.builder == "qwen2-vl":
        section = text.pop("mrope_section")
        text["rope_parameters"] = {"rope_type": "default", "mrope_section": section}
        return tf.Qwen2VLConfig(vision_config=vision, text_config=text)
    vision_type = vision.pop("type")
    if family.builder == "internvl":
        patch = vision.pop("patch_size")
        vision_cfg = tf.InternVLVisionConfig(
            **vision, image_size=[image_size, image_size], patch_size=[patch, patch]
        )
        return tf.InternVLConfig(
            vision_config=vision_cfg, text_config=text_cls[text_type](**text), **family.projector
        )
    vision_cls = {"clip": tf.CLIPVisionConfig, "siglip": tf.SiglipVisionConfig}[vision_type]
    return tf.LlavaConfig(
        vision_config=vision_cls(**vision, image_size=image_size),
        text_config=text_cls[text_type](**text),
        **family.projector,
    )


def _build(family: ModelFamily, image_size: int, depth: int | None = None) -> Any:
    """The family's model on the meta device; ``depth`` overrides every stack's layer count."""
    import torch
    import transformers as tf

    config = _config(family, image_size, depth)
    cls = {
        "llava": tf.LlavaForConditionalGeneration,
        "internvl": tf.InternVLForConditionalGeneration,
        "qwen2-vl": tf.Qwen2VLForConditionalGeneration,
        "causal-lm": tf.AutoModelForCausalLM,
    }[family.builder]
    with torch.device("meta"):
        model = cls.from_config(config) if family.builder == "causal-lm" else cls(config)
    model.eval()
    if family.builder == "qwen2-vl":
        # The vision tower derives positions and sequence lengths from ``grid_thw`` with
        # ``.tolist()``, which needs a real (CPU) tensor; only the rotary input must then be
        # moved onto the meta device where the weights live.
        model.model.visual.rotary_pos_emb.register_forward_pre_hook(_to_meta)
    return model


def _to_meta(_module: Any, args: tuple) -> tuple:
    import torch

    return tuple(a.to("meta") if isinstance(a, torch.Tensor) else a for a in args)


def _attention_flops(q: Any, k: Any, v: Any, is_causal: bool) -> int:
    """Scores (q k^T) and weighted sum (p v) of one SDPA call, over the pairs it computes:
    all of them, or with ``is_causal`` the top-left-aligned lower triangle PyTorch masks to."""
    b, heads, sq, d = q
    sk, dv = k[-2], v[-1]
    if not is_causal:
        pairs = sq * sk
    elif sk >= sq:
        pairs = sq * (sq + 1) // 2
    else:
        pairs = sk * (sk + 1) // 2 + (sq - sk) * sk
    return 2 * b * heads * pairs * (d + dv)


def _sdpa_formula(causal_at: int) -> Callable[..., int]:
    def formula(q: Any, k: Any, v: Any, *args: Any, out_shape: Any = None, **kwargs: Any) -> int:
        causal = kwargs.get("is_causal", args[causal_at] if len(args) > causal_at else False)
        return _attention_flops(q, k, v, bool(causal))

    return formula


@lru_cache(maxsize=1)
def _attention_mapping() -> dict[Any, Any]:
    """Formulas for the fused SDPA kernels: torch's counter knows no formula for the CPU kernel
    (it would count attention as zero) and prices the GPU kernels' full square even when causal.
    ``causal_at`` is the position of ``is_causal`` among the arguments after q, k, v."""
    import torch

    aten = torch.ops.aten
    mapping = {aten._scaled_dot_product_flash_attention_for_cpu: _sdpa_formula(1)}
    for name, causal_at in (
        ("_scaled_dot_product_flash_attention", 1),
        ("_scaled_dot_product_efficient_attention", 3),
        ("_scaled_dot_product_cudnn_attention", 3),
    ):
        if hasattr(aten, name):
            mapping[getattr(aten, name)] = _sdpa_formula(causal_at)
    return mapping


def count_flops(fn: Callable[[], Any]) -> int:
    """FLOPs of everything ``fn`` runs in torch (multiply-add = 2), fused attention included
    (causal attention counted over the pairs it computes)."""
    return sum(count_flops_by_op(fn).values())


def count_flops_by_op(fn: Callable[[], Any]) -> dict[str, int]:
    """FLOPs of everything ``fn`` runs, by aten operator."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    with torch.no_grad(), FlopCounterMode(display=False, custom_mapping=_attention_mapping()) as c:
        fn()
    return {str(op): int(n) for op, n in c.get_flop_counts()["Global"].items()}


# --------------------------------------------------------------------------- counting


@dataclass(frozen=True)
class FrameCost:
    """One frame, the paper's unit: vision encoder + projector, then the LLM over its tokens."""

    family: str
    image_size: int
    tokens: int
    vision_flops: int
    llm_flops: int

    @property
    def flops(self) -> int:
        return self.vision_flops + self.llm_flops

    @property
    def tflops(self) -> float:
        return self.flops / TERA


class FamilyCounter:
    """Counts the FLOPs of one family's modules on the meta device (built once, lazily).

    With ``scaled=True`` (the default) the stacks are built 1 and 2 layers deep and the count is
    extrapolated to the real depth: the layers of a stack are identical, so FLOPs are exactly
    affine in depth (``f(L) = f(1) + (L - 1) * (f(2) - f(1))``), and counting takes a fraction
    of a second instead of seconds per 7B forward. ``scaled=False`` builds the full model.
    """

    def __init__(
        self, family: ModelFamily | str, image_size: int | None = None, *, scaled: bool = True
    ) -> None:
        self.family = get_family(family) if isinstance(family, str) else family
        size = image_size or self.family.image_size or self.family.native_image_size or 0
        if self.family.builder == "internvl" and size != self.family.native_image_size:
            # InternVL resizes every frame to one fixed-size tile, whatever the input.
            size = self.family.native_image_size or size
        if self.family.builder == "qwen2-vl":
            unit = self.family.vision["patch_size"] * self.family.vision["spatial_merge_size"]
            size = max(unit, round(size / unit) * unit)
        self.image_size = int(size)
        self.scaled = scaled
        self._prefill: dict[int, int] = {}

    @cached_property
    def _models(self) -> list[Any]:
        if self.scaled:
            return [_build(self.family, self.image_size, depth) for depth in (1, 2)]
        return [_build(self.family, self.image_size)]

    def _extrapolate(self, counts: list[int], depth: int) -> int:
        if not self.scaled:
            return counts[0]
        return counts[0] + (depth - 1) * (counts[1] - counts[0])

    @property
    def hidden_size(self) -> int:
        return int(self.family.text["hidden_size"])

    @cached_property
    def _vision(self) -> tuple[int, int]:
        if not self.family.has_vision:
            return 0, 0
        results = [_vision_count(self.family, m, self.image_size) for m in self._models]
        depth = int(self.family.vision[_depth_key(self.family)])
        return self._extrapolate([f for f, _ in results], depth), results[0][1]

    @property
    def tokens_per_frame(self) -> int:
        return self._vision[1]

    def vision_flops(self, frames: int = 1) -> int:
        """Encoder + projector FLOPs of ``frames`` frames (frames are encoded independently)."""
        return self._vision[0] * frames

    def prefill_flops(self, tokens: int) -> int:
        """Decoder + LM head over ``tokens`` input positions."""
        if tokens <= 0:
            return 0
        if tokens not in self._prefill:
            self._prefill[tokens] = self._count_prefill(tokens)
        return self._prefill[tokens]

    def _count_prefill(self, tokens: int) -> int:
        counts = [_prefill_count(self.family, m, self.hidden_size, tokens) for m in self._models]
        return self._extrapolate(counts, int(self.family.text["num_hidden_layers"]))

    def decode_flops(self, new_tokens: int, context: int) -> int:
        """Generating ``new_tokens`` after ``context`` positions, with a KV cache."""
        if new_tokens <= 0:
            return 0
        return self.prefill_flops(context + new_tokens) - self.prefill_flops(context)

    def frame_cost(self) -> FrameCost:
        tokens = self.tokens_per_frame
        return FrameCost(
            family=self.family.name,
            image_size=self.image_size,
            tokens=tokens,
            vision_flops=self.vision_flops(1),
            llm_flops=self.prefill_flops(tokens),
        )


def _vision_count(family: ModelFamily, model: Any, image_size: int) -> tuple[int, int]:
    """Vision encoder + projector FLOPs of one frame, and the LLM tokens it becomes."""
    import torch

    inner = model.model
    out: dict[str, Any] = {}
    if family.builder == "qwen2-vl":
        vision = family.vision
        grid = image_size // vision["patch_size"]
        patch_dim = 3 * vision["temporal_patch_size"] * vision["patch_size"] ** 2
        pixels = torch.zeros(grid * grid, patch_dim, device="meta")
        thw = torch.tensor([[1, grid, grid]])

        def run() -> None:
            out["features"] = inner.get_image_features(pixel_values=pixels, image_grid_thw=thw)
    else:
        pixels = torch.zeros(1, 3, image_size, image_size, device="meta")

        def run() -> None:
            out["features"] = inner.get_image_features(pixel_values=pixels)

    flops = count_flops(run)
    return flops, _count_tokens(out["features"])


def _prefill_count(family: ModelFamily, model: Any, hidden: int, tokens: int) -> int:
    """Decoder + LM head FLOPs over ``tokens`` input embeddings, attention counted causally."""
    import torch

    embeds = torch.zeros(1, tokens, hidden, device="meta")
    kwargs: dict[str, Any] = {}
    if family.builder == "causal-lm":
        decoder = model.model
    else:
        decoder = model.model.language_model
        if family.builder == "qwen2-vl":
            positions = torch.arange(tokens, device="meta").view(1, 1, -1).expand(3, 1, tokens)
            kwargs["position_ids"] = positions

    def run() -> None:
        hidden_states = decoder(inputs_embeds=embeds, **kwargs).last_hidden_state
        model.lm_head(hidden_states)

    by_op = count_flops_by_op(run)
    # On the meta device SDPA decomposes into batched matmuls (aten.bmm): in a decoder these are
    # the attention scores and the weighted sum (the projections are aten.mm/addmm). The counter
    # prices the full tokens x tokens square; a causal decoder computes only the lower triangle,
    # (tokens + 1) / (2 * tokens) of it, which at 128 frames (about 33k tokens) halves a term
    # that is half the total.
    attention = by_op.pop("aten.bmm", 0)
    return sum(by_op.values()) + attention * (tokens + 1) // (2 * tokens)


def _count_tokens(features: Any) -> int:
    pooled = getattr(features, "pooler_output", features)
    if isinstance(pooled, (list, tuple)):
        return sum(_rows(t) for t in pooled)
    return _rows(pooled)


def _rows(tensor: "torch.Tensor") -> int:
    return int(math.prod(tensor.shape[:-1]))


@lru_cache(maxsize=32)
def family_counter(
    name: str, image_size: int | None = None, scaled: bool = True
) -> FamilyCounter:
    """A shared counter per (family, image size, scaled), so models are built once a process."""
    return FamilyCounter(name, image_size, scaled=scaled)


# --------------------------------------------------------------------------- per query


@dataclass(frozen=True)
class TokenBudget:
    """Text lengths a per-query count assumes when no real run supplies them.

    The defaults describe a VideoEspresso test question: the official close-ended prompt with
    four options is about 90 tokens, a stage-1 evidence sentence about 100, a letter answer a few,
    a selector caption about 40 tokens.
    """

    question_tokens: int = 90
    cue_tokens: int = 12
    evidence_tokens: int = 100
    answer_tokens: int = 4
    caption_prompt_tokens: int = 20
    caption_tokens: int = 40
    select_prompt_tokens: int = 60
    select_reply_tokens: int = 12


@dataclass
class StageCost:
    """One model call of a query."""

    stage: str
    family: str
    calls: int
    #: Frames shown over all calls (fractional for an average count such as 2.36).
    frames: float
    prompt_tokens: int
    new_tokens: int
    vision_flops: int
    prefill_flops: int
    decode_flops: int

    @property
    def flops(self) -> int:
        return self.vision_flops + self.prefill_flops + self.decode_flops


@dataclass
class QueryCost:
    """All model calls of one question, split into selector and reasoner."""

    reasoner: str
    frames: float
    stages: list[StageCost]

    @property
    def selector_flops(self) -> int:
        return sum(s.flops for s in self.stages if s.stage.startswith("selector"))

    @property
    def reasoner_flops(self) -> int:
        return sum(s.flops for s in self.stages if not s.stage.startswith("selector"))

    @property
    def flops(self) -> int:
        return self.selector_flops + self.reasoner_flops

    def to_dict(self) -> dict[str, Any]:
        return {
            "reasoner": self.reasoner,
            "frames": self.frames,
            "selector_tflops": self.selector_flops / TERA,
            "reasoner_tflops": self.reasoner_flops / TERA,
            "total_tflops": self.flops / TERA,
            "stages": [dict(asdict(s), tflops=s.flops / TERA) for s in self.stages],
        }


def _generation_stage(
    stage: str,
    counter: FamilyCounter,
    frames: float,
    text_tokens: int,
    new_tokens: int,
    calls: int = 1,
    cached_text_tokens: int | None = None,
) -> StageCost:
    """One call (or ``calls`` identical calls): frames encoded, prompt prefilled, reply decoded.

    With ``cached_text_tokens`` the frames and that many following text tokens are a prefix an
    earlier call left in the KV cache: the frames are not encoded again and only the rest of the
    prompt is prefilled (attending to the whole prefix).

    A fractional frame count (the paper's 2.36 on average) interpolates linearly between the two
    neighbouring whole counts, since cost is linear in frames only up to attention.
    """
    low = math.floor(frames)
    weight = frames - low
    costs = []
    for whole in (low, low + 1) if weight else (low,):
        prompt = whole * counter.tokens_per_frame + text_tokens
        if cached_text_tokens is None:
            vision, prefill = counter.vision_flops(whole), counter.prefill_flops(prompt)
        else:
            cached = whole * counter.tokens_per_frame + cached_text_tokens
            vision, prefill = 0, counter.prefill_flops(prompt) - counter.prefill_flops(cached)
        costs.append((vision, prefill, counter.decode_flops(new_tokens, prompt), prompt))
    if weight:
        mixed = [round((1 - weight) * a + weight * b) for a, b in zip(costs[0], costs[1])]
    else:
        mixed = list(costs[0])
    vision, prefill, decode, prompt = mixed
    return StageCost(
        stage=stage,
        family=counter.family.name,
        calls=calls,
        frames=frames * calls,
        prompt_tokens=prompt * calls,
        new_tokens=new_tokens * calls,
        vision_flops=vision * calls,
        prefill_flops=prefill * calls,
        decode_flops=decode * calls,
    )


def reasoner_stages(
    counter: FamilyCounter,
    frames: float,
    reasoner: Literal["direct", "two-stage"] = "direct",
    budget: TokenBudget | None = None,
    reuse_prefix: bool = False,
) -> list[StageCost]:
    """The reasoner's calls for one question at ``frames`` frames.

    Two-stage shows the frames to both stages. By default stage 2 is an independent call that
    encodes and prefills everything again (what the ``hf:`` backend does). ``reuse_prefix``
    prices stage 2 on a server with prefix caching (vLLM, SGLang behind ``openai:``): the two
    stages' prompts share frames + question (+ options) as an exact prefix (see the
    ``reason/evidence_*`` and ``reason/evidence_answer_*`` templates), so stage 2 pays only for
    the evidence, its cue and the answer.
    """
    b = budget or TokenBudget()
    if reasoner == "direct":
        return [_generation_stage("answer", counter, frames, b.question_tokens, b.answer_tokens)]
    stage1 = _generation_stage(
        "evidence", counter, frames, b.question_tokens + b.cue_tokens, b.evidence_tokens
    )
    stage2 = _generation_stage(
        "answer",
        counter,
        frames,
        b.question_tokens + b.evidence_tokens + b.cue_tokens,
        b.answer_tokens,
        cached_text_tokens=b.question_tokens if reuse_prefix else None,
    )
    return [stage1, stage2]


def selector_stages(
    vlm: FamilyCounter,
    llm: FamilyCounter,
    candidates: int,
    budget: TokenBudget | None = None,
) -> list[StageCost]:
    """The caption-then-LLM selector: one caption per candidate frame, then one selection call."""
    b = budget or TokenBudget()
    caption = _generation_stage(
        "selector-caption", vlm, 1, b.caption_prompt_tokens, b.caption_tokens, calls=candidates
    )
    prompt = b.select_prompt_tokens + b.question_tokens + candidates * (b.caption_tokens + 4)
    select = _generation_stage("selector-llm", llm, 0, prompt, b.select_reply_tokens)
    return [caption, select]


def query_cost(
    reasoner_family: str,
    frames: float,
    reasoner: Literal["direct", "two-stage"] = "direct",
    *,
    selector: Literal["none", "caption-llm"] = "none",
    selector_vlm: str = "internvl2-1b",
    selector_llm: str = "qwen2-0.5b",
    candidates: int = 16,
    image_size: int | None = None,
    budget: TokenBudget | None = None,
    exact: bool = False,
    reuse_prefix: bool = False,
) -> QueryCost:
    """FLOPs of one question: optional selector, then the reasoner at ``frames`` frames.

    ``exact`` builds every model at full depth instead of extrapolating from 1 and 2 layers.
    """
    scaled = not exact
    stages: list[StageCost] = []
    if selector == "caption-llm":
        stages += selector_stages(
            family_counter(selector_vlm, None, scaled),
            family_counter(selector_llm, None, scaled),
            candidates,
            budget,
        )
    counter = family_counter(reasoner_family, image_size, scaled)
    stages += reasoner_stages(counter, frames, reasoner, budget, reuse_prefix)
    return QueryCost(reasoner=reasoner, frames=frames, stages=stages)

