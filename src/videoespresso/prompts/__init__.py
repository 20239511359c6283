"""Versioned prompt templates, shipped as package data.

A template is a text file ``<name>.txt`` in this folder (sub-folders allowed: ``qa/generate``).
Its first lines may be a header of ``# key: value`` lines; ``# version: N`` is required. The body
is everything after the header, rendered with ``str.format`` (``{question}``; literal braces are
doubled). :attr:`Prompt.sha` hashes name, version and body, so changing a template invalidates
exactly the cached outputs that used it.
"""

from __future__ import annotations

import hashlib
import string
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from typing import Any

from ..errors import ConfigError


@dataclass(frozen=True)
class Prompt:
    name: str
    version: str
    text: str
    meta: dict[str, str] = field(default_factory=dict)

    @property
    def sha(self) -> str:
        digest = hashlib.sha256(f"{self.name}\0{self.version}\0{self.text}".encode("utf-8"))
        return digest.hexdigest()[:16]

    @property
    def fields(self) -> list[str]:
        return sorted({f for _, f, _, _ in string.Formatter().parse(self.text) if f})

    def render(self, **values: Any) -> str:
        missing = [f for f in self.fields if f not in values]
        if missing:
            raise KeyError(f"prompt {self.name!r} needs values for: {', '.join(missing)}")
        return self.text.format(**values)


def parse_prompt(name: str, raw: str) -> Prompt:
    meta: dict[str, str] = {}
    lines = raw.splitlines(keepends=True)
    body_start = 0
    for i, line in enumerate(lines):
        stripped = line.strip()
        if stripped.startswith("#") and ":" in stripped:
            key, _, value = stripped[1:].partition(":")
            meta[key.strip()] = value.strip()
            body_start = i + 1
        else:
            break
    if "version" not in meta:
        raise ConfigError(f"prompt {name!r} has no '# version: N' header line")
    body = "".join(lines[body_start:]).strip("\n")
    return Prompt(name=name, version=meta.pop("version"), text=body, meta=meta)


@lru_cache(maxsize=None)
def load_prompt(name: str) -> Prompt:
    """Load the packaged template ``name`` (e.g. ``"caption"`` or ``"qa/generate"``)."""
    resource = resources.files(__name__).joinpath(f"{name}.txt")
    if not resource.is_file():
        raise ConfigError(f"no prompt template named {name!r}")
    return parse_prompt(name, resource.read_text("utf-8"))
