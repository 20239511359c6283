"""Classical vision roles: models without weights that say only what the pixels show.

``describe`` (:class:`~.describe.ClassicalCaptioner`, a vision-language model that captions)
and ``segment`` (:class:`~.segment.ClassicalGrounder`, a phrase grounder and image-text scorer).
Their vocabulary is narrow (table colours, three shapes, sizes, thirds of the frame, four
directions) and every word is measured; see :mod:`~.vision`.
"""

from __future__ import annotations

from typing import Any

from ...errors import SpecError

_KINDS = {"describe": ("vlm", "chat"), "segment": ("grounder", "scorer")}


def load_classical(spec: str, kind: str | None = None) -> Any:
    if kind is not None and kind not in _KINDS[spec]:
        raise SpecError(f"{spec}: this classical model is a {' / '.join(_KINDS[spec])}, not {kind!r}")
    if spec == "describe":
        from .describe import ClassicalCaptioner

        return ClassicalCaptioner(spec)
    from .segment import ClassicalGrounder

    return ClassicalGrounder(spec)


__all__ = ["load_classical"]
