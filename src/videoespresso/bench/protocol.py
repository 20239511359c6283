"""Run protocols: ``ours`` (reproducible, our defaults) and ``official`` (the published script's).

The official evaluation (``eval/eval.py`` of the VideoEspresso repository) takes a per-video
frame count (:mod:`videoespresso.video.samplers.official`), hands all frames to the model as one
*video* at their native size, samples the reply (temperature 0.8, 512 new tokens, the torch seed
set to 0 once) and asks the official prompt without evidence. ``--protocol official`` fixes all
of that; ``ours`` keeps our defaults: 16 uniform frames as separate images resized to
``sampling.max_side``, greedy decoding with 256 new tokens (a rerun gives the same replies, and
the response cache can answer it). Greedy is not what the leaderboard ran; it is what makes two
of our runs comparable with each other.

What stays different under ``official``: the script seeds torch once and samples item after item,
so its exact replies depend on the order and batch of the run; we seed every batch with 0. Its
frames are decoded by decord, ours by PyAV (same indices, the same pixels up to the decoder).
"""

from __future__ import annotations

from typing import Any, Literal, Mapping

from ..schema import GenerationSettings

Protocol = Literal["ours", "official"]
PROTOCOLS: tuple[str, ...] = ("ours", "official")
InputForm = Literal["images", "video"]
INPUT_FORMS: tuple[str, ...] = ("images", "video")

#: The official script's decoding: do_sample, temperature 0.8, top_p None (1.0), 512 new tokens, seed 0.
OFFICIAL_SETTINGS = GenerationSettings(max_new_tokens=512, temperature=0.8, top_p=1.0, seed=0)
#: The official script's frames (the per-video count); see :class:`~videoespresso.video.samplers.OfficialSampler`.
OFFICIAL_SAMPLER = "official"


def _number(value: Any) -> str:
    return f"{value:g}" if isinstance(value, (int, float)) and not isinstance(value, bool) else str(value)


def describe_settings(settings: Mapping[str, Any]) -> str:
    """One line saying how a run was produced, from its recorded run settings (its manifest)."""
    protocol = settings.get("protocol", "ours")
    frames = settings.get("frames_label", "?")
    if frames == OFFICIAL_SAMPLER:
        frames = "official (min(128, 24 x seconds + 1) per video)"
    side = settings.get("max_side")
    size = "native resolution" if not side else f"longer side <= {side}"
    gen = settings.get("settings") if isinstance(settings.get("settings"), dict) else {}
    temperature = gen.get("temperature", 0.0) or 0.0
    # A hand-edited manifest may hold anything: a value that is not a number is shown as it is.
    decoding = ("greedy" if temperature == 0.0
                else f"temperature {_number(temperature)}, top_p {_number(gen.get('top_p', 1.0))}")
    if gen.get("seed") is not None:
        decoding += f", seed {gen['seed']}"
    decoding += f", {gen.get('max_new_tokens', '?')} new tokens"
    evidence = "with evidence" if settings.get("with_evidence") else "no evidence"
    return (
        f"{protocol}: frames {frames} from {settings.get('frames_from', 'video')}, "
        f"input {settings.get('input_form', 'images')}, {size}, {decoding}, "
        f"template {settings.get('template', '?')}, {evidence}, mode {settings.get('mode', 'generate')}"
    )
