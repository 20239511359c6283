"""Frame samplers, one per file behind :class:`Sampler`, and the spec-string parser.

Spec strings (CLI ``--sampler`` and config files):

* ``uniform:K[:CONVENTION]`` (``official``, ``vlmevalkit``, ``transformers``, ``rounded``)
* ``fps:R``
* ``official[:MAX]`` (the official evaluation's per-video count, ``min(MAX, int(24 * duration) + 1)``; MAX 128)
* ``adaptive[:STATIC_FPS[:DYNAMIC_FPS[:THRESHOLD]]][:fast]``
"""

from __future__ import annotations

from ...errors import UserError
from .adaptive import AdaptiveSampler
from .base import Sampler, Source
from .fps import FpsSampler
from .official import OfficialSampler, official_frame_count, official_indices
from .uniform import CONVENTIONS, UniformSampler, uniform_indices

FORMS = "uniform:K[:official|vlmevalkit|transformers|rounded], fps:R, official[:MAX], adaptive[:STATIC_FPS[:DYNAMIC_FPS[:THRESHOLD]]][:fast]"


class SamplerSpecError(UserError):
    """A sampler spec string that cannot be parsed."""


def _number(text: str, what: str, spec: str, kind: type = float) -> float:
    try:
        value = kind(text)
    except ValueError:
        raise SamplerSpecError(f"sampler {spec!r}: {what} must be a number, got {text!r}; forms: {FORMS}") from None
    return value


def parse_sampler(text: str) -> Sampler:
    """Build a sampler from a spec such as ``uniform:16``, ``fps:1`` or ``adaptive:1:3``."""
    spec = text.strip()
    name, _, rest = spec.partition(":")
    args = [a.strip() for a in rest.split(":")] if rest else []
    try:
        if name == "uniform":
            if not args or len(args) > 2:
                raise SamplerSpecError(f"sampler {spec!r}: expected uniform:K or uniform:K:CONVENTION; forms: {FORMS}")
            k = int(_number(args[0], "K", spec, int))
            return UniformSampler(k, args[1] if len(args) == 2 else "official")
        if name == "fps":
            if len(args) != 1:
                raise SamplerSpecError(f"sampler {spec!r}: expected fps:R (frames per second); forms: {FORMS}")
            return FpsSampler(_number(args[0], "R", spec))
        if name == "official":
            if len(args) > 1:
                raise SamplerSpecError(f"sampler {spec!r}: expected official or official:MAX; forms: {FORMS}")
            return OfficialSampler(int(_number(args[0], "MAX", spec, int)) if args else 128)
        if name == "adaptive":
            fast = bool(args) and args[-1] == "fast"
            if fast:
                args = args[:-1]
            if len(args) > 3:
                raise SamplerSpecError(f"sampler {spec!r}: too many fields; forms: {FORMS}")
            names = ("STATIC_FPS", "DYNAMIC_FPS", "THRESHOLD")
            values = [_number(a, names[i], spec) for i, a in enumerate(args)]
            return AdaptiveSampler(*values, fast=fast)  # type: ignore[arg-type]
    except ValueError as exc:
        raise SamplerSpecError(f"sampler {spec!r}: {exc}") from None
    raise SamplerSpecError(f"unknown sampler {spec!r}; forms: {FORMS}")


__all__ = [
    "AdaptiveSampler",
    "CONVENTIONS",
    "FpsSampler",
    "OfficialSampler",
    "Sampler",
    "SamplerSpecError",
    "Source",
    "UniformSampler",
    "official_frame_count",
    "official_indices",
    "parse_sampler",
    "uniform_indices",
]
