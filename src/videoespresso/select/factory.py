"""Selectors by name, with their models taken from a run configuration."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterable

from ..errors import ConfigError
from .base import FrameSelector

if TYPE_CHECKING:
    from ..config import Config

SELECTORS = ("uniform", "embedding", "caption-llm", "oracle")


class LazyModel:
    """A model spec that is loaded on first use, so a selector given captions never loads its
    captioner (a 1B VLM on the paper profile)."""

    def __init__(self, spec: str, kind: str, options: dict[str, Any]) -> None:
        self.spec = spec
        self._kind = kind
        self._options = options
        self._model: Any = None

    @property
    def model(self) -> Any:
        if self._model is None:
            from ..models import load_model

            self._model = load_model(self.spec, kind=self._kind, **self._options)  # type: ignore[arg-type]
        return self._model

    def __getattr__(self, name: str) -> Any:
        return getattr(self.model, name)


def _lazy(config: "Config", spec: str, kind: str) -> LazyModel:
    return LazyModel(spec, kind, config.model_options(spec))


def captioning_settings(config: "Config") -> Any:
    """Decoding settings of the selector VLM's candidate captions: the run's (temperature, seed)
    with at most 48 new tokens (captions are short). Selector training examples caption with the
    same settings, so the captions trained on are the ones the selector reads later."""
    return config.generation.model_copy(
        update={"max_new_tokens": min(48, config.generation.max_new_tokens)}
    )


def load_selector(
    name: str,
    config: "Config",
    *,
    items: Iterable[Any] | None = None,
    **overrides: Any,
) -> FrameSelector:
    """The selector ``name`` with models from ``config.models`` (``selector_vlm`` captions,
    ``selector_llm`` picks, ``embedder`` embeds) and sizes from ``config.select``.

    ``items`` (bench items or QA pairs) are the annotations the ``oracle`` selector reads;
    ``overrides`` replace constructor arguments (``frames=8`` for ``uniform``, ...).
    """
    sel = config.select
    size = config.sampling.max_side
    captioning = captioning_settings(config)
    choosing = config.generation.model_copy(
        update={"max_new_tokens": min(32, config.generation.max_new_tokens)}
    )
    if name == "uniform":
        from .uniform import UniformSelector

        return UniformSelector(**{"frames": config.eval.frames, **overrides})
    if name == "embedding":
        from .embedding import EmbeddingSelector

        args = dict(
            k=sel.max_frames, candidates=sel.candidates, min_gap_s=sel.min_gap_s, image_size=size,
            settings=captioning,
        )
        return EmbeddingSelector(
            _lazy(config, config.models.embedder, "embedder"),
            _lazy(config, config.models.selector_vlm, "vlm"),
            **{**args, **overrides},
        )
    if name == "caption-llm":
        from .caption_llm import CaptionLLMSelector

        args = dict(
            max_frames=sel.max_frames, candidates=sel.candidates, image_size=size,
            settings=choosing, caption_settings=captioning,
        )
        return CaptionLLMSelector(
            _lazy(config, config.models.selector_llm, "chat"),
            _lazy(config, config.models.selector_vlm, "vlm"),
            **{**args, **overrides},
        )
    if name == "oracle":
        from .oracle import OracleSelector

        args = dict(candidates=sel.candidates, image_size=size, settings=captioning)
        return OracleSelector(
            items or (),
            embedder=_lazy(config, config.models.embedder, "embedder"),
            captioner=_lazy(config, config.models.selector_vlm, "vlm"),
            **{**args, **overrides},
        )
    raise ConfigError(f"unknown selector {name!r}; known: {', '.join(SELECTORS)}")
