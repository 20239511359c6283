"""videoespresso: VideoEspresso (CVPR 2025) as a toolkit.

Build grounded chain-of-thought video QA datasets, answer questions about videos from a few core
frames, train the selector and reasoner, and evaluate any video model on the benchmark.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"


def load_model(spec: str, **options: Any) -> Any:
    """Build the model backend named by ``spec`` (see :mod:`videoespresso.models.registry`).

    >>> import videoespresso
    >>> emb = videoespresso.load_model("minilm")  # doctest: +SKIP
    >>> emb.embed(["a man opens a door"]).shape  # doctest: +SKIP
    (1, 384)
    """
    from .models.registry import load_model as _load

    return _load(spec, **options)


__all__ = ["__version__", "load_model"]
